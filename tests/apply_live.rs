//! The executor over real HTTP against the ServiceNow simulator on 127.0.0.1 when things go
//! wrong while it writes (issue 9): a server that fails for good stops the writes after a
//! bounded number of requests, a deadline ends the run, a write whose answer was lost is
//! read back before it is reported, and a person's edit made while the job writes is never
//! silently overwritten. Tests count requests and outcomes, never seconds.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures, write files and read the clock"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use cmdb_reconcile::app::{self, Planned, Status};
use cmdb_reconcile::config::Config;
use cmdb_reconcile::reconcile::plan::RetireAction;
use cmdb_sim::{Api, FaultConfig, Sims};
use serde_json::{json, Value};

mod common;

use common::{config, plan, sims, TABLE};

/// The shared config with one request per write (`batch_size = 0`; the default batches): the
/// tests using it inject their faults into, count, or edit between the Table API's single
/// writes. The batch paths have tests of their own at the end of this file.
fn singles(sims: &Sims, dir: &std::path::Path) -> Config {
    let mut config = config(sims, dir);
    config.apply.batch_size = 0;
    config
}

/// Longer than any of these runs takes once bounded; before, some ran for many minutes.
const BOUND: Duration = Duration::from_secs(90);

/// The operations of a plan that write: CI creates, updates and retirements, and the
/// relationship rows (the shipped VMware mapping keeps each VM's `Registered on` row).
fn planned_writes(planned: &Planned) -> usize {
    let p = &planned.plan;
    p.creates.len()
        + p.updates.iter().filter(|u| u.has_writes()).count()
        + p.retirements.len()
        + p.relationships.len()
}

/// The reason a relationship row is not attempted when the create of its CI end was not.
const END_NOT_CREATED: &str =
    "one end is a CI this plan was to create, and that create did not happen";

