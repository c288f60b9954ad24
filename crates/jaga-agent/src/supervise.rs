//! Supervision of the long-running tasks of `jaga serve`: each is spawned
//! by name, and the supervisor sees one that ended before shutdown,
//! panicked, or stalled. `/healthz` and `/metrics` read its report.
//!
//! A task stalls by holding its worker thread: a blocking call (an `open()`
//! on a FIFO, a read that never returns) or a spin inside one poll of its
//! future. The wrapper that runs a task notes when each poll starts and
//! clears it when the poll returns, so the report sees how long the current
//! poll has held the thread, at no cost while the task waits: no timer, no
//! wakeup (an idle agent has a dozen tasks). A task waiting on the network,
//! on a timer or on a blocking pool job (a slow audit, a long filesystem
//! walk) is not in a poll, whatever its cadence.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use jaga_model::TaskHealth;
use tokio::task::JoinHandle;

/// How long a task may hold its thread without yielding before it counts
/// as stalled: far above any pass of the agent's own work on two loaded
/// cores, far below what an operator would call "stuck".
pub const STALL_AFTER: Duration = Duration::from_secs(30);

/// The tasks of one agent.
#[derive(Default)]
pub struct Supervisor {
    tasks: Mutex<Vec<Arc<Slot>>>,
    /// Set at shutdown: a task that ends after it stopped as asked.
    stopping: AtomicBool,
    epoch: EpochClock,
}

/// What the supervisor keeps of one task.
struct Slot {
    name: String,
    stall_after: Duration,
    /// Milliseconds since the supervisor's epoch (plus one, so that 0 can
    /// mean "waiting") at which the current poll of the task began.
    poll_started_ms: AtomicU64,
    /// Why the task is no longer running; `None` while it runs.
    ended: Mutex<Option<Ended>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ended {
    /// It returned after shutdown began.
    Stopped,
    /// It returned on its own.
    Returned,
    Panicked(String),
}

/// Milliseconds on a monotonic clock started with the supervisor.
#[derive(Debug)]
struct EpochClock(Instant);

impl Default for EpochClock {
    fn default() -> Self {
        Self(Instant::now())
    }
}

impl EpochClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Supervisor {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Spawns `task` under supervision as `name`, stalled after holding its
    /// thread for `stall_after`. Aborting the handle aborts the task.
    pub fn spawn<F>(
        self: &Arc<Self>,
        name: impl Into<String>,
        stall_after: Duration,
        task: F,
    ) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let slot = Arc::new(Slot {
            name: name.into(),
            stall_after,
            poll_started_ms: AtomicU64::new(NOT_IN_POLL),
            ended: Mutex::new(None),
        });
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&slot));
        let supervisor = Arc::clone(self);
        tokio::spawn(async move {
            let outcome = supervisor.watch(&slot, task).await;
            let ended = match outcome {
                Ok(()) if supervisor.stopping.load(Ordering::Relaxed) => Ended::Stopped,
                Ok(()) => {
                    tracing::error!(task = %slot.name, "task ended before shutdown");
                    Ended::Returned
                }
                Err(message) => {
                    tracing::error!(task = %slot.name, panic = %message, "task panicked");
                    Ended::Panicked(message)
                }
            };
            *slot.ended.lock().unwrap_or_else(PoisonError::into_inner) = Some(ended);
        })
    }

    /// Runs `task` to its end, noting each poll; `Err` with the panic message.
    async fn watch<F>(&self, slot: &Slot, task: F) -> Result<(), String>
    where
        F: Future<Output = ()>,
    {
        let timed = TimedPolls {
            task: Box::pin(task),
            slot,
            epoch: &self.epoch,
        };
        AssertUnwindSafe(timed)
            .catch_unwind()
            .await
            .map_err(|payload| panic_message(payload.as_ref()))
    }

    /// From now on a task that returns has stopped as asked.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Every task, in the order they were spawned.
    pub fn report(&self) -> Vec<TaskHealth> {
        let now_ms = self.epoch.now_ms();
        let tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks
            .iter()
            .map(|slot| {
                let started = slot.poll_started_ms.load(Ordering::Relaxed);
                let age = if started == NOT_IN_POLL {
                    Duration::ZERO
                } else {
                    Duration::from_millis((now_ms + 1).saturating_sub(started))
                };
                let ended = slot
                    .ended
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let (up, state) = match ended {
                    None if age > slot.stall_after => (
                        false,
                        format!(
                            "stalled: no progress for {}s (bound {}s)",
                            age.as_secs(),
                            slot.stall_after.as_secs()
                        ),
                    ),
                    None => (true, "running".to_owned()),
                    Some(Ended::Stopped) => (false, "stopped".to_owned()),
                    Some(Ended::Returned) => (false, "dead: ended before shutdown".to_owned()),
                    Some(Ended::Panicked(message)) => (false, format!("dead: panicked: {message}")),
                };
                TaskHealth {
                    name: slot.name.clone(),
                    up,
                    state,
                    last_progress_age_seconds: age.as_secs_f64(),
                }
            })
            .collect()
    }
}

