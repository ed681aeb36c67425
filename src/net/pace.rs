//! Pacing: when the next request to one API may go. One [`Pacer`] per client, shared by every
//! request the client sends (table reads, identity lookups, writes, batches, token requests):
//!
//! - a configured ceiling (`max_rps`), kept as evenly spaced requests (GCRA) that may run up
//!   to [`BURST`] ahead: requests finishing together go together instead of each waiting
//!   its slot behind the others, and a window of any length holds at most [`BURST`] worth of
//!   requests more than the rate allows (3% of a one-second window);
//! - adaptive: a `429` lowers the pace to 85% of what was being sent, and the pace climbs back
//!   linearly over [`RECOVERY`]; one cut per episode (answers to requests sent before the
//!   last cut do not cut again);
//! - every request holds off for a 429's `Retry-After` (what the shared throttle did before);
//! - the server's rate-limit headers: within a window whose end (`X-RateLimit-Reset`) is known,
//!   the requests sent are counted against `X-RateLimit-Limit` (or `X-RateLimit-Remaining`,
//!   when a gateway sends it), and once the budget is spent every request waits for the reset
//!   instead of collecting 429s.
//!
//! Where the behaviour comes from: a ServiceNow rate-limit rule counts requests per hour (per
//! user, role or instance); its responses carry `X-RateLimit-Limit`, `X-RateLimit-Reset` (UNIX
//! seconds) and `X-RateLimit-Rule`, and past the limit it answers 429 with `Retry-After`
//! (seconds). It sends no `X-RateLimit-Remaining`, so a client counts for itself
//! (port-labs/ocean#3266). Exhausted API semaphores answer 429 as well (KB0635398), and some
//! 429s carry neither `Retry-After` nor a reset (port-labs/ocean#3663): those pause every
//! request one second. A reset under [`MIN_WINDOW`] away is not used for counting: the header
//! has whole seconds, too coarse to place a window that short.
//!
//! Pacing is not retrying: whether a request refused with 429 is sent again stays
//! [`decide`](super::decide)'s call. The logic is a pure state machine ([`Pace`]) fed with
//! instants, so it is tested without waiting.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::time::Instant;

use super::stats::Api;

/// How far ahead of the even spacing requests may run (GCRA's tolerance).
pub const BURST: Duration = Duration::from_millis(30);
/// A 429 sets the pace to this share of the rate that was being sent.
const CUT: f64 = 0.85;
/// After a cut the pace climbs back to the rate before it over this long, and on at the
/// same slope (up to the ceiling): slowly, so that a limit just found is not hit again at once.
pub const RECOVERY: Duration = Duration::from_secs(20);
/// The slowest pace adaptivity sets: a run is never paced to a standstill.
const MIN_RATE: f64 = 1.0;
/// Pause after a 429 that names no `Retry-After`.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// Rate-limit windows ending sooner than this are not counted against (see the module doc).
pub const MIN_WINDOW: Duration = Duration::from_secs(2);
/// The span over which the rate being sent is measured when a 429 arrives.
const MEASURE: Duration = Duration::from_secs(1);
/// Fewer requests than this in the [`MEASURE`] before a 429 say nothing about the rate
/// (a quota spent earlier, another client, the first request after a pause): the 429 pauses
/// every request but does not cut the pace.
const MIN_MEASURED: usize = 10;

/// The pace of one API, shared by all its requests.
#[derive(Debug)]
pub struct Pacer {
    api: Api,
    /// A pause longer than this (a `Retry-After`, a window's reset) is not waited for: the
    /// request goes and the retry policy gives up on its 429, rather than every request
    /// stalling behind it.
    max_hold: Duration,
    state: Mutex<Pace>,
}

/// A request's turn: handed back with its answer, so that a 429 is judged by when its
/// request was sent.
#[derive(Debug, Clone, Copy)]
pub struct Turn {
    at: Instant,
}

