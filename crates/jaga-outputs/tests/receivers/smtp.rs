//! Mail to aiosmtpd (Debian's python3-aiosmtpd) with the handler in
//! `tests/fixtures/smtp_receiver.py`, which writes each mail it takes as
//! JSON: plain SMTP, STARTTLS with AUTH, SMTPS; refusals permanent or
//! transient as the server says.

use std::path::{Path, PathBuf};
use std::process::Command;

use jaga_outputs::{DeliveryError, Message};
use serde_json::Value;

use crate::common::{self, free_port, Receiver};

struct MailServer {
    port: u16,
    maildir: PathBuf,
    _receiver: Receiver,
}

/// aiosmtpd's own command line with our handler; `extra` adds its TLS
/// options.
fn start_cli(dir: &Path, extra: &[String]) -> MailServer {
    let python = common::require_aiosmtpd();
    let port = free_port();
    let maildir = dir.join("mail");
    let mut command = Command::new(python);
    command
        .env("PYTHONPATH", common::fixture(""))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(dir)
        .args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .args(["-c", "smtp_receiver.MailDir"])
        .arg(&maildir);
    let mut receiver = Receiver::start("aiosmtpd", command, dir);
    receiver.wait_for_port(port);
    MailServer {
        port,
        maildir,
        _receiver: receiver,
    }
}

/// The fixture's own server: STARTTLS, then AUTH as jaga/`password`.
fn start_with_auth(dir: &Path, password: &str) -> MailServer {
    let python = common::require_aiosmtpd();
    let port = free_port();
    let maildir = dir.join("mail");
    let mut command = Command::new(python);
    command
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(dir)
        .arg(common::fixture("smtp_receiver.py"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--maildir")
        .arg(&maildir)
        .arg("--cert")
        .arg(dir.join("server.pem"))
        .arg("--key")
        .arg(dir.join("server.key"))
        .args(["--user", "jaga", "--password", password]);
    let mut receiver = Receiver::start("aiosmtpd-auth", command, dir);
    receiver.wait_for_port(port);
    MailServer {
        port,
        maildir,
        _receiver: receiver,
    }
}

impl MailServer {
    fn mails(&self) -> Vec<Value> {
        let Ok(entries) = std::fs::read_dir(&self.maildir) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|path| serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
            .collect()
    }

    fn wait_mails(&self, count: usize) -> Vec<Value> {
        common::wait_for(&format!("{count} mails"), || {
            let mails = self.mails();
            (mails.len() >= count).then_some(mails)
        })
    }
}

fn smtp(port: u16, extra: &str) -> std::sync::Arc<dyn jaga_outputs::Output> {
    common::output(&format!(
        "type = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\nfrom = \"jaga@example.org\"\n{extra}"
    ))
}

#[tokio::test]
async fn a_mail_arrives_with_a_subject_and_body_a_person_can_act_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_cli(dir.path(), &[]);
    let output = smtp(
        server.port,
        "tls = \"none\"\nto = [\"ops@example.org\", \"Night Shift <night@example.org>\"]",
    );
    let receipt = output
        .deliver(&Message::single(common::alert("m-1", "web")))
        .await
        .unwrap();
    assert!(receipt.answer.starts_with("250 "), "{}", receipt.answer);

    let mail = &server.wait_mails(1)[0];
    assert_eq!(mail["mail_from"], "jaga@example.org");
    assert_eq!(
        mail["rcpt_tos"],
        serde_json::json!(["ops@example.org", "night@example.org"])
    );
    assert_eq!(
        mail["subject"],
        "[jaga] level 12 Privileged container started: web on host1"
    );
    let body = mail["body"].as_str().unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[0],
        "level 12 Privileged container started: web on host1"
    );
    for start in [
        "Rule:",
        "Container:",
        "Image:",
        "Host:",
        "Time:",
        "action:",
        "Alert id:",
    ] {
        assert!(
            lines.iter().any(|line| line.starts_with(start)),
            "{start} in\n{body}"
        );
    }
    assert!(body.contains("Alert id:     m-1"), "{body}");
}