/// `Slot::poll_started_ms` while the task waits.
const NOT_IN_POLL: u64 = 0;

/// A task's future, noting in its slot when each poll starts and ends.
struct TimedPolls<'a, F> {
    /// Boxed, so that the wrapper is `Unpin` and needs no unsafe pinning.
    task: Pin<Box<F>>,
    slot: &'a Slot,
    epoch: &'a EpochClock,
}

impl<F: Future> Future for TimedPolls<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.slot
            .poll_started_ms
            .store(this.epoch.now_ms() + 1, Ordering::Relaxed);
        // Cleared when the poll returns or unwinds.
        let _waiting = PollEnd(this.slot);
        this.task.as_mut().poll(cx)
    }
}

struct PollEnd<'a>(&'a Slot);

impl Drop for PollEnd<'_> {
    fn drop(&mut self) {
        self.0.poll_started_ms.store(NOT_IN_POLL, Ordering::Relaxed);
    }
}

/// The text a panic was raised with.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_of(supervisor: &Supervisor, name: &str) -> TaskHealth {
        supervisor
            .report()
            .into_iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("task {name} not registered"))
    }

    async fn wait_until(
        supervisor: &Supervisor,
        name: &str,
        check: impl Fn(&TaskHealth) -> bool,
    ) -> TaskHealth {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let task = state_of(supervisor, name);
            if check(&task) {
                return task;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never reached the state: {task:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn task_that_panics_is_reported_dead_with_its_message() {
        let supervisor = Supervisor::new();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let handle = supervisor.spawn("logs", STALL_AFTER, async move {
            let _ = wait.await;
            panic!("poll interval of zero");
        });
        assert_eq!(state_of(&supervisor, "logs").state, "running");
        assert!(state_of(&supervisor, "logs").up);
        go.send(()).unwrap();
        handle.await.unwrap();
        let task = state_of(&supervisor, "logs");
        assert!(!task.up);
        assert_eq!(task.state, "dead: panicked: poll interval of zero");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn task_that_returns_before_shutdown_is_dead_but_after_is_stopped() {
        let supervisor = Supervisor::new();
        supervisor
            .spawn("trim", STALL_AFTER, async {})
            .await
            .unwrap();
        assert_eq!(
            state_of(&supervisor, "trim").state,
            "dead: ended before shutdown"
        );
        supervisor.stopping();
        supervisor
            .spawn("http", STALL_AFTER, async {})
            .await
            .unwrap();
        assert_eq!(state_of(&supervisor, "http").state, "stopped");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn task_blocking_its_thread_is_stalled_and_recovers() {
        let supervisor = Supervisor::new();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let (entered_tx, entered) = tokio::sync::oneshot::channel::<()>();
        let handle = supervisor.spawn("audit", Duration::from_millis(200), async move {
            let _ = entered_tx.send(());
            // What a read of a FIFO with no writer does to a worker thread.
            tokio::task::block_in_place(|| blocked.recv()).unwrap();
            std::future::pending::<()>().await;
        });
        entered.await.unwrap();
        let task = wait_until(&supervisor, "audit", |t| !t.up).await;
        assert!(
            task.state.starts_with("stalled: no progress for"),
            "{task:?}"
        );
        assert!(task.last_progress_age_seconds > 0.2);
        release.send(()).unwrap();
        let task = wait_until(&supervisor, "audit", |t| t.up).await;
        assert_eq!(task.state, "running");
        handle.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn task_waiting_on_slow_work_is_running() {
        let supervisor = Supervisor::new();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let handle = supervisor.spawn("filesystem", Duration::from_secs(1), async move {
            // A long walk on the blocking pool: the task awaits it.
            tokio::task::spawn_blocking(move || blocked.recv())
                .await
                .unwrap()
                .unwrap();
        });
        tokio::time::sleep(Duration::from_secs(4)).await;
        let task = state_of(&supervisor, "filesystem");
        assert_eq!(task.state, "running", "{task:?}");
        assert_eq!(task.last_progress_age_seconds, 0.0, "{task:?}");
        release.send(()).unwrap();
        handle.await.unwrap();
    }
}
