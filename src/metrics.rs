//! The run's metrics for Prometheus (README "Monitoring"): what each sync planned and what
//! `apply` did, drift per field, quarantined records and issues, phase durations, requests,
//! retries and 429s per API, source completeness, and when the job last succeeded.
//!
//! The app records into one process-wide [`Run`] as it goes (one run per process); `main`
//! publishes it once the exit code is known: a node-exporter textfile written atomically
//! (`--metrics-file`, `[metrics] file`) and/or a push to a Pushgateway (`--push-gateway`,
//! `[metrics] push_gateway`). The text is the Prometheus exposition format 0.0.4, rendered by
//! the `prometheus` crate: the textfile collector and the Pushgateway parse exactly that.
//!
//! Every count describes the run that wrote it, so they are gauges: a count that starts from
//! zero each run is not a counter, and `rate()` over one would miss a run that repeats the
//! last run's count. The time of the last success outlives failed runs: the textfile keeps
//! the previous value, and a failed run pushes with POST, which leaves it in place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus::{Encoder, GaugeVec, Opts, Registry, TextEncoder};

use crate::apply::{OperationOutcome, OutcomeStatus};
use crate::net::stats::{self, Api};
use crate::reconcile::plan::{Plan, RetireAction, UpdateKind};
use crate::report::summary::Counts;

/// Every metric's name starts with this.
pub const PREFIX: &str = "cmdb_reconcile";

/// The Pushgateway job: `PUT /metrics/job/cmdb-reconcile`.
pub const JOB: &str = "cmdb-reconcile";

/// The metric that outlives failed runs.
pub const LAST_SUCCESS: &str = "cmdb_reconcile_last_success_timestamp_seconds";

/// Where the metrics go; either, both or neither.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// A node-exporter textfile (`*.prom`), replaced atomically.
    pub file: Option<PathBuf>,
    /// A Pushgateway base URL (`http://pushgateway:9091`).
    pub push_gateway: Option<String>,
}

