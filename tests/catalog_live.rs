//! The service catalog over HTTP (issue 13): the binary's `catalog` (and `run`) with the
//! shipped catalog links and `mappings/ritm-status.toml` against the simulators. A user
//! orders with `order_now`; the pass claims the requested item (RITM), orders the CloudForms
//! template exactly once, approves the request and writes CloudForms' progress back until the
//! RITM closes: Closed Complete with the VM names (GREEN), or Closed Incomplete with
//! CloudForms' message (RED). A pass killed between its claim and its order (or between its
//! order and its write-back) and run again orders once; two passes at once order once; a RITM
//! of an item that is not linked is never touched; a dry run reports the orders in every
//! format and `apply` of that plan orders exactly them.
//!
//! The binary reads the wall clock, and the write-back reads only requests updated within
//! 30 days of it, so the simulators generate their estate at the real `now` too.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures, write files and read the clock"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cmdb_sim::faults::{FaultConfig, FaultKind, FaultRule};
use cmdb_sim::{Api, SimOptions, Sims};
use common::{bin, connections, field, rows_of, text};
use serde_json::{json, Map, Value};

async fn sims() -> Sims {
    Sims::start(SimOptions {
        vms: 30,
        drift: 0.0,
        seed: 13,
        now: chrono::Utc::now(),
        ..Default::default()
    })
    .await
    .expect("simulators start")
}

/// A config in `dir` with the shipped catalog links and status mapping; `extra` goes into
/// `[catalog]`.
fn config(dir: &Path, sims: &Sims, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("catalog")).unwrap();
    for (name, text) in [
        (
            "catalog/linux-vm.toml",
            include_str!("../mappings/catalog/linux-vm.toml"),
        ),
        (
            "catalog/failing-vm.toml",
            include_str!("../mappings/catalog/failing-vm.toml"),
        ),
        (
            "ritm-status.toml",
            include_str!("../mappings/ritm-status.toml"),
        ),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let path = dir.join("cmdb-reconcile.toml");
    std::fs::write(
        &path,
        format!(
            "{}[catalog]\nlinks = [\"catalog/linux-vm.toml\", \"catalog/failing-vm.toml\"]\nstatus = \"ritm-status.toml\"\nsettle = \"1s\"\n{extra}\n",
            connections(sims, "60s")
        ),
    )
    .unwrap();
    path
}

/// `cmdb-reconcile COMMAND --config CONFIG ARGS...`, to its end.
fn job(command: &str, dir: &Path, sims: &Sims, config: &Path, args: &[&str]) -> Output {
    tokio::task::block_in_place(|| {
        bin(dir, sims)
            .args([command, "--config"])
            .arg(config)
            .args(args)
            .output()
            .unwrap()
    })
}

fn catalog(dir: &Path, sims: &Sims, config: &Path, args: &[&str]) -> Output {
    job("catalog", dir, sims, config, args)
}

/// The simulators, a temporary folder and a catalog config in it (`extra` appended to its
/// `[catalog]`), with the VM sync too when `with_vm_sync`.
async fn setup(extra: &str, with_vm_sync: bool) -> (Sims, tempfile::TempDir, PathBuf) {
    let sims = sims().await;
    let dir = tempfile::tempdir().unwrap();
    let config = if with_vm_sync {
        config_with_vm_sync(dir.path(), &sims, extra)
    } else {
        config(dir.path(), &sims, extra)
    };
    (sims, dir, config)
}

/// A RITM's number.
fn number_of(sims: &Sims, sys_id: &str) -> String {
    field(&ritm(sims, sys_id), "number").to_owned()
}

/// Kills a pass (as kill -9 would) and reaps it.
fn kill(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A catalog config that also syncs the VMs: `run` does the sync, then the catalog pass.
fn config_with_vm_sync(dir: &Path, sims: &Sims, extra: &str) -> PathBuf {
    let config = config(dir, sims, extra);
    std::fs::write(
        dir.join("vmware-vm.toml"),
        include_str!("../mappings/vmware-vm.toml"),
    )
    .unwrap();
    let text_of = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text_of}\n[[sync]]\nmapping = \"vmware-vm.toml\"\n"),
    )
    .unwrap();
    config
}

