#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The hub's stream against Debian's nats-server (`scripts/receivers.sh`
//! installs it): it holds the records' subjects only, and a stream an
//! earlier hub made over `<prefix>.>`, which would keep every heartbeat
//! the agents send, is narrowed to them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jaga_hub::consume;

/// nats-server with JetStream in `dir`, killed when dropped.
struct NatsServer {
    child: Child,
    port: u16,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats(dir: &Path) -> NatsServer {
    let program = Path::new("/usr/sbin/nats-server");
    assert!(
        program.exists(),
        "/usr/sbin/nats-server is missing: run scripts/receivers.sh"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n}}\n",
            dir.join("js").display()
        ),
    )
    .unwrap();
    let child = Command::new(program)
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = NatsServer { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nats-server not listening on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

#[test]
fn a_stream_over_every_subject_is_narrowed_to_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let server = nats(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(format!("nats://127.0.0.1:{}", server.port))
            .await
            .unwrap();
        let context = async_nats::jetstream::new(client);
        // As a hub before heartbeats made it.
        context
            .create_stream(async_nats::jetstream::stream::Config {
                name: "JAGA".to_owned(),
                subjects: vec!["jaga.>".to_owned()],
                ..Default::default()
            })
            .await
            .unwrap();
        let age = Duration::from_secs(3600);
        let stream = consume::stream(&context, "JAGA", "jaga", age)
            .await
            .unwrap();
        let records = consume::subjects("jaga");
        assert_eq!(stream.cached_info().config.subjects, records);

        // A heartbeat is not kept; a record is.
        context
            .client()
            .publish("jaga.edge-1.heartbeat", "{}".into())
            .await
            .unwrap();
        context
            .publish("jaga.edge-1.alerts", "{}".into())
            .await
            .unwrap()
            .await
            .unwrap();
        let mut stream = context.get_stream("JAGA").await.unwrap();
        assert_eq!(stream.info().await.unwrap().state.messages, 1);

        // Opened again, or made anew, it holds the same subjects.
        let again = consume::stream(&context, "JAGA", "jaga", age)
            .await
            .unwrap();
        assert_eq!(again.cached_info().config.subjects, records);
        let made = consume::stream(&context, "OTHER", "other", age)
            .await
            .unwrap();
        assert_eq!(
            made.cached_info().config.subjects,
            consume::subjects("other")
        );
    });
}
