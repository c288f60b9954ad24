//! Debian's rsyslog receives RFC 5424 messages over UDP, TCP with octet
//! counting and TLS (gtls driver), parses their structured data, and
//! writes each one raw and field by field.

use std::path::{Path, PathBuf};
use std::process::Command;

use jaga_outputs::{DeliveryError, Message};

use crate::common::{self, free_port, Receiver};

struct Rsyslog {
    dir: PathBuf,
    udp_port: u16,
    tcp_port: u16,
    receiver: Receiver,
}

/// rsyslog on 127.0.0.1 with a UDP and a TCP input (TLS when `tls`, with
/// the certificates of `make_certificates` in `dir`), writing `raw.log`
/// (each message as received) and `fields.log` (`|`-separated fields as
/// rsyslog parsed them).
fn start_rsyslog(dir: &Path, tls: bool, udp_port: u16, tcp_port: u16) -> Rsyslog {
    let program = common::require_program("/usr/sbin/rsyslogd");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let d = dir.display();
    let (global_tls, module_tls) = if tls {
        assert!(
            Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so").exists()
                || Path::new("/usr/lib/rsyslog/lmnsd_gtls.so").exists(),
            "rsyslog's TLS driver is missing: run scripts/receivers.sh (it installs rsyslog-gnutls)"
        );
        (
            format!(
                " defaultNetstreamDriver=\"gtls\" defaultNetstreamDriverCAFile=\"{d}/ca.pem\" \
                 defaultNetstreamDriverCertFile=\"{d}/server.pem\" \
                 defaultNetstreamDriverKeyFile=\"{d}/server.key\""
            ),
            " streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\"",
        )
    } else {
        (String::new(), "")
    };
    let config = format!(
        r#"global(workDirectory="{work}" maxMessageSize="64k"{global_tls})
module(load="imudp")
module(load="imtcp"{module_tls})
input(type="imudp" address="127.0.0.1" port="{udp_port}")
input(type="imtcp" address="127.0.0.1" port="{tcp_port}")
template(name="raw" type="string" string="%rawmsg%\n")
template(name="fields" type="string" string="%pri%|%hostname%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\n")
action(type="omfile" file="{d}/raw.log" template="raw")
action(type="omfile" file="{d}/fields.log" template="fields")
"#,
        work = work.display(),
    );
    let conf = dir.join("rsyslog.conf");
    std::fs::write(&conf, config).unwrap();
    let mut command = Command::new(program);
    command
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"));
    let mut receiver = Receiver::start("rsyslogd", command, dir);
    // Both inputs open their sockets before either is served.
    receiver.wait_for_port(tcp_port);
    Rsyslog {
        dir: dir.to_path_buf(),
        udp_port,
        tcp_port,
        receiver,
    }
}

impl Rsyslog {
    fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until `file` has at least `count` lines.
    fn wait_lines(&self, file: &str, count: usize) -> Vec<String> {
        common::wait_for(&format!("{count} lines in rsyslog's {file}"), || {
            let lines = self.lines(file);
            (lines.len() >= count).then_some(lines)
        })
    }
}

/// `pri|hostname|app|procid|msgid|sd|msg`, split.
fn fields(line: &str) -> Vec<&str> {
    line.splitn(7, '|').collect()
}

