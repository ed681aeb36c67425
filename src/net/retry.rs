//! Retries: the decision as a pure function of (policy, error, attempt, jitter), and the loop
//! that applies it. (The pause every request to one API keeps after a 429 is the
//! [`Pacer`](super::Pacer)'s.)

use std::future::Future;
use std::time::Duration;

use super::{ErrorKind, HttpError};

/// How hard to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Attempts allowed while the server rate-limits (429): being told to slow down is not
    /// a failure, so it gets a larger budget; `Retry-After` paces it.
    pub max_rate_limited_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A server asking for a longer pause than this is not waited for.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            max_rate_limited_attempts: 30,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Retry(Duration),
    GiveUp,
}

/// Whether and when to try again after `error` on attempt `attempt` (1 = the first).
/// `jitter` is a number in `[0, 1)` supplied by the caller, so this stays a pure function.
///
/// 429 honours `Retry-After` (plus up to 10% jitter, capped by `max_retry_after`); 502, 503,
/// 504, timeouts, resets and cut-short bodies back off exponentially with jitter, and so does
/// any other 5xx of a read (`GET`): a read has no side effects, and ManageIQ answers 500 for
/// passing trouble (a worker that lost its database connection) as often as for lasting. Anything
/// else (other 4xx, a 500 to a write, a body that is not the API's) is not retried: trying
/// again would give the same answer, or do part of a write twice.
pub fn decide(policy: &RetryPolicy, error: &HttpError, attempt: u32, jitter: f64) -> Decision {
    let rate_limited = error.status == Some(429);
    let budget = if rate_limited {
        policy.max_rate_limited_attempts.max(policy.max_attempts)
    } else {
        policy.max_attempts
    };
    if attempt >= budget {
        return Decision::GiveUp;
    }
    let jitter = jitter.clamp(0.0, 1.0);
    let backoff = || {
        let exp = policy
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(policy.max_delay);
        // "Equal jitter": half fixed, half random, so retries spread but never stampede.
        exp.mul_f64(0.5 + jitter / 2.0)
    };
    match (error.kind, error.status) {
        (ErrorKind::Status, Some(429)) => match error.retry_after {
            Some(after) if after > policy.max_retry_after => Decision::GiveUp,
            Some(after) => Decision::Retry(
                after
                    + after.mul_f64(0.1 * jitter)
                    + Duration::from_millis((jitter * 100.0) as u64),
            ),
            None => Decision::Retry(backoff()),
        },
        (ErrorKind::Status, Some(502..=504)) => Decision::Retry(backoff()),
        (ErrorKind::Status, Some(500..=599)) if error.method == "GET" => Decision::Retry(backoff()),
        (ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::Interrupted, _) => {
            Decision::Retry(backoff())
        }
        _ => Decision::GiveUp,
    }
}

/// Runs `attempt` until it succeeds or [`decide`] gives up; `what` names the operation in logs.
pub async fn with_retry<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut attempt: F,
) -> Result<T, HttpError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, HttpError>>,
{
    let mut attempts = Attempts::new(policy, what);
    loop {
        match attempt(attempts.number()).await {
            Ok(value) => return Ok(value),
            Err(error) => attempts.wait(error).await?,
        }
    }
}

/// The count of one retried operation, for callers that do more between attempts than
/// [`with_retry`] allows: the executor looks a create whose answer was lost up before it
/// sends it again, the Batch API counts rounds that serviced nothing. Whatever the caller
/// does in between, whether and how long to wait is [`decide`]'s call, made here only.
#[derive(Debug)]
pub struct Attempts<'a> {
    policy: &'a RetryPolicy,
    what: &'a str,
    number: u32,
}

impl<'a> Attempts<'a> {
    /// Before the first attempt; `what` names the operation in logs.
    pub fn new(policy: &'a RetryPolicy, what: &'a str) -> Self {
        Self {
            policy,
            what,
            number: 1,
        }
    }

    /// The attempt about to be made (1 = the first).
    pub fn number(&self) -> u32 {
        self.number
    }

    /// The attempt failed with `error`: waits as [`decide`] says and counts the next
    /// attempt, or gives `error` back when there is to be none.
    pub async fn wait(&mut self, error: HttpError) -> Result<(), HttpError> {
        match decide(self.policy, &error, self.number, rand::random::<f64>()) {
            Decision::Retry(delay) => {
                super::stats::retried(&error.url);
                tracing::warn!(
                    attempt = self.number,
                    delay_seconds = crate::output::seconds(delay),
                    "{}: {error}; retrying",
                    self.what
                );
                tokio::time::sleep(delay).await;
                self.number += 1;
                Ok(())
            }
            Decision::GiveUp => Err(self.why_not_again(error)),
        }
    }

    /// A rate limit the policy does not wait out says so: otherwise a run that ends on
    /// `429 Too Many Requests` reads as if the job had not honoured `Retry-After`.
    fn why_not_again(&self, mut error: HttpError) -> HttpError {
        if error.status != Some(429) {
            return error;
        }
        let limit = self.policy.max_retry_after;
        match error.retry_after {
            Some(after) if after > limit => {
                error.message = format!(
                    "{} (the server asked for Retry-After {}s, longer than the {}s allowed)",
                    error.message,
                    after.as_secs(),
                    limit.as_secs()
                );
            }
            _ => {
                let n = self.number;
                error.message = format!(
                    "{} (still rate limited after {n} attempt{})",
                    error.message,
                    if n == 1 { "" } else { "s" }
                );
            }
        }
        error
    }

