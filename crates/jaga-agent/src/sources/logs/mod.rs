//! Container log analysis: decode each message, match the rules, raise
//! alerts with source IP, URL, payload, timestamp, rule and level.

pub mod engine_source;
pub mod watch;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use jaga_decode::{decode, Fields};
use jaga_engine::Redaction;
use jaga_model::{Alert, AlertAgent, EventContainer};
use jaga_rules::logs::{
    FrequencyState, RuleMatch, RuleSet, RuleSource, MAX_RULE_FILE_BYTES, WEB_RULES,
};
use jaga_rules::metric::MetricRules;

use crate::sources::docker_events::{fnv1a, rfc3339_ms};

/// What errors call the built-in rules.
const BUILTIN_RULES_NAME: &str = "built-in web-attacks.yml";

/// The built-in rules and the user's files, compiled into one set; an
/// error names the file and the line in it.
pub fn load_rules(files: &[PathBuf]) -> anyhow::Result<RuleSet> {
    let files = RuleFiles::read(files)?;
    let sources = files.sources((BUILTIN_RULES_NAME, WEB_RULES));
    RuleSet::parse_sources(&sources).map_err(|e| anyhow::Error::new(e).context("invalid rules"))
}

/// The built-in metric rules (unless `defaults` is false) and the user's
/// files, compiled into one set; an error names the file and the line in it.
pub fn load_metric_rules(files: &[PathBuf], defaults: bool) -> anyhow::Result<MetricRules> {
    use jaga_rules::metric::{DEFAULT_RULES, DEFAULT_RULES_NAME};
    let files = RuleFiles::read(files)?;
    let mut sources = files.sources((DEFAULT_RULES_NAME, DEFAULT_RULES));
    if !defaults {
        sources.remove(0);
    }
    MetricRules::parse_sources(&sources)
        .map_err(|e| anyhow::Error::new(e).context("invalid metric rules"))
}

/// Rule files read, with the names errors give them.
pub struct RuleFiles {
    names: Vec<String>,
    texts: Vec<String>,
}

impl RuleFiles {
    pub fn read(files: &[PathBuf]) -> anyhow::Result<Self> {
        let mut texts = Vec::with_capacity(files.len());
        for file in files {
            texts.push(read_rule_file(file)?);
        }
        let names = files.iter().map(|f| f.display().to_string()).collect();
        Ok(Self { names, texts })
    }

    /// The built-in file `(name, text)` first, then these.
    fn sources<'a>(&'a self, builtin: (&'a str, &'a str)) -> Vec<RuleSource<'a>> {
        let mut sources = vec![RuleSource {
            name: Some(builtin.0),
            text: builtin.1,
        }];
        sources.extend(
            self.names
                .iter()
                .zip(&self.texts)
                .map(|(name, text)| RuleSource {
                    name: Some(name),
                    text,
                }),
        );
        sources
    }

    /// Each file's name (as errors give it) and text.
    pub fn named(&self) -> impl Iterator<Item = (&str, &str)> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.texts.iter().map(String::as_str))
    }

    pub fn texts(&self) -> &[String] {
        &self.texts
    }
}

/// A rule file's text, refused when it is not a regular file or is larger
/// than the rules engine takes (checked before reading it all).
fn read_rule_file(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read rule file '{}'", path.display()))?;
    anyhow::ensure!(
        meta.is_file(),
        "rule file '{}' is not a regular file",
        path.display()
    );
    anyhow::ensure!(
        meta.len() <= MAX_RULE_FILE_BYTES,
        "rule file '{}' is {} bytes, more than the limit of {MAX_RULE_FILE_BYTES}",
        path.display(),
        meta.len()
    );
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_RULE_FILE_BYTES + 1).read_to_string(&mut text))
        .with_context(|| format!("cannot read rule file '{}'", path.display()))?;
    Ok(text)
}

/// Decoding plus matching, with the frequency windows that span lines.
pub struct Analyzer {
    pub rules: RuleSet,
    pub state: FrequencyState,
    /// Applied to the fields and payloads after matching: rules see the
    /// line as written, alerts keep it without credentials.
    pub redaction: Redaction,
}

impl Analyzer {
    pub fn new(rules: RuleSet) -> Self {
        Self {
            rules,
            state: FrequencyState::default(),
            redaction: Redaction::default(),
        }
    }

    pub fn with_redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }

    /// The line's fields (borrowed from `message` where they stand in it
    /// as they are) and the rules they match.
    pub fn analyze<'a>(
        &mut self,
        message: &'a str,
        container: Option<&'a str>,
        now_secs: u64,
    ) -> (Fields<'a>, Vec<RuleMatch>) {
        let mut fields = decode(message, &self.rules.decoders);
        if let Some(container) = container {
            fields.set("container", container);
        }
        let mut matches = self.rules.evaluate(&fields, now_secs, &mut self.state);
        // Only lines that raise alerts are stored and served; a line is
        // evidence of an attack, so only credential shapes go.
        if matches.is_empty() {
            return (fields, matches);
        }
        // The access decoder's fields are slices of the line (an 8 KB url
        // three times: url, path, query): the line is looked at once.
        let line_may_change = self.redaction.may_change_text(message);
        for (_, value) in &mut fields.values {
            if !line_may_change && is_slice_of(value, message) {
                continue;
            }
            if let Cow::Owned(hidden) = self.redaction.text(value) {
                *value = Cow::Owned(hidden);
            }
        }
        for payload in matches.iter_mut().filter_map(|m| m.payload.as_mut()) {
            if let Cow::Owned(hidden) = self.redaction.text(payload) {
                *payload = hidden;
            }
        }
        (fields, matches)
    }
}

