//! The runner against a scripted output and a real store.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jaga_model::{Alert, AlertAgent, AlertEpisode, AlertRule, EpisodeStatus, EventContainer};
use jaga_outputs::{DeliveryError, DeliveryFuture, Message, Output, Receipt};
use jaga_store::{Consumed, DeadLetterKind, EventStore};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::filter::Filter;
use super::runner::{Runner, RunnerSettings};
use super::status::OutputStatus;
use crate::sink::AlertSink;

/// An output that answers from a script, then with `otherwise`.
struct Scripted {
    script: Mutex<VecDeque<Result<Receipt, DeliveryError>>>,
    otherwise: Mutex<Result<Receipt, DeliveryError>>,
    /// Never answers.
    stuck: bool,
    resend: Option<Duration>,
    calls: Mutex<Vec<(Instant, Message)>>,
}

impl Scripted {
    fn new(script: Vec<Result<Receipt, DeliveryError>>) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.into()),
            otherwise: Mutex::new(Ok(ok())),
            stuck: false,
            resend: None,
            calls: Mutex::default(),
        })
    }

    fn calls(&self) -> Vec<(Instant, Message)> {
        self.calls.lock().unwrap().clone()
    }

    /// The alert ids of each message delivered (or attempted).
    fn ids(&self) -> Vec<Vec<String>> {
        self.calls()
            .iter()
            .map(|(_, m)| m.alerts.iter().map(|a| a.alert.id.clone()).collect())
            .collect()
    }
}

impl Output for Scripted {
    fn kind(&self) -> &'static str {
        "scripted"
    }

    fn deliver<'a>(&'a self, message: &'a Message) -> DeliveryFuture<'a> {
        self.calls
            .lock()
            .unwrap()
            .push((Instant::now(), message.clone()));
        let answer = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.otherwise.lock().unwrap().clone());
        let stuck = self.stuck;
        Box::pin(async move {
            if stuck {
                std::future::pending::<()>().await;
            }
            answer
        })
    }

    fn resend_firing_every(&self) -> Option<Duration> {
        self.resend
    }
}

fn ok() -> Receipt {
    Receipt {
        answer: "HTTP 200 OK".to_owned(),
    }
}

fn transient(retry_after: Option<Duration>) -> Result<Receipt, DeliveryError> {
    Err(DeliveryError::Transient {
        reason: "HTTP 503".to_owned(),
        retry_after,
    })
}

fn settings(name: &str) -> RunnerSettings {
    RunnerSettings {
        name: name.to_owned(),
        filter: Filter::default(),
        group_window: None,
        rate_limit: None,
        max_backlog: 1_000,
        max_age: None,
        backoff_min: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
    }
}

fn alert(id: &str, rule: &str, level: u8, container: &str) -> Alert {
    Alert {
        id: id.to_owned(),
        timestamp: "2024-01-01T00:00:00.000Z".to_owned(),
        rule: AlertRule {
            id: rule.to_owned(),
            level,
            description: format!("rule {rule}"),
            groups: vec!["docker".to_owned()],
            mitre: Vec::new(),
        },
        agent: AlertAgent::default(),
        container: Some(EventContainer {
            id: format!("id-{container}"),
            name: container.to_owned(),
            ..EventContainer::default()
        }),
        data: Default::default(),
        location: "docker-events".to_owned(),
        event: None,
        episode: None,
    }
}

struct Bed {
    _dir: tempfile::TempDir,
    store: Arc<EventStore>,
    sink: AlertSink,
    shutdown: watch::Sender<bool>,
}

