//! When to stop sending: the apply's deadline, the circuit breaker that opens after a run
//! of failed requests in a row, and (when watched) the loss of the lease. Once any says stop, no write is sent any more (a write
//! already in flight finishes, bounded by the HTTP timeout) and every write not sent yet is
//! reported `not_attempted` with the reason. Without them a server that fails for good
//! (every write answered 503, or 429 after every pause) had each write retried to the end of
//! its budget: 3,840 requests and a quarter of an hour for 128 writes.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::net::{Attempts, ErrorKind, HttpError, RetryPolicy};

use super::ApplyOptions;

/// The stop conditions of one command's apply, shared by every write of every sync; cheap
/// to clone (clones share them).
#[derive(Debug, Clone)]
pub struct Guard(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// When the deadline passes, and how long it was (for the reason).
    deadline: Option<(Instant, Duration)>,
    /// Failed requests in a row that open the breaker; `usize::MAX` when it is off.
    threshold: usize,
    breaker: Mutex<Breaker>,
    /// Wakes writes pausing between attempts when the breaker opens.
    opened: watch::Sender<bool>,
    /// Set when the lease this apply writes under is lost ([`Guard::watch_lease`]).
    lease_lost: OnceLock<Arc<AtomicBool>>,
}

#[derive(Debug, Default)]
struct Breaker {
    in_a_row: usize,
    /// Why it opened; once open it stays open for the rest of the run.
    open: Option<String>,
}

/// Why a guarded operation ended without a result.
#[derive(Debug, Clone)]
pub enum Halt {
    /// It failed for good (the retries were spent, or trying again cannot help).
    Failed(HttpError),
    /// The run stopped first; `last` is the failure of the attempt before, if any.
    Stopped {
        reason: String,
        last: Option<HttpError>,
    },
}

impl Halt {
    /// The halt in words, for an outcome's message.
    pub fn message(&self) -> String {
        match self {
            Halt::Failed(e) => e.to_string(),
            Halt::Stopped { reason, last: None } => format!("not sent: {reason}"),
            Halt::Stopped {
                reason,
                last: Some(e),
            } => format!("{e}; not tried again: {reason}"),
        }
    }

    /// Whether anything was sent before the halt.
    pub fn attempted(&self) -> bool {
        !matches!(self, Halt::Stopped { last: None, .. })
    }
}

impl Guard {
    /// Starts the clock of the deadline now. The breaker opens after `breaker` failed requests
    /// in a row, but never after fewer than the writes in flight plus one: one bad moment
    /// can fail every request in flight at once, and that alone is no reason to stop.
    pub fn new(opts: &ApplyOptions) -> Self {
        let threshold = match opts.breaker {
            0 => usize::MAX,
            n => n.max(opts.concurrency.max(1) + 1),
        };
        Self(Arc::new(Inner {
            deadline: opts.deadline.map(|d| (Instant::now() + d, d)),
            threshold,
            breaker: Mutex::new(Breaker::default()),
            opened: watch::Sender::new(false),
            lease_lost: OnceLock::new(),
        }))
    }