/// Every `not_attempted` outcome says `why` (the breaker, the deadline), except relationship
/// rows whose CI end was itself not created, which say that instead; at least one of those
/// says `why` when any relationship row was planned to an existing CI.
fn not_attempted_because(outcome: &Value, why: &str) {
    let not_attempted: Vec<&Value> = outcome["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["status"] == "not_attempted")
        .collect();
    assert!(!not_attempted.is_empty());
    for o in &not_attempted {
        let message = o["message"].as_str().unwrap();
        let relationship = o["source_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("relationship "));
        assert!(
            message.contains(why) || (relationship && message == END_NOT_CREATED),
            "{why}: {o}"
        );
    }
    let stopped = |relationship: bool| {
        not_attempted.iter().any(|o| {
            o["message"].as_str().unwrap().contains(why)
                && o["source_id"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("relationship "))
                    == relationship
        })
    };
    assert!(stopped(false), "{why}: CI writes");
    assert!(
        stopped(true),
        "{why}: relationship rows between existing CIs"
    );
}

/// Applies with a bound on the time it may take (a hung apply fails the test, not CI).
async fn apply(config: &Config, planned: &Planned) -> Status {
    tokio::time::timeout(BOUND, app::run_apply(config, std::slice::from_ref(planned)))
        .await
        .expect("the apply ends in bounded time")
        .expect("apply")
}

/// Writes the simulator received (POST, PATCH, DELETE).
fn writes(sims: &Sims) -> u64 {
    let stats = sims.stats(Api::ServiceNow);
    stats["by_method"]
        .as_object()
        .map(|m| {
            ["POST", "PATCH", "DELETE"]
                .iter()
                .filter_map(|v| m.get(*v).and_then(Value::as_u64))
                .sum()
        })
        .unwrap_or(0)
}

fn outcome_file(planned: &Planned) -> Value {
    let text = std::fs::read_to_string(planned.dir.join("outcome.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Outcomes by status, from outcome.json.
fn statuses(outcome: &Value) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for o in outcome["outcomes"].as_array().unwrap() {
        *counts
            .entry(o["status"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    counts
}

fn messages_of<'a>(outcome: &'a Value, status: &str) -> Vec<&'a str> {
    outcome["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["status"] == status)
        .map(|o| o["message"].as_str().unwrap())
        .collect()
}

/// A fault on every create and PATCH of the CMDB table.
fn on_writes(rule: Value) -> FaultConfig {
    let mut rules = Vec::new();
    for method in ["POST", "PATCH"] {
        let mut r = rule.clone();
        r["method"] = json!(method);
        r["path"] = json!(format!("/api/now/table/{TABLE}"));
        rules.push(r);
    }
    FaultConfig::from_json(&json!({ "rules": rules }).to_string()).expect("fault config")
}

/// A permanent failure on writes: the breaker opens after about `breaker` failed requests
/// in a row (never fewer; at most the writes in flight more), every write never sent is
/// `not_attempted` with the reason, and the run is partial.
async fn writes_stop_after_the_breaker_opens(fault: Value, what: &str) {
    writes_stop_after_the_breaker_opens_in(fault, what, false).await;
}

/// [`writes_stop_after_the_breaker_opens`], one request per write or (`batched`) through
/// the Batch API: the fault then on its requests too (a fault on the Table API alone lets
/// every batch through, and its writes land), two in flight, so that even the 8 creates go as
/// batches (over 8 slots they would go one by one), and batches of 4, so that the requests
/// the breaker lets through cannot carry every CI write (the rest must be stopped).
async fn writes_stop_after_the_breaker_opens_in(fault: Value, what: &str, batched: bool) {
    let sims = sims(800).await;
    let dir = tempfile::tempdir().unwrap();
    let config = if batched {
        let mut config = config(&sims, dir.path());
        config.apply.concurrency = 2;
        config.apply.batch_size = 4;
        config
    } else {
        singles(&sims, dir.path())
    };
    let planned = plan(&config, &dir.path().join("1")).await;
    let planned_writes = planned_writes(&planned);
    let (threshold, in_flight) = (config.apply.breaker, config.apply.concurrency);
    assert!(
        planned_writes > 2 * (threshold + in_flight),
        "{planned_writes}"
    );

    let mut faults = on_writes(fault.clone());
    if batched {
        let mut rule = fault;
        rule["method"] = json!("POST");
        rule["path"] = json!("/api/now/v1/batch");
        faults
            .rules
            .push(serde_json::from_value(rule).expect("a fault rule"));
    }
    sims.set_faults(Api::ServiceNow, faults);
    sims.reset_stats(Api::ServiceNow);
    assert_eq!(apply(&config, &planned).await, Status::Partial);

    let sent = writes(&sims) as usize;
    if batched {
        // Each batch refused whole counts once and is sent again whole, never one by one.
        assert_eq!(batches(&sims) as usize, sent, "{what}: all sent as batches");
    }
    assert!(
        (threshold..threshold + in_flight).contains(&sent),
        "{what}: {sent} writes sent for {planned_writes} planned (breaker {threshold}, {in_flight} in flight)"
    );
    let outcome = outcome_file(&planned);
    let counts = statuses(&outcome);
    assert_eq!(counts.values().sum::<usize>(), planned_writes, "{counts:?}");
    assert_eq!(outcome["not_attempted"], counts["not_attempted"]);
    // Every write no request sent carried is not attempted (a batch carries up to
    // `batch_size`: one refused for good fails them all).
    let per_request = if batched { config.apply.batch_size } else { 1 };
    assert!(
        counts["not_attempted"] >= planned_writes.saturating_sub(sent * per_request),
        "{counts:?}"
    );
    assert_eq!(counts.get("applied"), None, "{counts:?}");
    not_attempted_because(&outcome, "in a row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_503_on_writes_opens_the_breaker() {
    writes_stop_after_the_breaker_opens(json!({"kind": "error", "status": 503}), "503").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_rate_limit_on_writes_opens_the_breaker() {
    // Retry-After honoured every time, and every time refused again.
    writes_stop_after_the_breaker_opens(
        json!({"kind": "rate_limit", "limit": 0, "retry_after_secs": 1}),
        "429",
    )
    .await;
}

/// As above with batches: a batch request counts for the breaker as one request, and the
/// writes of a batch refused whole are not sent one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_rate_limit_on_batched_writes_opens_the_breaker() {
    writes_stop_after_the_breaker_opens_in(
        json!({"kind": "rate_limit", "limit": 0, "retry_after_secs": 1}),
        "429, batched",
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_503_on_batched_writes_opens_the_breaker() {
    writes_stop_after_the_breaker_opens_in(
        json!({"kind": "error", "status": 503}),
        "503, batched",
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_longer_than_allowed_on_batched_writes_opens_the_breaker() {
    writes_stop_after_the_breaker_opens_in(
        json!({"kind": "rate_limit", "limit": 0, "retry_after_secs": 3600}),
        "429 for an hour, batched",
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_longer_than_allowed_opens_the_breaker_without_waiting() {
    // Retry-After one hour, above max_retry_after: nothing to wait for, and nobody waits.
    writes_stop_after_the_breaker_opens(
        json!({"kind": "rate_limit", "limit": 0, "retry_after_secs": 3600}),
        "429 for an hour",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_ends_the_writes_and_says_so() {
    let sims = sims(800).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = singles(&sims, dir.path());
    let planned = plan(&config, &dir.path().join("1")).await;
    let planned_writes = planned_writes(&planned);
    // One write at a time, each a quarter second: all of them would take ten seconds and
    // more; the deadline allows about four.
    config.apply.concurrency = 1;
    config.apply.deadline = Some(Duration::from_secs(1));
    sims.set_faults(
        Api::ServiceNow,
        on_writes(json!({"kind": "latency", "latency_ms": 250})),
    );
    assert!(planned_writes >= 40, "{planned_writes}");
    sims.reset_stats(Api::ServiceNow);
    assert_eq!(apply(&config, &planned).await, Status::Partial);

    let sent = writes(&sims) as usize;
    assert!(sent < planned_writes / 2, "{sent} sent");
    let outcome = outcome_file(&planned);
    let counts = statuses(&outcome);
    assert_eq!(
        counts.get("applied").copied().unwrap_or(0),
        sent,
        "{counts:?}"
    );
    assert_eq!(counts["not_attempted"], planned_writes - sent, "{counts:?}");
    not_attempted_because(&outcome, "deadline");
}

fn faults(rules: Value) -> FaultConfig {
    FaultConfig::from_json(&json!({ "rules": rules }).to_string()).expect("fault config")
}

/// The CI's values as the simulator holds them.
fn row(sims: &Sims, sys_id: &str) -> serde_json::Map<String, Value> {
    sims.servicenow().get(TABLE, sys_id).expect("the CI exists")
}

fn holds(sims: &Sims, sys_id: &str, fields: &[(String, String)]) -> bool {
    let row = row(sims, sys_id);
    fields
        .iter()
        .all(|(f, v)| row.get(f).and_then(Value::as_str) == Some(v.as_str()))
}

/// The planned writes that are PATCHes: updates, and retirements that set fields.
fn planned_patches(planned: &Planned) -> usize {
    let p = &planned.plan;
    p.updates.iter().filter(|u| u.has_writes()).count()
        + p.retirements
            .iter()
            .filter(|r| r.action != RetireAction::Delete)
            .count()
}

/// The written fields of each planned update, by sys_id.
fn update_fields(planned: &Planned) -> BTreeMap<String, Vec<(String, String)>> {
    planned
        .plan
        .updates
        .iter()
        .filter(|u| u.has_writes())
        .map(|u| {
            let fields = u
                .changes
                .iter()
                .filter(|c| c.is_write())
                .map(|c| (c.field.clone(), c.desired.clone()))
                .collect();
            (u.sys_id.clone(), fields)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_answer_was_lost_is_read_back_and_reported_applied() {
    let sims = sims(400).await;
    let dir = tempfile::tempdir().unwrap();
    let config = singles(&sims, dir.path());
    let planned = plan(&config, &dir.path().join("1")).await;
    let updates = update_fields(&planned);
    assert!(updates.len() >= 5, "{}", updates.len());
    // Every update is carried out, and every answer lost on the way back.
    sims.set_faults(
        Api::ServiceNow,
        faults(json!([{"kind": "drop_response", "method": "PATCH", "path": "/api/now/table/"}])),
    );
    sims.reset_stats(Api::ServiceNow);
    assert_eq!(apply(&config, &planned).await, Status::Clean);

    let outcome = outcome_file(&planned);
    for (sys_id, fields) in &updates {
        assert!(holds(&sims, sys_id, fields), "{sys_id} written");
        let o = outcome["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["sys_id"] == sys_id.as_str())
            .unwrap();
        assert_eq!(o["status"], "applied", "{o}");
        assert!(o["message"].as_str().unwrap().contains("read back"), "{o}");
    }
    // Each update sent once: what was read back is not sent again.
    let patches = sims.stats(Api::ServiceNow)["by_method"]["PATCH"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(patches as usize, planned_patches(&planned));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_that_cannot_be_read_back_is_unknown_not_failed() {
    let sims = sims(400).await;
    let dir = tempfile::tempdir().unwrap();
    let config = singles(&sims, dir.path());
    let planned = plan(&config, &dir.path().join("1")).await;
    let updates = update_fields(&planned);
    let (victim, fields) = updates.iter().next().unwrap();
    // The victim's update happens but its answer is lost, and the victim cannot be read.
    let path = format!("/api/now/table/{TABLE}/{victim}");
    sims.set_faults(
        Api::ServiceNow,
        faults(json!([
            {"kind": "drop_response", "method": "PATCH", "path": path},
            {"kind": "error", "status": 503, "method": "GET", "path": path}
        ])),
    );
    assert_eq!(apply(&config, &planned).await, Status::Partial);

    assert!(holds(&sims, victim, fields), "the update did happen");
    let outcome = outcome_file(&planned);
    let counts = statuses(&outcome);
    assert_eq!(counts.get("unknown"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("failed"), None, "{counts:?}");
    let message = messages_of(&outcome, "unknown")[0];
    assert!(
        message.contains("lost") && message.contains("503"),
        "{message}"
    );
    let patches = sims.stats(Api::ServiceNow)["by_route"]["PATCH /api/now/table/{table}/{sys_id}"]
        ["total"]
        .as_u64()
        .unwrap();
    assert_eq!(
        patches as usize,
        planned_patches(&planned),
        "a write that may have happened is not sent again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_read_back_shows_undone_is_sent_again_and_failed_when_it_stays_so() {
    let sims = sims(400).await;
    let dir = tempfile::tempdir().unwrap();
    let config = singles(&sims, dir.path());
    let planned = plan(&config, &dir.path().join("1")).await;
    let updates = update_fields(&planned);
    let mut ids = updates.keys();
    let (once, always) = (ids.next().unwrap(), ids.next().unwrap());
    // A gateway answers 504 before the instance saw the request: once for one CI, always
    // for another.
    let at = |id: &str| format!("/api/now/table/{TABLE}/{id}");
    sims.set_faults(
        Api::ServiceNow,
        faults(json!([
            {"kind": "error", "status": 504, "method": "PATCH", "path": at(once), "times": 1},
            {"kind": "error", "status": 504, "method": "PATCH", "path": at(always)}
        ])),
    );
    assert_eq!(apply(&config, &planned).await, Status::Partial);

    let outcome = outcome_file(&planned);
    let of = |id: &str| {
        outcome["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["sys_id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(of(once)["status"], "applied", "{}", of(once));
    assert!(holds(&sims, once, &updates[once]));
    assert_eq!(of(always)["status"], "failed", "{}", of(always));
    let message = of(always)["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("read back") && message.contains("does not hold"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_whose_lookup_fails_is_unknown() {
    let sims = sims(400).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sims, dir.path());
    let planned = plan(&config, &dir.path().join("1")).await;
    assert!(!planned.plan.creates.is_empty());
    // Creates happen, their answers are lost, and the lookups by identity (one condition
    // per identity field, unlike the IN reads of the checks) fail.
    sims.set_faults(
        Api::ServiceNow,
        faults(json!([
            {"kind": "drop_response", "method": "POST", "path": "/api/now/table/", "times": 1},
            {"kind": "error", "status": 503, "method": "GET", "path": "/api/now/table/",
             "query": "^vcenter_uuid="}
        ])),
    );
    let before = sims.servicenow().rows(TABLE).len();
    assert_eq!(apply(&config, &planned).await, Status::Partial);
    assert_eq!(
        sims.servicenow().rows(TABLE).len(),
        before + planned.plan.creates.len(),
        "every create happened once, the lost one too"
    );
    let counts = statuses(&outcome_file(&planned));
    assert_eq!(counts.get("unknown"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("failed"), None, "{counts:?}");
}

/// Runs the apply while `meanwhile` waits for the delayed PATCH of fault rule 0 to reach the
/// simulator and then edits the CMDB as a person would, during the delay.
async fn apply_with_an_edit_meanwhile(
    sims: &Sims,
    config: &Config,
    planned: &Planned,
    edit: impl FnOnce(),
) -> Status {
    let meanwhile = async {
        let arrived = async {
            while sims.faults(Api::ServiceNow)["fired"][0].as_u64() == Some(0) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(BOUND, arrived)
            .await
            .expect("the delayed write arrives");
        edit();
    };
    tokio::join!(apply(config, planned), meanwhile).0
}

/// A person's edit of one field, as the simulator's store takes it (sys_mod_count + 1).
fn edit_by_hand(sims: &Sims, sys_id: &str, field: &str, value: &str) {
    let mut edit = serde_json::Map::new();
    edit.insert(field.to_owned(), json!(value));
    assert!(sims.servicenow().update_row(TABLE, sys_id, edit));
}

fn outcome_of(planned: &Planned, sys_id: &str) -> Value {
    outcome_file(planned)["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["sys_id"] == sys_id)
        .cloned()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ci_edited_during_the_apply_before_its_chunk_is_skipped_as_stale() {
    let sims = sims(400).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = singles(&sims, dir.path());
    let planned = plan(&config, &dir.path().join("1")).await;
    let updates = update_fields(&planned);
    let order: Vec<&String> = planned
        .plan
        .updates
        .iter()
        .filter(|u| u.has_writes())
        .map(|u| &u.sys_id)
        .collect();
    // One write at a time, checked in chunks of two: the first update is written while
    // the last one is not checked yet.
    config.apply.concurrency = 1;
    config.apply.chunk = 2;
    let (first, last) = (order[0], order[order.len() - 1]);
    let (field, _) = &updates[last][0];
    sims.set_faults(
        Api::ServiceNow,
        faults(
            json!([{"kind": "latency", "latency_ms": 2000, "method": "PATCH",
                       "path": format!("/api/now/table/{TABLE}/{first}")}]),
        ),
    );
    let status = apply_with_an_edit_meanwhile(&sims, &config, &planned, || {
        edit_by_hand(&sims, last, field, "set by hand during the apply")
    })
    .await;

    assert_eq!(
        status,
        Status::Clean,
        "a stale CI is skipped, not a failure"
    );
    assert_eq!(
        row(&sims, last)[field.as_str()],
        "set by hand during the apply",
        "the person's edit stands"
    );
    let o = outcome_of(&planned, last);
    assert_eq!(o["status"], "skipped_stale", "{o}");
    assert_eq!(outcome_of(&planned, first)["status"], "applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_between_the_check_and_the_write_is_reported_as_overwritten() {
    let sims = sims(400).await;
    let dir = tempfile::tempdir().unwrap();
    let config = singles(&sims, dir.path());
    let planned = plan(&config, &dir.path().join("1")).await;
    let updates = update_fields(&planned);
    let (victim, fields) = updates.iter().next().unwrap();
    let (field, desired) = &fields[0];
    // The victim's PATCH is held on its way in: checked, then edited, then written.
    sims.set_faults(
        Api::ServiceNow,
        faults(
            json!([{"kind": "latency", "latency_ms": 2000, "method": "PATCH",
                       "path": format!("/api/now/table/{TABLE}/{victim}")}]),
        ),
    );
    let status = apply_with_an_edit_meanwhile(&sims, &config, &planned, || {
        edit_by_hand(&sims, victim, field, "set by hand during the apply")
    })
    .await;

    assert_eq!(status, Status::Partial, "someone must look at the CI");
    assert_eq!(row(&sims, victim)[field.as_str()], desired.as_str());
    let o = outcome_of(&planned, victim);
    assert_eq!(o["status"], "overwrote_concurrent_edit", "{o}");
    assert!(
        o["message"].as_str().unwrap().contains("sys_mod_count"),
        "{o}"
    );
    let outcome = outcome_file(&planned);
    assert_eq!(outcome["overwrote_concurrent_edit"], 1);
    // Every report says so.
    let dir = &planned.dir;
    let csv = std::fs::read_to_string(dir.join("drift.csv")).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.contains(victim.as_str()) && l.contains("overwrote_concurrent_edit")),
        "{csv}"
    );
    for file in ["drift.md", "drift.html"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(text.contains("Overwrote a concurrent edit"), "{file}");
    }
}

/// How many CIs carry each planned create's identity (case and spaces aside, as identification
/// compares).
fn copies_of_each_create(sims: &Sims, planned: &Planned) -> Vec<usize> {
    let rows = sims.servicenow().rows(TABLE);
    let norm = |v: &str| v.trim().to_lowercase();
    planned
        .plan
        .creates
        .iter()
        .map(|c| {
            rows.iter()
                .filter(|row| {
                    c.identity.iter().all(|f| {
                        row.get(&f.field).and_then(Value::as_str).map(norm) == Some(norm(&f.value))
                    })
                })
                .count()
        })
        .collect()
}

/// Batch API requests the simulator received.
fn batches(sims: &Sims) -> u64 {
    sims.stats(Api::ServiceNow)["by_route"]["POST /api/now/v1/batch"]["total"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_creates_whose_answer_was_lost_is_looked_up_and_not_sent_again() {
    let sims = sims(400).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&sims, dir.path());
    // One batch at a time, so that every unit is a full batch of five (a chunk too small
    // for every slot is spread thinner).
    config.apply.batch_size = 5;
    config.apply.concurrency = 1;
    let planned = plan(&config, &dir.path().join("1")).await;
    let creates = planned.plan.creates.len();
    assert!(creates >= 2, "{creates}");
    assert!(copies_of_each_create(&sims, &planned)
        .iter()
        .all(|n| *n == 0));
    // Every batch is carried out, and every answer lost on the way back.
    sims.set_faults(
        Api::ServiceNow,
        faults(json!([{"kind": "drop_response", "method": "POST", "path": "/api/now/v1/batch"}])),
    );
    sims.reset_stats(Api::ServiceNow);
    assert_eq!(apply(&config, &planned).await, Status::Clean);

    assert!(
        copies_of_each_create(&sims, &planned)
            .iter()
            .all(|n| *n == 1),
        "every create exactly once: {:?}",
        copies_of_each_create(&sims, &planned)
    );
    let outcome = outcome_file(&planned);
    let created: Vec<&Value> = outcome["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["message"].as_str().unwrap().contains("found by identity"))
        // The CIs' creates; relationship rows created after them are found the same way.
        .filter(|o| {
            !o["source_id"]
                .as_str()
                .is_some_and(|s| s.starts_with("relationship "))
        })
        .collect();
    assert_eq!(created.len(), creates, "{outcome}");
    assert!(created
        .iter()
        .all(|o| o["status"] == "applied" && o["sys_id"].is_string()));
    // Nothing sent twice: one request per unit of at most five writes (a unit of one goes as
    // a single write), each sent once.
    // The CIs' creates, their other writes, then the relationship rows: each in units of its own.
    let rels = planned.plan.relationships.len();
    let others = planned_writes(&planned) - creates - rels;
    let groups = [creates, others, rels];
    let units: usize = groups.iter().map(|n| n.div_ceil(5)).sum();
    let singles = groups.iter().filter(|n| *n % 5 == 1).count();
    assert_eq!(batches(&sims) as usize, units - singles);
    assert_eq!(writes(&sims) as usize, units);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_creates_that_did_not_run_is_looked_up_then_sent_again_once() {
    let sims = sims(400).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&sims, dir.path());
    config.apply.batch_size = 50;
    config.apply.concurrency = 1;
    let planned = plan(&config, &dir.path().join("1")).await;
    let creates = planned.plan.creates.len();
    assert!(creates >= 2, "{creates}");
    // A gateway answers 502 to the first batch (the creates) before the instance saw it:
    // whether it ran cannot be known from the answer, so the creates are looked up first.
    sims.set_faults(
        Api::ServiceNow,
        faults(json!([{"kind": "error", "status": 502, "method": "POST",
                       "path": "/api/now/v1/batch", "times": 1}])),
    );
    sims.reset_stats(Api::ServiceNow);
    assert_eq!(apply(&config, &planned).await, Status::Clean);

    assert!(
        copies_of_each_create(&sims, &planned)
            .iter()
            .all(|n| *n == 1),
        "{:?}",
        copies_of_each_create(&sims, &planned)
    );
    let counts = statuses(&outcome_file(&planned));
    assert_eq!(
        counts.get("applied"),
        Some(&planned_writes(&planned)),
        "{counts:?}"
    );
    // The lookup after the 502: one IN read on the identity's first field, beside the check
    // before the batch.
    let stats = sims.stats(Api::ServiceNow);
    assert_eq!(stats["by_status"]["502"], 1);
    let sent_once = creates.div_ceil(50) + (planned_writes(&planned) - creates).div_ceil(50);
    assert_eq!(
        batches(&sims) as usize,
        sent_once + 1,
        "the creates' batch sent again once"
    );
}
