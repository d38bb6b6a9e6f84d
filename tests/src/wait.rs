//! Bounded polling: wait for an asynchronous condition, never longer than a given time.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The first poll comes at once; the pause between polls doubles from this ...
const FIRST_PAUSE: Duration = Duration::from_millis(20);
/// ... up to this, so slow conditions are not polled in a busy loop.
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// A condition did not hold within its time limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitTimedOut {
    /// How long the condition was polled.
    pub waited: Duration,
    /// How many times it was evaluated.
    pub n_polls: u32,
}

impl fmt::Display for WaitTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "condition still false after {:?} ({} polls); the awaited component did not get \
             there in time (see its log above)",
            self.waited, self.n_polls
        )
    }
}

impl std::error::Error for WaitTimedOut {}

/// Polls `predicate` until it returns `true` or `timeout` has passed.
///
/// The predicate is always evaluated at least once, and once more at the deadline, so a
/// condition that becomes true during the last pause is not reported as a timeout.
pub async fn wait_until<F, Fut>(timeout: Duration, mut predicate: F) -> Result<(), WaitTimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for_some(timeout, || {
        let check = predicate();
        async move { check.await.then_some(()) }
    })
    .await
}

/// Polls `probe` until it returns `Some(value)` or `timeout` has passed; returns the value.
pub async fn wait_for_some<T, F, Fut>(timeout: Duration, mut probe: F) -> Result<T, WaitTimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    let deadline = started + timeout;
    let mut pause = FIRST_PAUSE;
    let mut n_polls = 0;
    loop {
        n_polls += 1;
        // A probe that itself hangs must not stretch the wait past its deadline.
        let remaining = deadline.saturating_duration_since(Instant::now());
        let outcome = tokio::time::timeout(remaining.max(FIRST_PAUSE), probe()).await;
        if let Ok(Some(value)) = outcome {
            return Ok(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(WaitTimedOut {
                waited: now - started,
                n_polls,
            });
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let n_calls = Arc::new(AtomicU32::new(0));
        let counter = n_calls.clone();
        let result = wait_until(Duration::from_secs(5), move || {
            let counter = counter.clone();
            async move { counter.fetch_add(1, Ordering::SeqCst) + 1 >= 3 }
        })
        .await;
        assert_eq!(result, Ok(()));
        assert_eq!(n_calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn times_out_on_a_condition_that_never_holds() {
        let started = std::time::Instant::now();
        let error = wait_until(Duration::from_millis(300), || async { false })
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(300),
            "returned early: {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_secs(2),
            "overshot the deadline: {elapsed:?}"
        );
        assert!(error.n_polls >= 2);
        assert!(error.to_string().contains("still false"));
    }

    #[tokio::test]
    async fn a_hanging_probe_is_cut_off_at_the_deadline() {
        let started = std::time::Instant::now();
        let result: Result<(), _> = wait_for_some(Duration::from_millis(200), || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Some(())
        })
        .await;
        assert!(result.is_err());
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn hands_back_the_probed_value() {
        let value = wait_for_some(Duration::from_secs(1), || async { Some(42) }).await;
        assert_eq!(value, Ok(42));
    }
}
