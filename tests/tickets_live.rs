//! Provisioning tickets over HTTP (issue 12): the binary's `run` with the shipped
//! `mappings/provision-incident.toml` against the simulators. Requests advance between runs
//! and their incidents follow (AMBER, then GREEN and closed or RED and open), a second run
//! writes nothing, a run killed with SIGKILL mid-apply leaves no duplicate ticket behind, and
//! the ticket sync runs beside the VM sync in one config.
//!
//! The binary reads the wall clock, and the ticket sync reads only requests updated within
//! 30 days of it, so the simulators generate their estate at the real `now` too.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures, write files and read the clock"
)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use cmdb_sim::faults::{FaultConfig, FaultRule};
use cmdb_sim::{Api, SimOptions, Sims};
use common::{bin, connections, field, rows_of, text};
use serde_json::{json, Map, Value};

async fn sims(vms: usize) -> Sims {
    Sims::start(SimOptions {
        vms,
        drift: 0.0,
        seed: 12,
        now: chrono::Utc::now(),
        ..Default::default()
    })
    .await
    .expect("simulators start")
}

/// A config in `dir` with these shipped mappings as syncs, in order.
fn config(dir: &Path, sims: &Sims, mappings: &[(&str, &str)], extra: &str) -> PathBuf {
    let mut syncs = String::new();
    for (name, text) in mappings {
        std::fs::write(dir.join(name), text).unwrap();
        syncs.push_str(&format!("[[sync]]\nmapping = \"{name}\"\n"));
    }
    let path = dir.join("cmdb-reconcile.toml");
    std::fs::write(
        &path,
        format!("{}{extra}\n{syncs}", connections(sims, "30s")),
    )
    .unwrap();
    path
}

const TICKETS: (&str, &str) = (
    "provision-incident.toml",
    include_str!("../mappings/provision-incident.toml"),
);

fn run(dir: &Path, sims: &Sims, config: &Path, args: &[&str]) -> Output {
    tokio::task::block_in_place(|| {
        bin(dir, sims)
            .args(["run", "--config"])
            .arg(config)
            .args(args)
            .output()
            .unwrap()
    })
}

/// A ticket's work notes: an instance keeps them in `sys_journal_field` (the row's
/// `work_notes` reads back empty).
fn notes(sims: &Sims, ticket: &Map<String, Value>) -> Vec<String> {
    sims.servicenow()
        .rows("sys_journal_field")
        .into_iter()
        .filter(|r| {
            field(r, "element_id") == field(ticket, "sys_id") && field(r, "element") == "work_notes"
        })
        .map(|r| field(&r, "value").to_owned())
        .collect()
}

/// The job's tickets by request id.
fn tickets(sims: &Sims) -> BTreeMap<String, Vec<Map<String, Value>>> {
    let mut out: BTreeMap<String, Vec<Map<String, Value>>> = BTreeMap::new();
    for row in sims.servicenow().rows("incident") {
        if let Some(id) = field(&row, "correlation_id").strip_prefix("cloudforms:request:") {
            out.entry(id.to_owned()).or_default().push(row.clone());
        }
    }
    out
}

/// A ticket's colour as operations reads it: closed is GREEN, open with raised urgency RED,
/// any other open ticket AMBER.
fn colour(row: &Map<String, Value>) -> &'static str {
    match (field(row, "state"), field(row, "urgency")) {
        ("7", _) => "green",
        (_, "1" | "2") => "red",
        _ => "amber",
    }
}

/// What colour a request's ticket must have: from the request as CloudForms serves it.
fn expected(request: &Value) -> &'static str {
    let s = |f: &str| request.get(f).and_then(Value::as_str).unwrap_or("");
    match (s("request_state"), s("status")) {
        ("finished", "Ok") => "green",
        ("finished", _) => "red",
        _ => "amber",
    }
}

/// How many provisioning requests were updated within the sync's 30 days.
async fn in_window(sims: &Sims) -> usize {
    let since = chrono::Utc::now() - chrono::TimeDelta::days(30);
    requests(sims)
        .await
        .values()
        .filter(|r| {
            r["updated_on"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t > since)
        })
        .count()
}

/// The provisioning requests CloudForms serves, by id.
async fn requests(sims: &Sims) -> BTreeMap<String, Value> {
    let o = sims.options();
    let url = format!(
        "{}/api/requests?expand=resources&attributes=request_state,status,request_type,updated_on",
        sims.manageiq_url()
    );
    let body: Value = reqwest::Client::new()
        .get(url)
        .basic_auth(&o.miq_user, Some(&o.miq_password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r.clone()))
        .collect()
}

/// What the job writes: the incident table, its journal entries and the VM CIs. (The run's lease claim is written
/// and deleted on every run, so request counts would not tell.)
fn written(sims: &Sims) -> Vec<Vec<Map<String, Value>>> {
    rows_of(
        sims,
        &["incident", "sys_journal_field", "cmdb_ci_vmware_instance"],
    )
}