fn run(dir: &Path, sims: &Sims, config: &Path, args: &[&str]) -> Output {
    job("run", dir, sims, config, args)
}

fn spawn(dir: &Path, sims: &Sims, config: &Path, args: &[&str]) -> Child {
    bin(dir, sims)
        .args(["catalog", "--config"])
        .arg(config)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Orders `item` in the ServiceNow catalog as a user does (`order_now`); the RITM's sys_id.
async fn order_now(sims: &Sims, item: &str, vm_name: &str) -> String {
    order_with(sims, item, json!({"vm_name": vm_name})).await
}

/// [`order_now`] with these `variables`.
async fn order_with(sims: &Sims, item: &str, variables: Value) -> String {
    let o = sims.options();
    let item_id = sims
        .servicenow()
        .rows("sc_cat_item")
        .into_iter()
        .find(|r| field(r, "name") == item)
        .map(|r| field(&r, "sys_id").to_owned())
        .expect("the catalog item");
    let body: Value = reqwest::Client::new()
        .post(format!(
            "{}/api/sn_sc/servicecatalog/items/{item_id}/order_now",
            sims.servicenow_url()
        ))
        .basic_auth(&o.snow_user, Some(&o.snow_password))
        .json(&json!({"sysparm_quantity": 1, "variables": variables}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let request = body["result"]["sys_id"].as_str().expect("a REQ").to_owned();
    sims.servicenow()
        .rows("sc_req_item")
        .into_iter()
        .find(|r| field(r, "request") == request)
        .map(|r| field(&r, "sys_id").to_owned())
        .expect("its RITM")
}

fn ritm(sims: &Sims, sys_id: &str) -> Map<String, Value> {
    sims.servicenow()
        .rows("sc_req_item")
        .into_iter()
        .find(|r| field(r, "sys_id") == sys_id)
        .expect("the RITM")
}

/// A RITM's work notes, oldest first.
fn notes(sims: &Sims, sys_id: &str) -> Vec<String> {
    sims.servicenow()
        .rows("sys_journal_field")
        .into_iter()
        .filter(|r| field(r, "element_id") == sys_id && field(r, "element") == "work_notes")
        .map(|r| field(&r, "value").to_owned())
        .collect()
}

/// The RITM's colour as the service desk reads it: Closed Complete GREEN, Closed
/// Incomplete RED, open AMBER.
fn colour(row: &Map<String, Value>) -> &'static str {
    match field(row, "state") {
        "3" => "green",
        "4" => "red",
        _ => "amber",
    }
}

/// A GET of the simulated CloudForms API (`path` with its query), as JSON.
async fn miq_get(sims: &Sims, path: &str) -> Value {
    let o = sims.options();
    reqwest::Client::new()
        .get(format!("{}{path}", sims.manageiq_url()))
        .basic_auth(&o.miq_user, Some(&o.miq_password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// CloudForms' service requests whose dialog carries `number`.
async fn requests_for(sims: &Sims, number: &str) -> Vec<Value> {
    let body = miq_get(
        sims,
        "/api/service_requests?expand=resources&attributes=options,approval_state,request_state,status,miq_request_tasks",
    )
    .await;
    body["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.pointer("/options/dialog/dialog_ritm_number") == Some(&json!(number)))
        .collect()
}

/// What the job writes in ServiceNow: the RITMs and their journal.
fn written(sims: &Sims) -> Vec<Vec<Map<String, Value>>> {
    rows_of(sims, &["sc_req_item", "sys_journal_field"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_becomes_one_request_and_its_ritm_goes_amber_then_green_with_the_vm() {
    let (sims, dir, config) = setup("", false).await;
    let id = order_now(&sims, "Linux VM", " Web-Cat-01 ").await;
    let number = number_of(&sims, &id);

    let out = catalog(dir.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let requests = requests_for(&sims, &number).await;
    assert_eq!(requests.len(), 1, "one order: {requests:?}");
    let request = &requests[0];
    let request_id = request["id"].as_str().unwrap().to_owned();
    assert_eq!(
        request["options"]["dialog"],
        json!({"dialog_vm_name": "web-cat-01", "dialog_ritm_number": number}),
        "the variable through the link's transforms, and the RITM number"
    );
    assert_eq!(request["approval_state"], "approved", "the job approved it");
    let row = ritm(&sims, &id);
    assert_eq!(
        field(&row, "correlation_id"),
        format!("cloudforms:request:{request_id}")
    );
    assert_eq!(field(&row, "correlation_display"), "CloudForms");
    assert_eq!(field(&row, "state"), "2", "Work in Progress");
    assert_eq!(colour(&row), "amber");
    let first = notes(&sims, &id);
    assert!(
        first.iter().any(|n| n.contains("claims"))
            && first
                .iter()
                .any(|n| n.contains(&format!("request {request_id}"))),
        "{first:?}"
    );

    // CloudForms works; each pass writes a note per transition, never a second order.
    let mut seen = vec![colour(&ritm(&sims, &id))];
    for _ in 0..6 {
        sims.manageiq().advance_requests();
        let out = catalog(dir.path(), &sims, &config, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        seen.push(colour(&ritm(&sims, &id)));
        if colour(&ritm(&sims, &id)) != "amber" {
            break;
        }
    }
    assert_eq!(seen.first(), Some(&"amber"));
    assert_eq!(seen.last(), Some(&"green"), "{seen:?}");
    assert_eq!(
        requests_for(&sims, &number).await.len(),
        1,
        "still one order"
    );
    let row = ritm(&sims, &id);
    assert_eq!(field(&row, "active"), "false", "closed: {row:?}");
    assert!(
        field(&row, "close_notes").contains("web-cat-01"),
        "the VM provisioned: {row:?}"
    );
    let all = notes(&sims, &id);
    assert!(
        all.iter()
            .any(|n| n.contains("is finished (Ok)") && n.contains("web-cat-01")),
        "{all:?}"
    );
    // The VM is CloudForms' now (the CMDB sync picks it up).
    let vms = miq_get(
        &sims,
        "/api/vms?expand=resources&attributes=name&filter[]=name=web-cat-01",
    )
    .await;
    assert_eq!(vms["subcount"], 1, "{vms}");

    // Converged: another pass writes nothing.
    let before = written(&sims);
    let out = catalog(dir.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        written(&sims) == before,
        "a pass after the close writes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_template_ends_red_with_cloudforms_message() {
    let (sims, dir, config) = setup("", false).await;
    let id = order_now(&sims, "Failing VM", "doomed-01").await;
    for _ in 0..6 {
        let out = catalog(dir.path(), &sims, &config, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        if colour(&ritm(&sims, &id)) != "amber" {
            break;
        }
        sims.manageiq().advance_requests();
    }
    let row = ritm(&sims, &id);
    assert_eq!(colour(&row), "red", "{row:?}");
    assert_eq!(field(&row, "state"), "4", "Closed Incomplete");
    assert!(
        field(&row, "close_notes").contains("finished Error"),
        "CloudForms' status and message: {row:?}"
    );
    let number = field(&row, "number");
    assert_eq!(requests_for(&sims, number).await.len(), 1);
}

/// Waits (up to a minute) for `done`, checking every 20 ms.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(60), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn slow(path: &str) -> FaultConfig {
    FaultConfig {
        seed: 1,
        rules: vec![FaultRule {
            method: Some("POST".into()),
            path: path.into(),
            latency_ms: 60_000,
            ..FaultRule::new(FaultKind::Latency)
        }],
    }
}

/// How many requests the simulator answered on a route whose template contains `part`.
fn answered(sims: &Sims, api: Api, part: &str) -> u64 {
    sims.stats(api)["by_route"]
        .as_object()
        .map(|routes| {
            routes
                .iter()
                .filter(|(route, _)| route.contains(part))
                .map(|(_, c)| c["total"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_killed_between_claim_and_order_then_run_again_orders_once() {
    // The next pass resumes the dead pass's claim at once (by default only once the claim is
    // as old as the lease's ttl, when the dead pass's lease claim would have expired too).
    let (sims, dir, config) = setup("claim_timeout = \"0s\"\n", false).await;
    let id = order_now(&sims, "Linux VM", "kill-before-order").await;
    let number = number_of(&sims, &id);
    // The order hangs in CloudForms: the pass is killed after its claim and its search,
    // with the order not yet placed.
    sims.set_faults(Api::ManageIq, slow("/api/service_templates"));
    sims.reset_stats(Api::ManageIq);
    let mut child = spawn(dir.path(), &sims, &config, &[]);
    wait_for("the pass claims, then searches CloudForms", || {
        field(&ritm(&sims, &id), "correlation_id").starts_with("cloudforms:claim:")
            && answered(&sims, Api::ManageIq, "GET /api/service_requests") > 0
    })
    .await;
    kill(&mut child);
    assert!(
        requests_for(&sims, &number).await.is_empty(),
        "not ordered yet"
    );

    sims.set_faults(Api::ManageIq, FaultConfig::default());
    // The killed pass's lease claim is never released: the next breaks it, as an operator
    // does for a holder known to be dead.
    let out = catalog(dir.path(), &sims, &config, &["--force-unlock"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(requests_for(&sims, &number).await.len(), 1, "ordered once");
    assert!(field(&ritm(&sims, &id), "correlation_id").starts_with("cloudforms:request:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_killed_between_order_and_write_back_is_resumed_not_ordered_again() {
    let (sims, dir, config) = setup("", false).await;
    let id = order_now(&sims, "Linux VM", "kill-after-order").await;
    let number = number_of(&sims, &id);
    // The approval (after the order) hangs: the pass is killed with the order placed and
    // the RITM still carrying only its claim.
    sims.set_faults(Api::ManageIq, slow("/api/service_requests/"));
    let mut child = spawn(dir.path(), &sims, &config, &[]);
    let started = Instant::now();
    while requests_for(&sims, &number).await.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "never ordered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill(&mut child);
    assert!(field(&ritm(&sims, &id), "correlation_id").starts_with("cloudforms:claim:"));

    sims.set_faults(Api::ManageIq, FaultConfig::default());
    let out = catalog(dir.path(), &sims, &config, &["--force-unlock"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let requests = requests_for(&sims, &number).await;
    assert_eq!(
        requests.len(),
        1,
        "resumed, not ordered again: {requests:?}"
    );
    assert_eq!(requests[0]["approval_state"], "approved");
    let row = ritm(&sims, &id);
    assert_eq!(
        field(&row, "correlation_id"),
        format!("cloudforms:request:{}", requests[0]["id"].as_str().unwrap())
    );
    let report = std::fs::read_to_string(
        std::fs::read_dir(dir.path().join("reports"))
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path().join("catalog/drift.md"))
            .filter(|p| p.exists())
            .max()
            .unwrap(),
    )
    .unwrap();
    assert!(report.contains("| resume |"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_passes_at_once_order_once() {
    let sims = sims().await;
    let dir = tempfile::tempdir().unwrap();
    let id = order_now(&sims, "Linux VM", "twice-01").await;
    let number = number_of(&sims, &id);
    // With the lease: one pass, the other busy (or finding nothing left to do).
    let shared = config(dir.path(), &sims, "");
    let a = spawn(dir.path(), &sims, &shared, &[]);
    let b = spawn(dir.path(), &sims, &shared, &[]);
    let (a, b) = tokio::task::block_in_place(|| {
        (a.wait_with_output().unwrap(), b.wait_with_output().unwrap())
    });
    for out in [&a, &b] {
        assert!(
            matches!(out.status.code(), Some(0 | 5)),
            "done or busy: {}",
            text(out)
        );
    }
    assert_eq!(requests_for(&sims, &number).await.len(), 1);

    // Without it (two leases of different names, as two hosts with the lease misconfigured
    // would be): the claim, its read-back and the search still order once.
    let id = order_now(&sims, "Linux VM", "twice-02").await;
    let number = number_of(&sims, &id);
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    let c1 = config(one.path(), &sims, "lease_name = \"catalog-one\"\n");
    let c2 = config(two.path(), &sims, "lease_name = \"catalog-two\"\n");
    let a = spawn(one.path(), &sims, &c1, &[]);
    let b = spawn(two.path(), &sims, &c2, &[]);
    let (a, b) = tokio::task::block_in_place(|| {
        (a.wait_with_output().unwrap(), b.wait_with_output().unwrap())
    });
    for out in [&a, &b] {
        assert_eq!(out.status.code(), Some(0), "{}", text(out));
    }
    assert_eq!(
        requests_for(&sims, &number).await.len(),
        1,
        "{}\n{}",
        text(&a),
        text(&b)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ritm_of_an_item_that_is_not_linked_is_never_touched() {
    let (sims, dir, config) = setup("", false).await;
    // An item no link names, approved on order like the linked ones.
    let o = sims.options();
    let created = reqwest::Client::new()
        .post(format!(
            "{}/api/now/table/sc_cat_item",
            sims.servicenow_url()
        ))
        .basic_auth(&o.snow_user, Some(&o.snow_password))
        .json(&json!({"name": "Unlinked VM", "u_sim_approval": "approved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let id = order_now(&sims, "Unlinked VM", "not-mine").await;
    let before = ritm(&sims, &id);
    let out = catalog(dir.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(ritm(&sims, &id), before, "untouched");
    assert!(notes(&sims, &id).is_empty());
    assert!(requests_for(&sims, field(&before, "number"))
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_the_orders_and_apply_orders_exactly_them() {
    let (sims, dir, config) = setup("", false).await;
    let id = order_now(&sims, "Linux VM", "reviewed-01").await;
    let number = number_of(&sims, &id);
    let before = written(&sims);
    let out = catalog(dir.path(), &sims, &config, &["--dry-run", "--summary"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(written(&sims) == before, "a dry run writes nothing");
    assert!(requests_for(&sims, &number).await.is_empty());
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("order"), "{summary}");
    let run = std::fs::read_dir(dir.path().join("reports"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.join("catalog").exists())
        .expect("the run folder");
    let read = |f: &str| std::fs::read_to_string(run.join("catalog").join(f)).unwrap();
    let plan: Value = serde_json::from_str(&read("plan.json")).unwrap();
    assert_eq!(plan["orders"][0]["ritm_number"], number.as_str());
    assert_eq!(plan["orders"][0]["action"], "order");
    assert!(read("drift.csv").contains(&format!("order,{number},")));
    assert!(read("drift.md").contains("## Orders") && read("drift.md").contains(&number));
    assert!(read("drift.html").contains("id=\"orders\"") && read("drift.html").contains(&number));
    // The header counts CloudForms' requests searched, not CIs.
    for f in ["drift.md", "drift.html"] {
        assert!(
            read(f).contains("requests searched, 0 carry a RITM number"),
            "{f}: {}",
            read(f)
        );
        assert!(!read(f).contains(" CIs, "), "{f}: {}", read(f));
    }

    let out = tokio::task::block_in_place(|| {
        bin(dir.path(), &sims)
            .args(["apply", "--config"])
            .arg(&config)
            .arg("--plan")
            .arg(run.join("catalog/plan.json"))
            .output()
            .unwrap()
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(requests_for(&sims, &number).await.len(), 1);
    let outcome: Value = serde_json::from_str(&read("outcome.json")).unwrap();
    assert!(outcome.to_string().contains("applied"), "{outcome}");
    // Applying the reviewed plan again orders nothing more: the RITM is taken.
    let out = tokio::task::block_in_place(|| {
        bin(dir.path(), &sims)
            .args(["apply", "--config"])
            .arg(&config)
            .arg("--plan")
            .arg(run.join("catalog/plan.json"))
            .output()
            .unwrap()
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(requests_for(&sims, &number).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_cloudforms_refuses_marks_the_ritm_and_is_not_retried() {
    let (sims, dir, config) = setup("", false).await;
    // A link that sends no VM name (it reads a variable the user left empty): CloudForms'
    // dialog validation refuses the order (400).
    let link = include_str!("../mappings/catalog/linux-vm.toml").replace(
        "vm_name = { from = \"variables.vm_name\"",
        "vm_name = { from = \"variables.justification\"",
    );
    std::fs::write(dir.path().join("catalog/linux-vm.toml"), link).unwrap();
    let id = order_now(&sims, "Linux VM", "refused-01").await;
    let out = catalog(dir.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(3), "partial: {}", text(&out));
    assert!(text(&out).contains("VM Name is required"), "{}", text(&out));
    let row = ritm(&sims, &id);
    assert_eq!(field(&row, "correlation_id"), "cloudforms:refused");
    assert!(
        notes(&sims, &id).iter().any(
            |n| n.contains("CloudForms refused the order") && n.contains("VM Name is required")
        ),
        "{:?}",
        notes(&sims, &id)
    );
    // Not picked up again until a person clears correlation_id.
    let before = written(&sims);
    let out = catalog(dir.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        written(&sims) == before,
        "the refused RITM is left to a person"
    );
    assert!(requests_for(&sims, field(&row, "number")).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_ends_with_the_catalog_pass_and_skips_it_while_a_catalog_cronjob_holds_it() {
    let (sims, dir, config) = setup("claim_timeout = \"0s\"\n", true).await;
    let run = |args: &[&str]| run(dir.path(), &sims, &config, args);

    // A catalog pass (the CronJob's) hangs on its order, holding the catalog lease.
    let first = order_now(&sims, "Linux VM", "held-01").await;
    sims.set_faults(Api::ManageIq, slow("/api/service_templates"));
    sims.reset_stats(Api::ManageIq);
    let mut held = spawn(dir.path(), &sims, &config, &[]);
    wait_for("the catalog pass claims", || {
        field(&ritm(&sims, &first), "correlation_id").starts_with("cloudforms:claim:")
    })
    .await;
    let out = run(&["--summary"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("catalog pass is skipped"),
        "{}",
        text(&out)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ritm-status"));
    kill(&mut held);
    sims.set_faults(Api::ManageIq, FaultConfig::default());

    // With the lease free, `run` does the syncs and then the catalog pass: the claim the
    // killed pass left is resumed and ordered once.
    let out = run(&["--summary", "--force-unlock"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("vmware-vm")
            && stdout.contains("catalog")
            && stdout.contains("ritm-status"),
        "{stdout}"
    );
    let number = number_of(&sims, &first);
    assert_eq!(requests_for(&sims, &number).await.len(), 1);
}

#[test]
fn check_validates_catalog_links_beside_mappings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad-link.toml");
    std::fs::write(
        &bad,
        "[item]\nname = \"Linux VM\"\n[template]\nname = \"Linux VM\"\n[dialog]\nritm_number = \"number\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cmdb-reconcile"))
        .args(["--log-format", "text", "check", "--mapping"])
        .arg(root.join("mappings/catalog/linux-vm.toml"))
        .arg("--mapping")
        .arg(root.join("mappings/ritm-status.toml"))
        .arg("--mapping")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("catalog link `linux-vm`: item named `Linux VM` -> service template named `Linux VM` in catalog `Virtual Machines`"),
        "{all}"
    );
    assert!(
        all.contains("ok: ") && all.contains("ritm-status.toml (service_requests -> sc_req_item"),
        "{all}"
    );
    assert!(
        all.contains("bad-link.toml:") && all.contains("the job fills it"),
        "{all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_cloudforms_approval_the_job_leaves_the_request_awaiting_it() {
    let (sims, dir, config) = setup("approve = \"cloudforms\"\n", false).await;
    let id = order_now(&sims, "Linux VM", "await-approval").await;
    let number = number_of(&sims, &id);
    let out = catalog(dir.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let requests = requests_for(&sims, &number).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0]["approval_state"], "pending_approval",
        "CloudForms decides"
    );
    assert!(
        notes(&sims, &id).iter().all(|n| !n.contains("approved it")),
        "{:?}",
        notes(&sims, &id)
    );
    assert_eq!(colour(&ritm(&sims, &id)), "amber");
}

/// A dialog field the link marks `secret` (a password variable) reaches CloudForms, but
/// never the plan, the reports or the log: `(secret)` stands in its place, and `apply` of
/// the reviewed plan reads it from the RITM when it orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_dialog_field_is_sent_but_never_written_to_the_plan_reports_or_log() {
    const PASSWORD: &str = "Hunter2-s3cret-pw";
    let (sims, dir, config) = setup("", false).await;
    let item = sims
        .servicenow()
        .rows("sc_cat_item")
        .into_iter()
        .find(|r| field(r, "name") == "Linux VM")
        .map(|r| field(&r, "sys_id").to_owned())
        .expect("the catalog item");
    // The item asks for a root password (a Masked variable, type 25).
    let Value::Object(variable) = json!({
        "sys_id": "5ec2e7000000000000000000000000aa", "name": "root_password",
        "question_text": "Root password", "type": "25", "cat_item": item,
        "order": "300", "mandatory": "false", "active": "true",
    }) else {
        unreachable!()
    };
    sims.servicenow().seed("item_option_new", vec![variable]);
    let link = format!(
        "{}root_password = {{ from = \"variables.root_password\", secret = true }}\n",
        include_str!("../mappings/catalog/linux-vm.toml")
    );
    std::fs::write(dir.path().join("catalog/linux-vm.toml"), link).unwrap();
    let id = order_with(
        &sims,
        "Linux VM",
        json!({"vm_name": "secret-01", "root_password": PASSWORD}),
    )
    .await;
    let number = number_of(&sims, &id);

    let out = catalog(
        dir.path(),
        &sims,
        &config,
        &["--dry-run", "--summary", "-vv"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(PASSWORD), "the log shows the secret");
    let run = std::fs::read_dir(dir.path().join("reports"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.join("catalog").exists())
        .expect("the run folder");
    let read = |f: &str| std::fs::read_to_string(run.join("catalog").join(f)).unwrap();
    for f in ["plan.json", "drift.csv", "drift.md", "drift.html"] {
        assert!(!read(f).contains(PASSWORD), "{f} holds the secret");
    }
    let plan: Value = serde_json::from_str(&read("plan.json")).unwrap();
    assert_eq!(plan["orders"][0]["ritm_number"], number.as_str());
    assert_eq!(plan["orders"][0]["secret"], json!(["root_password"]));
    // A build that knows no secrets refuses it rather than order with "(secret)".
    assert_eq!(plan["format_version"], 2);
    assert!(read("drift.md").contains("root_password=(secret)"));

    let apply = || {
        tokio::task::block_in_place(|| {
            bin(dir.path(), &sims)
                .args(["apply", "-vv", "--config"])
                .arg(&config)
                .arg("--plan")
                .arg(run.join("catalog/plan.json"))
                .output()
                .unwrap()
        })
    };
    let out = apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(PASSWORD), "the log shows the secret");
    let requests = requests_for(&sims, &number).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].pointer("/options/dialog/dialog_root_password"),
        Some(&json!(PASSWORD)),
        "CloudForms gets the value"
    );
    for f in [
        "plan.json",
        "outcome.json",
        "drift.csv",
        "drift.md",
        "drift.html",
    ] {
        assert!(!read(f).contains(PASSWORD), "{f} holds the secret");
    }
    assert!(
        notes(&sims, &id).iter().all(|n| !n.contains(PASSWORD)),
        "a work note holds the secret"
    );

    // `catalog` itself (the CronJob) plans and orders in one go, the same way.
    const OTHER: &str = "Tr0ub4dor-and-3";
    let second = order_with(
        &sims,
        "Linux VM",
        json!({"vm_name": "secret-02", "root_password": OTHER}),
    )
    .await;
    let number = number_of(&sims, &second);
    let out = catalog(dir.path(), &sims, &config, &["-vv"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(OTHER), "the log shows the secret");
    let requests = requests_for(&sims, &number).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].pointer("/options/dialog/dialog_root_password"),
        Some(&json!(OTHER))
    );
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                files(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut written = Vec::new();
    files(&dir.path().join("reports"), &mut written);
    assert!(written.len() > 10, "{written:?}");
    for f in written {
        let body = std::fs::read(&f).unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(
            !body.contains(PASSWORD) && !body.contains(OTHER),
            "{} holds a secret",
            f.display()
        );
    }
}

/// A plan with a secret dialog field is applied only with the links it was made by: the
/// value is made again by their rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_with_a_secret_field_is_refused_when_the_links_changed_since() {
    let (sims, dir, config) = setup("", false).await;
    let shipped = include_str!("../mappings/catalog/linux-vm.toml");
    let secret = format!(
        "{shipped}justification = {{ from = \"variables.justification\", secret = true }}\n"
    );
    std::fs::write(dir.path().join("catalog/linux-vm.toml"), &secret).unwrap();
    let id = order_with(
        &sims,
        "Linux VM",
        json!({"vm_name": "secret-02", "justification": "ticket 4711"}),
    )
    .await;
    let number = number_of(&sims, &id);
    let out = catalog(dir.path(), &sims, &config, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plan = std::fs::read_dir(dir.path().join("reports"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path().join("catalog/plan.json"))
        .find(|p| p.exists())
        .expect("the plan");
    std::fs::write(
        dir.path().join("catalog/linux-vm.toml"),
        secret.replace("secret = true", "case = \"upper\", secret = true"),
    )
    .unwrap();
    let before = written(&sims);
    let out = tokio::task::block_in_place(|| {
        bin(dir.path(), &sims)
            .args(["apply", "--config"])
            .arg(&config)
            .arg("--plan")
            .arg(&plan)
            .output()
            .unwrap()
    });
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("catalog links changed"),
        "{}",
        text(&out)
    );
    assert!(written(&sims) == before, "a refused plan writes nothing");
    assert!(requests_for(&sims, &number).await.is_empty());
}

/// `--now` (hidden, to reproduce a past plan) is refused for a pass that writes: its lease
/// and claim markers would be written already expired. A dry run may take it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_that_writes_refuses_a_now_far_from_the_clock() {
    let (sims, dir, config) = setup("", false).await;
    let id = order_now(&sims, "Linux VM", "then-01").await;
    let before = written(&sims);
    let old = ["--now", "2026-01-01T00:00:00Z"];
    let out = catalog(dir.path(), &sims, &config, &old);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("--now 2026-01-01T00:00:00Z is") && text(&out).contains("--dry-run"),
        "{}",
        text(&out)
    );
    let out = tokio::task::block_in_place(|| {
        bin(dir.path(), &sims)
            .args(["run", "--config"])
            .arg(&config)
            .args(old)
            .output()
            .unwrap()
    });
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(written(&sims) == before, "a refused pass writes nothing");
    assert_eq!(field(&ritm(&sims, &id), "correlation_id"), "");
    let out = catalog(dir.path(), &sims, &config, &[old[0], old[1], "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(written(&sims) == before, "a dry run writes nothing");
}

/// The catalog pass at the end of `run` stamps its claims when it writes them, not with the
/// run's start: the syncs before it may take longer than `claim_timeout`, and a claim that
/// looks that old is resumed by the next pass while this one still orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_in_run_are_stamped_when_written_not_at_the_runs_start() {
    let (sims, dir, config) = setup("", true).await;
    let id = order_now(&sims, "Linux VM", "stamped-01").await;
    // The VM sync's read takes 3 s: the catalog pass starts at least that after the run.
    sims.set_faults(
        Api::ManageIq,
        FaultConfig {
            seed: 1,
            rules: vec![FaultRule {
                method: Some("GET".into()),
                path: "/api/vms".into(),
                latency_ms: 3_000,
                ..FaultRule::new(FaultKind::Latency)
            }],
        },
    );
    let started = chrono::Utc::now();
    let out = run(dir.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The claim's marker, as its work note quotes it (the RITM now holds the request).
    let claim = notes(&sims, &id)
        .into_iter()
        .find_map(|n| {
            n.split("claim cloudforms:claim:")
                .nth(1)
                .map(|rest| rest.split(':').next().unwrap_or("").to_owned())
        })
        .expect("the claim's work note");
    let claimed = chrono::NaiveDateTime::parse_from_str(&claim, "%Y%m%dT%H%M%SZ")
        .expect("a claim time")
        .and_utc();
    // Stamped after the VM sync's slow read, not at the run's start.
    assert!(
        claimed >= started + chrono::TimeDelta::seconds(2),
        "claim stamped {claimed}, the run started {started} and read for 3 s before it"
    );
}