    /// Counts from the first attempt again: the operation made progress, so the failures
    /// before it say nothing about the next one.
    pub fn reset(&mut self) {
        self.number = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, retry_after: Option<u64>) -> HttpError {
        let mut e = HttpError::new("GET", "https://x/api", ErrorKind::Status, "boom");
        e.status = Some(code);
        e.retry_after = retry_after.map(Duration::from_secs);
        e
    }

    #[test]
    fn rate_limits_honour_retry_after_with_jitter() {
        let p = RetryPolicy::default();
        match decide(&p, &status(429, Some(3)), 1, 0.5) {
            Decision::Retry(d) => assert!(
                d >= Duration::from_secs(3) && d <= Duration::from_millis(3400),
                "{d:?}"
            ),
            other => panic!("{other:?}"),
        }
        // Asked to wait longer than we allow: give up rather than stall the run.
        assert_eq!(
            decide(&p, &status(429, Some(3600)), 1, 0.5),
            Decision::GiveUp
        );
        assert!(matches!(
            decide(&p, &status(429, None), 1, 0.0),
            Decision::Retry(_)
        ));
    }

    #[test]
    fn a_read_that_met_any_server_error_is_read_again() {
        let p = RetryPolicy::default();
        for code in [500, 501, 502, 503, 504, 507] {
            assert!(
                matches!(decide(&p, &status(code, None), 1, 0.5), Decision::Retry(_)),
                "GET {code}"
            );
        }
    }

    #[test]
    fn gateway_errors_back_off_exponentially_and_are_capped() {
        let p = RetryPolicy::default();
        let delay = |attempt, jitter| match decide(&p, &status(503, None), attempt, jitter) {
            Decision::Retry(d) => d,
            Decision::GiveUp => panic!("gave up"),
        };
        assert_eq!(delay(1, 0.0), Duration::from_millis(250));
        assert_eq!(delay(2, 0.0), Duration::from_millis(500));
        assert_eq!(
            delay(3, 0.999_999),
            Duration::from_millis(2000).mul_f64(0.5 + 0.999_999 / 2.0)
        );
        let big = RetryPolicy {
            max_attempts: 40,
            ..p
        };
        assert!(
            matches!(decide(&big, &status(502, None), 30, 1.0), Decision::Retry(d) if d <= p.max_delay)
        );
    }

    #[test]
    fn other_errors_and_the_last_attempt_give_up() {
        let p = RetryPolicy::default();
        for code in [400, 401, 403, 404] {
            assert_eq!(
                decide(&p, &status(code, None), 1, 0.5),
                Decision::GiveUp,
                "{code}"
            );
        }
        // A 500 on a write may have done part of it: the executor decides, not a resend.
        let mut write = status(500, None);
        write.method = "PATCH".into();
        assert_eq!(decide(&p, &write, 1, 0.5), Decision::GiveUp);
        assert_eq!(
            decide(&p, &status(503, None), p.max_attempts, 0.5),
            Decision::GiveUp
        );
        let reset = HttpError::new("GET", "u", ErrorKind::Interrupted, "reset");
        assert!(matches!(decide(&p, &reset, 1, 0.5), Decision::Retry(_)));
        let decode = HttpError::new("GET", "u", ErrorKind::Decode, "html");
        assert_eq!(decide(&p, &decode, 1, 0.5), Decision::GiveUp);
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_limit_says_so() {
        let p = RetryPolicy::default();
        let mut attempts = Attempts::new(&p, "test");
        let e = attempts.wait(status(429, Some(3600))).await.unwrap_err();
        assert!(
            e.message.contains("Retry-After 3600s")
                && e.message.contains("longer than the 120s allowed"),
            "{e}"
        );
        assert!(
            e.message.starts_with("boom"),
            "the server's word first: {e}"
        );
        // Rate limited to the end of the budget: that is said too.
        let tight = RetryPolicy {
            max_attempts: 1,
            max_rate_limited_attempts: 1,
            ..p
        };
        let e = Attempts::new(&tight, "test")
            .wait(status(429, Some(1)))
            .await
            .unwrap_err();
        assert!(
            e.message.contains("still rate limited after 1 attempt"),
            "{e}"
        );
        // Other errors come back as they were.
        let e = Attempts::new(&p, "test")
            .wait(status(400, None))
            .await
            .unwrap_err();
        assert_eq!(e.message, "boom");
    }

    #[tokio::test]
    async fn attempts_wait_as_decided_until_the_budget_is_spent() {
        let p = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            ..RetryPolicy::default()
        };
        let mut attempts = Attempts::new(&p, "test");
        assert_eq!(attempts.number(), 1);
        assert!(attempts.wait(status(503, None)).await.is_ok());
        assert!(attempts.wait(status(503, None)).await.is_ok());
        assert_eq!(attempts.number(), 3);
        let last = attempts.wait(status(503, None)).await.unwrap_err();
        assert_eq!(last.status, Some(503), "the error comes back on giving up");
        attempts.reset();
        assert_eq!(attempts.number(), 1);
        // Not worth another attempt, however many are left.
        assert!(attempts.wait(status(400, None)).await.is_err());
        assert_eq!(attempts.number(), 1);
    }
}
