#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The hub against a PostgreSQL cluster of its own (Debian's initdb and
//! pg_ctl in a temp dir, which `scripts/receivers.sh` installs), so that
//! the test can stop and start it: the hub reconnects to a restarted
//! database and stores every record once, and TLS to PostgreSQL checks
//! the server as libpq's sslmode says.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A cluster in `dir/data`, run as the postgres user (it refuses root),
/// listening on 127.0.0.1 only; stopped when dropped.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(program);
    command
}

fn run(mut command: Command, what: &str) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Cluster {
    /// `initdb` with trust auth; `conf` is added to postgresql.conf,
    /// `hba` (when given) replaces pg_hba.conf.
    fn init(dir: &Path, conf: &str, hba: Option<&str>) -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path().join("bin"))
                    .find(|p| p.join("pg_ctl").exists())
            })
            .ok()
            .flatten()
            .expect("/usr/lib/postgresql/*/bin/pg_ctl is missing: run scripts/receivers.sh");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        run(
            {
                let mut chown = Command::new("chown");
                chown.args(["-R", "postgres:postgres"]).arg(dir);
                chown
            },
            "chown",
        );
        let data = dir.join("data");
        let mut initdb = as_postgres(&bin.join("initdb"));
        initdb
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data);
        run(initdb, "initdb");
        let port = free_port();
        let mut settings = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        use std::io::Write as _;
        write!(
            settings,
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n{conf}\n",
            dir.display()
        )
        .unwrap();
        if let Some(hba) = hba {
            std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        }
        let cluster = Self {
            bin,
            dir: dir.to_owned(),
            port,
        };
        cluster.start();
        cluster
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut command = as_postgres(&self.bin.join("pg_ctl"));
        command
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("postgres.log"))
            .args(["-t", "120"])
            .args(args);
        command
    }

    /// Returns once the cluster takes connections.
    fn start(&self) {
        run(self.pg_ctl(&["-w", "start"]), "pg_ctl start");
    }

    /// Returns once the cluster is down; clients are cut off.
    fn stop(&self) {
        run(self.pg_ctl(&["-w", "-m", "fast", "stop"]), "pg_ctl stop");
    }

    fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-w", "-m", "immediate", "stop"]).output();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
            eprintln!("--- postgres ---\n{log}");
        }
    }
}

