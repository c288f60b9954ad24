#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The command line people expect: `--version` with the commit, usage
//! errors as exit 2, completions, man pages, `config check`/`config show`
//! and `health`. Only `health` needs the Docker engine (a real agent).

mod common;

use std::process::{Command, Output};

use common::agent::Agent;
use common::{jaga, require_engine};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `jaga ARGS` with this config text as `--config`.
fn jaga_with_config(config: &str, args: &[&str]) -> Output {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), config).unwrap();
    let path = file.path().display().to_string();
    let mut all = vec!["--config", path.as_str()];
    all.extend_from_slice(args);
    jaga(&all)
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = jaga(&["--version"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("jaga 0."), "{text}");
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match head {
        // In a checkout (CI): the very commit.
        Ok(head) if head.status.success() => {
            let commit = String::from_utf8_lossy(&head.stdout).trim().to_owned();
            assert!(text.contains(&format!("(commit {commit} ")), "{text}");
        }
        _ => assert!(text.contains("commit"), "{text}"),
    }
}

#[test]
fn bad_enum_values_are_usage_errors() {
    for args in [
        &["audit", "--format", "yaml"][..],
        &["audit", "--fail-on", "severe"],
        &["events", "--format", "xml"],
        &["logtest", "--format", "csv"],
        &["completions", "tcsh"],
    ] {
        let out = jaga(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("[possible values: "),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn completions_cover_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let out = jaga(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for sub in ["serve", "stats", "audit", "config", "completions", "man"] {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    // The bash script is valid bash.
    let script = stdout(&jaga(&["completions", "bash"]));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), script).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(file.path())
        .output()
        .unwrap();
    assert!(check.status.success(), "bash -n: {}", stderr(&check));
}

#[test]
fn man_pages_are_written_for_every_subcommand() {
    let page = stdout(&jaga(&["man"]));
    assert!(page.contains(".TH jaga 1"), "{page}");
    assert!(page.contains("commit"), "the version is in the page footer");
    let dir = tempfile::tempdir().unwrap();
    let out = jaga(&["man", "--out-dir", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for page in [
        "jaga.1",
        "jaga-serve.1",
        "jaga-config-show.1",
        "jaga-audit.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".SH NAME"), "{page}");
    }
}

#[test]
fn config_check_accepts_a_good_config_and_names_what_is_wrong_in_a_bad_one() {
    let good = jaga_with_config("[serve]\ninterval = \"2s\"\n", &["config", "check"]);
    assert_eq!(good.status.code(), Some(0), "{}", stderr(&good));
    assert!(stdout(&good).contains("is valid"), "{}", stdout(&good));
    assert!(
        stdout(&good).contains("alerts_file (file)"),
        "{}",
        stdout(&good)
    );

    let typo = jaga_with_config("[serve]\nintervall = \"2s\"\n", &["config", "check"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(
        stderr(&typo).contains("line 2, key 'serve.intervall'"),
        "{}",
        stderr(&typo)
    );

    // What only `jaga serve` used to find: off loopback without tokens, a
    // secret that cannot be read, a rule file that does not exist.
    for (config, expected) in [
        ("[serve]\nlisten = \"0.0.0.0:9808\"\n", "refusing to serve on 0.0.0.0:9808"),
        (
            "[[outputs]]\nname = \"siem\"\ntype = \"webhook\"\nurl = { env = \"JAGA_TEST_NO_SUCH_URL\" }\n",
            "JAGA_TEST_NO_SUCH_URL",
        ),
        ("[logs]\nrules = [\"/nonexistent/rules.yml\"]\n", "/nonexistent/rules.yml"),
    ] {
        let out = jaga_with_config(config, &["config", "check"]);
        assert_eq!(out.status.code(), Some(1), "{config}");
        assert!(stderr(&out).contains(expected), "{config}: {}", stderr(&out));
        assert!(stderr(&out).contains("would not start jaga serve"), "{}", stderr(&out));
    }
}

#[test]
fn config_check_checks_remote_write_and_hub_as_serve_and_hub_would() {
    let hub = "[hub]\npostgres = \"host=127.0.0.1 user=jaga dbname=jaga\"\n\
               [hub.nats]\nservers = [\"nats://127.0.0.1:4222\"]\nusername = \"hub\"\npassword = \"p\"\n";
    let good = jaga_with_config(
        &format!("[remote_write]\nurl = \"http://127.0.0.1:9090/api/v1/write\"\n{hub}"),
        &["config", "check"],
    );
    assert_eq!(good.status.code(), Some(0), "{}", stderr(&good));
    let said = stdout(&good);
    assert!(
        said.contains("remote write: http://127.0.0.1:9090/api/v1/write"),
        "{said}"
    );
    assert!(
        said.contains("hub: listen 127.0.0.1:9809, nats nats://127.0.0.1:4222, stream JAGA"),
        "{said}"
    );
    assert!(said.contains("postgres sslmode prefer"), "{said}");
    let required = jaga_with_config(
        &hub.replace("dbname=jaga", "dbname=jaga sslmode=require"),
        &["config", "check"],
    );
    assert_eq!(required.status.code(), Some(0), "{}", stderr(&required));
    assert!(
        stdout(&required).contains("postgres sslmode require"),
        "{}",
        stdout(&required)
    );

    // What only `jaga serve` found when it started.
    for (config, expected) in [
        (
            "[remote_write]\nurl = \"ftp://127.0.0.1/write\"\n",
            "scheme 'ftp' is not http or https",
        ),
        (
            "[remote_write]\nurl = \"http://127.0.0.1:9090/api/v1/write\"\nbearer_token = { env = \"JAGA_TEST_NO_SUCH_TOKEN\" }\n",
            "JAGA_TEST_NO_SUCH_TOKEN",
        ),
        (
            "[remote_write]\nurl = \"http://127.0.0.1:9090/api/v1/write\"\nca_file = \"/nonexistent/ca.pem\"\n",
            "/nonexistent/ca.pem",
        ),
    ] {
        let out = jaga_with_config(config, &["config", "check"]);
        assert_eq!(out.status.code(), Some(1), "{config}");
        assert!(stderr(&out).contains("[remote_write]"), "{config}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{config}: {}", stderr(&out));
        assert!(stderr(&out).contains("would not start jaga serve"), "{}", stderr(&out));
    }

    // ... and what only `jaga hub` found when it started.
    for (config, expected) in [
        (
            hub.replace(
                "host=127.0.0.1 user=jaga dbname=jaga",
                "host=db port=notaport",
            ),
            "'postgres' is not a libpq connection string",
        ),
        (
            hub.replace("dbname=jaga", "dbname=jaga sslmode=verify-full"),
            "sslmode 'verify-full' needs the server's CA",
        ),
        (
            hub.replace("dbname=jaga", "dbname=jaga sslrootcert=/nonexistent/ca.pem"),
            "cannot read '/nonexistent/ca.pem'",
        ),
        (
            hub.replace(
                "postgres = \"host=127.0.0.1 user=jaga dbname=jaga\"",
                "postgres = { env = \"JAGA_TEST_NO_SUCH_POSTGRES\" }",
            ),
            "JAGA_TEST_NO_SUCH_POSTGRES",
        ),
        (
            hub.replace("password = \"p\"\n", ""),
            "a username needs a password",
        ),
        (
            hub.replace("[hub]\n", "[hub]\nsubject_prefix = \"a.*\"\n"),
            "'subject_prefix' is not valid: 'a.*'",
        ),
        (
            hub.replace("[hub]\n", "[hub]\nstream = \"jaga.records\"\n"),
            "'stream' 'jaga.records' is not a JetStream name",
        ),
        (
            hub.replace("[hub]\n", "[hub]\nquiet_after = \"15m\"\n"),
            "'quiet_after' (15m) must be above zero and below 'down_after' (10m)",
        ),
        (
            hub.replace("[hub]\n", "[hub]\nlisten = \"0.0.0.0:9809\"\n"),
            "refusing to serve on 0.0.0.0:9809",
        ),
    ] {
        let out = jaga_with_config(&config, &["config", "check"]);
        assert_eq!(out.status.code(), Some(1), "{config}");
        assert!(
            stderr(&out).contains(expected),
            "{config}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("would not start jaga hub"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn config_show_prints_every_key_with_secrets_redacted_and_reads_back() {
    let config = "[serve]\ninterval = \"2s\"\n\
        [[outputs]]\nname = \"chat\"\ntype = \"slack\"\nurl = \"https://hooks.example/T0/B0/PlantedSlackPath\"\n\
        [[outputs]]\nname = \"am\"\ntype = \"alertmanager\"\nurls = [\"http://jaga:PlantedPassword@127.0.0.1:9093\"]\n";
    let out = jaga_with_config(config, &["config", "show"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(!shown.contains("Planted"), "{shown}");
    assert!(shown.contains("interval = \"2s\""), "{shown}");
    // Defaults are filled in.
    assert!(shown.contains("resync = \"30s\""), "{shown}");
    assert!(shown.contains("<redacted, "), "{shown}");
    // What `show` prints is a config file again.
    let again = jaga_with_config(&shown, &["config", "show"]);
    assert_eq!(again.status.code(), Some(0), "{}\n{shown}", stderr(&again));

    // Without inline secrets, what `show` prints is a config `check` takes.
    let plain = "[[outputs]]\nname = \"siem\"\ntype = \"webhook\"\nurl = { env = \"JAGA_TEST_SHOWN_URL\" }\n";
    let shown = stdout(&jaga_with_config(plain, &["config", "show"]));
    assert!(
        shown.contains("[outputs.url]\nenv = \"JAGA_TEST_SHOWN_URL\""),
        "{shown}"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &shown).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_jaga"))
        .args([
            "--config",
            &file.path().display().to_string(),
            "config",
            "check",
        ])
        .env("JAGA_TEST_SHOWN_URL", "http://127.0.0.1:9/hook")
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}\n{shown}", stderr(&check));
}

#[test]
fn health_is_0_for_a_healthy_agent_and_1_when_none_answers() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(data.path(), "");
    let url = agent.url("/healthz");
    let out = jaga(&["health", "--url", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("200"), "{}", stdout(&out));
    // Through the config's listen address, as the image's HEALTHCHECK asks.
    let out = jaga_with_config(
        &format!("[serve]\nlisten = \"0.0.0.0:{}\"\n", agent.port),
        &["health"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    drop(agent);
    let out = jaga(&["health", "--url", &url, "--timeout", "2s"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("Error: no answer from"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn logtest_summary_counts_each_decoder_and_each_rule_once_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("access.log");
    let line = |url: &str| {
        format!("203.0.113.9 - - [23/Nov/2026:10:00:00 +0000] \"GET {url} HTTP/1.1\" 200 12 \"-\" \"curl/8\"\n")
    };
    let mut text = String::new();
    for _ in 0..3 {
        text.push_str(&line(
            "/item?id=1%27%20UNION%20SELECT%20password%20FROM%20users--",
        ));
    }
    text.push_str(&line("/search?q=%3Cscript%3Ealert(1)%3C/script%3E"));
    text.push_str(&line("/index.html"));
    text.push_str("not an access log line\n");
    // Not UTF-8: read as text with the byte replaced, and matched.
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(
        &line("/item?id=1%27%20UNION%20SELECT%20password%20FROM%20users--\u{1}").into_bytes(),
    );
    let at = bytes.iter().rposition(|b| *b == 1).unwrap();
    bytes[at] = 0xff;
    std::fs::write(&input, bytes).unwrap();
    let out = jaga(&[
        "logtest",
        "--file",
        &input.display().to_string(),
        "--summary",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("lines: 7 "), "{text}");
    let counted: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(
        counted,
        [
            "decoder access-combined: 6",
            "decoder plain: 1",
            "rule 93100 (level 7) SQL injection attempt: 4",
            "rule 93110 (level 7) Cross-site scripting (XSS) attempt: 1",
        ],
        "{text}"
    );
}
