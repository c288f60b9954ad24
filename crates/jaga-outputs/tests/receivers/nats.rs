//! Debian's nats-server with JetStream: alerts land in the stream once
//! each (a re-send is a duplicate by `Nats-Msg-Id`), wrong credentials are
//! refused for good with a message that says so, a server that is down is
//! a transient failure, and TLS is checked against the given CA. The
//! heartbeat is core NATS on its own subject, outside the records' stream.

use std::path::Path;
use std::process::Command;

use futures_util::StreamExt as _;
use jaga_outputs::{DeliveryError, Heartbeat, Message};

use crate::common::{self, free_port, Receiver};

struct Nats {
    _receiver: Receiver,
    port: u16,
}

/// nats-server -js with one user `agent1` / `s3cret`, TLS when `tls`.
fn start_nats(dir: &Path, tls: bool) -> Nats {
    let program = common::require_program("/usr/sbin/nats-server");
    let port = free_port();
    let store = dir.join("js");
    let tls_block = if tls {
        common::make_certificates(dir);
        format!(
            "tls {{\n  cert_file: \"{0}/server.pem\"\n  key_file: \"{0}/server.key\"\n}}\n",
            dir.display()
        )
    } else {
        String::new()
    };
    let config = dir.join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n}}\n\
             authorization {{\n  users = [ {{ user: agent1, password: s3cret }} ]\n}}\n{tls_block}",
            store.display()
        ),
    )
    .unwrap();
    let mut command = Command::new(program);
    command.arg("-c").arg(&config);
    let mut receiver = Receiver::start("nats-server", command, dir);
    receiver.wait_for_port(port);
    Nats {
        _receiver: receiver,
        port,
    }
}

async fn jetstream(url: &str) -> async_nats::jetstream::Context {
    let options =
        async_nats::ConnectOptions::with_user_and_password("agent1".into(), "s3cret".into());
    let client = options.connect(url).await.unwrap();
    async_nats::jetstream::new(client)
}

/// The stream the hub would create, over every jaga subject.
async fn create_stream(url: &str) -> async_nats::jetstream::stream::Stream {
    jetstream(url)
        .await
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: "JAGA".to_owned(),
            subjects: vec!["jaga.>".to_owned()],
            ..Default::default()
        })
        .await
        .unwrap()
}

fn output_toml(port: u16, extra: &str) -> String {
    format!("type = \"nats\"\nservers = [\"nats://127.0.0.1:{port}\"]\ntimeout = \"5s\"\n{extra}")
}

#[tokio::test]
async fn alerts_land_in_the_stream_once_each_under_their_agent_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let nats = start_nats(dir.path(), false);
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let output = common::output(&output_toml(
        nats.port,
        "username = \"agent1\"\npassword = \"s3cret\"",
    ));

    // No stream yet: nothing takes the message, which is tried again.
    let mut first = common::alert("alert-1", "web");
    first.alert.agent.name = "edge-1".to_owned();
    let error = output
        .deliver(&Message::single(first.clone()))
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("jaga.edge-1."), "{error}");

    let mut stream = create_stream(&url).await;
    let receipt = output
        .deliver(&Message::single(first.clone()))
        .await
        .unwrap();
    assert!(receipt.answer.contains("1 stored"), "{}", receipt.answer);
    // Sent again (a restart before the cursor was stored): dropped by id.
    let receipt = output
        .deliver(&Message::single(first.clone()))
        .await
        .unwrap();
    assert!(receipt.answer.contains("1 duplicate"), "{}", receipt.answer);
    let mut second = common::alert("alert-2", "web");
    second.alert.agent.name = "edge-1".to_owned();
    second.alert.location = "docker-events".to_owned();
    output.deliver(&Message::single(second)).await.unwrap();

    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 2);
    let message = stream
        .get_last_raw_message_by_subject("jaga.edge-1.events")
        .await
        .unwrap();
    let headers = message.headers;
    assert_eq!(
        headers.get("Nats-Msg-Id").map(|v| v.as_str()),
        Some("edge-1.alert-2"),
        "{headers:?}"
    );
    let alert: jaga_model::Alert = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(alert.id, "alert-2");
}

