//! A `jaga serve` process for tests: its own port, config and data
//! directory; killed when dropped.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::wait_for;

pub struct Agent {
    pub port: u16,
    pub data_dir: PathBuf,
    child: Option<Child>,
    _config: tempfile::NamedTempFile,
}

/// A port the kernel just gave out, free again for the agent to bind.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// How to run `jaga serve` besides its config.
#[derive(Default)]
pub struct Launch<'a> {
    /// A command that runs the agent, e.g. `["prlimit", "--nofile=1024:1024"]`.
    pub wrapper: &'a [&'a str],
    /// Listen on this address (with the agent's port) through `--listen`
    /// rather than on 127.0.0.1 through the config.
    pub listen_ip: Option<&'a str>,
}

impl Agent {
    /// Starts `jaga serve` on `data_dir` with `extra` config appended, and
    /// waits until `/healthz` answers 200.
    pub fn start(data_dir: &Path, extra: &str) -> Self {
        let mut agent = Self::spawn(data_dir, extra, Launch::default());
        agent.wait_until("/healthz answers 200", |agent| {
            agent.get("/healthz").0 == 200
        });
        agent
    }

    /// Starts `jaga serve` and returns at once.
    pub fn spawn(data_dir: &Path, extra: &str, launch: Launch) -> Self {
        let port = free_port();
        let mut config = tempfile::NamedTempFile::new().expect("config file");
        write!(
            config,
            "[serve]\nlisten = \"127.0.0.1:{port}\"\ninterval = \"1s\"\ndata_dir = \"{}\"\n{extra}",
            data_dir.display()
        )
        .expect("write config");
        let (program, wrapper_args) = match launch.wrapper.split_first() {
            Some((program, args)) => (program.to_string(), args.to_vec()),
            None => (env!("CARGO_BIN_EXE_jaga").to_owned(), Vec::new()),
        };
        let mut command = Command::new(program);
        command.args(wrapper_args);
        if !launch.wrapper.is_empty() {
            command.arg(env!("CARGO_BIN_EXE_jaga"));
        }
        command.args(["--config", &config.path().display().to_string(), "serve"]);
        if let Some(ip) = launch.listen_ip {
            command.args(["--listen", &format!("{ip}:{port}")]);
        }
        let child = command
            // JAGA_TEST_RUST_LOG turns on the agent's debug logs to chase a
            // failure (`JAGA_TEST_RUST_LOG=warn,jaga_logs=debug`).
            .env(
                "RUST_LOG",
                std::env::var("JAGA_TEST_RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn jaga serve");
        Self {
            port,
            data_dir: data_dir.to_path_buf(),
            child: Some(child),
            _config: config,
        }
    }

    /// Waits (up to 20 s) until `ready` holds; fails if the agent exits.
    pub fn wait_until(&mut self, what: &str, mut ready: impl FnMut(&Self) -> bool) {
        let done = wait_for(Duration::from_secs(20), || {
            if let Some(status) = self.try_exit() {
                panic!("jaga serve exited at start with {status}");
            }
            ready(self).then_some(())
        });
        assert!(done.is_some(), "jaga serve: not ready within 20 s: {what}");
    }

    /// The agent's config file, for CLI commands that ask it.
    pub fn config_path(&self) -> &Path {
        self._config.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// GET `path`: status and body; status 0 when nothing answers.
    pub fn get(&self, path: &str) -> (u16, String) {
        get_url(&self.url(path), None)
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: bad JSON {e}: {body}"))
    }

    pub fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "GET /metrics: {body}");
        body
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("agent running")
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (e.g. `HUP`) and returns.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} failed");
    }

    /// Sends `signal` and waits (up to 15 s) for the exit status.
    pub fn stop_with(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().expect("agent running");
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} failed");
        let status = wait_for(Duration::from_secs(15), || child.try_wait().ok().flatten());
        match status {
            Some(status) => status,
            None => {
                let _ = child.kill();
                panic!("jaga serve did not exit within 15 s of {signal}");
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Agent {
    /// The alerts of `rule` about `container` (a name or id), as the API serves them.
    pub fn alerts(&self, rule: &str, container: &str) -> Vec<serde_json::Value> {
        self.json(&format!(
            "/api/v1/alerts?rule_id={rule}&container={container}&limit=1000"
        ))
        .as_array()
        .expect("an array of alerts")
        .clone()
    }
}

/// GET with an optional Accept header; status 0 when nothing answers.
pub fn get_url(url: &str, accept: Option<&str>) -> (u16, String) {
    let mut request = ureq::get(url).timeout(Duration::from_secs(10));
    if let Some(accept) = accept {
        request = request.set("Accept", accept);
    }
    call(request)
}

/// GET with `Authorization: Bearer <token>`; status 0 when nothing answers.
pub fn get_with_token(url: &str, token: &str) -> (u16, String) {
    let request = ureq::get(url)
        .timeout(Duration::from_secs(10))
        .set("Authorization", &format!("Bearer {token}"));
    call(request)
}

fn call(request: ureq::Request) -> (u16, String) {
    match request.call() {
        Ok(response) => {
            let status = response.status();
            (status, response.into_string().unwrap_or_default())
        }
        Err(ureq::Error::Status(status, response)) => {
            (status, response.into_string().unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

/// The value of the first series of `family` whose labels contain all of
/// `labels` (`key="value"` strings), from Prometheus text.
pub fn series_value(metrics: &str, family: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