/// What an answer says to the pacer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// `X-RateLimit-Limit`: requests allowed in the window.
    pub limit: Option<u64>,
    /// `X-RateLimit-Remaining`, when sent (ServiceNow does not).
    pub remaining: Option<u64>,
    /// `X-RateLimit-Reset` as seconds from now (negative: already past).
    pub reset_in: Option<f64>,
}

impl Answer {
    /// Reads the status and the rate-limit headers of a response. `unix_now` is the wall
    /// clock in UNIX seconds (the reset header is wall-clock time).
    pub fn read(status: u16, headers: &HeaderMap, unix_now: f64) -> Self {
        let number = |name: &str| -> Option<f64> {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        Self {
            status,
            retry_after: super::retry_after(headers),
            limit: number("x-ratelimit-limit").map(|v| v as u64),
            remaining: number("x-ratelimit-remaining").map(|v| v as u64),
            reset_in: number("x-ratelimit-reset").map(|reset| reset - unix_now),
        }
    }
}

impl Pacer {
    /// A pacer for `api` with a ceiling of `max_rps` requests per second (`None`: none but
    /// what the server's answers teach).
    pub fn new(api: Api, max_rps: Option<f64>, max_hold: Duration) -> Self {
        Self {
            api,
            max_hold,
            state: Mutex::new(Pace::new(max_rps, Instant::now())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for this request's turn.
    pub async fn turn(&self) -> Turn {
        loop {
            let at = self.lock().reserve(Instant::now());
            tokio::time::sleep_until(at).await;
            // A 429 that arrived while this request waited holds it back too.
            if !self.lock().held(Instant::now()) {
                return Turn { at };
            }
        }
    }

    /// The answer to a request sent at `turn` (a response; a transport error says nothing).
    #[allow(
        clippy::disallowed_methods,
        reason = "X-RateLimit-Reset is wall-clock time"
    )]
    pub fn answered(&self, turn: Turn, status: u16, headers: &HeaderMap) {
        let unix_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let answer = Answer::read(status, headers, unix_now);
        let cut = self
            .lock()
            .answered(Instant::now(), turn, &answer, self.max_hold);
        if let Some(rate) = cut {
            tracing::info!(
                api = self.api.as_str(),
                requests_per_second = (rate * 10.0).round() / 10.0,
                "rate limited (429): pacing requests slower, recovering over {}s",
                RECOVERY.as_secs()
            );
        }
    }

    /// The pace now, requests per second (`None`: unpaced), for logs and tests.
    pub fn rate(&self) -> Option<f64> {
        self.lock().rate(Instant::now())
    }
}

/// The pacing state machine (see the module doc); every method takes the current instant.
#[derive(Debug)]
pub struct Pace {
    ceiling: Option<f64>,
    cut: Option<Cut>,
    /// The earliest instant the next request may go.
    next: Instant,
    hold_until: Option<Instant>,
    /// Send instants of the last [`MEASURE`], to know the rate sent when a 429 arrives.
    recent: VecDeque<Instant>,
    budget: Option<Budget>,
}

#[derive(Debug, Clone, Copy)]
struct Cut {
    at: Instant,
    /// The pace set by the cut, and the rate sent before it.
    rate: f64,
    before: f64,
}

/// The server's window as its headers describe it, and what we sent in it.
#[derive(Debug, Clone, Copy)]
struct Budget {
    reset_at: Instant,
    limit: u64,
    used: u64,
}

impl Pace {
    pub fn new(ceiling: Option<f64>, now: Instant) -> Self {
        Self {
            ceiling: ceiling.filter(|r| r.is_finite() && *r > 0.0),
            cut: None,
            next: now,
            hold_until: None,
            recent: VecDeque::new(),
            budget: None,
        }
    }

