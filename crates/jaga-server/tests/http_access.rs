#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The HTTP listener and its guards, on a real loopback socket: idle and
//! half-sent connections that once took every descriptor, a body that never
//! comes, and API tokens.

mod metrics_support;

use std::sync::Arc;
use std::time::Duration;

use jaga_server::auth::{TokenHash, TokenSources, Tokens};
use jaga_server::listen::{self, HttpCounters, Limits};
use jaga_server::{router, LabelOptions, ServerState};
use jaga_store::{HistoryStore, Retention};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

struct Server {
    port: u16,
    counters: Arc<HttpCounters>,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

fn state(dir: &std::path::Path, tokens: Tokens, counters: Arc<HttpCounters>) -> Arc<ServerState> {
    let mut snapshot = metrics_support::two_containers();
    snapshot.agent.collections_total = 1;
    snapshot.taken_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (_tx, rx) = watch::channel(Arc::new(snapshot));
    Arc::new(ServerState {
        snapshot: rx,
        store: Arc::new(HistoryStore::open(dir, Retention::default()).unwrap()),
        labels: LabelOptions::default(),
        interval: Duration::from_secs(3600),
        events: None,
        audit: None,
        auth: Arc::new(tokens),
        http: counters,
        tasks: None,
        outputs: None,
        processes: None,
        logs: None,
        setup: None,
    })
}

async fn start(limits: Limits, tokens: Tokens) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let counters = Arc::new(HttpCounters::default());
    let app = router(state(dir.path(), tokens, Arc::clone(&counters)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(listen::serve(
        listener,
        app,
        limits,
        None,
        Arc::clone(&counters),
        stopped,
    ));
    Server {
        port,
        counters,
        _stop: stop,
        _dir: dir,
    }
}

fn limits(max_connections: usize) -> Limits {
    Limits {
        max_connections,
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(30),
    }
}

/// One request on a new connection: status line and body.
async fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: jaga\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_string(&mut answer))
        .await
        .expect("an answer within 30 s")
        .unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (status, head.to_owned(), body.to_owned())
}

/// Reads until the server closes; what it sent before.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut seen))
        .await
        .expect("the server closes the connection within 60 s")
        .ok();
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_over_the_cap_leave_room_and_are_closed() {
    let server = start(limits(8), Tokens::open()).await;
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(
            TcpStream::connect(("127.0.0.1", server.port))
                .await
                .unwrap(),
        );
    }
    // The newest connections: they outlive the eviction of older idle ones.
    let mut half_sent = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: jaga\r\n")
            .await
            .unwrap();
        half_sent.push(stream);
    }
    // Five times the cap is held open, yet a scraper gets in.
    let (status, _, body) = get(server.port, "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("jaga_http_connections_evicted_total"),
        "{body}"
    );
    let (status, _, _) = get(server.port, "/healthz", None).await;
    assert_eq!(status, 200);

    for stream in half_sent.iter_mut().chain(idle.iter_mut()) {
        until_closed(stream).await;
    }
    // The server counts a connection just after closing it: the client
    // may see the close first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while server.counters.stats().connections_open > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = server.counters.stats();
    assert!(
        stats.connections_evicted_total >= 44 - 8,
        "evicted {}",
        stats.connections_evicted_total
    );
    let [header_read, _, _] = stats.connections_timed_out_total;
    assert!(header_read >= 4, "the half-sent ones time out: {stats:?}");
    // Every held connection ends by eviction or the header timeout (an
    // answered one closing just then may be counted as evicted too).
    let ended = stats.connections_evicted_total + header_read;
    assert!((44..=46).contains(&ended), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_body_that_never_comes_does_not_hold_the_connection() {
    let server = start(limits(8), Tokens::open()).await;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: jaga\r\nContent-Length: 100\r\n\r\n")
        .await
        .unwrap();
    let seen = until_closed(&mut stream).await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    // The server counts the connection closed just after closing it: the
    // client may see the close first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while server.counters.stats().connections_open != 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.counters.stats().connections_open, 0);
}

fn guarded(token: &str) -> Tokens {
    Tokens::load(TokenSources {
        hashes: vec![TokenHash::of(token)],
        file: None,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_every_route_but_healthz_needs_a_bearer_token() {
    let server = start(limits(16), guarded("right")).await;
    for path in [
        "/metrics",
        "/api/v1/host",
        "/api/v1/containers",
        "/no/such/path",
    ] {
        let (status, head, body) = get(server.port, path, None).await;
        assert_eq!(status, 401, "{path}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer realm=\"jaga\""),
            "{path}: {head}"
        );
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["status"], 401, "{body}");
        assert!(error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Bearer"));

        let (status, head, _) = get(server.port, path, Some("wrong")).await;
        assert_eq!(status, 401, "{path}: {head}");
        assert!(head.contains("error=\"invalid_token\""), "{head}");
    }
    let (status, _, _) = get(server.port, "/metrics", Some("right")).await;
    assert_eq!(status, 200);
    let (status, _, _) = get(server.port, "/api/v1/host", Some("right")).await;
    assert_eq!(status, 200);
    let (status, _, _) = get(server.port, "/healthz", None).await;
    assert_eq!(status, 200);

    let (_, _, body) = get(server.port, "/metrics", Some("right")).await;
    assert!(
        body.contains("jaga_http_auth_failures_total{reason=\"invalid\"} 4"),
        "{body}"
    );
    assert!(
        body.contains("jaga_http_auth_failures_total{reason=\"missing\"} 4"),
        "{body}"
    );
}
