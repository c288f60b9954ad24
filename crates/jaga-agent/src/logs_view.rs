//! The dashboard's log view: a container's recent lines read back through
//! the Engine (`GET /containers/{id}/logs`, not followed), which works for
//! every driver that can be read (json-file, local, journald). Lines are
//! redacted as the log alerts are. And its set-up (`docker inspect`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures_util::StreamExt;
use jaga_engine::Engine;
use jaga_server::{LogLine, LogQuery, LogsView, SetupView};

/// How long one read may take before the API answers with an error.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest line kept; the rest is cut (a log line is not a file).
const MAX_LINE: usize = 16 * 1024;

pub struct EngineLogs {
    pub engine: Arc<Engine>,
}

impl LogsView for EngineLogs {
    fn recent(
        &self,
        container_id: String,
        query: LogQuery,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<LogLine>, String>> + Send>> {
        let engine = Arc::clone(&self.engine);
        Box::pin(async move {
            match tokio::time::timeout(READ_TIMEOUT, read(&engine, &container_id, query)).await {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "reading the logs of container {container_id} took longer than {} s (transient)",
                    READ_TIMEOUT.as_secs()
                )),
            }
        })
    }
}

/// The dashboard's container set-up: `docker inspect`, on demand.
pub struct EngineSetup {
    pub engine: Arc<Engine>,
}

impl SetupView for EngineSetup {
    fn setup(
        &self,
        container_id: String,
    ) -> Pin<Box<dyn Future<Output = Result<jaga_model::ContainerSetup, String>> + Send>> {
        let engine = Arc::clone(&self.engine);
        Box::pin(async move {
            match tokio::time::timeout(READ_TIMEOUT, engine.setup(&container_id)).await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err(format!(
                    "inspecting container {container_id} took longer than {} s (transient)",
                    READ_TIMEOUT.as_secs()
                )),
            }
        })
    }
}

async fn read(engine: &Engine, id: &str, query: LogQuery) -> Result<Vec<LogLine>, String> {
    let since = query.after_ns.map_or(0, |ns| {
        i32::try_from(ns / 1_000_000_000).unwrap_or(i32::MAX)
    });
    let options = LogsOptions {
        follow: false,
        stdout: true,
        stderr: true,
        since,
        timestamps: true,
        tail: query.tail.to_string(),
        ..LogsOptions::default()
    };
    let redaction = engine.redaction();
    let mut stream = std::pin::pin!(engine.client().logs(id, Some(options)));
    let mut lines = Vec::new();
    while let Some(next) = stream.next().await {
        let output = next.map_err(|e| format!("reading the logs of container {id} failed: {e}"))?;
        let (stream_name, bytes) = match output {
            LogOutput::StdErr { message } => ("stderr", message),
            LogOutput::StdOut { message } | LogOutput::Console { message } => ("stdout", message),
            LogOutput::StdIn { .. } => continue,
        };
        let text = String::from_utf8_lossy(&bytes);
        for raw in text.split_terminator('\n') {
            let raw = raw.trim_end_matches('\r');
            let (stamp, body) = raw.split_once(' ').unwrap_or((raw, ""));
            let Some(time_nano) = chrono::DateTime::parse_from_rfc3339(stamp)
                .ok()
                .and_then(|t| t.timestamp_nanos_opt())
            else {
                continue;
            };
            // `since` is in seconds: drop what the previous answer had.
            if query.after_ns.is_some_and(|after| time_nano <= after) {
                continue;
            }
            let mut line = redaction.text(body).into_owned();
            if line.len() > MAX_LINE {
                let mut cut = MAX_LINE;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
                line.push('…');
            }
            lines.push(LogLine {
                unix_ms: time_nano / 1_000_000,
                time_nano,
                stream: stream_name,
                line,
            });
        }
    }
    // The two streams interleave by time.
    lines.sort_by_key(|l| l.time_nano);
    Ok(lines)
}