    /// Requests per second allowed at `now` (`None`: unpaced).
    pub fn rate(&self, now: Instant) -> Option<f64> {
        let recovering = self.cut.map(|c| {
            let slope = (c.before - c.rate) / RECOVERY.as_secs_f64();
            c.rate + slope * now.saturating_duration_since(c.at).as_secs_f64()
        });
        match (recovering, self.ceiling) {
            (Some(r), Some(max)) => Some(r.min(max)),
            (Some(r), None) => Some(r),
            (None, max) => max,
        }
    }

    /// Whether a pause is in force at `now`.
    pub fn held(&self, now: Instant) -> bool {
        self.hold_until.is_some_and(|h| h > now)
    }

    /// Reserves the next turn at or after `now` and returns its instant.
    pub fn reserve(&mut self, now: Instant) -> Instant {
        let paced = self.rate(now).is_some();
        let earliest = if paced {
            self.next.checked_sub(BURST).unwrap_or(self.next)
        } else {
            self.next
        };
        let mut at = now.max(earliest);
        if let Some(h) = self.hold_until {
            at = at.max(h);
        }
        if let Some(c) = self.cut {
            // Recovered: back to the ceiling, or (unpaced before) well past the old rate.
            let recovered = match (self.rate(at), self.ceiling) {
                (Some(r), Some(max)) => r >= max,
                (Some(r), None) => r >= 2.0 * c.before,
                (None, _) => true,
            };
            if recovered {
                self.cut = None;
            }
        }
        self.next = match self.rate(at) {
            Some(r) => self.next.max(at) + Duration::from_secs_f64(1.0 / r.max(MIN_RATE)),
            None => at,
        };
        if let Some(b) = &mut self.budget {
            if at < b.reset_at {
                b.used += 1;
                if b.used >= b.limit {
                    // The window's budget is spent with this request: the rest wait for it.
                    self.hold_until =
                        Some(self.hold_until.map_or(b.reset_at, |h| h.max(b.reset_at)));
                }
            } else {
                self.budget = None;
            }
        }
        self.recent.push_back(at);
        while self.recent.front().is_some_and(|t| *t + MEASURE < at) {
            self.recent.pop_front();
        }
        at
    }

    /// Takes in the answer to the request sent at `turn`; returns the new pace when a 429
    /// lowered it.
    pub fn answered(
        &mut self,
        now: Instant,
        turn: Turn,
        answer: &Answer,
        max_hold: Duration,
    ) -> Option<f64> {
        self.count_window(now, answer, max_hold);
        if answer.status != 429 {
            return None;
        }
        let pause = answer.retry_after.unwrap_or(DEFAULT_PAUSE);
        if pause <= max_hold {
            let until = now + pause;
            self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
        }
        // Sent before the last cut: that cut already answered what this 429 says.
        if self.cut.is_some_and(|c| turn.at < c.at) {
            return None;
        }
        let sent = self
            .recent
            .iter()
            .filter(|t| **t <= turn.at && **t + MEASURE > turn.at)
            .count();
        if sent < MIN_MEASURED {
            return None;
        }
        let sent = sent as f64;
        let before = self.rate(now).map_or(sent, |r| r.min(sent)).max(MIN_RATE);
        let rate = (before * CUT).max(MIN_RATE);
        self.cut = Some(Cut {
            at: now,
            rate,
            before,
        });
        self.next = self.next.max(now);
        Some(rate)
    }

