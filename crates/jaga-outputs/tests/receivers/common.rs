//! What every receiver test needs: real receiver programs started on
//! 127.0.0.1 in a temp dir and killed at the end, free ports, certificates
//! made at test time, and alerts to send.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jaga_model::Alert;
use jaga_outputs::{Output, OutputSettings, StoredAlert};

/// Generous: the machine is shared with other builds.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The path of a receiver program, or a failure that says how to get it.
pub fn require_program(path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/receivers.sh (it installs the test receivers with apt)",
        path.display()
    );
    path
}

/// Debian's python3 with aiosmtpd (not whatever `python3` is first on PATH).
pub fn require_aiosmtpd() -> PathBuf {
    let python = require_program("/usr/bin/python3");
    let found = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "python3-aiosmtpd is missing: run scripts/receivers.sh (it installs the test receivers with apt)"
    );
    python
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A port nothing listens on right now, below the kernel's ephemeral
/// range (32768-60999): a port the kernel hands out (`bind(0)`) is also
/// what it gives the next outgoing connection, and one made by a test
/// running beside took nats-server's port before it listened ("address
/// already in use"). Each call of the process tries the next candidate.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let start = std::process::id().wrapping_mul(7_919);
    for _ in 0..SPAN {
        let step = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = u16::try_from(FIRST + start.wrapping_add(step.wrapping_mul(4_099)) % SPAN)
            .expect("below 32000");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN);
}

/// Whether `GET path` on 127.0.0.1:`port` answers 200 (HTTP/1.0, so the
/// answer ends with the connection).
fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.split(' ').nth(1) == Some("200")
}

/// A running receiver, killed (and its log shown on failure) when dropped.
pub struct Receiver {
    pub name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Receiver {
    /// Starts `command` with stdout and stderr to `dir/NAME.log`.
    pub fn start(name: &'static str, mut command: Command, dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
        Self { name, child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until it accepts TCP connections on `port`.
    pub fn wait_for_port(&mut self, port: u16) {
        let name = self.name;
        wait_for(&format!("{name} listening on {port}"), || {
            if let Some(exit) = self.exit() {
                panic!("{exit}");
            }
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    /// Waits until it answers `GET /-/ready` with 200 on `port`, or
    /// gives how it exited (and its log) if it exits first.
    pub fn wait_until_ready(&mut self, port: u16) -> Result<(), String> {
        let name = self.name;
        wait_for(&format!("{name} ready on {port}"), || match self.exit() {
            Some(exit) => Some(Err(exit)),
            None => http_ok(port, "/-/ready").then_some(Ok(())),
        })
    }

    /// How it exited, with its log, once it has.
    fn exit(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok().flatten()?;
        Some(format!(
            "{} exited with {status}:\n{}",
            self.name,
            self.log()
        ))
    }

    /// Kills it and waits until it is gone (its sockets closed).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.name, self.log());
        }
    }
}

/// A receiver of the Prometheus family (Prometheus, Alertmanager) on a
/// free port, its configuration and storage in a temp dir.
pub struct Served {
    // Fields drop in order: the receiver goes (and shows its log on a
    // failure) before the dir that holds the log is removed.
    _receiver: Receiver,
    _dir: tempfile::TempDir,
    pub url: String,
}

/// How often a receiver that exits while it starts (it lost its port to
/// another process between `free_port` and its bind) is started again.
const START_ATTEMPTS: usize = 3;

/// Starts `program` with `--config.file` (holding `config`),
/// `--<storage_flag>` (a dir) and `--web.listen-address`, plus `extra`,
/// and waits until it answers its own readiness check (`/-/ready`): an
/// open port alone may be another process's.
pub fn start_served(
    name: &'static str,
    program: &str,
    config: &str,
    storage_flag: &str,
    extra: &[&str],
) -> Served {
    let program = require_program(program);
    let mut exits = Vec::new();
    for _ in 0..START_ATTEMPTS {
        let dir = tempfile::tempdir().unwrap();
        let config_file = dir.path().join(format!("{name}.yml"));
        std::fs::write(&config_file, config).unwrap();
        let port = free_port();
        let mut command = Command::new(&program);
        command
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--{storage_flag}={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra);
        let mut receiver = Receiver::start(name, command, dir.path());
        match receiver.wait_until_ready(port) {
            Ok(()) => {
                return Served {
                    _receiver: receiver,
                    _dir: dir,
                    url: format!("http://127.0.0.1:{port}"),
                }
            }
            Err(exit) => exits.push(exit),
        }
    }
    panic!(
        "{name} exited while starting, {START_ATTEMPTS} times:\n{}",
        exits.join("\n")
    );
}

/// Prometheus with `--web.enable-remote-write-receiver` and this
/// out-of-order window (`2h`), so back-filled points older than its
/// newest sample are taken.
pub fn start_prometheus(out_of_order_window: &str) -> Served {
    start_served(
        "prometheus",
        "/usr/bin/prometheus",
        &format!("storage:\n  tsdb:\n    out_of_order_time_window: {out_of_order_window}\n"),
        "storage.tsdb.path",
        &["--web.enable-remote-write-receiver"],
    )
}

/// Polls `probe` until it gives a value, failing after [`DEADLINE`].
pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The async flavour, for waits inside a tokio test.
pub async fn wait_for_async<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A CA and a server certificate it signed for 127.0.0.1 and localhost,
/// made with openssl: `ca.pem`, `server.pem`, `server.key` in `dir`.
pub fn make_certificates(dir: &Path) {
    let openssl = require_program("/usr/bin/openssl");
    let run = |args: &[&str]| {
        let output = Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=jaga test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

/// The output an `[[outputs]]` entry in TOML describes, built as the
/// runner builds it.
pub fn output(toml_text: &str) -> Arc<dyn Output> {
    let settings: OutputSettings = toml::from_str(toml_text)
        .unwrap_or_else(|error| panic!("bad settings {toml_text}: {error}"));
    jaga_outputs::build(&settings, std::path::Path::new("."))
        .unwrap_or_else(|error| panic!("cannot build: {error}"))
}

/// The alert of `tests/fixtures/alert.json` (the one the unit tests use),
/// raised now, with this id, on this container.
pub fn alert(id: &str, container: &str) -> StoredAlert {
    let text = std::fs::read_to_string(fixture("alert.json")).unwrap();
    let mut alert: Alert = serde_json::from_str(&text).unwrap();
    alert.id = id.to_string();
    alert.timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    if let Some(found) = alert.container.as_mut() {
        found.name = container.to_string();
    }
    StoredAlert { seq: 1, alert }
}