impl Bed {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EventStore::open(dir.path()).unwrap());
        let sink = AlertSink::new(Arc::clone(&store), 0).unwrap();
        Self {
            _dir: dir,
            store,
            sink,
            shutdown: watch::channel(false).0,
        }
    }

    /// Starts a runner and waits until it has its cursor.
    async fn start(
        &self,
        settings: RunnerSettings,
        output: Arc<dyn Output>,
    ) -> (Arc<OutputStatus>, JoinHandle<()>) {
        let status = Arc::new(OutputStatus::new(&settings.name, output.kind()));
        let runner = Runner {
            settings,
            output,
            store: Arc::clone(&self.store),
            latest: self.sink.subscribe(),
            status: Arc::clone(&status),
        };
        let handle = tokio::spawn(runner.run(self.shutdown.subscribe()));
        until("the runner opened its cursor", || {
            status.snapshot().state != "starting"
        })
        .await;
        (status, handle)
    }

    fn raise(&self, alerts: Vec<Alert>) {
        self.sink.commit(alerts, &Consumed::Nothing).unwrap();
    }

    fn cursor(&self, name: &str) -> i64 {
        self.store
            .output_cursors()
            .unwrap()
            .into_iter()
            .find(|c| c.name == name)
            .unwrap()
            .seq
    }
}

