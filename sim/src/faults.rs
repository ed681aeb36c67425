//! Fault injection for both simulators, configured at start (`--miq-faults`,
//! `--snow-faults`) and at runtime (`POST`/`GET`/`DELETE /_sim/faults`), and
//! the middleware that applies faults and counts requests ([`Stats`]).
//!
//! A [`FaultRule`] matches a method, a path prefix and optionally a substring
//! of the query (`offset=2000`), and fires with a probability, at most `times`
//! times. Kinds: `latency` (fixed + random jitter; stacks with everything: the
//! network's round trip), `write_time` (the server's own time per write the request
//! carries, one for a Table API write, one per write item of a batch: business rules run on
//! every CMDB write), `in_flight` (at most `limit` requests executing at once, up to
//! `queue` more waiting for a slot, 429 beyond: an instance's API semaphores),
//! `rate_limit` (429 + `Retry-After` past `limit` requests per window; on the
//! ServiceNow side with its `X-RateLimit-*` headers and error body), `error`
//! (any status, the API's error envelope or a given body), `reset` (the
//! response starts, then the connection is reset mid-body), `truncate` (a 200
//! whose body stops part-way and ends in ServiceNow's "Transaction cancelled"
//! text), `slow_body` (the body trickles out in chunks) and `drop_response`
//! (the request IS processed, then the connection is reset instead of
//! answering: a create happened that the client never heard of). Randomness
//! comes from a ChaCha8 RNG seeded by the configuration, so a run is
//! reproducible for a given request order.

use crate::serve::ConnKill;
use crate::stats::{route_template, Stats};
use crate::Api;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The text ServiceNow ends a response with when a transaction runs too long.
pub const TRANSACTION_CANCELLED: &str = "Transaction cancelled: maximum execution time exceeded";

/// A set of fault rules; JSON `{"seed": 1, "rules": [...]}` or a bare rule array.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed of the fault RNG (probabilities and jitter).
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Latency,
    WriteTime,
    InFlight,
    RateLimit,
    Error,
    Reset,
    Truncate,
    SlowBody,
    DropResponse,
}

impl FaultKind {
    fn as_str(self) -> &'static str {
        match self {
            FaultKind::Latency => "latency",
            FaultKind::WriteTime => "write_time",
            FaultKind::InFlight => "in_flight",
            FaultKind::RateLimit => "rate_limit",
            FaultKind::Error => "error",
            FaultKind::Reset => "reset",
            FaultKind::Truncate => "truncate",
            FaultKind::SlowBody => "slow_body",
            FaultKind::DropResponse => "drop_response",
        }
    }
}

/// One rule. Parameters that do not apply to its `kind` are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    pub kind: FaultKind,
    /// Shown in `X-RateLimit-Rule`; defaults to `rule-<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// HTTP method to match (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path prefix to match.
    #[serde(default = "root_path")]
    pub path: String,
    /// Substring the query string must contain (raw or decoded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Chance of firing per matching request, 0..=1 (rate limits ignore it).
    #[serde(default = "always")]
    pub probability: f64,
    /// Fire at most this many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// `latency`: fixed delay plus a uniform random 0..=jitter; `write_time`: the same, per
    /// write.
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub jitter_ms: u64,
    /// `rate_limit`: requests allowed per window; `in_flight`: requests executing at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(default = "hour")]
    pub window_secs: u64,
    /// `in_flight`: requests that may wait for a slot before the rest are answered 429
    /// (default 50, the max queue depth of KB0635398's example).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<u64>,
    /// `rate_limit`: the `Retry-After` sent (default: seconds left in the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// `error`: status to answer (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `error`: raw body instead of the API's error envelope (e.g. a proxy's HTML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `reset` / `truncate`: share of the body sent before the cut (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    /// `slow_body`: bytes per chunk and pause between chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_bytes: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_delay_ms: Option<u64>,
}

fn root_path() -> String {
    "/".into()
}

fn always() -> f64 {
    1.0
}

fn hour() -> u64 {
    3600
}

