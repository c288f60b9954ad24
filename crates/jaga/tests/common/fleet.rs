//! The fleet's servers for tests, on loopback (`scripts/receivers.sh`
//! installs them): Debian's nats-server with JetStream and a user per
//! agent, Prometheus with its remote-write receiver, PostgreSQL in a temp
//! dir, and `jaga hub` over them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{jaga_token_hash, wait_for};

pub const HUB_TOKEN: &str = "hub-token-5b1f0c";

/// A server process, killed when dropped; its output in `dir/NAME.log`.
pub struct Server {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    pub fn start(name: &'static str, mut command: Command, dir: &Path, port: u16) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let mut server = Self {
            name,
            child: Some(child),
            log,
        };
        let up = wait_for(Duration::from_secs(60), || {
            if let Some(status) = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("{name} exited with {status}:\n{}", server.output());
            }
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        assert!(
            up.is_some(),
            "{name} not listening on {port}:\n{}",
            server.output()
        );
        server
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.name, self.output());
        }
    }
}

pub fn require(path: &str) -> &str {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: run scripts/receivers.sh (it installs nats-server, prometheus and postgresql)"
    );
    path
}

pub fn nats(dir: &Path, port: u16) -> Server {
    let config = dir.join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n}}\n\
             authorization {{\n  users = [\n    {{ user: fleet-a, password: pass-a }}\n    \
             {{ user: fleet-b, password: pass-b }}\n    {{ user: hub, password: pass-hub }}\n  ]\n}}\n",
            dir.join("js").display()
        ),
    )
    .unwrap();
    let mut command = Command::new(require("/usr/sbin/nats-server"));
    command.arg("-c").arg(&config);
    Server::start("nats-server", command, dir, port)
}

pub fn prometheus(dir: &Path, port: u16) -> Server {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        "storage:\n  tsdb:\n    out_of_order_time_window: 1h\n",
    )
    .unwrap();
    let mut command = Command::new(require("/usr/bin/prometheus"));
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver");
    Server::start("prometheus", command, dir, port)
}

/// PostgreSQL in `dir`, run as the postgres user (it refuses root), trust
/// auth on 127.0.0.1 only.
pub fn postgres(dir: &Path, port: u16) -> Server {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path().join("bin"))
                .find(|p| p.join("initdb").exists())
        })
        .ok()
        .flatten()
        .expect("/usr/lib/postgresql/*/bin/initdb is missing: run scripts/receivers.sh");
    let data = dir.join("pg");
    std::fs::create_dir_all(&data).unwrap();
    let chown = Command::new("chown")
        .args(["-R", "postgres:postgres", &dir.display().to_string()])
        .status()
        .unwrap();
    assert!(chown.success());
    let as_postgres = |program: &Path| {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    };
    let initdb = as_postgres(&bin.join("initdb"))
        .args(["-A", "trust", "-U", "postgres", "-D"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        initdb.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&initdb.stderr)
    );
    let mut command = as_postgres(&bin.join("postgres"));
    command
        .arg("-D")
        .arg(&data)
        .args(["-c", "listen_addresses=127.0.0.1", "-c"])
        .arg(format!("port={port}"))
        .args(["-c"])
        .arg(format!("unix_socket_directories={}", dir.display()));
    Server::start("postgres", command, dir, port)
}

pub fn jaga_hub(config: &Path, dir: &Path, port: u16) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jaga"));
    command
        .args(["--config", &config.display().to_string(), "hub"])
        .env("RUST_LOG", "info");
    Server::start("jaga hub", command, dir, port)
}

/// `[hub]` (and its API token) over these servers; keys of `[hub]` may
/// follow.
pub fn hub_toml(hub_port: u16, pg_port: u16, nats_port: u16, password: &str) -> String {
    format!(
        "[serve.auth]\ntokens = [\"{}\"]\n\
         [hub.nats]\nservers = [\"nats://127.0.0.1:{nats_port}\"]\nusername = \"hub\"\npassword = \"{password}\"\ntimeout = \"5s\"\n\
         [hub]\nlisten = \"127.0.0.1:{hub_port}\"\n\
         postgres = \"host=127.0.0.1 port={pg_port} user=postgres dbname=postgres\"\n",
        jaga_token_hash(HUB_TOKEN)
    )
}