    /// Stops sending once this flag is set: the lease's (`Lease::lost_flag`), so a run that
    /// lost its lease (renewals failed, `--force-unlock`) sends nothing more while another
    /// run may be writing.
    pub fn watch_lease(&self, lost: Arc<AtomicBool>) {
        let _ = self.0.lease_lost.set(lost);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.0
            .breaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Why nothing more may be sent, or `None` while writes may go on.
    pub fn stopped(&self) -> Option<String> {
        if let Some(reason) = &self.lock().open {
            return Some(reason.clone());
        }
        if self
            .0
            .lease_lost
            .get()
            .is_some_and(|lost| lost.load(Ordering::Relaxed))
        {
            return Some("the lease was lost: another run may be writing".into());
        }
        match self.0.deadline {
            Some((at, length)) if Instant::now() >= at => Some(format!(
                "the apply deadline of {} passed",
                crate::text::format_duration(length)
            )),
            _ => None,
        }
    }

    /// A write went through: the failures before it were not a run.
    pub fn succeeded(&self) {
        self.lock().in_a_row = 0;
    }

    /// A request failed. Failures that say the server is unwell (5xx, 429, timeouts, broken
    /// connections, a refused certificate) count towards the breaker; an error about the
    /// request itself (400, 403, 404) shows the server answering and ends the run of them.
    pub fn failed(&self, error: &HttpError) {
        let unwell = match error.kind {
            ErrorKind::Status => matches!(error.status, Some(429 | 500..=599)),
            ErrorKind::Timeout | ErrorKind::Connect | ErrorKind::Interrupted | ErrorKind::Tls => {
                true
            }
            // A body that is not the API's says nothing about a run of failures.
            ErrorKind::Decode => return,
        };
        let mut breaker = self.lock();
        if !unwell {
            breaker.in_a_row = 0;
            return;
        }
        breaker.in_a_row += 1;
        if breaker.in_a_row >= self.0.threshold && breaker.open.is_none() {
            let reason = format!(
                "the circuit breaker opened after {} failed requests in a row (the last: {error})",
                breaker.in_a_row
            );
            tracing::error!("{reason}; no more writes are sent");
            breaker.open = Some(reason);
            drop(breaker);
            self.0.opened.send_replace(true);
        }
    }

    /// Runs `pause` (a wait between attempts) unless the run stops first: `None` when the
    /// deadline passed or the breaker opened meanwhile.
    pub async fn pause<F: Future>(&self, pause: F) -> Option<F::Output> {
        let mut opened = self.0.opened.subscribe();
        if *opened.borrow_and_update() {
            return None;
        }
        let deadline = async {
            match self.0.deadline {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            output = pause => Some(output),
            _ = opened.changed() => None,
            () = deadline => None,
        }
    }

    /// Runs the read `attempt` until it succeeds, [`decide`](crate::net::decide) gives up, or
    /// the run stops; `what` names it in logs. Its failures count towards the breaker, but
    /// its success does not end a run of failed writes: an instance may well answer reads
    /// while it refuses every write.
    pub async fn retry<T, F, Fut>(
        &self,
        policy: &RetryPolicy,
        what: &str,
        mut attempt: F,
    ) -> Result<T, Halt>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, HttpError>>,
    {
        let mut attempts = Attempts::new(policy, what);
        let mut last = None;
        loop {
            if let Some(reason) = self.stopped() {
                return Err(Halt::Stopped { reason, last });
            }
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => {
                    self.failed(&error);
                    last = Some(error.clone());
                    self.wait(&mut attempts, error).await?;
                }
            }
        }
    }

    /// After a failed attempt: waits as the retry policy says, unless the run stops first
    /// (then the caller finds [`Guard::stopped`] at its next turn). `Err` when there is to be
    /// no further attempt.
    pub async fn wait(&self, attempts: &mut Attempts<'_>, error: HttpError) -> Result<(), Halt> {
        match self.pause(attempts.wait(error)).await {
            Some(Ok(())) | None => Ok(()),
            Some(Err(error)) => Err(Halt::Failed(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> HttpError {
        let mut e = HttpError::new("PATCH", "https://sn/x", ErrorKind::Status, code.to_string());
        e.status = Some(code);
        e
    }

    fn guard(breaker: usize, concurrency: usize, deadline: Option<Duration>) -> Guard {
        Guard::new(&ApplyOptions {
            breaker,
            concurrency,
            deadline,
            ..ApplyOptions::default()
        })
    }

    /// Once the lease it watches is lost, nothing more is sent: another run may be writing.
    #[test]
    fn a_lost_lease_stops_the_writes() {
        let g = guard(0, 1, None);
        let lost = Arc::new(AtomicBool::new(false));
        g.watch_lease(Arc::clone(&lost));
        assert_eq!(g.stopped(), None);
        lost.store(true, Ordering::Relaxed);
        assert!(g.stopped().unwrap_or_default().contains("lease was lost"));
    }

    #[test]
    fn the_breaker_opens_after_a_run_of_failures_in_a_row() {
        let g = guard(3, 1, None);
        for _ in 0..2 {
            g.failed(&status(503));
        }
        g.succeeded();
        g.failed(&status(429));
        g.failed(&HttpError::new(
            "POST",
            "u",
            ErrorKind::Timeout,
            "timed out",
        ));
        assert_eq!(g.stopped(), None, "a success ended the first run");
        g.failed(&status(502));
        let reason = g.stopped().expect("open");
        assert!(
            reason.contains("after 3 failed requests in a row") && reason.contains("502"),
            "{reason}"
        );
        g.succeeded();
        assert!(g.stopped().is_some(), "once open, open for the run");
    }

    #[test]
    fn errors_about_the_request_end_a_run_and_undecidable_ones_do_not_count() {
        let g = guard(2, 1, None);
        g.failed(&status(503));
        g.failed(&status(400));
        g.failed(&status(503));
        g.failed(&HttpError::new("GET", "u", ErrorKind::Decode, "html"));
        assert_eq!(g.stopped(), None);
        g.failed(&status(504));
        assert!(g.stopped().is_some());
    }

    #[test]
    fn the_breaker_needs_more_failures_than_writes_in_flight_and_zero_is_off() {
        let g = guard(2, 8, None);
        for _ in 0..8 {
            g.failed(&status(503));
        }
        assert_eq!(
            g.stopped(),
            None,
            "one bad moment for every write in flight"
        );
        g.failed(&status(503));
        assert!(g.stopped().is_some());
        let off = guard(0, 1, None);
        for _ in 0..1000 {
            off.failed(&status(503));
        }
        assert_eq!(off.stopped(), None);
    }

    #[tokio::test]
    async fn the_deadline_stops_writes_and_cuts_a_pause_short() {
        let g = guard(10, 1, Some(Duration::from_millis(50)));
        assert_eq!(g.stopped(), None);
        assert_eq!(g.pause(async { 7 }).await, Some(7));
        let long = tokio::time::sleep(Duration::from_secs(3600));
        assert_eq!(g.pause(long).await, None, "woken at the deadline");
        let reason = g.stopped().expect("past the deadline");
        assert_eq!(reason, "the apply deadline of 50ms passed");
        let halt = g
            .retry(&RetryPolicy::default(), "test", || async {
                Ok::<_, HttpError>(())
            })
            .await
            .unwrap_err();
        assert!(!halt.attempted());
        assert_eq!(
            halt.message(),
            "not sent: the apply deadline of 50ms passed"
        );
    }

    #[tokio::test]
    async fn a_read_answered_does_not_end_a_run_of_failed_writes() {
        let g = guard(3, 1, None);
        g.failed(&status(503));
        g.failed(&status(503));
        let read = g
            .retry(&RetryPolicy::default(), "check", || async {
                Ok::<_, HttpError>(())
            })
            .await;
        assert!(read.is_ok());
        g.failed(&status(503));
        assert!(g.stopped().is_some(), "reads answered, writes refused");
    }

    #[tokio::test]
    async fn an_opening_breaker_wakes_the_writes_that_pause() {
        let g = guard(2, 1, None);
        let waiting = {
            let g = g.clone();
            tokio::spawn(
                async move { g.pause(tokio::time::sleep(Duration::from_secs(3600))).await },
            )
        };
        tokio::task::yield_now().await;
        g.failed(&status(503));
        g.failed(&status(503));
        assert_eq!(waiting.await.unwrap(), None);
    }

    #[tokio::test]
    async fn retries_count_towards_the_breaker_and_stop_with_it() {
        let g = guard(3, 1, None);
        let policy = RetryPolicy {
            max_attempts: 100,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            ..RetryPolicy::default()
        };
        let mut sent = 0;
        let halt = g
            .retry(&policy, "test", || {
                sent += 1;
                async { Err::<(), _>(status(503)) }
            })
            .await
            .unwrap_err();
        assert_eq!(sent, 3);
        assert!(halt.attempted());
        assert!(halt
            .message()
            .contains("not tried again: the circuit breaker opened"));
    }
}