#[tokio::test]
async fn udp_messages_arrive_with_header_and_structured_data() {
    let dir = tempfile::tempdir().unwrap();
    let rsyslog = start_rsyslog(dir.path(), false, free_port(), free_port());
    let output = common::output(&format!(
        "type = \"syslog\"\naddress = \"127.0.0.1:{}\"\ntransport = \"udp\"",
        rsyslog.udp_port
    ));
    output
        .deliver(&Message::single(common::alert("u-1", "web")))
        .await
        .unwrap();
    // A name with every character SD must escape, and a line break.
    output
        .deliver(&Message::single(common::alert("u-2", "we\"b]\\x\nforged")))
        .await
        .unwrap();

    let lines = rsyslog.wait_lines("fields.log", 2);
    let first = fields(&lines[0]);
    let pid = std::process::id().to_string();
    assert_eq!(first[..5], ["26", "host1", "jaga", pid.as_str(), "alert"]);
    assert_eq!(
        first[5],
        "[jaga@32473 alert_id=\"u-1\" rule_id=\"91011\" level=\"12\" severity=\"critical\" \
         container=\"web\" image=\"nginx:1.25\"]"
    );
    assert_eq!(
        first[6],
        "level 12 Privileged container started: web on host1"
    );

    let second = fields(&lines[1]);
    assert!(
        second[5].contains(r#"container="we\"b\]\\x\\nforged""#),
        "{}",
        second[5]
    );
    assert!(
        second[6].ends_with(r#"we"b]\x\nforged on host1"#),
        "{}",
        second[6]
    );
    assert_eq!(rsyslog.lines("raw.log").len(), 2, "one line per message");
    drop(rsyslog);
}

#[tokio::test]
async fn an_oversize_udp_message_is_cut_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let rsyslog = start_rsyslog(dir.path(), false, free_port(), free_port());
    let output = common::output(&format!(
        "type = \"syslog\"\naddress = \"127.0.0.1:{}\"\nformat = \"json\"\nmax_message_bytes = 600",
        rsyslog.udp_port
    ));
    let mut big = common::alert("big-1", "web");
    big.alert
        .data
        .insert("command".to_string(), "x".repeat(3000));
    output.deliver(&Message::single(big)).await.unwrap();
    assert_eq!(output.truncated_messages(), 1);
    let raw = rsyslog.wait_lines("raw.log", 1);
    assert_eq!(raw[0].len(), 600, "{}", raw[0]);
    assert!(raw[0].starts_with("<26>1 "), "{}", raw[0]);
    output
        .deliver(&Message::single(common::alert("small-1", "web")))
        .await
        .unwrap();
    assert_eq!(output.truncated_messages(), 1);
    drop(rsyslog);
}

#[tokio::test]
async fn tcp_frames_arrive_and_a_broken_connection_is_transient_then_reconnected() {
    let dir = tempfile::tempdir().unwrap();
    let (udp_port, tcp_port) = (free_port(), free_port());
    let mut rsyslog = start_rsyslog(dir.path(), false, udp_port, tcp_port);
    let output = common::output(&format!(
        "type = \"syslog\"\naddress = \"127.0.0.1:{tcp_port}\"\ntransport = \"tcp\"\n\
         format = \"json\"\nfacility = \"local3\""
    ));
    for n in 1..=3 {
        output
            .deliver(&Message::single(common::alert(&format!("t-{n}"), "web")))
            .await
            .unwrap();
    }
    let lines = rsyslog.wait_lines("fields.log", 3);
    for (n, line) in lines.iter().enumerate() {
        let parts = fields(line);
        // local3 (19) * 8 + critical (2)
        assert_eq!(parts[0], "154", "{line}");
        assert!(
            parts[5].starts_with(&format!("[jaga@32473 alert_id=\"t-{}\"", n + 1)),
            "{line}"
        );
        let alert: jaga_model::Alert = serde_json::from_str(parts[6]).unwrap();
        assert_eq!(alert.id, format!("t-{}", n + 1));
    }

    rsyslog.receiver.kill();
    match output
        .deliver(&Message::single(common::alert("t-lost", "web")))
        .await
    {
        Err(DeliveryError::Transient { reason, .. }) => {
            assert!(reason.contains(&tcp_port.to_string()), "{reason}")
        }
        other => panic!("expected transient with the receiver down, got {other:?}"),
    }

    let rsyslog = start_rsyslog(dir.path(), false, udp_port, tcp_port);
    output
        .deliver(&Message::single(common::alert("t-4", "web")))
        .await
        .unwrap();
    let lines = rsyslog.wait_lines("fields.log", 4);
    assert!(lines[3].contains("alert_id=\"t-4\""), "{}", lines[3]);
    assert!(!lines.iter().any(|l| l.contains("t-lost")));
    drop(rsyslog);
}

#[tokio::test]
async fn tls_messages_arrive_and_an_unknown_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    common::make_certificates(dir.path());
    let rsyslog = start_rsyslog(dir.path(), true, free_port(), free_port());
    let output = common::output(&format!(
        "type = \"syslog\"\naddress = \"127.0.0.1:{}\"\ntransport = \"tls\"\nca_file = \"{}\"",
        rsyslog.tcp_port,
        dir.path().join("ca.pem").display()
    ));
    for n in 1..=2 {
        output
            .deliver(&Message::single(common::alert(&format!("tls-{n}"), "web")))
            .await
            .unwrap();
    }
    let lines = rsyslog.wait_lines("fields.log", 2);
    assert!(lines[0].contains("alert_id=\"tls-1\""), "{}", lines[0]);
    assert!(lines[1].contains("alert_id=\"tls-2\""), "{}", lines[1]);
    assert!(
        fields(&lines[1])[6].starts_with("level 12 Privileged"),
        "{}",
        lines[1]
    );

    let other = tempfile::tempdir().unwrap();
    common::make_certificates(other.path());
    let stranger = common::output(&format!(
        "type = \"syslog\"\naddress = \"127.0.0.1:{}\"\ntransport = \"tls\"\nca_file = \"{}\"",
        rsyslog.tcp_port,
        other.path().join("ca.pem").display()
    ));
    match stranger
        .deliver(&Message::single(common::alert("tls-x", "web")))
        .await
    {
        Err(DeliveryError::Transient { reason, .. }) => {
            assert!(reason.contains("TLS handshake"), "{reason}");
            assert!(reason.to_lowercase().contains("certificate"), "{reason}");
        }
        other => panic!("expected a refused handshake, got {other:?}"),
    }
    drop(rsyslog);
}
