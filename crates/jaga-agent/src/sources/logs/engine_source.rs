//! Containers whose log driver is not json-file (local, journald, ...):
//! their logs come through the Engine API (`GET /containers/{id}/logs`,
//! followed, with timestamps). The checkpoint is the time of the last line
//! processed; on resume the Engine is asked from that second on, and lines
//! already seen are dropped by their alert ids.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bollard::query_parameters::{InspectContainerOptions, LogsOptions};
use futures_util::StreamExt;
use jaga_engine::{ContainerDetails, Engine};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// One line from the Engine.
#[derive(Debug, Clone)]
pub struct EngineLine {
    pub container_id: String,
    pub time_nano: i64,
    pub text: String,
}

/// The checkpoint location of a container followed through the Engine.
pub fn location(container_id: &str) -> String {
    format!("engine:{container_id}")
}

#[derive(Default)]
pub struct EngineSources {
    followed: HashMap<String, JoinHandle<()>>,
    /// Containers checked and found on json-file (or no logs).
    skipped: HashMap<String, ()>,
}

impl EngineSources {
    /// The containers whose logs are being followed through the Engine.
    pub fn followed_ids(&self) -> HashSet<String> {
        self.followed.keys().cloned().collect()
    }

    /// Starts following running containers that log through another driver.
    /// `running` is the collector's inventory (`None`: ask the Engine);
    /// `since_secs` gives each one's checkpoint (seconds), if any.
    pub async fn discover(
        &mut self,
        engine: &Arc<Engine>,
        running: Option<&[ContainerDetails]>,
        lines: &mpsc::Sender<EngineLine>,
        shutdown: &watch::Receiver<bool>,
        since_secs: &mut (dyn FnMut(&str) -> Option<i64> + Send),
        first: bool,
    ) {
        self.followed.retain(|_, task| !task.is_finished());
        // (id, whether its json-file log is known): the inventory already
        // tells most containers' driver, so only the others are inspected.
        let listed: Vec<(String, bool)> = match running {
            Some(running) => running
                .iter()
                .map(|d| (d.container.id.to_string(), d.log_path.is_some()))
                .collect(),
            None => match engine.list_containers(false).await {
                Ok(listed) => listed.iter().map(|l| (l.id.to_string(), false)).collect(),
                Err(_) => return,
            },
        };
        // Forget containers no longer running, or the map grows with churn.
        let running: HashSet<&str> = listed.iter().map(|(id, _)| id.as_str()).collect();
        self.skipped.retain(|id, _| running.contains(id.as_str()));
        for (id, json_file) in listed {
            if self.followed.contains_key(&id) || self.skipped.contains_key(&id) {
                continue;
            }
            if json_file {
                self.skipped.insert(id, ());
                continue;
            }
            let driver = engine
                .client()
                .inspect_container(&id, None::<InspectContainerOptions>)
                .await
                .ok()
                .and_then(|c| c.host_config)
                .and_then(|h| h.log_config)
                .and_then(|l| l.typ)
                .unwrap_or_default();
            if matches!(driver.as_str(), "json-file" | "none" | "") {
                self.skipped.insert(id, ());
                continue;
            }
            // Containers running when the agent first looked: from now on,
            // as for files; later ones: from their beginning.
            let since =
                since_secs(&id).unwrap_or(if first { crate::clock::unix_secs() } else { 0 });
            tracing::debug!(container = %id, %driver, since, "following logs through the Engine API");
            let task = tokio::spawn(follow(
                Arc::clone(engine),
                id.clone(),
                i32::try_from(since).unwrap_or(0),
                lines.clone(),
                shutdown.clone(),
            ));
            self.followed.insert(id, task);
        }
    }
}

async fn follow(
    engine: Arc<Engine>,
    id: String,
    since: i32,
    lines: mpsc::Sender<EngineLine>,
    mut shutdown: watch::Receiver<bool>,
) {
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        since,
        timestamps: true,
        ..LogsOptions::default()
    };
    let mut stream = std::pin::pin!(engine.client().logs(&id, Some(options)));
    let mut carry = String::new();
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = shutdown.changed() => return,
        };
        let Some(Ok(output)) = next else { return };
        carry.push_str(&String::from_utf8_lossy(&output.into_bytes()));
        while let Some(end) = carry.find('\n') {
            let line: String = carry.drain(..=end).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            let (stamp, text) = line.split_once(' ').unwrap_or((line, ""));
            let Ok(time) = chrono::DateTime::parse_from_rfc3339(stamp) else {
                continue;
            };
            let entry = EngineLine {
                container_id: id.clone(),
                time_nano: time.timestamp_nanos_opt().unwrap_or_default(),
                text: text.to_owned(),
            };
            if lines.send(entry).await.is_err() {
                return;
            }
        }
        if carry.len() > 4 << 20 {
            carry.clear();
        }
    }
}