    /// The window the rate-limit headers describe, and the budget left in it.
    fn count_window(&mut self, now: Instant, answer: &Answer, max_hold: Duration) {
        let (Some(limit), Some(reset_in)) = (answer.limit, answer.reset_in) else {
            return;
        };
        if reset_in < MIN_WINDOW.as_secs_f64() || reset_in > max_hold.as_secs_f64() {
            // Too short to place, or too far to wait for: 429s and the retry policy decide.
            self.budget = None;
            return;
        }
        let reset_at = now + Duration::from_secs_f64(reset_in);
        let same = self.budget.is_some_and(|b| {
            let gap = if b.reset_at > reset_at {
                b.reset_at - reset_at
            } else {
                reset_at - b.reset_at
            };
            // The header has whole seconds: the same reset, read at another instant.
            gap < Duration::from_millis(1500)
        });
        if !same {
            self.budget = Some(Budget {
                reset_at,
                limit,
                used: 0,
            });
        }
        if let Some(b) = &mut self.budget {
            b.limit = limit;
            if let Some(remaining) = answer.remaining {
                b.used = b.used.max(limit.saturating_sub(remaining));
            }
            if b.used >= b.limit {
                self.hold_until = Some(self.hold_until.map_or(b.reset_at, |h| h.max(b.reset_at)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn answer(status: u16) -> Answer {
        Answer {
            status,
            ..Answer::default()
        }
    }

    const HOLD: Duration = Duration::from_secs(120);

    #[test]
    fn a_ceiling_spaces_requests_evenly_after_a_short_burst() {
        let t0 = Instant::now();
        let mut p = Pace::new(Some(250.0), t0);
        let turns: Vec<Instant> = (0..20).map(|_| p.reserve(t0)).collect();
        // 30 ms of 4 ms slots may go at once (the 1st and 7 more), then one every 4 ms.
        assert!(turns[..8].iter().all(|t| *t == t0), "{turns:?}");
        let gaps: Vec<Duration> = turns[7..].windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[1..].iter().all(|g| *g == ms(4)), "{gaps:?}");
        // Within any second: the rate plus the burst, never more.
        let mut q = Pace::new(Some(250.0), t0);
        let sent = (0..1000)
            .map(|_| q.reserve(t0))
            .filter(|t| *t < t0 + Duration::from_secs(1))
            .count();
        assert!((250..=258).contains(&sent), "{sent}");
        // Idle time is not saved up beyond the burst.
        let later = t0 + Duration::from_secs(10);
        let after: Vec<Instant> = (0..10).map(|_| p.reserve(later)).collect();
        assert_eq!(
            after.iter().filter(|t| **t == later).count(),
            8,
            "{after:?}"
        );
    }

    #[test]
    fn unpaced_requests_go_at_once() {
        let t0 = Instant::now();
        let mut p = Pace::new(None, t0);
        assert!((0..100).all(|_| p.reserve(t0) == t0));
        assert_eq!(p.rate(t0), None);
        assert_eq!(
            Pace::new(Some(0.0), t0).rate(t0),
            None,
            "0 means no ceiling"
        );
    }

    #[test]
    fn a_429_pauses_everyone_and_cuts_the_rate_sent_once_per_episode() {
        let t0 = Instant::now();
        let mut p = Pace::new(None, t0);
        // 200 requests in the last second, unpaced.
        let turns: Vec<Turn> = (0..200)
            .map(|i| Turn {
                at: p.reserve(t0 + ms(i * 5)),
            })
            .collect();
        let now = t0 + ms(1000);
        let limited = Answer {
            retry_after: Some(Duration::from_secs(1)),
            ..answer(429)
        };
        let cut = p.answered(now, turns[199], &limited, HOLD).expect("cut");
        assert!((cut - 170.0).abs() < 1e-9, "85% of 200/s: {cut}");
        assert!(p.held(now + ms(999)) && !p.held(now + ms(1000)));
        // Requests sent before the cut were refused for the same reason: no second cut.
        assert_eq!(p.answered(now + ms(5), turns[150], &limited, HOLD), None);
        // The next turn waits out the pause (the later 429's), then goes at the new pace.
        let a = p.reserve(now);
        let b = p.reserve(now);
        assert_eq!(a, now + ms(1005));
        assert!((b - a).as_secs_f64() - 1.0 / 170.0 < 1e-6);
    }

    #[test]
    fn the_pace_recovers_slowly_up_to_the_ceiling() {
        let t0 = Instant::now();
        let mut p = Pace::new(Some(100.0), t0);
        let mut last = t0;
        for _ in 0..100 {
            last = p.reserve(t0);
        }
        let turn = Turn { at: last };
        let cut = p.answered(last, turn, &answer(429), HOLD).expect("cut");
        assert!((cut - 85.0).abs() < 1e-6, "{cut}");
        let half = p.rate(last + RECOVERY / 2).unwrap();
        assert!((half - 92.5).abs() < 1e-6, "{half}");
        assert_eq!(
            p.rate(last + RECOVERY * 3),
            Some(100.0),
            "never past the ceiling"
        );
        // Once recovered, the cut is forgotten.
        p.reserve(last + RECOVERY * 2);
        assert!(p.cut.is_none());
    }

    #[test]
    fn a_pause_longer_than_allowed_holds_nobody() {
        let t0 = Instant::now();
        let mut p = Pace::new(None, t0);
        let turn = Turn { at: p.reserve(t0) };
        let hour = Answer {
            retry_after: Some(Duration::from_secs(3600)),
            ..answer(429)
        };
        p.answered(t0, turn, &hour, HOLD);
        assert!(!p.held(t0 + ms(1)));
    }

    #[test]
    fn a_429_to_a_trickle_pauses_but_does_not_cut_the_pace() {
        let t0 = Instant::now();
        let mut p = Pace::new(Some(100.0), t0);
        let first = Turn { at: p.reserve(t0) };
        // One request in the last second: the limit lies elsewhere (a quota spent earlier,
        // the first request after a pause); slowing to a crawl would not help.
        assert_eq!(p.answered(t0, first, &answer(429), HOLD), None);
        assert!(p.held(t0 + ms(999)));
        assert_eq!(p.rate(t0), Some(100.0));
    }

    #[test]
    fn a_spent_window_budget_holds_requests_until_its_reset() {
        let t0 = Instant::now();
        let mut p = Pace::new(None, t0);
        let window = Answer {
            limit: Some(5),
            reset_in: Some(30.0),
            ..answer(200)
        };
        let first = Turn { at: p.reserve(t0) };
        p.answered(t0, first, &window, HOLD);
        // Five more sends: the budget (counted from the answer on) is spent after five.
        for _ in 0..5 {
            assert_eq!(p.reserve(t0), t0);
        }
        assert!(p.held(t0));
        assert_eq!(p.reserve(t0), t0 + Duration::from_secs(30));
        // A gateway's X-RateLimit-Remaining is believed.
        let mut q = Pace::new(None, t0);
        let turn = Turn { at: q.reserve(t0) };
        let empty = Answer {
            remaining: Some(0),
            ..window
        };
        q.answered(t0, turn, &empty, HOLD);
        assert!(q.held(t0 + Duration::from_secs(29)));
        // Windows too short to place, or too long to wait for, are left to the 429s.
        for reset_in in [1.0, 7200.0] {
            let mut r = Pace::new(None, t0);
            let turn = Turn { at: r.reserve(t0) };
            let w = Answer {
                reset_in: Some(reset_in),
                remaining: Some(0),
                ..window
            };
            r.answered(t0, turn, &w, HOLD);
            assert!(!r.held(t0), "{reset_in}");
        }
    }

    #[test]
    fn headers_are_read() {
        let mut h = HeaderMap::new();
        h.insert("X-RateLimit-Limit", "3600".parse().unwrap());
        h.insert("X-RateLimit-Reset", "1000030".parse().unwrap());
        h.insert("Retry-After", "7".parse().unwrap());
        let a = Answer::read(429, &h, 1_000_000.0);
        assert_eq!(a.limit, Some(3600));
        assert_eq!(a.remaining, None);
        assert_eq!(a.reset_in, Some(30.0));
        assert_eq!(a.retry_after, Some(Duration::from_secs(7)));
    }
}