/// Every in-window request has exactly one ticket, of the colour its state and status say.
async fn assert_tickets_follow(sims: &Sims) -> BTreeMap<&'static str, usize> {
    let requests = requests(sims).await;
    let tickets = tickets(sims);
    let mut colours: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (id, ticket) in &tickets {
        assert_eq!(ticket.len(), 1, "request {id}: one ticket, not {ticket:?}");
        let request = requests.get(id).expect("a ticket of a served request");
        assert_eq!(
            colour(&ticket[0]),
            expected(request),
            "request {id} {request} -> ticket {:?}",
            ticket[0]
        );
        *colours.entry(colour(&ticket[0])).or_default() += 1;
    }
    colours
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_follow_their_requests_amber_to_green_or_red_and_converge() {
    let sims = sims(40).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &sims, &[TICKETS], "");

    let out = run(dir.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let first = assert_tickets_follow(&sims).await;
    // The generated requests of the last 30 days: running ones and failures (its successes
    // are older, outside the window).
    assert!(
        first.get("amber") >= Some(&3) && first.get("red") >= Some(&3),
        "{first:?}"
    );
    for ticket in tickets(&sims).values().flatten() {
        assert!(
            !field(ticket, "caller_id").is_empty(),
            "requester resolved: {ticket:?}"
        );
        assert_eq!(field(ticket, "correlation_display"), "CloudForms");
        assert_eq!(
            notes(&sims, ticket).len(),
            1,
            "one note on create: {ticket:?}"
        );
    }

    // A second run writes nothing: no field changed, so no work note either.
    let before = written(&sims);
    let out = run(dir.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(written(&sims) == before, "a second run writes nothing");

    // The requests move on, step by step, until none is left running; each run follows.
    let amber_before: Vec<String> = tickets(&sims)
        .into_iter()
        .filter(|(_, t)| colour(&t[0]) == "amber")
        .map(|(id, _)| id)
        .collect();
    for _ in 0..3 {
        sims.manageiq().advance_requests();
        let out = run(dir.path(), &sims, &config, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_tickets_follow(&sims).await;
    }
    let after = tickets(&sims);
    let green = after
        .values()
        .flatten()
        .find(|t| colour(t) == "green")
        .expect("a request that finished Ok");
    assert_eq!(field(green, "close_code"), "Solution provided");
    assert!(
        field(green, "close_notes").starts_with("CloudForms: "),
        "{green:?}"
    );
    for id in &amber_before {
        let ticket = &after[id][0];
        assert_ne!(colour(ticket), "amber", "request {id} finished: {ticket:?}");
        if colour(ticket) == "red" {
            assert_ne!(field(ticket, "state"), "7", "RED stays open: {ticket:?}");
            let notes = notes(&sims, ticket);
            assert!(
                notes.iter().any(|n| n.contains("finished")),
                "a note says how it ended: {notes:?}"
            );
        }
    }
    let before = written(&sims);
    let out = run(dir.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(written(&sims) == before, "converged: nothing more to write");

    // A person closes a RED ticket: it is never written again.
    let (id, red) = after
        .iter()
        .find(|(_, t)| colour(&t[0]) == "red")
        .map(|(id, t)| (id.clone(), t[0].clone()))
        .unwrap();
    let mut close = Map::new();
    close.insert("state".into(), json!("7"));
    close.insert("urgency".into(), json!("3"));
    sims.servicenow()
        .update_row("incident", field(&red, "sys_id"), close);
    let before = written(&sims);
    let out = run(dir.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        written(&sims) == before,
        "the closed ticket of {id} is not rewritten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_apply_leaves_no_duplicate_ticket() {
    let sims = sims(20).await;
    for fate in ["Ok", "Error", "Warn", "Ok", "Timeout", "Ok"] {
        for i in 0..2 {
            let id = sims
                .manageiq()
                .add_request(cmdb_sim::generator::requests::NewRequest {
                    vm_name: format!("kill-{fate}-{i}").to_lowercase(),
                    fate: cmdb_sim::generator::requests::Fate::parse(fate).unwrap(),
                    userid: None,
                    kind: cmdb_sim::generator::requests::RequestKind::Provision,
                    template_id: None,
                });
            id.unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    // One create per request (`batch_size = 0`), each slow: the run is killed with some made
    // and the rest not.
    let config = config(
        dir.path(),
        &sims,
        &[TICKETS],
        "[apply]\nconcurrency = 1\nbatch_size = 0\n",
    );
    let slow = FaultRule {
        method: Some("POST".into()),
        path: "/api/now/table/incident".into(),
        latency_ms: 300,
        ..FaultRule::new(cmdb_sim::faults::FaultKind::Latency)
    };
    sims.set_faults(
        Api::ServiceNow,
        FaultConfig {
            seed: 1,
            rules: vec![slow],
        },
    );
    let mut child = bin(dir.path(), &sims)
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while tickets(&sims).len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run made no tickets"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL: no clean-up, a create possibly in flight.
    child.kill().unwrap();
    child.wait().unwrap();
    let made = tickets(&sims).len();
    let total = in_window(&sims).await;
    assert!(made < total, "killed mid-apply: {made} of {total}");

    sims.set_faults(Api::ServiceNow, FaultConfig::default());
    // The killed run's lease claim is never released: the next run breaks it, as an
    // operator does for a holder known to be dead.
    let out = run(dir.path(), &sims, &config, &["--force-unlock"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_tickets_follow(&sims).await;
    assert_eq!(tickets(&sims).len(), total, "one ticket per request");
    let before = written(&sims);
    let out = run(dir.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(written(&sims) == before, "and nothing more to write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ticket_sync_runs_beside_the_vm_sync() {
    let sims = sims(60).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &sims,
        &[
            ("vmware-vm.toml", include_str!("../mappings/vmware-vm.toml")),
            TICKETS,
        ],
        "",
    );
    let out = run(dir.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!tickets(&sims).is_empty());
    // Requests finish, their VMs appear in CloudForms: the next run makes their CIs and
    // turns their tickets GREEN or RED.
    sims.manageiq().advance_requests();
    sims.manageiq().advance_requests();
    sims.manageiq().advance_requests();
    let out = run(dir.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_tickets_follow(&sims).await;
    let before = written(&sims);
    let out = run(dir.path(), &sims, &config, &["--summary"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        written(&sims) == before,
        "both syncs converge: {}",
        text(&out)
    );
}
