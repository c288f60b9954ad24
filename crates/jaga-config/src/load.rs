//! Reading and parsing the config file, with errors that quote the key and line.

use std::path::{Path, PathBuf};

use crate::{check_duration, Config, DurationKind};

/// Where jaga looks for a config file when `--config` is not given, in order.
pub const DEFAULT_SEARCH_PATH: &[&str] = &["./jaga.toml", "/etc/jaga/jaga.toml"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file '{path}': {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file '{path}', line {line}, key '{key}': {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("config file '{path}': {message}")]
    InvalidNoPosition { path: PathBuf, message: String },
}

/// The config file to use: the explicit one, else `$JAGA_CONFIG`, else the
/// first of [`DEFAULT_SEARCH_PATH`] that exists. `None`: run on defaults.
pub fn find_config_file(
    explicit: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
    exists: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some(path) = env("JAGA_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    DEFAULT_SEARCH_PATH
        .iter()
        .map(PathBuf::from)
        .find(|p| exists(p))
}

pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses config text; `path` only names the source in errors.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|err| {
        let message = err.message().trim().to_owned();
        match err.span() {
            Some(span) => {
                let (line, key) = locate(text, span.start);
                ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line,
                    key,
                    message,
                }
            }
            None => ConfigError::InvalidNoPosition {
                path: path.to_path_buf(),
                message,
            },
        }
    })?;
    check_values(&config).map_err(|(section, key, message)| ConfigError::Invalid {
        path: path.to_path_buf(),
        line: line_of_key(text, section, key),
        key: format!("{section}.{key}"),
        message,
    })?;
    check_outputs(&config).map_err(|(index, key, message)| ConfigError::Invalid {
        path: path.to_path_buf(),
        line: line_of_output_key(text, index, key),
        key: format!("outputs[{index}].{key}"),
        message,
    })?;
    Ok(config)
}

/// `[[outputs]]` values that parse but cannot work: (index, key, why).
fn check_outputs(config: &Config) -> Result<(), (usize, &'static str, String)> {
    use jaga_outputs::OutputSettings;
    use DurationKind::Period;
    let mut names = std::collections::HashSet::new();
    let implied = !config.alerts.file.as_os_str().is_empty()
        && !config
            .outputs
            .iter()
            .any(|o| matches!(o.settings, OutputSettings::File(_)));
    for (index, output) in config.outputs.iter().enumerate() {
        let name = output.name.as_str();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err((
                index,
                "name",
                format!(
                    "'{}' is not a name: use letters, digits, '_', '-' and '.'",
                    jaga_model_escape(name)
                ),
            ));
        }
        if !names.insert(name) {
            return Err((index, "name", format!("'{name}' names two outputs")));
        }
        if implied && name == crate::IMPLIED_FILE_OUTPUT {
            return Err((
                index,
                "name",
                format!("'{name}' is the alerts file of [alerts] file: pick another name, or set [alerts] file = \"\""),
            ));
        }
        if output.min_level > 15 {
            return Err((index, "min_level", "levels go from 0 to 15".to_owned()));
        }
        if output.max_backlog == 0 {
            return Err((index, "max_backlog", "must be at least 1".to_owned()));
        }
        if output.rate_limit.is_some_and(|r| r > 60_000) {
            return Err((
                index,
                "rate_limit",
                "at most 60000 messages per minute; 0 for no limit".to_owned(),
            ));
        }
        let mut durations = vec![
            ("backoff_min", output.backoff_min),
            ("backoff_max", output.backoff_max),
        ];
        // "0s" turns grouping off.
        if let Some(window) = output.group_window.filter(|w| !w.is_zero()) {
            durations.push(("group_window", window));
        }
        if let OutputSettings::Webhook(hook) = &output.settings {
            durations.push(("timeout", hook.timeout));
        }
        for (key, value) in durations {
            check_duration(Period, value).map_err(|why| (index, key, why))?;
        }
        if output.backoff_max < output.backoff_min {
            return Err((
                index,
                "backoff_max",
                "must be at least as long as backoff_min".to_owned(),
            ));
        }
        if let OutputSettings::File(file) = &output.settings {
            if file.path.as_os_str().is_empty() {
                return Err((index, "path", "must not be empty".to_owned()));
            }
            if file.max_file_bytes < 4096 {
                return Err((index, "max_file_bytes", "must be at least 4096".to_owned()));
            }
        }
    }
    Ok(())
}