impl Target {
    /// `self`, with what it leaves unset taken from `fallback` (flags over the config file).
    pub fn or(self, fallback: &Target) -> Target {
        Target {
            file: self.file.or_else(|| fallback.file.clone()),
            push_gateway: self.push_gateway.or_else(|| fallback.push_gateway.clone()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.file.is_none() && self.push_gateway.is_none()
    }
}

/// What one sync planned and did.
#[derive(Debug, Clone, Default, PartialEq)]
struct SyncRecord {
    counts: Counts,
    source_complete: bool,
    source_records: usize,
    target_in_scope: usize,
    retirements_withheld: usize,
    guards_tripped: usize,
    /// Planned writes per field (drift updates).
    drift: BTreeMap<String, usize>,
    /// Issues per kind.
    issues: BTreeMap<&'static str, usize>,
    /// Seconds per phase (`read`, `plan`, `apply`).
    phases: BTreeMap<&'static str, f64>,
    /// (action, outcome) -> operations, once applied.
    operations: BTreeMap<(&'static str, &'static str), usize>,
    /// Review in ServiceNow: changes per event (`opened`, `waiting`, `applied`, ...).
    review: BTreeMap<&'static str, usize>,
    /// Review in ServiceNow: operations waiting for approval.
    awaiting: Option<usize>,
}

/// What the run recorded so far.
#[derive(Debug, Default)]
pub struct Run {
    flags: Target,
    config: Target,
    syncs: BTreeMap<String, SyncRecord>,
}

static RUN: Mutex<Run> = Mutex::new(Run {
    flags: Target {
        file: None,
        push_gateway: None,
    },
    config: Target {
        file: None,
        push_gateway: None,
    },
    syncs: BTreeMap::new(),
});

fn with_run<R>(f: impl FnOnce(&mut Run) -> R) -> R {
    f(&mut RUN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// The destinations given as flags (they win over the config file's).
pub fn set_flags(target: Target) {
    with_run(|run| run.flags = target);
}

/// The destinations of the config file's `[metrics]`.
pub fn set_config(target: Target) {
    with_run(|run| run.config = target);
}

/// Where this run's metrics go.
pub fn target() -> Target {
    with_run(|run| run.flags.clone().or(&run.config))
}

/// A sync was planned.
pub fn planned(plan: &Plan) {
    let record = SyncRecord {
        counts: Counts::of(plan),
        source_complete: plan.source.complete,
        source_records: plan.source.records,
        target_in_scope: plan.target.in_scope,
        retirements_withheld: plan.safety.retirements_withheld,
        guards_tripped: plan.safety.guards_tripped.len(),
        drift: plan.summary.drift_by_field.clone(),
        issues: plan.issues.iter().fold(BTreeMap::new(), |mut m, i| {
            *m.entry(i.kind.as_str()).or_insert(0) += 1;
            m
        }),
        phases: BTreeMap::new(),
        operations: BTreeMap::new(),
        review: BTreeMap::new(),
        awaiting: None,
    };
    with_run(|run| {
        let sync = run.syncs.entry(plan.mapping.name.clone()).or_default();
        // Phases timed before the plan existed (the reads) are kept, and so is what an
        // earlier apply in this run did (the demo plans again after applying).
        let phases = std::mem::take(&mut sync.phases);
        let operations = std::mem::take(&mut sync.operations);
        let review = std::mem::take(&mut sync.review);
        let awaiting = sync.awaiting.take();
        *sync = SyncRecord {
            phases,
            operations,
            review,
            awaiting,
            ..record
        };
    });
}

/// A phase of a sync (`read`, `plan`, `apply`) took `elapsed`.
pub fn phase(mapping: &str, phase: &'static str, elapsed: Duration) {
    with_run(|run| {
        let sync = run.syncs.entry(mapping.to_owned()).or_default();
        *sync.phases.entry(phase).or_insert(0.0) += elapsed.as_secs_f64();
    });
}

/// A sync's plan was applied with these outcomes.
pub fn applied(plan: &Plan, outcomes: &[OperationOutcome]) {
    let mut by_source: BTreeMap<&str, &'static str> = BTreeMap::new();
    for c in &plan.creates {
        by_source.insert(&c.source_id, "create");
    }
    for u in &plan.updates {
        let action = match u.kind {
            UpdateKind::Heartbeat => "heartbeat",
            UpdateKind::Drift | UpdateKind::Restore => "update",
        };
        by_source.insert(&u.source_id, action);
    }
    // The catalog's orders are named by their RITM number.
    for o in &plan.orders {
        by_source.insert(&o.ritm_number, "order");
    }
    let by_sys_id: BTreeMap<&str, &'static str> = plan
        .retirements
        .iter()
        .map(|r| {
            let action = match r.action {
                RetireAction::MarkAbsent => "absent",
                RetireAction::Retire => "retire",
                RetireAction::Delete => "delete",
            };
            (r.sys_id.as_str(), action)
        })
        .collect();
    let mut operations = BTreeMap::new();
    for o in outcomes {
        let action = o
            .source_id
            .as_deref()
            .and_then(|s| by_source.get(s))
            .or_else(|| o.sys_id.as_deref().and_then(|s| by_sys_id.get(s)))
            .copied()
            .unwrap_or("unknown");
        *operations.entry((action, o.status.as_str())).or_insert(0) += 1;
    }
    // Added up: a reviewed sync applies an approved plan and then this run's own part.
    with_run(|run| {
        let sync = run.syncs.entry(plan.mapping.name.clone()).or_default();
        for (key, n) in operations {
            *sync.operations.entry(key).or_insert(0) += n;
        }
    });
}

/// Review in ServiceNow: one of a sync's changes was `opened`, is `waiting`, was `applied`,
/// `rejected`, `superseded` (by a newer plan) or `skipped` (too old, or not the approved
/// plan).
pub fn review(mapping: &str, event: &'static str) {
    with_run(|run| {
        let sync = run.syncs.entry(mapping.to_owned()).or_default();
        *sync.review.entry(event).or_insert(0) += 1;
    });
}

/// Review in ServiceNow: how many of a sync's operations wait for approval.
pub fn awaiting(mapping: &str, operations: usize) {
    with_run(|run| {
        run.syncs.entry(mapping.to_owned()).or_default().awaiting = Some(operations);
    });
}

/// How the run ended, for the run-level metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finish {
    /// The run's one clock reading.
    pub started: DateTime<Utc>,
    pub duration: Duration,
    pub exit_code: u8,
}

impl Finish {
    /// Whether the run counts as a success: it did its work (exit 0, 2 changes planned, 6
    /// done with a warning, 7 waiting for approval). Errors, partial runs, refusals and a
    /// busy lease do not.
    pub fn success(&self) -> bool {
        matches!(self.exit_code, 0 | 2 | 6 | 7)
    }
}

/// The version and commit this binary was built from (`build.rs`).
pub fn build_commit() -> &'static str {
    option_env!("CMDB_RECONCILE_GIT_COMMIT").unwrap_or("")
}

/// Seconds to the millisecond: finer is noise for a batch job.
fn millis(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let vec = GaugeVec::new(Opts::new(format!("{PREFIX}_{name}"), help), labels)
        .expect("metric names and labels are valid");
    registry
        .register(Box::new(vec.clone()))
        .expect("each metric is registered once");
    vec
}

/// The run's metrics in the exposition format. `last_success` is written as given (the
/// caller decides: now, the previous value, or none).
pub fn render(finish: &Finish, last_success: Option<f64>) -> String {
    let registry = Registry::new();
    let run = with_run(|run| run.syncs.clone());

    gauge(
        &registry,
        "build_info",
        "The version and git commit of the binary that ran (always 1).",
        &["version", "commit"],
    )
    .with_label_values(&[env!("CARGO_PKG_VERSION"), build_commit()])
    .set(1.0);
    let one = |name: &str, help: &str, value: f64| {
        gauge(&registry, name, help, &[])
            .with_label_values(&[] as &[&str])
            .set(value)
    };
    one(
        "last_run_timestamp_seconds",
        "When the last run started (Unix time).",
        finish.started.timestamp() as f64,
    );
    one(
        "last_run_duration_seconds",
        "How long the last run took, start to end.",
        millis(finish.duration.as_secs_f64()),
    );
    one(
        "last_run_exit_code",
        "The exit code of the last run (README \"Exit codes\").",
        f64::from(finish.exit_code),
    );
    one(
        "last_run_success",
        "1 when the last run succeeded (exit 0, 2, 6 or 7), else 0.",
        if finish.success() { 1.0 } else { 0.0 },
    );
    if let Some(at) = last_success {
        one(
            "last_success_timestamp_seconds",
            "When the last successful run started (Unix time); kept across failed runs.",
            at,
        );
    }

    http_metrics(&registry);
    if !run.is_empty() {
        sync_metrics(&registry, &run);
    }

    let mut out = Vec::new();
    // Writing text into a Vec cannot fail.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Review in ServiceNow: changes per event and operations waiting, for reviewed syncs.
fn review_metrics(registry: &Registry, run: &BTreeMap<String, SyncRecord>) {
    if run
        .values()
        .all(|s| s.awaiting.is_none() && s.review.is_empty())
    {
        return;
    }
    let changes = gauge(
        registry,
        "review_changes",
        "Change requests the last run opened, waited on, applied, discarded (rejected), cancelled (superseded) or closed unapplied (skipped), per sync.",
        &["mapping", "event"],
    );
    let awaiting = gauge(
        registry,
        "awaiting_approval_operations",
        "Operations waiting for an approved change request, per sync.",
        &["mapping"],
    );
    for (mapping, sync) in run {
        for (event, n) in &sync.review {
            changes
                .with_label_values(&[mapping.as_str(), event])
                .set(*n as f64);
        }
        if let Some(n) = sync.awaiting {
            awaiting.with_label_values(&[mapping]).set(n as f64);
        }
    }
}

/// Requests, retries and 429s per API.
fn http_metrics(registry: &Registry) {
    let requests = gauge(
        registry,
        "http_requests",
        "HTTP requests the last run sent, per API (token requests included).",
        &["api"],
    );
    let retries = gauge(
        registry,
        "http_retries",
        "Requests the last run sent again after a failed attempt, per API.",
        &["api"],
    );
    let limited = gauge(
        registry,
        "http_rate_limited",
        "Responses 429 Too Many Requests the last run received, per API.",
        &["api"],
    );
    for api in Api::ALL {
        let c = stats::counts(api);
        requests
            .with_label_values(&[api.as_str()])
            .set(c.requests as f64);
        retries
            .with_label_values(&[api.as_str()])
            .set(c.retries as f64);
        limited
            .with_label_values(&[api.as_str()])
            .set(c.rate_limited as f64);
    }
}

/// The per-sync gauges: what each sync planned, met and applied.
fn sync_metrics(registry: &Registry, run: &BTreeMap<String, SyncRecord>) {
    operation_metrics(registry, run);
    review_metrics(registry, run);
    let planned = gauge(
        registry,
        "planned_operations",
        "Operations the last run planned, per sync and action (the summary table's words).",
        &["mapping", "action"],
    );
    let cis = gauge(
        registry,
        "unchanged_cis",
        "Matched CIs with nothing to write, per sync.",
        &["mapping"],
    );
    let quarantined = gauge(
        registry,
        "quarantined",
        "Issues holding records or CIs back from any write, per sync.",
        &["mapping"],
    );
    let issues = gauge(
        registry,
        "issues",
        "Issues in the last plan, per sync and kind (quarantined ones included).",
        &["mapping", "kind"],
    );
    let drift = gauge(
        registry,
        "field_drift",
        "Planned writes per field (drifted CIs), per sync.",
        &["mapping", "field"],
    );
    let complete = gauge(
        registry,
        "source_complete",
        "1 when the last source read was complete, 0 when it was cut short (no retirements).",
        &["mapping"],
    );
    let records = gauge(
        registry,
        "source_records",
        "Records the last source read returned, per sync.",
        &["mapping"],
    );
    let in_scope = gauge(
        registry,
        "target_cis_in_scope",
        "Rows of the target table in the sync's scope.",
        &["mapping"],
    );
    let withheld = gauge(
        registry,
        "retirements_withheld",
        "Retirements the last plan withheld because the source read could not be trusted.",
        &["mapping"],
    );
    let guards = gauge(
        registry,
        "guards_tripped",
        "Count guards the last plan tripped (nothing written unless lifted).",
        &["mapping"],
    );
    let phases = gauge(
        registry,
        "phase_duration_seconds",
        "How long each phase of a sync took in the last run (read, plan, apply).",
        &["mapping", "phase"],
    );
    for (mapping, sync) in run {
        let m = mapping.as_str();
        for (name, value) in sync.counts.pairs() {
            if Counts::OPERATIONS.contains(&name) {
                planned.with_label_values(&[m, name]).set(value as f64);
            }
        }
        cis.with_label_values(&[m])
            .set(sync.counts.unchanged as f64);
        quarantined
            .with_label_values(&[m])
            .set(sync.counts.quarantined as f64);
        for (kind, n) in &sync.issues {
            issues.with_label_values(&[m, kind]).set(*n as f64);
        }
        for (field, n) in &sync.drift {
            drift.with_label_values(&[m, field]).set(*n as f64);
        }
        complete
            .with_label_values(&[m])
            .set(if sync.source_complete { 1.0 } else { 0.0 });
        records
            .with_label_values(&[m])
            .set(sync.source_records as f64);
        in_scope
            .with_label_values(&[m])
            .set(sync.target_in_scope as f64);
        withheld
            .with_label_values(&[m])
            .set(sync.retirements_withheld as f64);
        guards
            .with_label_values(&[m])
            .set(sync.guards_tripped as f64);
        for (phase, seconds) in &sync.phases {
            phases.with_label_values(&[m, phase]).set(millis(*seconds));
        }
    }
}

/// What the last run applied, per sync, action and outcome.
fn operation_metrics(registry: &Registry, run: &BTreeMap<String, SyncRecord>) {
    let operations = gauge(
        registry,
        "operations",
        "Operations the last run applied, per sync, action and outcome.",
        &["mapping", "action", "outcome"],
    );
    for (mapping, sync) in run {
        let m = mapping.as_str();
        if !sync.operations.is_empty() {
            // Applied and failed exist for every action applied, so an alert on
            // failures sees a 0 rather than nothing.
            for (action, _) in sync.operations.keys() {
                for outcome in [OutcomeStatus::Applied, OutcomeStatus::Failed] {
                    operations
                        .with_label_values(&[m, action, outcome.as_str()])
                        .set(0.0);
                }
            }
            for ((action, outcome), n) in &sync.operations {
                operations
                    .with_label_values(&[m, action, outcome])
                    .set(*n as f64);
            }
        }
    }
}

/// The value of the unlabelled sample `name` in an exposition text, if there is one.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (metric, value) = l.split_once(' ')?;
        (metric == name)
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// A failure to publish the metrics (the run's exit code does not change for it).
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot write metrics file `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pushing metrics to `{url}`: {message}")]
    Push { url: String, message: String },
}

/// Writes the textfile: to a temporary name in the same folder, then renamed into place, so
/// the collector never reads half a file. A failed run keeps the previous file's time of
/// the last success.
#[allow(
    clippy::disallowed_methods,
    reason = "the shell writes the metrics file and reads the previous one back"
)]
pub fn write_file(path: &Path, finish: &Finish) -> Result<(), MetricsError> {
    use std::io::Write as _;
    let last_success = if finish.success() {
        Some(finish.started.timestamp() as f64)
    } else {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|old| sample(&old, LAST_SUCCESS))
    };
    let text = render(finish, last_success);
    let error = |source| MetricsError::Write {
        path: path.to_owned(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Not `*.prom`: the collector must never pick up the temporary file.
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(error)
}

/// Pushes to a Pushgateway as job `cmdb-reconcile`. A success replaces the job's group (PUT);
/// a failed run pushes without the time of the last success and with POST, which replaces
/// only the metrics it carries, so the last success stays.
pub async fn push(base: &str, finish: &Finish) -> Result<(), MetricsError> {
    let shown = crate::net::redact(base);
    let url = format!("{}/metrics/job/{JOB}", base.trim_end_matches('/'));
    let error = |message: String| MetricsError::Push {
        url: shown.clone(),
        message,
    };
    let success = finish.success();
    let text = render(finish, success.then(|| finish.started.timestamp() as f64));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| error(e.to_string()))?;
    let method = if success {
        reqwest::Method::PUT
    } else {
        reqwest::Method::POST
    };
    let response = client
        .request(method, &url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(text)
        .send()
        .await
        .map_err(|e| error(e.without_url().to_string()))?;
    if !response.status().is_success() {
        let status = response.status();
        let body: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        return Err(error(format!("{status}: {}", body.trim())));
    }
    Ok(())
}

/// Publishes the run's metrics wherever [`target`] says; a failure is a warning.
pub async fn publish(finish: &Finish) {
    let target = target();
    if let Some(path) = &target.file {
        match write_file(path, finish) {
            Ok(()) => tracing::debug!(file = %path.display(), "metrics written"),
            Err(e) => tracing::warn!(
                "{}",
                crate::report::summary::printable(&format!("{e}: {}", source_text(&e)))
            ),
        }
    }
    if let Some(url) = &target.push_gateway {
        match push(url, finish).await {
            Ok(()) => tracing::debug!(url = %crate::net::redact(url), "metrics pushed"),
            Err(e) => tracing::warn!("{}", crate::report::summary::printable(&e.to_string())),
        }
    }
}

fn source_text(e: &MetricsError) -> String {
    std::error::Error::source(e)
        .map(ToString::to_string)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_back_by_name() {
        let text = "# HELP x_seconds h\n# TYPE x_seconds gauge\nx_seconds 1764662400\nx_seconds_other 3\ny{a=\"b\"} 2\n";
        assert_eq!(sample(text, "x_seconds"), Some(1_764_662_400.0));
        assert_eq!(sample(text, "y"), None, "labelled samples are not read");
        assert_eq!(sample(text, "z"), None);
    }

    #[test]
    fn success_is_exit_0_2_6_or_7() {
        let finish = |exit_code| Finish {
            started: "2026-12-01T00:00:00Z".parse().unwrap(),
            duration: Duration::from_secs(1),
            exit_code,
        };
        for (code, success) in [
            (0, true),
            (2, true),
            (6, true),
            (7, true),
            (1, false),
            (3, false),
        ] {
            assert_eq!(finish(code).success(), success, "exit {code}");
        }
        assert!(!finish(4).success() && !finish(5).success());
    }

    #[test]
    fn flags_win_over_the_config_file() {
        let flags = Target {
            file: Some("a.prom".into()),
            push_gateway: None,
        };
        let config = Target {
            file: Some("b.prom".into()),
            push_gateway: Some("http://pg:9091".into()),
        };
        let t = flags.or(&config);
        assert_eq!(t.file, Some(PathBuf::from("a.prom")));
        assert_eq!(t.push_gateway.as_deref(), Some("http://pg:9091"));
    }
}