#[tokio::test]
async fn wrong_credentials_are_refused_for_good_and_a_dead_server_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = start_nats(dir.path(), false);
    let wrong = common::output(&output_toml(
        nats.port,
        "username = \"agent1\"\npassword = \"guessed\"",
    ));
    let error = wrong
        .deliver(&Message::single(common::alert("a", "web")))
        .await
        .unwrap_err();
    match &error {
        DeliveryError::Permanent { reason, .. } => {
            assert!(reason.contains("refused the credentials"), "{reason}")
        }
        other => panic!("not permanent: {other}"),
    }
    nats._receiver.kill();
    let right = common::output(&output_toml(
        nats.port,
        "username = \"agent1\"\npassword = \"s3cret\"",
    ));
    let error = right
        .deliver(&Message::single(common::alert("a", "web")))
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
}

#[tokio::test]
async fn tls_is_checked_against_the_given_ca() {
    let dir = tempfile::tempdir().unwrap();
    let nats = start_nats(dir.path(), true);
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let login = "username = \"agent1\"\npassword = \"s3cret\"";
    let trusted = common::output(&format!(
        "type = \"nats\"\nservers = [\"{url}\"]\ntimeout = \"5s\"\n{login}\nca_file = \"{}\"",
        dir.path().join("ca.pem").display()
    ));
    let options =
        async_nats::ConnectOptions::with_user_and_password("agent1".into(), "s3cret".into())
            .add_root_certificates(dir.path().join("ca.pem"))
            .require_tls(true);
    let client = options.connect(url.as_str()).await.unwrap();
    async_nats::jetstream::new(client)
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: "JAGA".to_owned(),
            subjects: vec!["jaga.>".to_owned()],
            ..Default::default()
        })
        .await
        .unwrap();
    trusted
        .deliver(&Message::single(common::alert("tls-1", "web")))
        .await
        .unwrap();

    // A CA that did not sign the server's certificate.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    common::make_certificates(&other);
    let untrusted = common::output(&format!(
        "type = \"nats\"\nservers = [\"{url}\"]\ntimeout = \"5s\"\n{login}\nca_file = \"{}\"",
        other.join("ca.pem").display()
    ));
    let error = untrusted
        .deliver(&Message::single(common::alert("tls-2", "web")))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("cannot connect to nats")
            && error.to_string().contains("ca_file"),
        "{error}"
    );
}

#[tokio::test]
async fn a_heartbeat_is_core_nats_on_its_own_subject_outside_the_records_stream() {
    let dir = tempfile::tempdir().unwrap();
    let nats = start_nats(dir.path(), false);
    let url = format!("nats://127.0.0.1:{}", nats.port);
    // The stream as `jaga hub` makes it: the records' subjects only.
    let context = jetstream(&url).await;
    let mut stream = context
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: "JAGA".to_owned(),
            subjects: ["alerts", "events", "findings"]
                .iter()
                .map(|kind| format!("jaga.*.{kind}"))
                .collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut heartbeats = context
        .client()
        .subscribe("jaga.*.heartbeat")
        .await
        .unwrap();
    context.client().flush().await.unwrap();
    let output = common::output(&output_toml(
        nats.port,
        "username = \"agent1\"\npassword = \"s3cret\"\nheartbeat = \"5s\"",
    ));
    assert_eq!(
        output.heartbeat_every(),
        Some(std::time::Duration::from_secs(5))
    );
    let beat = Heartbeat {
        agent: "edge 1".to_owned(),
        version: "1.2.3".to_owned(),
        uptime_s: 42,
    };
    let receipt = output.heartbeat(&beat).await.unwrap();
    assert!(
        receipt.answer.contains("jaga.edge_1.heartbeat"),
        "{}",
        receipt.answer
    );
    let message = tokio::time::timeout(common::DEADLINE, heartbeats.next())
        .await
        .expect("no heartbeat within the deadline")
        .unwrap();
    assert_eq!(message.subject.as_str(), "jaga.edge_1.heartbeat");
    let read: Heartbeat = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(read, beat);
    // A few dozen bytes: what an idle agent sends every 30 s.
    assert!(message.payload.len() < 100, "{}", message.payload.len());
    assert_eq!(stream.info().await.unwrap().state.messages, 0);
}
