//! The audit inside `jaga serve`: a full audit at start and every interval,
//! a container's own checks whenever it starts, an alert for each finding
//! not seen before, and the latest report for `/api/v1/audit`. A destroyed
//! container's findings leave the report at once, not at the next full
//! audit: under churn they would pile up for a whole interval.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jaga_audit::{AuditInput, CveTable, Report, Selection};
use jaga_engine::Engine;
use jaga_model::{Alert, AlertAgent, AlertRule, EventContainer, Finding};
use jaga_store::Consumed;
use tokio::sync::{mpsc, watch};

use super::gather::{gather, inspect_container, HostPaths};
use crate::clock::unix_secs;
use crate::sink::{fnv1a, rfc3339_ms, AlertSink};

pub struct ContinuousAudit {
    pub engine: Arc<Engine>,
    pub sink: Arc<AlertSink>,
    pub paths: HostPaths,
    /// The CVE data versions are judged by.
    pub cves: Arc<CveTable>,
    pub interval: Duration,
    pub agent: AlertAgent,
    /// Containers that just started or were destroyed.
    pub lifecycle: mpsc::UnboundedReceiver<ContainerLifecycle>,
    pub report: watch::Sender<Option<Arc<str>>>,
}

impl ContinuousAudit {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut findings: Vec<Finding> = Vec::new();
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    match gather(&self.engine, &self.paths).await {
                        Ok(mut input) => {
                            input.cves = Some(Arc::clone(&self.cves));
                            findings = jaga_audit::run(&input, &Selection::default());
                            tracing::info!(findings = findings.len(), "audit done");
                            // Served before alerted: whoever sees the alert finds it in the report.
                            self.publish(&findings);
                            self.raise(&findings);
                        }
                        Err(error) => tracing::warn!(error = %format!("{error:#}"), "audit failed"),
                    }
                }
                Some(change) = self.lifecycle.recv() => self.follow(change, &mut findings).await,
                _ = shutdown.changed() => return,
            }
        }
    }

    /// A started container gets its own checks; a destroyed one leaves the report.
    async fn follow(&self, change: ContainerLifecycle, findings: &mut Vec<Finding>) {
        match change {
            ContainerLifecycle::Destroyed(id) => {
                let before = findings.len();
                findings.retain(|f| !is_about(f, &id));
                if findings.len() != before {
                    self.publish(findings);
                }
            }
            ContainerLifecycle::Started(id) => match inspect_container(&self.engine, &id).await {
                Ok(Some(container)) => {
                    let input = AuditInput {
                        containers: vec![container],
                        now_unix: unix_secs(),
                        ..AuditInput::default()
                    };
                    let selection = Selection {
                        containers: vec![id.clone()],
                        ..Selection::default()
                    };
                    let fresh = jaga_audit::run(&input, &selection);
                    findings.retain(|f| !is_about(f, &id));
                    findings.extend(fresh.iter().cloned());
                    self.publish(findings);
                    self.raise(&fresh);
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(error = %format!("{error:#}"), container = %id, "cannot audit started container")
                }
            },
        }
    }

    /// Serialized once here, straight to text: the API sends it as it is.
    fn publish(&self, findings: &[Finding]) {
        #[derive(serde::Serialize)]
        struct Published<'a> {
            #[serde(flatten)]
            report: Report<'a>,
            taken_unix: i64,
        }
        let published = Published {
            report: Report::new(findings),
            taken_unix: unix_secs(),
        };
        match serde_json::to_string(&published) {
            Ok(text) => {
                self.report.send_replace(Some(Arc::from(text)));
            }
            Err(error) => {
                tracing::warn!(%error, "cannot serialize the audit report; the API keeps the previous one")
            }
        }
    }

    /// An alert for each finding the store has not seen.
    fn raise(&self, findings: &[Finding]) {
        let mut new = 0;
        for finding in findings {
            let alert = alert_for(finding, &self.agent);
            let identity = finding.identity();
            let consumed = Consumed::Finding {
                identity: &identity,
            };
            match tokio::task::block_in_place(|| self.sink.commit(vec![alert], &consumed)) {
                Ok(committed) => new += committed.new_alerts,
                Err(error) => tracing::warn!(%error, "cannot record audit finding"),
            }
        }
        if new > 0 {
            tracing::info!(new, "new audit findings raised alerts");
        }
    }
}

/// What the event listener tells the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerLifecycle {
    Started(String),
    Destroyed(String),
}

impl ContainerLifecycle {
    pub fn of(event: &jaga_model::DockerEvent) -> Option<Self> {
        if event.kind != "container" {
            return None;
        }
        let id = event.actor_id.clone();
        match event.action.as_str() {
            "start" => Some(Self::Started(id)),
            "destroy" => Some(Self::Destroyed(id)),
            _ => None,
        }
    }
}

fn is_about(finding: &Finding, container_id: &str) -> bool {
    finding.object.kind == "container" && finding.object.id == container_id
}

pub fn alert_for(finding: &Finding, agent: &AlertAgent) -> Alert {
    let now_ms = unix_secs() * 1000;
    let container = (finding.object.kind == "container").then(|| EventContainer {
        id: finding.object.id.clone(),
        name: finding.object.name.clone(),
        ..EventContainer::default()
    });
    Alert {
        id: format!("audit.{:016x}", fnv1a(&finding.identity())),
        timestamp: rfc3339_ms(now_ms),
        rule: AlertRule {
            id: finding.check_id.clone(),
            level: finding.severity.alert_level(),
            description: format!(
                "{}: {} {}",
                finding.title, finding.object.kind, finding.object.name
            ),
            groups: vec![
                "audit".to_owned(),
                finding.threat.as_str().to_owned(),
                serde_json::to_value(finding.practice)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            ],
            mitre: Vec::new(),
        },
        agent: agent.clone(),
        container,
        data: BTreeMap::from([
            ("check_id".to_owned(), finding.check_id.clone()),
            ("severity".to_owned(), finding.severity.as_str().to_owned()),
            (
                "object".to_owned(),
                format!("{} {}", finding.object.kind, finding.object.id),
            ),
            ("evidence".to_owned(), finding.evidence.clone()),
            ("remediation".to_owned(), finding.remediation.clone()),
        ]),
        location: "audit".to_owned(),
        event: None,
        episode: None,
    }
}