impl FaultRule {
    /// A rule of `kind` matching every request; set fields to narrow it.
    pub fn new(kind: FaultKind) -> Self {
        FaultRule {
            kind,
            name: None,
            method: None,
            path: root_path(),
            query: None,
            probability: 1.0,
            times: None,
            latency_ms: 0,
            jitter_ms: 0,
            limit: None,
            queue: None,
            window_secs: hour(),
            retry_after_secs: None,
            status: None,
            body: None,
            fraction: None,
            chunk_bytes: None,
            chunk_delay_ms: None,
        }
    }

    fn matches(&self, method: &str, path: &str, query: &str, decoded_query: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.starts_with(&self.path)
            && self
                .query
                .as_deref()
                .is_none_or(|q| query.contains(q) || decoded_query.contains(q))
    }

    fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.probability) {
            return Err(format!(
                "probability `{}` is not within 0..=1",
                self.probability
            ));
        }
        if let Some(f) = self.fraction {
            if !(0.0..=1.0).contains(&f) {
                return Err(format!("fraction `{f}` is not within 0..=1"));
            }
        }
        match self.kind {
            FaultKind::Latency | FaultKind::WriteTime
                if self.latency_ms == 0 && self.jitter_ms == 0 =>
            {
                Err(format!(
                    "{} needs `latency_ms` or `jitter_ms`",
                    self.kind.as_str()
                ))
            }
            FaultKind::InFlight if self.limit.is_none_or(|l| l == 0) => {
                Err("in_flight needs a `limit` above 0".into())
            }
            FaultKind::RateLimit if self.limit.is_none() => Err("rate_limit needs `limit`".into()),
            FaultKind::RateLimit if self.window_secs == 0 => {
                Err("rate_limit needs a `window_secs` above 0".into())
            }
            FaultKind::Error => match self.status {
                Some(s) if !(100..=599).contains(&s) => {
                    Err(format!("status `{s}` is not an HTTP status"))
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

/// A fault configuration that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FaultConfigError {
    #[error("invalid fault configuration JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("fault rule {index}: {message}")]
    Rule { index: usize, message: String },
}

impl FaultConfig {
    /// Parses `{"seed":..,"rules":[..]}` or a bare `[..]` of rules, and validates it.
    pub fn from_json(text: &str) -> Result<FaultConfig, FaultConfigError> {
        let value: Value = serde_json::from_str(text)?;
        let config = if value.is_array() {
            FaultConfig {
                seed: 0,
                rules: serde_json::from_value(value)?,
            }
        } else {
            serde_json::from_value(value)?
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), FaultConfigError> {
        for (index, rule) in self.rules.iter().enumerate() {
            rule.validate()
                .map_err(|message| FaultConfigError::Rule { index, message })?;
        }
        Ok(())
    }

    /// Adds a rule (builder style).
    pub fn with(mut self, rule: FaultRule) -> Self {
        self.rules.push(rule);
        self
    }
}

/// The live fault state of one API.
pub struct Faults {
    state: Mutex<FaultState>,
}

/// The slots of an `in_flight` rule: the semaphore and how many wait for it.
#[derive(Clone)]
struct Slots {
    semaphore: Arc<tokio::sync::Semaphore>,
    waiting: Arc<std::sync::atomic::AtomicU64>,
    queue: u64,
}

struct FaultState {
    config: FaultConfig,
    rng: ChaCha8Rng,
    rules: Vec<RuleState>,
}

#[derive(Default, Clone)]
struct RuleState {
    fired: u64,
    window_start: Option<Instant>,
    window_count: u64,
    /// `in_flight` rules only.
    slots: Option<Slots>,
}

/// What happens to one request.
#[derive(Default)]
struct Decision {
    delay: Duration,
    action: Option<Action>,
    rate: Option<RateInfo>,
    /// `write_time`: the server's time per write (min, extra jitter), and the rule's index.
    write_time: Option<(u64, u64, usize)>,
    /// `in_flight`: the slots the request must get one of, and the rule's index.
    slots: Option<(Slots, usize)>,
}

#[derive(Debug)]
enum Action {
    RateLimited {
        retry_after: u64,
    },
    Error {
        status: StatusCode,
        body: Option<String>,
    },
    Reset {
        fraction: f64,
    },
    Truncate {
        fraction: f64,
    },
    SlowBody {
        chunk: usize,
        delay: Duration,
    },
    DropResponse,
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Action::RateLimited { .. } => FaultKind::RateLimit.as_str(),
            Action::Error { .. } => FaultKind::Error.as_str(),
            Action::Reset { .. } => FaultKind::Reset.as_str(),
            Action::Truncate { .. } => FaultKind::Truncate.as_str(),
            Action::SlowBody { .. } => FaultKind::SlowBody.as_str(),
            Action::DropResponse => FaultKind::DropResponse.as_str(),
        }
    }
}

/// What ServiceNow reports about the rate-limit rule a request fell under.
#[derive(Debug, Clone)]
struct RateInfo {
    limit: u64,
    reset_unix: u64,
    rule: String,
}

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        Faults {
            state: Mutex::new(FaultState::new(config)),
        }
    }

    /// Replaces the rules; counters and the RNG start over.
    pub fn set(&self, config: FaultConfig) {
        *self.lock() = FaultState::new(config);
    }

    pub fn config(&self) -> FaultConfig {
        self.lock().config.clone()
    }

    /// The configuration plus how often each rule fired.
    pub fn snapshot(&self) -> Value {
        let s = self.lock();
        let mut v = serde_json::to_value(&s.config).unwrap_or(Value::Null);
        v["fired"] = json!(s.rules.iter().map(|r| r.fired).collect::<Vec<_>>());
        v
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn decide(&self, method: &str, path: &str, query: &str) -> Decision {
        if self.lock().config.rules.is_empty() {
            return Decision::default();
        }
        let decoded: String = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| format!("{k}={v}&"))
            .collect();
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut decision = Decision::default();
        let now = Instant::now();
        for (index, rule) in state.config.rules.iter().enumerate() {
            if !rule.matches(method, path, query, &decoded) {
                continue;
            }
            let counters = &mut state.rules[index];
            let budget = rule.times.is_none_or(|t| counters.fired < t);
            if rule.kind == FaultKind::RateLimit {
                let window = Duration::from_secs(rule.window_secs);
                let start = match counters.window_start {
                    Some(s) if now.duration_since(s) < window => s,
                    _ => {
                        counters.window_count = 0;
                        *counters.window_start.insert(now)
                    }
                };
                let left = window.saturating_sub(now.duration_since(start));
                let limit = rule.limit.unwrap_or(0);
                decision.rate.get_or_insert(RateInfo {
                    limit,
                    // The UNIX second at which the window has reset (rounded up: before
                    // it, the window may still be running).
                    reset_unix: (unix_now_f64() + left.as_secs_f64()).ceil() as u64,
                    rule: rule.name.clone().unwrap_or_else(|| format!("rule-{index}")),
                });
                if counters.window_count >= limit && decision.action.is_none() && budget {
                    counters.fired += 1;
                    let retry_after = rule
                        .retry_after_secs
                        .unwrap_or_else(|| left.as_secs_f64().ceil().max(1.0) as u64);
                    decision.action = Some(Action::RateLimited { retry_after });
                } else {
                    counters.window_count += 1;
                }
                continue;
            }
            if rule.kind == FaultKind::InFlight {
                if decision.slots.is_none() {
                    if let Some(slots) = &counters.slots {
                        decision.slots = Some((slots.clone(), index));
                    }
                }
                continue;
            }
            if rule.kind == FaultKind::WriteTime {
                // Drawn in the middleware, once the writes are counted.
                if decision.write_time.is_none() && budget {
                    decision.write_time = Some((rule.latency_ms, rule.jitter_ms, index));
                }
                continue;
            }
            let terminal = rule.kind != FaultKind::Latency;
            if !budget || (terminal && decision.action.is_some()) {
                continue;
            }
            if rule.probability < 1.0 && !state.rng.random_bool(rule.probability) {
                continue;
            }
            counters.fired += 1;
            if rule.kind == FaultKind::Latency {
                let jitter = if rule.jitter_ms > 0 {
                    state.rng.random_range(0..=rule.jitter_ms)
                } else {
                    0
                };
                decision.delay += Duration::from_millis(rule.latency_ms + jitter);
                continue;
            }
            let fraction = rule.fraction.unwrap_or(0.5);
            decision.action = Some(match rule.kind {
                FaultKind::Error => Action::Error {
                    status: StatusCode::from_u16(rule.status.unwrap_or(500))
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    body: rule.body.clone(),
                },
                FaultKind::Reset => Action::Reset { fraction },
                FaultKind::Truncate => Action::Truncate { fraction },
                FaultKind::SlowBody => Action::SlowBody {
                    chunk: rule.chunk_bytes.unwrap_or(512).max(1),
                    delay: Duration::from_millis(rule.chunk_delay_ms.unwrap_or(50)),
                },
                FaultKind::DropResponse => Action::DropResponse,
                // Handled above.
                FaultKind::Latency
                | FaultKind::RateLimit
                | FaultKind::InFlight
                | FaultKind::WriteTime => continue,
            });
        }
        decision
    }
}