/// Polls `check` until it gives a value or `deadline` passes.
async fn wait_for<T, F, Fut>(deadline: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() > until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The (agent, id) of every stored record, on a connection of its own;
/// `None` while the database cannot be read.
async fn stored(conninfo: &str) -> Option<Vec<(String, String)>> {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(connection);
    let rows = client
        .query("SELECT agent, id FROM fleet_records ORDER BY seq", &[])
        .await
        .ok()?;
    Some(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// An alert of host `edge-1`, as an agent sends it.
fn alert(id: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id, "timestamp": "2026-01-01T00:00:00.000Z",
        "rule": {"id": "91011", "level": 6, "description": "test", "groups": [], "mitre": []},
        "agent": {"id": "", "name": "edge-1"}, "data": {}, "location": "/var/log/x.log"
    })
}

async fn publish(context: &async_nats::jetstream::Context, ids: std::ops::Range<u32>) {
    for n in ids {
        let id = format!("r{n}");
        let alert = alert(&id);
        context
            .send_publish(
                "jaga.edge-1.alerts",
                async_nats::jetstream::message::PublishMessage::build()
                    .message_id(id)
                    .payload(serde_json::to_vec(&alert).unwrap().into()),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// `/healthz`'s status and body; `None` when the hub does not answer.
async fn health(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
) -> Option<(u16, serde_json::Value)> {
    let response = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((
        status,
        serde_json::from_str(&response.text().await.ok()?).ok()?,
    ))
}

/// What the process logs at info and above, kept for the test to read.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Installed for the whole process: the hub logs from its runtime's
    /// threads.
    fn capture() -> Self {
        let logs = Self::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        logs
    }

    fn lines(&self, containing: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|line| line.contains(containing))
            .map(str::to_owned)
            .collect()
    }
}

#[test]
fn the_hub_reconnects_to_a_restarted_postgres_and_stores_every_record_once() {
    let logs = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let nats_dir = dir.path().join("nats");
    let pg_dir = dir.path().join("pg");
    std::fs::create_dir_all(&nats_dir).unwrap();
    std::fs::create_dir_all(&pg_dir).unwrap();
    let nats = common::nats(&nats_dir);
    let cluster = Cluster::init(&pg_dir, "", None);
    let conninfo = cluster.conninfo();
    let config: jaga_config::HubConfig = serde_json::from_value(serde_json::json!({
        "listen": "127.0.0.1:0",
        "postgres": conninfo,
        "nats": {"servers": [format!("nats://127.0.0.1:{}", nats.port)], "timeout": "5s"},
    }))
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let hub = jaga_hub::Hub::start(&config, Arc::new(jaga_server::auth::Tokens::open()))
            .await
            .unwrap();
        let addr = hub.local_addr().unwrap();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let running = tokio::spawn(hub.run(shutdown));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let client = async_nats::connect(format!("nats://127.0.0.1:{}", nats.port))
            .await
            .unwrap();
        let context = async_nats::jetstream::new(client);
        let patience = Duration::from_secs(120);

        publish(&context, 0..20).await;
        let before = wait_for(patience, || async {
            stored(&conninfo).await.filter(|rows| rows.len() == 20)
        })
        .await;
        assert!(
            before.is_some(),
            "the first records were not stored: {:?}",
            stored(&conninfo).await
        );
        assert_eq!(health(&http, addr).await.unwrap().0, 200);

        // PostgreSQL goes away: /healthz says so, records wait in the
        // stream, the hub's attempts to store them fail.
        cluster.stop();
        let down = wait_for(patience, || async {
            health(&http, addr)
                .await
                .filter(|(status, body)| *status == 503 && body["postgres"] == false)
        })
        .await;
        assert!(
            down.is_some(),
            "/healthz did not say the database is down: {:?}",
            health(&http, addr).await
        );
        publish(&context, 20..40).await;
        let failed = wait_for(patience, || async {
            health(&http, addr)
                .await
                .filter(|(_, body)| body["store_failures_total"].as_u64() >= Some(1))
        })
        .await;
        assert!(
            failed.is_some(),
            "the hub did not try to store during the outage: {:?}",
            health(&http, addr).await
        );

        // Back: every record is stored once, without restarting the hub.
        cluster.start();
        let all = wait_for(patience, || async {
            stored(&conninfo).await.filter(|rows| rows.len() >= 40)
        })
        .await;
        let Some(all) = all else {
            panic!(
                "records published during the outage were not stored: {:?} (hub health {:?})",
                stored(&conninfo).await,
                health(&http, addr).await
            )
        };
        let ids: Vec<&str> = all.iter().map(|(_, id)| id.as_str()).collect();
        let unique: BTreeSet<&str> = ids.iter().copied().collect();
        let published: BTreeSet<String> = (0..40).map(|n| format!("r{n}")).collect();
        assert_eq!(ids.len(), unique.len(), "a record stored twice: {ids:?}");
        assert_eq!(
            unique,
            published
                .iter()
                .map(String::as_str)
                .collect::<BTreeSet<_>>()
        );
        let healthy = wait_for(patience, || async {
            health(&http, addr).await.filter(|(status, body)| {
                *status == 200 && body["status"] == "ok" && body["postgres"] == true
            })
        })
        .await;
        let Some((_, body)) = healthy else {
            panic!("/healthz not back to ok: {:?}", health(&http, addr).await)
        };
        // Both connections (the consumer's, the API's) came back.
        assert!(
            body["postgres_reconnects_total"].as_u64() >= Some(2),
            "{body}"
        );
        // Each record was counted new once: the host's count is exact.
        let (pg, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let records: i64 = pg
            .query_one(
                "SELECT records FROM fleet_hosts WHERE agent = 'edge-1'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(records, 40);
        let metrics = http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(metrics.contains("jaga_hub_postgres_up 1\n"), "{metrics}");
        assert!(
            metrics.contains("jaga_hub_postgres_disconnects_total 2\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("jaga_hub_postgres_reconnects_total 2\n"),
            "{metrics}"
        );

        // The outage is logged once, not per batch or heartbeat flush.
        let lost = logs.lines("lost the connection to postgres");
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert!(lost[0].contains("WARN"), "{lost:?}");
        assert_eq!(logs.lines("reconnected to postgres").len(), 1);
        assert!(logs.lines("hub cannot store a batch").is_empty());
        assert!(logs.lines("heartbeats not recorded").is_empty());

        stop.send_replace(true);
        running.await.unwrap().unwrap();
    });
}

/// A CA and a certificate it signs for `localhost` only, made with the
/// openssl CLI; and a CA that signed nothing.
fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let mut command = Command::new("openssl");
        command.current_dir(dir).args(args);
        run(command, &format!("openssl {}", args.join(" ")));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let (key, crt, subject) = (
            format!("{ca}.key"),
            format!("{ca}.crt"),
            format!("/CN=jaga test {ca}"),
        );
        let mut args = vec![
            "req",
            "-x509",
            "-days",
            "2",
            "-subj",
            subject.as_str(),
            "-keyout",
            key.as_str(),
            "-out",
            crt.as_str(),
        ];
        args.extend(ec);
        args.extend([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&args);
    }
    let mut args = vec![
        "req",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ];
    args.extend(ec);
    openssl(&args);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
}

#[test]
fn tls_to_postgres_checks_the_server_as_sslmode_says() {
    let dir = tempfile::tempdir().unwrap();
    let pg_dir = dir.path().join("pg");
    let tls_dir = dir.path().join("tls");
    std::fs::create_dir_all(&pg_dir).unwrap();
    std::fs::create_dir_all(&tls_dir).unwrap();
    certificates(&tls_dir);
    // PostgreSQL wants its key private and its own.
    let key = pg_dir.join("server.key");
    std::fs::copy(tls_dir.join("server.key"), &key).unwrap();
    std::fs::copy(tls_dir.join("server.crt"), pg_dir.join("server.crt")).unwrap();
    let conf = format!(
        "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
        pg_dir.join("server.crt").display(),
        key.display()
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // TLS or nothing over TCP.
    let cluster = Cluster::init(
        &pg_dir,
        &conf,
        Some("local all all trust\nhostssl all all 127.0.0.1/32 trust\n"),
    );
    let ca = tls_dir.join("ca.crt");
    let other = tls_dir.join("other-ca.crt");
    let port = cluster.port;
    // The certificate names localhost: `host` is the name checked,
    // `hostaddr` where to connect.
    let by_name =
        format!("host=localhost hostaddr=127.0.0.1 port={port} user=postgres dbname=postgres");
    let by_ip = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let connect = |conninfo: String| async move {
            jaga_hub::store::connect(&conninfo)
                .await
                .map_err(|e| e.to_string())
        };
        // verify-full with the CA: connected, over TLS.
        let client = connect(format!("{by_name} sslmode=verify-full sslrootcert={}", ca.display()))
            .await
            .unwrap();
        let ssl: bool = client
            .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        assert!(ssl);
        // As a URI too.
        connect(format!(
            "postgresql://postgres@localhost:{port}/postgres?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
            ca.display()
        ))
        .await
        .unwrap();

        // A wrong CA is refused, and said so.
        let error = connect(format!("{by_name} sslmode=verify-full sslrootcert={}", other.display()))
            .await
            .unwrap_err();
        assert!(
            error.contains("certificate") && error.contains("sslrootcert"),
            "{error}"
        );
        // The right CA, the wrong name: verify-full refuses, verify-ca
        // (the chain alone) takes it.
        let error = connect(format!("{by_ip} sslmode=verify-full sslrootcert={}", ca.display()))
            .await
            .unwrap_err();
        assert!(error.contains("certificate"), "{error}");
        connect(format!("{by_ip} sslmode=verify-ca sslrootcert={}", ca.display()))
            .await
            .unwrap();
        // require: encrypted, unchecked; with a root certificate, checked
        // as verify-ca (libpq's rule).
        connect(format!("{by_ip} sslmode=require")).await.unwrap();
        let error = connect(format!("{by_ip} sslmode=require sslrootcert={}", other.display()))
            .await
            .unwrap_err();
        assert!(error.contains("certificate"), "{error}");
        // disable: this server takes TLS only.
        let error = connect(format!("{by_ip} sslmode=disable")).await.unwrap_err();
        assert!(error.contains("pg_hba.conf"), "{error}");

        // What `jaga hub` and `jaga config check` read first.
        let prepared = |postgres: String| {
            let config: jaga_config::HubConfig = serde_json::from_value(serde_json::json!({
                "postgres": postgres,
                "nats": {"servers": ["nats://127.0.0.1:4222"]},
            }))
            .unwrap();
            jaga_hub::prepare(&config).map(|_| ()).map_err(|e| e.to_string())
        };
        prepared(format!("{by_name} sslmode=verify-full sslrootcert={}", ca.display())).unwrap();
        let error = prepared(format!("{by_name} sslmode=verify-full")).unwrap_err();
        assert!(error.contains("needs the server's CA"), "{error}");
        let error = prepared(format!("{by_name} sslrootcert={}", tls_dir.join("server.csr").display())).unwrap_err();
        assert!(error.contains("holds no PEM certificate"), "{error}");
    });
}

/// A stopped process (SIGSTOP), continued when dropped.
struct Stopped(u32);

impl Stopped {
    fn signal(pid: u32, signal: &str) {
        let mut kill = Command::new("kill");
        kill.args([signal, &pid.to_string()]);
        run(kill, "kill");
    }

    fn stop(pid: u32) -> Self {
        Self::signal(pid, "-STOP");
        Self(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        Self::signal(self.0, "-CONT");
    }
}

#[test]
fn a_writer_whose_server_stops_answering_drops_the_connection_and_makes_it_again() {
    use jaga_hub::store::{self, Incoming, Writer};
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::init(dir.path(), "", None);
    let conninfo = cluster.conninfo();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let record = |id: &str| Incoming {
        agent: "edge-1".to_owned(),
        kind: "alerts".to_owned(),
        alert: serde_json::from_value(alert(id)).unwrap(),
    };
    runtime.block_on(async {
        let stats = Arc::new(jaga_hub::ConsumeStats::default());
        let link = store::link(
            Arc::new(jaga_hub::conninfo::Conninfo::parse(&conninfo).unwrap()),
            "consumer",
            Arc::clone(&stats),
            |client, connection| async move {
                Ok(Writer::new(client)
                    .await?
                    .severs(connection)
                    .answer_within(Duration::from_secs(2)))
            },
        )
        .await
        .unwrap();
        assert_eq!(
            link.current
                .lock()
                .await
                .insert(&[record("a1")])
                .await
                .unwrap(),
            1
        );

        // The backend of the writer's connection stops answering (as a
        // host cut off without a reset would).
        let (pg, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let pids: Vec<i32> = pg
            .query(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE '%INSERT INTO fleet_records%' \
                 AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(pids.len(), 1, "{pids:?}");
        let stopped = Stopped::stop(u32::try_from(pids[0]).unwrap());

        // No hang: the insert fails as an outage, the connection is made
        // again, the batch then goes in.
        let stuck = async { link.current.lock().await.insert(&[record("a2")]).await };
        let error = tokio::time::timeout(Duration::from_secs(120), stuck)
            .await
            .expect("the insert hung")
            .unwrap_err();
        assert!(
            matches!(error, jaga_hub::HubError::PostgresDown(_))
                && error.to_string().contains("no answer within 2s"),
            "{error}"
        );
        let mut up = link.up.clone();
        let back = tokio::time::timeout(Duration::from_secs(120), async {
            up.wait_for(|up| *up).await.unwrap();
            while stats
                .postgres_reconnects_total
                .load(std::sync::atomic::Ordering::Relaxed)
                == 0
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert!(back.is_ok(), "the writer did not reconnect");
        assert_eq!(
            link.current
                .lock()
                .await
                .insert(&[record("a2")])
                .await
                .unwrap(),
            1
        );
        drop(stopped);
        let stored: i64 = pg
            .query_one("SELECT count(*) FROM fleet_records", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(stored, 2);
        assert_eq!(
            stats
                .postgres_disconnects_total
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    });
}