/// Whether `part` lies within `whole`'s bytes.
fn is_slice_of(part: &str, whole: &str) -> bool {
    let (part, whole) = (
        part.as_bytes().as_ptr_range(),
        whole.as_bytes().as_ptr_range(),
    );
    whole.start <= part.start && part.end <= whole.end
}

/// One alert per matched rule at `min_level` or above, carrying the fields
/// people act on. Its id is stable for the same line, so a replay adds nothing.
#[allow(clippy::too_many_arguments)]
pub fn alerts_for(
    fields: &Fields,
    matches: &[RuleMatch],
    container: Option<&EventContainer>,
    location: &str,
    log_time_ms: i64,
    message: &str,
    agent: &AlertAgent,
    min_level: u8,
) -> Vec<Alert> {
    let line_id = fnv1a(&format!("{location}\n{log_time_ms}\n{message}"));
    matches
        .iter()
        .filter(|m| m.level >= min_level && m.level > 0)
        .map(|m| {
            let mut data: BTreeMap<String, String> = BTreeMap::new();
            for key in [
                "srcip",
                "method",
                "url",
                "path",
                "query",
                "protocol",
                "status",
                "bytes",
                "referer",
                "user_agent",
                "timestamp",
                "user",
            ] {
                if let Some(v) = fields.get(key) {
                    data.insert(key.to_owned(), v.to_owned());
                }
            }
            data.insert("decoder".to_owned(), fields.decoder.to_string());
            if let Some(payload) = &m.payload {
                data.insert("payload".to_owned(), payload.clone());
            }
            if let Some(field) = &m.payload_field {
                data.insert("payload_field".to_owned(), field.clone());
            }
            if let Some(count) = m.count {
                data.insert("count".to_owned(), count.to_string());
            }
            Alert {
                id: format!("log.{line_id:016x}.{}", m.id),
                timestamp: rfc3339_ms(log_time_ms),
                rule: m.alert_rule(),
                agent: agent.clone(),
                container: container.cloned(),
                data,
                location: location.to_owned(),
                event: None,
                episode: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789";

    fn line() -> String {
        format!(
            "203.0.113.9 - - [23/Nov/2026:10:00:00 +0000] \"GET /item?id=1'%20UNION%20SELECT%20password%20FROM%20users--&access={TOKEN} HTTP/1.1\" 200 12 \"-\" \"curl/8\""
        )
    }

    fn alert_of(redaction: Redaction) -> Alert {
        let mut analyzer = Analyzer::new(load_rules(&[]).unwrap()).with_redaction(redaction);
        let line = line();
        let (fields, matches) = analyzer.analyze(&line, Some("web"), 1_700_000_000);
        let alerts = alerts_for(
            &fields,
            &matches,
            None,
            "/logs/web",
            1_700_000_000_000,
            &line,
            &AlertAgent::default(),
            0,
        );
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        alerts.into_iter().next().unwrap()
    }

    #[test]
    fn log_alerts_keep_the_attack_and_lose_the_credential() {
        let alert = alert_of(Redaction::Redact);
        let json = serde_json::to_string(&alert).unwrap();
        assert!(!json.contains(TOKEN), "{json}");
        assert!(alert.data["url"].contains("UNION%20SELECT%20password"));
        assert!(alert.data["url"].ends_with("&access=<redacted, 40 chars>"));
        assert_eq!(alert.data["payload"], "union select");
        // The id depends on the line as written, not on its redaction.
        let raw = alert_of(Redaction::KeepRaw);
        assert!(raw.data["url"].contains(TOKEN));
        assert_eq!(raw.id, alert.id);
    }

    #[test]
    fn a_credential_written_with_json_escapes_is_redacted_though_the_line_holds_none() {
        // The line holds `ghp\u005f`, not `ghp_`: only the decoded field does.
        let line = format!(
            r#"{{"method":"GET","url":"/item?id=1%27%20UNION%20SELECT%20password%20FROM%20users--","user_agent":"curl/8 {}"}}"#,
            TOKEN.replacen('_', "\\u005f", 1)
        );
        assert!(!Redaction::Redact.may_change_text(&line), "{line}");
        let mut analyzer = Analyzer::new(load_rules(&[]).unwrap());
        let (fields, matches) = analyzer.analyze(&line, None, 1_700_000_000);
        assert!(!matches.is_empty(), "{line}");
        assert_eq!(
            fields.get("user_agent"),
            Some("curl/8 <redacted, 40 chars>")
        );
    }

    #[test]
    fn only_parts_of_a_text_are_slices_of_it() {
        let line = String::from("GET /index.html");
        assert!(is_slice_of(&line[4..], &line));
        assert!(is_slice_of(&line[..0], &line));
        assert!(!is_slice_of("/index.html", &line));
        assert!(!is_slice_of(&line.clone(), &line));
    }
}