/// Waits (generously) until `check` holds.
async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_until_delivered_and_the_cursor_moves() {
    let bed = Bed::new();
    let output = Scripted::new(vec![transient(None), transient(None), Ok(ok())]);
    let (status, _) = bed.start(settings("hook"), output.clone()).await;
    bed.raise(vec![alert("a.1", "91011", 6, "web")]);
    until("delivered", || status.snapshot().delivered_total == 1).await;
    assert_eq!(output.ids(), vec![vec!["a.1".to_owned()]; 3]);
    let stats = status.snapshot();
    assert_eq!(stats.retried_total, 2);
    assert_eq!(stats.last_answer.as_deref(), Some("HTTP 200 OK"));
    until("cursor stored", || bed.cursor("hook") == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_is_dead_lettered_with_the_answer_and_the_next_is_delivered() {
    let bed = Bed::new();
    let output = Scripted::new(vec![Err(DeliveryError::Permanent {
        reason: "HTTP 400".to_owned(),
        answer: "HTTP 400 Bad Request: no such channel".to_owned(),
    })]);
    let (status, _) = bed.start(settings("hook"), output.clone()).await;
    bed.raise(vec![
        alert("a.1", "91011", 6, "web"),
        alert("a.2", "91011", 6, "web"),
    ]);
    until("second delivered", || {
        status.snapshot().delivered_total == 1
    })
    .await;
    assert_eq!(output.ids(), [["a.1"], ["a.2"]]);
    assert_eq!(status.snapshot().dead_lettered_total, 1);
    until("cursor stored", || bed.cursor("hook") == 2).await;
    let letters = bed.store.dead_letters(Some("hook"), 0, 10, 10).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].kind, DeadLetterKind::Refused);
    assert_eq!(letters[0].alert_ids, ["a.1"]);
    assert_eq!(letters[0].answer, "HTTP 400 Bad Request: no such channel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_over_the_backoff() {
    let bed = Bed::new();
    let output = Scripted::new(vec![transient(Some(Duration::from_millis(1500))), Ok(ok())]);
    let (status, _) = bed.start(settings("hook"), output.clone()).await;
    bed.raise(vec![alert("a.1", "91011", 6, "web")]);
    until("delivered", || status.snapshot().delivered_total == 1).await;
    let calls = output.calls();
    // The backoff alone would have tried again within 5 ms.
    assert!(calls[1].0 - calls[0].0 >= Duration::from_millis(1500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_messages_past_the_allowance_back() {
    let bed = Bed::new();
    let output = Scripted::new(Vec::new());
    let limited = RunnerSettings {
        rate_limit: Some(2),
        ..settings("team")
    };
    let (status, _) = bed.start(limited, output.clone()).await;
    bed.raise(
        (1..=4)
            .map(|n| alert(&format!("a.{n}"), &format!("rule{n}"), 6, "web"))
            .collect(),
    );
    until("the allowance delivered", || output.calls().len() == 2).await;
    until("rate limited", || status.snapshot().state == "rate_limited").await;
    // The next token comes 30 s after the burst: nothing more meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(output.calls().len(), 2);
    let stats = status.snapshot();
    assert_eq!(stats.cursor, 2);
    assert_eq!(stats.backlog, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_one_rule_on_one_container_is_one_message_listing_its_ids() {
    let bed = Bed::new();
    let output = Scripted::new(Vec::new());
    let grouped = RunnerSettings {
        group_window: Some(Duration::from_millis(300)),
        ..settings("team")
    };
    let (status, _) = bed.start(grouped, output.clone()).await;
    bed.raise(vec![
        alert("a.1", "91011", 6, "web"),
        alert("b.1", "91006", 7, "web"),
        alert("a.2", "91011", 6, "web"),
        alert("c.1", "91011", 6, "db"),
        alert("a.3", "91011", 6, "web"),
    ]);
    until("three messages", || status.snapshot().delivered_total == 3).await;
    assert_eq!(
        output.ids(),
        vec![vec!["a.1", "a.2", "a.3"], vec!["b.1"], vec!["c.1"]]
    );
    assert_eq!(output.calls()[0].1.idempotency_key(), "a.1+3");
    assert_eq!(status.snapshot().delivered_alerts_total, 5);
    until("cursor stored", || bed.cursor("team") == 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_output_does_not_delay_another() {
    let bed = Bed::new();
    let stuck = Arc::new(Scripted {
        stuck: true,
        ..Arc::into_inner(Scripted::new(Vec::new())).unwrap()
    });
    let healthy = Scripted::new(Vec::new());
    let (stuck_status, _) = bed.start(settings("stuck"), stuck.clone()).await;
    let (healthy_status, _) = bed.start(settings("healthy"), healthy.clone()).await;
    bed.raise(
        (1..=5)
            .map(|n| alert(&format!("a.{n}"), "91011", 6, "web"))
            .collect(),
    );
    until("all delivered to the healthy one", || {
        healthy_status.snapshot().delivered_total == 5
    })
    .await;
    until("the stuck one tried", || stuck.calls().len() == 1).await;
    assert_eq!(stuck_status.snapshot().delivered_total, 0);
    until("healthy cursor stored", || bed.cursor("healthy") == 5).await;
    assert_eq!(bed.cursor("stuck"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_backlog_the_oldest_unread_are_dropped_counted_and_recorded() {
    let bed = Bed::new();
    let output = Scripted::new(Vec::new());
    *output.otherwise.lock().unwrap() = transient(None);
    let bounded = RunnerSettings {
        max_backlog: 3,
        ..settings("hook")
    };
    let (status, _) = bed.start(bounded, output.clone()).await;
    bed.raise(vec![alert("a.1", "r", 6, "web")]);
    until("in flight", || !output.calls().is_empty()).await;
    bed.raise(
        (2..=6)
            .map(|n| alert(&format!("a.{n}"), "r", 6, "web"))
            .collect(),
    );
    until("three dropped", || status.snapshot().dropped_total == 3).await;
    until("the drop recorded", || {
        bed.store
            .dead_letters(Some("hook"), 0, 10, 10)
            .unwrap()
            .len()
            == 1
    })
    .await;
    // The message in flight is not passed by the cursor: a restart now
    // would send it again.
    assert_eq!(bed.cursor("hook"), 0);
    *output.otherwise.lock().unwrap() = Ok(ok());
    until("the rest delivered", || {
        status.snapshot().delivered_alerts_total == 3
    })
    .await;
    let delivered: Vec<String> = output
        .ids()
        .into_iter()
        .flatten()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(delivered, ["a.1", "a.5", "a.6"]);
    let letters = bed.store.dead_letters(Some("hook"), 0, 10, 10).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].kind, DeadLetterKind::Dropped);
    assert_eq!(
        (letters[0].first_seq, letters[0].last_seq, letters[0].count),
        (2, 4, 3)
    );
    until("cursor stored", || bed.cursor("hook") == 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_age_the_unread_are_dropped_counted_and_recorded() {
    let bed = Bed::new();
    let output = Scripted::new(Vec::new());
    *output.otherwise.lock().unwrap() = transient(None);
    let bounded = RunnerSettings {
        max_age: Some(Duration::from_secs(2)),
        ..settings("hook")
    };
    let (status, _) = bed.start(bounded, output.clone()).await;
    bed.raise(vec![alert("a.1", "r", 6, "web")]);
    until("in flight", || !output.calls().is_empty()).await;
    bed.raise(vec![
        alert("a.2", "r", 6, "web"),
        alert("a.3", "r", 6, "web"),
    ]);
    until("two dropped for their age", || {
        status.snapshot().dropped_total == 2
    })
    .await;
    bed.raise(vec![alert("a.4", "r", 6, "web")]);
    *output.otherwise.lock().unwrap() = Ok(ok());
    until("the rest delivered", || {
        status.snapshot().delivered_alerts_total == 2
    })
    .await;
    let letters = bed.store.dead_letters(Some("hook"), 0, 10, 10).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].first_seq, letters[0].last_seq), (2, 3));
    assert!(letters[0].error.contains("max_age"), "{}", letters[0].error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_alerts_move_the_cursor_without_a_delivery() {
    let bed = Bed::new();
    let output = Scripted::new(Vec::new());
    let picky = RunnerSettings {
        filter: Filter {
            min_level: 7,
            containers: vec!["web-*".to_owned()],
            ..Filter::default()
        },
        ..settings("pager")
    };
    let (status, _) = bed.start(picky, output.clone()).await;
    bed.raise(vec![
        alert("low", "r", 3, "web-1"),
        alert("db", "r", 9, "db"),
        alert("hit", "r", 9, "web-1"),
    ]);
    until("cursor stored", || bed.cursor("pager") == 3).await;
    assert_eq!(output.ids(), [["hit"]]);
    assert_eq!(status.snapshot().filtered_total, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_runner_resumes_after_what_was_delivered() {
    let bed = Bed::new();
    let first = Scripted::new(Vec::new());
    let (status, handle) = bed.start(settings("hook"), first.clone()).await;
    bed.raise(vec![
        alert("a.1", "r", 6, "web"),
        alert("a.2", "r", 6, "web"),
    ]);
    until("delivered", || status.snapshot().delivered_total == 2).await;
    bed.shutdown.send_replace(true);
    handle.await.unwrap();
    assert_eq!(bed.cursor("hook"), 2);
    bed.raise(vec![alert("a.3", "r", 6, "web")]);
    bed.shutdown.send_replace(false);
    let second = Scripted::new(Vec::new());
    let (status, _) = bed.start(settings("hook"), second.clone()).await;
    until("delivered", || status.snapshot().delivered_total == 1).await;
    assert_eq!(second.ids(), [["a.3"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn episodes_still_firing_are_sent_again_and_resolved_ones_are_not() {
    let bed = Bed::new();
    let output = Arc::new(Scripted {
        resend: Some(Duration::from_millis(100)),
        ..Arc::into_inner(Scripted::new(Vec::new())).unwrap()
    });
    let (_, _) = bed.start(settings("am"), output.clone()).await;
    let episode = |id: &str, key: &str, status| Alert {
        episode: Some(AlertEpisode {
            key: key.to_owned(),
            status,
            started_at: "2024-01-01T00:00:00.000Z".to_owned(),
            ended_at: None,
        }),
        ..alert(id, "cpu", 7, "web")
    };
    bed.raise(vec![
        episode("cpu.fire", "cpu/web", EpisodeStatus::Firing),
        episode("mem.fire", "mem/web", EpisodeStatus::Firing),
        episode("mem.end", "mem/web", EpisodeStatus::Resolved),
    ]);
    until("sent again", || {
        output
            .ids()
            .iter()
            .filter(|ids| ids[0] == "cpu.fire")
            .count()
            >= 3
    })
    .await;
    let ids = output.ids();
    assert_eq!(ids.iter().filter(|ids| ids[0] == "mem.fire").count(), 1);
    assert_eq!(ids.iter().filter(|ids| ids[0] == "mem.end").count(), 1);
}