impl FaultState {
    fn new(config: FaultConfig) -> Self {
        let rules = config
            .rules
            .iter()
            .map(|rule| RuleState {
                slots: (rule.kind == FaultKind::InFlight).then(|| Slots {
                    semaphore: Arc::new(tokio::sync::Semaphore::new(
                        rule.limit.unwrap_or(1).max(1) as usize,
                    )),
                    waiting: Arc::default(),
                    queue: rule.queue.unwrap_or(DEFAULT_QUEUE),
                }),
                ..RuleState::default()
            })
            .collect();
        FaultState {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            rules,
            config,
        }
    }
}

/// Requests an `in_flight` rule lets wait by default: the max queue depth of the API_INT
/// semaphore in ServiceNow's KB0635398 example ("Queue depth: 50, Max queue depth: 50").
const DEFAULT_QUEUE: u64 = 50;

impl Faults {
    /// The server's time for `writes` writes under the `write_time` rule `index`: each drawn
    /// from the seeded RNG; counted as one firing per write.
    fn write_time(&self, (min, jitter, index): (u64, u64, usize), writes: u64) -> Duration {
        let mut state = self.lock();
        let mut total = 0;
        for _ in 0..writes {
            total += min
                + if jitter > 0 {
                    state.rng.random_range(0..=jitter)
                } else {
                    0
                };
        }
        if let Some(counters) = state.rules.get_mut(index) {
            counters.fired += writes;
        }
        Duration::from_millis(total)
    }