/// Control characters of a name shown back.
fn jaga_model_escape(text: &str) -> String {
    text.chars().flat_map(char::escape_default).collect()
}

/// The line where `key` is set in the `index`-th `[[outputs]]` entry; the
/// entry's header line when the key is not written.
fn line_of_output_key(text: &str, index: usize, key: &str) -> usize {
    let mut seen = 0;
    let mut in_entry = false;
    let mut header_line = 1;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_entry = trimmed.replace(' ', "") == "[[outputs]]" && {
                seen += 1;
                seen == index + 1
            };
            if in_entry {
                header_line = number + 1;
            }
            continue;
        }
        if in_entry {
            if let Some((name, _)) = trimmed.split_once('=') {
                if name.trim() == key {
                    return number + 1;
                }
            }
        }
    }
    header_line
}

/// Values that parse but cannot work: (section, key, why).
fn check_values(config: &Config) -> Result<(), (&'static str, &'static str, String)> {
    use DurationKind::{Period, Retention};
    // Every duration of the file: a test below keeps this list complete.
    let durations = [
        ("engine", "timeout", Period, config.engine.timeout),
        ("serve", "interval", Period, config.serve.interval),
        ("serve", "resync", Period, config.serve.resync),
        (
            "serve.http",
            "header_read_timeout",
            Period,
            config.serve.http.header_read_timeout,
        ),
        (
            "serve.http",
            "idle_timeout",
            Period,
            config.serve.http.idle_timeout,
        ),
        (
            "serve.http",
            "request_timeout",
            Period,
            config.serve.http.request_timeout,
        ),
        ("history", "raw", Retention, config.history.raw),
        ("history", "rollup", Retention, config.history.rollup),
        ("filesystem", "interval", Period, config.filesystem.interval),
        (
            "filesystem",
            "max_walk_time",
            Period,
            config.filesystem.max_walk_time,
        ),
        (
            "docker_listener",
            "interval",
            Period,
            config.docker_listener.interval,
        ),
        ("alerts", "retention", Retention, config.alerts.retention),
        ("audit", "interval", Period, config.audit.interval),
        ("logs", "poll", Period, config.logs.poll),
        (
            "metric_rules",
            "interval",
            Period,
            config.metric_rules.interval,
        ),
        (
            "process",
            "poll_interval",
            Period,
            config.process.poll_interval,
        ),
    ];
    for (section, key, kind, value) in durations {
        check_duration(kind, value).map_err(|why| (section, key, why))?;
    }
    if config.history.rollup < config.history.raw {
        return Err((
            "history",
            "rollup",
            "must be at least as long as history.raw".to_owned(),
        ));
    }
    if config.alerts.min_level > 15 {
        return Err(("alerts", "min_level", "levels go from 0 to 15".to_owned()));
    }
    if config.alerts.max_file_bytes < 4096 {
        return Err((
            "alerts",
            "max_file_bytes",
            "must be at least 4096".to_owned(),
        ));
    }
    if !matches!(config.logs.read_from.as_str(), "end" | "beginning") {
        return Err((
            "logs",
            "read_from",
            "use \"end\" or \"beginning\"".to_owned(),
        ));
    }
    if !matches!(config.process.mode.as_str(), "auto" | "connector" | "poll") {
        return Err((
            "process",
            "mode",
            "use \"auto\", \"connector\" or \"poll\"".to_owned(),
        ));
    }
    check_serve_access(&config.serve)?;
    if config.filesystem.max_entries == 0 {
        return Err(("filesystem", "max_entries", "must be at least 1".to_owned()));
    }
    Ok(())
}

/// Token hashes and TLS files: the shape only; the files are read at start.
fn check_serve_access(
    serve: &crate::ServeConfig,
) -> Result<(), (&'static str, &'static str, String)> {
    for hash in &serve.auth.tokens {
        let digits = hash.strip_prefix("sha256:").unwrap_or_default();
        if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            // A token pasted where its hash belongs must not be echoed whole.
            let shown: String = hash.chars().take(12).collect();
            return Err((
                "serve.auth",
                "tokens",
                format!("'{shown}…' is not a token hash: write 'sha256:' and 64 hex digits, as `jaga token new` prints them"),
            ));
        }
    }
    let tls = &serve.tls;
    if tls.cert_file.as_os_str().is_empty() != tls.key_file.as_os_str().is_empty() {
        let missing = if tls.cert_file.as_os_str().is_empty() {
            "cert_file"
        } else {
            "key_file"
        };
        return Err((
            "serve.tls",
            missing,
            "set both cert_file and key_file, or neither".to_owned(),
        ));
    }
    Ok(())
}

