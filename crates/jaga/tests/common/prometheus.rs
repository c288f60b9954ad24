//! Debian's Prometheus (installed by scripts/testbed.sh) scraping agents
//! started by the tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::agent::{free_port, get_url};
use super::wait_for;

/// Debian's Prometheus on a loopback port, scraping one agent every second.
pub struct Prometheus {
    port: u16,
    child: Child,
}

impl Prometheus {
    pub fn start(dir: &Path, agent_port: u16) -> Self {
        Self::start_with_jobs(
            dir,
            &format!(
                "  - job_name: jaga\n    static_configs:\n      - targets: ['127.0.0.1:{agent_port}']\n"
            ),
        )
    }

    /// Prometheus with these `scrape_configs` entries (YAML, indented by two).
    pub fn start_with_jobs(dir: &Path, jobs: &str) -> Self {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n{jobs}"
            ),
        )
        .unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus (installed by scripts/testbed.sh)");
        let prometheus = Self { port, child };
        wait_for(Duration::from_secs(30), || {
            (get_url(&prometheus.url("/-/ready"), None).0 == 200).then_some(())
        })
        .expect("prometheus ready within 30 s");
        prometheus
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The single value of an instant query.
    pub fn query_scalar(&self, query: &str) -> f64 {
        let result = self.query(query);
        assert_eq!(
            result.len(),
            1,
            "{query}: one series expected, got {result:?}"
        );
        result[0]["value"][1].as_str().unwrap().parse().unwrap()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Prometheus {
    /// Every series an instant query returns.
    pub fn query(&self, query: &str) -> Vec<serde_json::Value> {
        let url = format!(
            "{}?query={}",
            self.url("/api/v1/query"),
            percent_encode(query)
        );
        let (status, body) = get_url(&url, None);
        assert_eq!(status, 200, "{query}: {body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}