    fn fired(&self, index: usize) {
        if let Some(counters) = self.lock().rules.get_mut(index) {
            counters.fired += 1;
        }
    }
}

fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Faults and counters of one API, shared by its listeners and admin routes.
pub struct Instrument {
    pub api: Api,
    pub faults: Faults,
    pub stats: Stats,
}

impl Instrument {
    pub fn new(api: Api, faults: FaultConfig) -> Arc<Self> {
        Arc::new(Instrument {
            api,
            faults: Faults::new(faults),
            stats: Stats::default(),
        })
    }

    /// Wraps an API router with the fault/stats middleware (admin routes excluded:
    /// merge them after calling this).
    pub fn layer(self: &Arc<Self>, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            self.clone(),
            instrument,
        ))
    }

    /// `/_sim/faults` and `/_sim/stats`.
    pub fn admin_router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(
                "/_sim/faults",
                get(get_faults).post(post_faults).delete(delete_faults),
            )
            .route("/_sim/stats", get(get_stats).delete(delete_stats))
            .with_state(self.clone())
    }
}

async fn get_faults(State(inst): State<Arc<Instrument>>) -> Json<Value> {
    Json(inst.faults.snapshot())
}

async fn post_faults(State(inst): State<Arc<Instrument>>, body: Bytes) -> Response {
    match FaultConfig::from_json(&String::from_utf8_lossy(&body)) {
        Ok(config) => {
            inst.faults.set(config);
            Json(inst.faults.snapshot()).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn delete_faults(State(inst): State<Arc<Instrument>>) -> StatusCode {
    inst.faults.set(FaultConfig::default());
    StatusCode::NO_CONTENT
}

async fn get_stats(State(inst): State<Arc<Instrument>>) -> Json<Value> {
    Json(inst.stats.snapshot())
}

async fn delete_stats(State(inst): State<Arc<Instrument>>) -> StatusCode {
    inst.stats.reset();
    StatusCode::NO_CONTENT
}

/// The middleware: decide, delay, apply the fault (or not), count.
async fn instrument(State(inst): State<Arc<Instrument>>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let route = format!("{method} {}", route_template(matched, req.uri().path()));
    let kill = req.extensions().get::<ConnKill>().cloned();
    let _in_flight = inst.stats.enter();
    let decision = inst.faults.decide(
        &method,
        req.uri().path(),
        req.uri().query().unwrap_or_default(),
    );
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let mut fault = decision.action.as_ref().map(Action::name);
    // The server's own part: a slot (an instance's API semaphore), then its time per write.
    // Requests refused by a fault before the handler take neither.
    let served = !matches!(
        decision.action,
        Some(Action::RateLimited { .. } | Action::Error { .. })
    );
    let mut req = req;
    let mut _slot = None;
    let mut full = false;
    if served {
        if let Some((slots, index)) = &decision.slots {
            match take_slot(slots).await {
                Some(permit) => _slot = Some(permit),
                None => {
                    inst.faults.fired(*index);
                    full = true;
                }
            }
        }
        if let (Some(rule), false) = (decision.write_time, full) {
            let (writes, rebuilt) = count_writes(req).await;
            req = rebuilt;
            if writes > 0 {
                tokio::time::sleep(inst.faults.write_time(rule, writes)).await;
            }
        }
    }
    let action = if full { None } else { decision.action };
    let mut resp = match action {
        None if full => {
            fault = Some(FaultKind::InFlight.as_str());
            no_slot(inst.api)
        }
        None => next.run(req).await,
        Some(Action::RateLimited { retry_after }) => {
            rate_limited(inst.api, retry_after, decision.rate.as_ref())
        }
        Some(Action::Error { status, body }) => error_response(inst.api, status, body),
        Some(Action::DropResponse) => {
            let resp = next.run(req).await;
            inst.stats
                .record(&route, &method, resp.status().as_u16(), fault);
            return drop_connection(kill).await;
        }
        Some(Action::Reset { fraction }) => {
            reset_mid_body(next.run(req).await, fraction, kill).await
        }
        Some(Action::Truncate { fraction }) => truncate(next.run(req).await, fraction).await,
        Some(Action::SlowBody { chunk, delay }) => {
            slow_body(next.run(req).await, chunk, delay).await
        }
    };
    if let (Api::ServiceNow, Some(rate)) = (inst.api, &decision.rate) {
        rate_headers(&mut resp, rate);
    }
    inst.stats
        .record(&route, &method, resp.status().as_u16(), fault);
    resp
}

/// A slot of an `in_flight` rule: at once when one is free, after waiting when the queue has
/// room, `None` (answer 429) when it is full, as an instance does once its API semaphores are
/// exhausted and the queue is at its max depth (KB0635398).
async fn take_slot(slots: &Slots) -> Option<tokio::sync::OwnedSemaphorePermit> {
    use std::sync::atomic::Ordering;
    if let Ok(permit) = slots.semaphore.clone().try_acquire_owned() {
        return Some(permit);
    }
    if slots.waiting.fetch_add(1, Ordering::SeqCst) >= slots.queue {
        slots.waiting.fetch_sub(1, Ordering::SeqCst);
        return None;
    }
    let permit = slots.semaphore.clone().acquire_owned().await.ok();
    slots.waiting.fetch_sub(1, Ordering::SeqCst);
    permit
}

/// The writes a request carries: one for a write method, one per write item of a batch (its
/// body is read, and put back). Reads carry none.
async fn count_writes(req: Request) -> (u64, Request) {
    let write = |method: &str| matches!(method, "POST" | "PUT" | "PATCH" | "DELETE");
    if !write(req.method().as_str()) {
        return (0, req);
    }
    if !req.uri().path().ends_with("/batch") {
        return (1, req);
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let items = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| {
            v.get("rest_requests")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter(|i| {
                            i.get("method")
                                .and_then(Value::as_str)
                                .is_some_and(|m| write(&m.to_ascii_uppercase()))
                        })
                        .count() as u64
                })
        })
        .unwrap_or(0);
    (items, Request::from_parts(parts, Body::from(bytes)))
}

/// 429 for a request that found every slot taken and the queue full. What an instance sends
/// then beyond the status is not documented in the reference (KB0635398 shows only "Too Many
/// Requests"); no `Retry-After` (port-labs/ocean#3663 met such 429s).
fn no_slot(api: Api) -> Response {
    let body = match api {
        Api::ServiceNow => json!({
            "error": {
                "message": "Too Many Requests",
                "detail": "Every API semaphore is in use and the queue is at its maximum depth",
            },
            "status": "failure",
        }),
        Api::ManageIq => crate::manageiq::MiqError::for_status(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
        )
        .body(),
    };
    (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response()
}

fn rate_headers(resp: &mut Response, rate: &RateInfo) {
    let h = resp.headers_mut();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    put("x-ratelimit-limit", rate.limit.to_string());
    put("x-ratelimit-reset", rate.reset_unix.to_string());
    put("x-ratelimit-rule", rate.rule.clone());
}

fn rate_limited(api: Api, retry_after: u64, rate: Option<&RateInfo>) -> Response {
    let body = match api {
        Api::ServiceNow => json!({
            "error": {
                "message": "Rate limit exceeded",
                "detail": format!(
                    "Rate limit of {} requests per window exceeded (rule {})",
                    rate.map_or(0, |r| r.limit),
                    rate.map_or("", |r| r.rule.as_str())
                ),
            },
            "status": "failure",
        }),
        Api::ManageIq => crate::manageiq::MiqError::for_status(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit exceeded",
        )
        .body(),
    };
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

fn error_response(api: Api, status: StatusCode, body: Option<String>) -> Response {
    if let Some(body) = body {
        let content_type = if body.trim_start().starts_with(['{', '[']) {
            "application/json"
        } else {
            "text/html; charset=utf-8"
        };
        let mut resp = (status, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        return resp;
    }
    let message = format!(
        "Simulated fault: HTTP {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    match api {
        Api::ManageIq => crate::manageiq::MiqError::for_status(status, message).into_response(),
        Api::ServiceNow => (
            status,
            Json(json!({"error": {"message": message, "detail": "Injected by cmdb-sim"}, "status": "failure"})),
        )
            .into_response(),
    }
}

/// `drop_response`: the handler ran; the client gets a reset instead of the answer.
async fn drop_connection(kill: Option<ConnKill>) -> Response {
    match kill {
        Some(kill) => {
            kill.abort();
            // The connection task drops this future as soon as it sees the abort;
            // the timeout only guards a connection nobody drives any more.
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        // Not on our accept loop (e.g. a bare `axum::serve`): the best left is
        // a response whose body fails at once, which aborts the connection.
        None => failing_body_response(StatusCode::OK, Bytes::new(), None),
    }
}

/// Splits a response into its head and its whole body.
async fn collect(resp: Response) -> (axum::http::response::Parts, Bytes) {
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    (parts, bytes)
}

fn cut(len: usize, fraction: f64) -> usize {
    ((len as f64 * fraction) as usize).min(len)
}

/// `reset`: the head and part of the body go out, then the connection resets.
async fn reset_mid_body(resp: Response, fraction: f64, kill: Option<ConnKill>) -> Response {
    let (parts, bytes) = collect(resp).await;
    let sent = bytes.slice(..cut(bytes.len(), fraction));
    let mut resp = failing_body_response(parts.status, sent, kill);
    *resp.headers_mut() = parts.headers;
    // The client is promised the whole body, so the cut is visible as a cut.
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    resp
}

/// A body that yields `first`, then aborts the connection (or fails the body).
fn failing_body_response(status: StatusCode, first: Bytes, kill: Option<ConnKill>) -> Response {
    let stream = futures_util::stream::unfold(Some(first), move |pending| {
        let kill = kill.clone();
        async move {
            match pending {
                Some(chunk) if !chunk.is_empty() => Some((Ok(chunk), None)),
                _ => {
                    if let Some(kill) = kill {
                        // Let the bytes already written reach the client first.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        kill.abort();
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "connection reset by cmdb-sim fault",
                        )),
                        None,
                    ))
                }
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    resp
}

/// `truncate`: a 200 whose body stops part-way, ending in ServiceNow's
/// transaction-cancelled text.
async fn truncate(resp: Response, fraction: f64) -> Response {
    let (mut parts, bytes) = collect(resp).await;
    let mut body = bytes.slice(..cut(bytes.len(), fraction)).to_vec();
    body.extend_from_slice(TRANSACTION_CANCELLED.as_bytes());
    parts.status = StatusCode::OK;
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    Response::from_parts(parts, Body::from(body))
}

/// `slow_body`: the body goes out `chunk` bytes at a time, `delay` apart.
async fn slow_body(resp: Response, chunk: usize, delay: Duration) -> Response {
    let (parts, bytes) = collect(resp).await;
    let stream = futures_util::stream::unfold((bytes, true), move |(rest, first)| async move {
        if rest.is_empty() {
            return None;
        }
        if !first {
            tokio::time::sleep(delay).await;
        }
        let n = chunk.min(rest.len());
        Some((
            Ok::<Bytes, std::io::Error>(rest.slice(..n)),
            (rest.slice(n..), false),
        ))
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(rules: Vec<FaultRule>) -> Faults {
        Faults::new(FaultConfig { seed: 7, rules })
    }

    #[test]
    fn parses_object_or_array_and_rejects_typos() {
        let c = FaultConfig::from_json(
            r#"{"seed":3,"rules":[{"kind":"error","path":"/api/vms","query":"offset=2000","status":503,"times":1}]}"#,
        )
        .expect("valid config");
        assert_eq!(c.seed, 3);
        assert_eq!(c.rules[0].status, Some(503));
        let c =
            FaultConfig::from_json(r#"[{"kind":"latency","latency_ms":5}]"#).expect("valid array");
        assert_eq!(c.rules.len(), 1);
        assert!(FaultConfig::from_json(r#"[{"kind":"error","stauts":503}]"#).is_err());
        let err = FaultConfig::from_json(r#"[{"kind":"rate_limit"}]"#)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("fault rule 0: rate_limit needs `limit`")
        );
    }

    #[test]
    fn rules_match_method_path_and_query() {
        let mut rule = FaultRule::new(FaultKind::Error);
        rule.method = Some("get".into());
        rule.path = "/api/vms".into();
        rule.query = Some("offset=2000".into());
        rule.times = Some(1);
        let f = faults(vec![rule]);
        assert!(f.decide("POST", "/api/vms", "offset=2000").action.is_none());
        assert!(f
            .decide("GET", "/api/hosts", "offset=2000")
            .action
            .is_none());
        assert!(f.decide("GET", "/api/vms", "offset=0").action.is_none());
        assert!(matches!(
            f.decide("GET", "/api/vms", "limit=1000&offset=2000").action,
            Some(Action::Error { .. })
        ));
        assert!(
            f.decide("GET", "/api/vms", "offset=2000").action.is_none(),
            "times budget spent"
        );
        assert_eq!(f.snapshot()["fired"][0], 1);
    }

    #[test]
    fn rate_limit_counts_per_window() {
        let mut rule = FaultRule::new(FaultKind::RateLimit);
        rule.limit = Some(2);
        let f = faults(vec![rule]);
        assert!(f.decide("GET", "/", "").action.is_none());
        assert!(f.decide("GET", "/", "").action.is_none());
        let d = f.decide("GET", "/", "");
        assert!(
            matches!(d.action, Some(Action::RateLimited { retry_after }) if retry_after > 3000)
        );
        assert_eq!(d.rate.map(|r| r.limit), Some(2));
    }

    #[test]
    fn probabilities_are_seeded() {
        let mut rule = FaultRule::new(FaultKind::Error);
        rule.probability = 0.5;
        let run = || {
            let f = faults(vec![rule.clone()]);
            (0..64)
                .map(|_| f.decide("GET", "/", "").action.is_some())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let fired = a.iter().filter(|x| **x).count();
        assert!((16..=48).contains(&fired), "fired {fired} of 64");
    }

    #[test]
    fn latency_stacks_with_a_terminal_fault() {
        let mut slow = FaultRule::new(FaultKind::Latency);
        slow.latency_ms = 20;
        let f = faults(vec![slow, FaultRule::new(FaultKind::DropResponse)]);
        let d = f.decide("POST", "/api/now/table/incident", "");
        assert_eq!(d.delay, Duration::from_millis(20));
        assert!(matches!(d.action, Some(Action::DropResponse)));
    }

    #[test]
    fn write_time_is_drawn_per_write_from_the_seed() {
        let mut rule = FaultRule::new(FaultKind::WriteTime);
        rule.latency_ms = 100;
        rule.jitter_ms = 200;
        let draw = || {
            let f = faults(vec![rule.clone()]);
            let d = f.decide("PATCH", "/api/now/table/t/1", "");
            let picked = d.write_time.expect("a write_time rule");
            (0..5).map(|_| f.write_time(picked, 10)).collect::<Vec<_>>()
        };
        let a = draw();
        assert_eq!(a, draw(), "seeded");
        for d in &a {
            assert!((1000..=3000).contains(&(d.as_millis() as u64)), "{d:?}");
        }
        let f = faults(vec![rule.clone()]);
        let picked = f
            .decide("POST", "/api/now/v1/batch", "")
            .write_time
            .unwrap();
        assert_eq!(f.write_time(picked, 0), Duration::ZERO);
        assert!(FaultConfig::from_json(r#"[{"kind":"write_time"}]"#).is_err());
        assert!(FaultConfig::from_json(r#"[{"kind":"in_flight"}]"#).is_err());
    }

    #[tokio::test]
    async fn writes_are_counted_per_request_and_per_batch_item() {
        let req = |method: &str, path: &str, body: &str| {
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::from(body.to_owned()))
                .unwrap()
        };
        assert_eq!(count_writes(req("GET", "/api/now/table/t", "")).await.0, 0);
        assert_eq!(
            count_writes(req("PATCH", "/api/now/table/t/1", "{}"))
                .await
                .0,
            1
        );
        let batch = r#"{"batch_request_id":"1","rest_requests":[
            {"id":"1","method":"POST","url":"/api/now/table/t"},
            {"id":"2","method":"patch","url":"/api/now/table/t/1"},
            {"id":"3","method":"GET","url":"/api/now/table/t"}]}"#;
        let (writes, rebuilt) = count_writes(req("POST", "/api/now/v1/batch", batch)).await;
        assert_eq!(writes, 2);
        let body = axum::body::to_bytes(rebuilt.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(body, batch.as_bytes(), "the body is put back");
    }

    #[tokio::test]
    async fn requests_beyond_the_slots_queue_then_are_refused() {
        let mut rule = FaultRule::new(FaultKind::InFlight);
        rule.limit = Some(1);
        rule.queue = Some(1);
        let f = faults(vec![rule]);
        let (slots, _) = f.decide("GET", "/", "").slots.expect("slots");
        let first = take_slot(&slots).await.expect("a free slot");
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move { take_slot(&slots).await.is_some() })
        };
        while slots.waiting.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(take_slot(&slots).await.is_none(), "queue full: 429");
        drop(first);
        assert!(
            waiter.await.unwrap(),
            "the queued request got the freed slot"
        );
    }

    #[test]
    fn the_reset_header_is_never_before_the_window_ends() {
        let mut rule = FaultRule::new(FaultKind::RateLimit);
        rule.limit = Some(10);
        rule.window_secs = 1;
        let f = faults(vec![rule]);
        let before = unix_now_f64();
        let rate = f.decide("GET", "/", "").rate.expect("rate info");
        assert!(
            rate.reset_unix as f64 >= before + 0.99,
            "{} {before}",
            rate.reset_unix
        );
        assert!((rate.reset_unix as f64) < before + 2.01);
    }
}
