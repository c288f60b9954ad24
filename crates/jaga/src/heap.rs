//! glibc's allocator, kept from hoarding what jaga freed.
//!
//! glibc gives each thread that allocates concurrently an arena of its own
//! (up to 8 per core) and keeps freed memory in it for reuse. A log flood or
//! a wave of containers allocates in bursts on many threads (workers, the
//! blocking pool, the log holder): measured, 200,000 log lines left `jaga
//! serve` at 334 MB RSS with 27 MB in use, spread over 13 arenas. Two arenas
//! and a trim after bursts bring it back near its baseline. Neither changes
//! what is allocated, only what stays resident.
//!
//! The only `unsafe` in jaga: two calls into glibc that take no pointers.

use std::time::Duration;

/// Arenas glibc may create: one per tokio worker.
const ARENA_MAX: i32 = 2;

/// Limits glibc's arenas, unless the user chose with `MALLOC_ARENA_MAX` or
/// `GLIBC_TUNABLES`. Call before any thread starts.
pub fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var_os("GLIBC_TUNABLES").is_some()
    {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt takes two integers and changes glibc's own settings
    // under its lock; no memory of ours is involved.
    let accepted = unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX) } == 1;
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let accepted = true;
    if !accepted {
        tracing::debug!("glibc refused to limit its arenas");
    }
}

/// Gives the memory freed since the last call back to the system.
pub fn release_freed() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim takes no pointers; glibc locks each arena while
    // it returns that arena's free pages.
    let released = unsafe { libc::malloc_trim(0) } == 1;
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let released = false;
    released
}

/// How often freed memory is given back: a trim walks every arena (a few
/// milliseconds after a flood, microseconds when idle).
pub const RELEASE_EVERY: Duration = Duration::from_secs(10);

/// Gives freed memory back every [`RELEASE_EVERY`], for as long as the
/// runtime runs.
pub async fn release_periodically() {
    let mut ticker = tokio::time::interval(RELEASE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let released = tokio::task::block_in_place(release_freed);
        tracing::trace!(released, "freed memory given back to the system");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_after_a_burst_reports_what_it_gave_back() {
        // 64 MiB allocated and freed in small blocks stays in the arena
        // until trimmed.
        let blocks: Vec<Vec<u8>> = (0..16_384).map(|i| vec![i as u8; 4096]).collect();
        drop(blocks);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert!(release_freed());
    }
}