#[tokio::test]
async fn a_rejected_recipient_is_permanent_and_a_deferred_one_transient() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_cli(dir.path(), &[]);
    let message = Message::single(common::alert("m-2", "web"));
    match smtp(
        server.port,
        "tls = \"none\"\nto = [\"reject-ops@example.org\"]",
    )
    .deliver(&message)
    .await
    {
        Err(DeliveryError::Permanent { answer, .. }) => {
            assert!(answer.contains("550"), "{answer}");
            assert!(answer.contains("recipient unknown here"), "{answer}");
        }
        other => panic!("expected permanent, got {other:?}"),
    }
    match smtp(
        server.port,
        "tls = \"none\"\nto = [\"later-ops@example.org\"]",
    )
    .deliver(&message)
    .await
    {
        Err(DeliveryError::Transient { reason, .. }) => {
            assert!(reason.contains("451"), "{reason}")
        }
        other => panic!("expected transient, got {other:?}"),
    }
    assert!(server.mails().is_empty());
}

#[tokio::test]
async fn starttls_with_auth_delivers_and_a_wrong_password_is_permanent() {
    let dir = tempfile::tempdir().unwrap();
    common::make_certificates(dir.path());
    let server = start_with_auth(dir.path(), "s3cret");
    let password_file = dir.path().join("smtp-password");
    std::fs::write(&password_file, "s3cret\n").unwrap();
    let ca = dir.path().join("ca.pem");
    let output = smtp(
        server.port,
        &format!(
            "tls = \"starttls\"\nca_file = \"{}\"\nusername = \"jaga\"\n\
             password = {{ file = \"{}\" }}\nto = [\"ops@example.org\"]\nsubject_prefix = \"[prod]\"",
            ca.display(),
            password_file.display()
        ),
    );
    output
        .deliver(&Message::single(common::alert("m-3", "db")))
        .await
        .unwrap();
    let mail = &server.wait_mails(1)[0];
    assert_eq!(mail["login"], "jaga");
    assert_eq!(mail["tls"], true);
    assert_eq!(
        mail["subject"],
        "[prod] level 12 Privileged container started: db on host1"
    );

    let wrong = smtp(
        server.port,
        &format!(
            "ca_file = \"{}\"\nusername = \"jaga\"\npassword = \"guess\"\nto = [\"ops@example.org\"]",
            ca.display()
        ),
    );
    match wrong
        .deliver(&Message::single(common::alert("m-4", "db")))
        .await
    {
        Err(DeliveryError::Permanent { answer, .. }) => {
            assert!(answer.contains("535"), "{answer}")
        }
        other => panic!("expected permanent, got {other:?}"),
    }
    assert_eq!(server.mails().len(), 1);
}

#[tokio::test]
async fn smtps_delivers_over_tls_from_the_first_byte() {
    let dir = tempfile::tempdir().unwrap();
    common::make_certificates(dir.path());
    let cert = dir.path().join("server.pem").display().to_string();
    let key = dir.path().join("server.key").display().to_string();
    let server = start_cli(
        dir.path(),
        &["--smtpscert".into(), cert, "--smtpskey".into(), key],
    );
    let output = smtp(
        server.port,
        &format!(
            "tls = \"tls\"\nca_file = \"{}\"\nto = [\"ops@example.org\"]",
            dir.path().join("ca.pem").display()
        ),
    );
    output
        .deliver(&Message::single(common::alert("m-5", "web")))
        .await
        .unwrap();
    assert_eq!(server.wait_mails(1)[0]["tls"], true);
}

#[tokio::test]
async fn no_server_is_transient() {
    let output = smtp(
        free_port(),
        "tls = \"none\"\nto = [\"ops@example.org\"]\ntimeout = \"5s\"",
    );
    match output
        .deliver(&Message::single(common::alert("m-6", "web")))
        .await
    {
        Err(DeliveryError::Transient { reason, .. }) => {
            assert!(reason.contains("smtp server 127.0.0.1:"), "{reason}")
        }
        other => panic!("expected transient, got {other:?}"),
    }
}