/// The line where `key` is set inside `[section]`; the section header's line
/// when the key is not written (a default failed a check), else 1.
fn line_of_key(text: &str, section: &str, key: &str) -> usize {
    let header = format!("[{section}]");
    let mut in_section = false;
    let mut header_line = 1;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_section = trimmed == header;
            if in_section {
                header_line = index + 1;
            }
            continue;
        }
        if in_section {
            if let Some((name, _)) = trimmed.split_once('=') {
                if name.trim() == key {
                    return index + 1;
                }
            }
        }
    }
    header_line
}

/// The 1-based line of byte `offset` and the dotted key written there,
/// prefixed by the `[table]` it sits in.
fn locate(text: &str, offset: usize) -> (usize, String) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line_index = before.matches('\n').count();
    let mut table = String::new();
    let mut key = String::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if index > line_index {
            break;
        }
        if let Some(header) = line.strip_prefix('[') {
            let name = header.trim_start_matches('[');
            let name = name.split(']').next().unwrap_or("").trim();
            table = name.to_owned();
            if index == line_index {
                key = table.clone();
            }
        } else if index == line_index {
            let name = line.split('=').next().unwrap_or("").trim();
            key = if table.is_empty() || name.is_empty() {
                name.to_owned()
            } else {
                format!("{table}.{name}")
            };
        }
    }
    (line_index + 1, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse_err(text: &str) -> String {
        parse(text, Path::new("jaga.toml"))
            .expect_err("config must be rejected")
            .to_string()
    }

    #[test]
    fn empty_file_gives_defaults() {
        let config = parse("", Path::new("jaga.toml")).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.engine.host, "unix:///var/run/docker.sock");
        assert_eq!(config.engine.timeout, Duration::from_secs(30));
    }

    #[test]
    fn values_are_read() {
        let config = parse(
            "[engine]\nhost = \"tcp://127.0.0.1:2376\"\ntls_verify = true\ntimeout = \"5s\"\n[log]\nlevel = \"debug\"\nformat = \"json\"\n",
            Path::new("jaga.toml"),
        )
        .unwrap();
        assert_eq!(config.engine.host, "tcp://127.0.0.1:2376");
        assert!(config.engine.tls_verify);
        assert_eq!(config.engine.timeout, Duration::from_secs(5));
        assert_eq!(config.log.level, "debug");
        assert_eq!(config.log.format, crate::LogFormat::Json);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = parse_err("[engine]\nhost = \"unix:///x\"\nhots = 1\n");
        assert!(
            err.starts_with(
                "config file 'jaga.toml', line 3, key 'engine.hots': unknown field `hots`"
            ),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let err = parse_err("\n[engine]\ntimeout = 5\n");
        assert!(
            err.starts_with("config file 'jaga.toml', line 3, key 'engine.timeout':"),
            "{err}"
        );
    }

    #[test]
    fn bad_duration_quotes_value() {
        let err = parse_err("[engine]\ntimeout = \"five\"\n");
        assert!(err.contains("line 2, key 'engine.timeout'"), "{err}");
    }

    #[test]
    fn unknown_section_is_named() {
        let err = parse_err("[enigne]\nhost = \"x\"\n");
        assert!(
            err.contains("line 1, key 'enigne': unknown field `enigne`"),
            "{err}"
        );
    }

    #[test]
    fn syntax_error_has_line() {
        let err = parse_err("[log]\nlevel = \"info\n");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn serve_sections_are_read() {
        let config = parse(
            "[serve]\nlisten = \"0.0.0.0:9100\"\ninterval = \"5s\"\ndata_dir = \"/var/lib/jaga\"\n\
             [history]\nraw = \"2h\"\nrollup = \"30d\"\n\
             [filesystem]\ninterval = \"10m\"\nmax_entries = 5\n\
             [metrics]\nstore_container_labels = false\nwhitelisted_container_labels = [\"app\"]\n",
            Path::new("jaga.toml"),
        )
        .unwrap();
        assert_eq!(config.serve.listen.to_string(), "0.0.0.0:9100");
        assert_eq!(config.serve.interval, Duration::from_secs(5));
        assert_eq!(config.serve.data_dir, PathBuf::from("/var/lib/jaga"));
        assert_eq!(config.history.raw, Duration::from_secs(7200));
        assert_eq!(config.history.rollup, Duration::from_secs(30 * 86400));
        assert_eq!(config.filesystem.interval, Duration::from_secs(600));
        assert_eq!(config.filesystem.max_entries, 5);
        assert!(!config.metrics.store_container_labels);
        assert_eq!(config.metrics.whitelisted_container_labels, vec!["app"]);
    }

    #[test]
    fn zero_interval_names_key_and_line() {
        assert_eq!(
            parse_err("[log]\nlevel = \"info\"\n[serve]\n# every\ninterval = \"0s\"\n"),
            "config file 'jaga.toml', line 5, key 'serve.interval': '0s' is too short: use at least 1ms"
        );
    }

    /// Every duration key of the file, found in the defaults: each value
    /// that reads as a duration, as (table, key), nested tables dotted.
    fn duration_keys() -> Vec<(String, String)> {
        fn walk(table: &str, values: &toml::Table, keys: &mut Vec<(String, String)>) {
            for (key, value) in values {
                match value {
                    toml::Value::Table(inner) if table.is_empty() => walk(key, inner, keys),
                    toml::Value::Table(inner) => walk(&format!("{table}.{key}"), inner, keys),
                    toml::Value::String(text) if humantime::parse_duration(text).is_ok() => {
                        keys.push((table.to_owned(), key.clone()))
                    }
                    _ => {}
                }
            }
        }
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        let mut keys = Vec::new();
        walk("", &defaults, &mut keys);
        keys
    }

    #[test]
    fn every_duration_key_is_found() {
        assert_eq!(duration_keys().len(), 16, "{:?}", duration_keys());
    }

    #[test]
    fn zero_duration_is_refused_for_every_key() {
        for (section, key) in duration_keys() {
            let err = parse_err(&format!("[{section}]\n{key} = \"0s\"\n"));
            assert!(
                err.starts_with(&format!(
                    "config file 'jaga.toml', line 2, key '{section}.{key}': '0s' is too short"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn process_mode_must_be_known() {
        let err = parse_err("[process]\nmode = \"ebpf\"\n");
        assert!(err.contains("key 'process.mode'"), "{err}");
        assert!(
            err.contains("use \"auto\", \"connector\" or \"poll\""),
            "{err}"
        );
        let config = parse(
            "[process]\nmode = \"poll\"\npoll_interval = \"100ms\"\n",
            Path::new("jaga.toml"),
        )
        .unwrap();
        assert_eq!(config.process.poll_interval, Duration::from_millis(100));
    }

    #[test]
    fn logs_poll_of_zero_is_refused() {
        assert_eq!(
            parse_err("[logs]\npoll = \"0s\"\n"),
            "config file 'jaga.toml', line 2, key 'logs.poll': '0s' is too short: use at least 1ms"
        );
    }

    #[test]
    fn audit_interval_of_zero_is_refused() {
        assert_eq!(
            parse_err("[audit]\ninterval = \"0s\"\n"),
            "config file 'jaga.toml', line 2, key 'audit.interval': '0s' is too short: use at least 1ms"
        );
    }

    #[test]
    fn absurd_duration_is_refused_for_every_key() {
        for (section, key) in duration_keys() {
            let err = parse_err(&format!("[{section}]\n{key} = \"1000years\"\n"));
            assert!(
                err.starts_with(&format!(
                    "config file 'jaga.toml', line 2, key '{section}.{key}': '1000years' is too long"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn rollup_shorter_than_raw_is_refused() {
        assert_eq!(
            parse_err("[history]\nraw = \"2h\"\nrollup = \"1h\"\n"),
            "config file 'jaga.toml', line 3, key 'history.rollup': must be at least as long as history.raw"
        );
    }

    #[test]
    fn bad_listen_address_names_key() {
        let err = parse_err("[serve]\nlisten = \"localhost\"\n");
        assert!(
            err.starts_with("config file 'jaga.toml', line 2, key 'serve.listen'"),
            "{err}"
        );
    }

    #[test]
    fn search_order() {
        let none = |_: &str| None;
        assert_eq!(
            find_config_file(Some(Path::new("a.toml")), none, |_| true),
            Some(PathBuf::from("a.toml"))
        );
        let env = |k: &str| (k == "JAGA_CONFIG").then(|| "/x/j.toml".to_owned());
        assert_eq!(
            find_config_file(None, env, |_| true),
            Some(PathBuf::from("/x/j.toml"))
        );
        let etc = |p: &Path| p == Path::new("/etc/jaga/jaga.toml");
        assert_eq!(
            find_config_file(None, none, etc),
            Some(PathBuf::from("/etc/jaga/jaga.toml"))
        );
        assert_eq!(find_config_file(None, none, |_| false), None);
    }

    #[test]
    fn token_pasted_where_its_hash_belongs_is_refused_without_echoing_it() {
        let token = format!("jaga_{}", "ab".repeat(32));
        let err = parse_err(&format!("[serve.auth]\ntokens = [\"{token}\"]\n"));
        assert!(err.contains("line 2, key 'serve.auth.tokens'"), "{err}");
        assert!(err.contains("'jaga_abababa…' is not a token hash"), "{err}");
        assert!(!err.contains(&token), "{err}");
        let hash = format!("sha256:{}", "0f".repeat(32));
        let config = parse(
            &format!("[serve.auth]\ntokens = [\"{hash}\"]\n"),
            Path::new("jaga.toml"),
        )
        .unwrap();
        assert_eq!(config.serve.auth.tokens, vec![hash]);
    }

    #[test]
    fn tls_needs_both_files_and_http_timeouts_must_be_positive() {
        let err = parse_err("[serve.tls]\ncert_file = \"/etc/jaga/cert.pem\"\n");
        assert!(err.contains("key 'serve.tls.key_file'"), "{err}");
        let err = parse_err("[serve.http]\nheader_read_timeout = \"0s\"\n");
        assert!(
            err.contains(
                "line 2, key 'serve.http.header_read_timeout': '0s' is too short: use at least 1ms"
            ),
            "{err}"
        );
    }

    fn hook(name: &str) -> String {
        format!(
            "[[outputs]]\nname = \"{name}\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\n"
        )
    }

    #[test]
    fn outputs_are_read_with_their_type_and_defaults_for_people_and_machines() {
        let text = format!(
            "{}min_level = 7\ncontainers = [\"web-*\"]\nbackoff_max = \"1m\"\n\
             [[outputs]]\nname = \"team\"\ntype = \"slack\"\nurl = \"https://hooks.example/T/B/x\"\n\
             [[outputs]]\nname = \"quiet\"\ntype = \"smtp\"\nhost = \"mail.example\"\n\
             from = \"j@example.org\"\nto = [\"o@example.org\"]\ngroup_window = \"0s\"\nrate_limit = 0\n",
            hook("siem")
        );
        let config = parse(&text, Path::new("jaga.toml")).unwrap();
        let [siem, team, quiet] = config.outputs.as_slice() else {
            panic!("{:?}", config.outputs)
        };
        assert_eq!(siem.settings.kind(), "webhook");
        assert_eq!(
            (siem.min_level, siem.containers.as_slice()),
            (7, &["web-*".to_owned()][..])
        );
        assert_eq!(siem.backoff_max, Duration::from_secs(60));
        assert_eq!(
            (siem.group_window_in_effect(), siem.rate_limit_in_effect()),
            (None, None)
        );
        assert_eq!(team.group_window_in_effect(), Some(Duration::from_secs(60)));
        assert_eq!(team.rate_limit_in_effect(), Some(20));
        assert_eq!(
            (quiet.group_window_in_effect(), quiet.rate_limit_in_effect()),
            (None, None)
        );
        // The alerts file of [alerts] is implied: no entry is a file.
        let names: Vec<String> = config
            .outputs_in_effect()
            .into_iter()
            .map(|o| o.name)
            .collect();
        assert_eq!(names, ["siem", "team", "quiet", "alerts_file"]);
    }

    #[test]
    fn the_alerts_file_is_not_implied_when_an_entry_is_a_file_or_it_is_off() {
        let text =
            "[[outputs]]\nname = \"archive\"\ntype = \"file\"\npath = \"/var/log/jaga.json\"\n";
        let config = parse(text, Path::new("jaga.toml")).unwrap();
        assert_eq!(config.outputs_in_effect().len(), 1);
        let config = parse("[alerts]\nfile = \"\"\n", Path::new("jaga.toml")).unwrap();
        assert!(config.outputs_in_effect().is_empty());
        let config = parse("", Path::new("jaga.toml")).unwrap();
        let implied = &config.outputs_in_effect()[0];
        assert_eq!(implied.name, "alerts_file");
        assert_eq!(implied.settings.kind(), "file");
    }

    #[test]
    fn output_mistakes_name_the_entry_key_and_line() {
        let twice = format!("{}{}", hook("a"), hook("a"));
        assert_eq!(
            parse_err(&twice),
            "config file 'jaga.toml', line 6, key 'outputs[1].name': 'a' names two outputs"
        );
        let err = parse_err(&format!("{}backoff_min = \"0s\"\n", hook("a")));
        assert!(
            err.contains("line 5, key 'outputs[0].backoff_min': '0s' is too short"),
            "{err}"
        );
        let err = parse_err(&format!("{}backoff_min = \"10m\"\n", hook("a")));
        assert!(err.contains("key 'outputs[0].backoff_max'"), "{err}");
        let err = parse_err(&hook("alerts_file"));
        assert!(err.contains("is the alerts file of [alerts] file"), "{err}");
        let err = parse_err(&hook("a b"));
        assert!(err.contains("'a b' is not a name"), "{err}");
        let err = parse_err("[[outputs]]\nname = \"x\"\ntype = \"pager\"\n");
        assert!(err.contains("pager"), "{err}");
        let err = parse_err(
            "[[outputs]]\nname = \"x\"\ntype = \"webhook\"\nurl = \"http://h\"\nsecert = \"k\"\n",
        );
        assert!(err.contains("secert"), "{err}");
    }

    #[test]
    fn audit_cve_data_and_alpine_secfixes_are_read() {
        let config = parse(
            "[audit]\ncve_data = \"/etc/jaga/cves.toml\"\ncve_data_replaces = true\nalpine_secfixes = [\"/var/lib/jaga/community.json\"]\n",
            Path::new("jaga.toml"),
        )
        .unwrap();
        assert_eq!(config.audit.cve_data, PathBuf::from("/etc/jaga/cves.toml"));
        assert!(config.audit.cve_data_replaces);
        assert_eq!(
            config.audit.alpine_secfixes,
            vec![PathBuf::from("/var/lib/jaga/community.json")]
        );
    }

    #[test]
    fn the_rendered_config_reads_back_as_the_same_config() {
        let defaults = Config::default().render().unwrap();
        assert_eq!(
            parse(&defaults, Path::new("shown")).unwrap(),
            Config::default()
        );
        // Every section's shapes: outputs of each kind (flattened `type`),
        // optional keys, durations, secret references.
        let text = "[engine]\ncert_path = \"/etc/docker/certs\"\n\
            [serve]\nlisten = \"[::1]:9900\"\n[serve.auth]\ntoken_file = \"/etc/jaga/tokens\"\n\
            [[outputs]]\nname = \"siem\"\ntype = \"webhook\"\nurl = { env = \"SIEM_URL\" }\n\
            secret = { file = \"/run/secrets/k\" }\ngroup_window = \"30s\"\nrate_limit = 5\n\
            [[outputs]]\nname = \"am\"\ntype = \"alertmanager\"\nurls = [\"http://127.0.0.1:9093\"]\n\
            [[outputs]]\nname = \"log\"\ntype = \"syslog\"\naddress = \"127.0.0.1:514\"\ntransport = \"tcp\"\n";
        let config = parse(text, Path::new("jaga.toml")).unwrap();
        let shown = config.render().unwrap();
        assert_eq!(
            parse(&shown, Path::new("shown")).unwrap(),
            config,
            "{shown}"
        );
    }

    #[test]
    fn an_inline_secret_is_not_rendered() {
        let text = "[[outputs]]\nname = \"chat\"\ntype = \"slack\"\nurl = \"https://hooks.example/T0/B0/s3cr3tpath\"\n";
        let shown = parse(text, Path::new("jaga.toml"))
            .unwrap()
            .render()
            .unwrap();
        assert!(!shown.contains("s3cr3tpath"), "{shown}");
        assert!(shown.contains("url = \"<redacted, 38 chars>\""), "{shown}");
    }

    #[test]
    fn example_file_parses_to_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../jaga.example.toml");
        let config = load_file(&path).unwrap();
        assert_eq!(config, Config::default());
    }
}
