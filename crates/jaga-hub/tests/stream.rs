#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The hub's stream against Debian's nats-server (`scripts/receivers.sh`
//! installs it): it holds the records' subjects only, and a stream an
//! earlier hub made over `<prefix>.>`, which would keep every heartbeat
//! the agents send, is narrowed to them.

mod common;

use std::time::Duration;

use jaga_hub::consume;

#[test]
fn a_stream_over_every_subject_is_narrowed_to_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::nats(dir.path());
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
