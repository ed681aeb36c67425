//! Review in ServiceNow over HTTP (issue 15): the binary's `run` with the shipped VM mapping
//! and `review = "approve"` against the simulators. A run opens a change request for what
//! needs approval (three attachments, the plan's digest in `correlation_id`) and applies
//! nothing of it; the simulator's approvers decide; the next run applies the approved plan
//! (or discards a rejected one) and closes the change with the outcome. Runs while waiting
//! never open a second change, and a plan that changed supersedes the old change.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures, write files and read the clock"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use cmdb_sim::{SimOptions, Sims};
use common::{bin, connections, field, text};
use serde_json::{json, Map, Value};

const VM: (&str, &str) = ("vmware-vm.toml", include_str!("../mappings/vmware-vm.toml"));

async fn sims(seed: u64) -> Sims {
    Sims::start(SimOptions {
        vms: 40,
        drift: 0.3,
        seed,
        now: chrono::Utc::now(),
        ..Default::default()
    })
    .await
    .expect("simulators start")
}

/// A config in `dir`: the VM sync under review; every create and update needs approval.
fn config(dir: &Path, sims: &Sims) -> PathBuf {
    config_with(dir, sims, "creates_above = 0\nupdates_above = 0\n")
}

/// A config in `dir`: the VM sync under review with this `[review]` policy.
fn config_with(dir: &Path, sims: &Sims, policy: &str) -> PathBuf {
    std::fs::write(dir.join(VM.0), VM.1).unwrap();
    let path = dir.join("cmdb-reconcile.toml");
    std::fs::write(
        &path,
        format!(
            "{}[review]\n{policy}assignment_group = \"cmdb-owners\"\n\
             fields = {{ category = \"CMDB\" }}\n\n\
             [[sync]]\nmapping = \"{}\"\nreview = \"approve\"\n",
            connections(sims, "30s"),
            VM.0,
        ),
    )
    .unwrap();
    path
}

fn run(dir: &Path, sims: &Sims, config: &Path, args: &[&str]) -> Output {
    tokio::task::block_in_place(|| {
        bin(dir, sims)
            .args(["run", "--summary", "--config"])
            .arg(config)
            .args(args)
            .output()
            .unwrap()
    })
}

/// The job's change requests, oldest first.
fn changes(sims: &Sims) -> Vec<Map<String, Value>> {
    let mut rows: Vec<_> = sims
        .servicenow()
        .rows("change_request")
        .into_iter()
        .filter(|r| field(r, "correlation_display") == "cmdb-reconcile:vmware-vm")
        .collect();
    rows.sort_by(|a, b| field(a, "number").cmp(field(b, "number")));
    rows
}

/// The names of a record's attachments, sorted.
fn attachments(sims: &Sims, sys_id: &str) -> Vec<String> {
    let mut names: Vec<String> = sims
        .servicenow()
        .rows("sys_attachment")
        .into_iter()
        .filter(|r| field(r, "table_sys_id") == sys_id)
        .map(|r| field(&r, "file_name").to_owned())
        .collect();
    names.sort();
    names
}

/// A change's work notes (an instance keeps them in `sys_journal_field`).
fn notes(sims: &Sims, sys_id: &str) -> Vec<String> {
    sims.servicenow()
        .rows("sys_journal_field")
        .into_iter()
        .filter(|r| field(r, "element_id") == sys_id && field(r, "element") == "work_notes")
        .map(|r| field(&r, "value").to_owned())
        .collect()
}

/// A file attached to a record, downloaded through the Attachment API.
async fn download(sims: &Sims, sys_id: &str, file_name: &str) -> Value {
    let meta = sims
        .servicenow()
        .rows("sys_attachment")
        .into_iter()
        .find(|r| field(r, "table_sys_id") == sys_id && field(r, "file_name") == file_name)
        .unwrap_or_else(|| panic!("{file_name} attached to {sys_id}"));
    let o = sims.options();
    let url = format!(
        "{}/api/now/attachment/{}/file",
        sims.servicenow_url(),
        field(&meta, "sys_id")
    );
    let response = reqwest::Client::new()
        .get(url)
        .basic_auth(&o.snow_user, Some(&o.snow_password))
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// The CIs of the VM table by sys_id, with their versions.
fn versions(sims: &Sims) -> Map<String, Value> {
    sims.servicenow()
        .rows("cmdb_ci_vmware_instance")
        .into_iter()
        .map(|r| {
            (
                field(&r, "sys_id").to_owned(),
                Value::String(field(&r, "sys_mod_count").to_owned()),
            )
        })
        .collect()
}

/// The first run: a change for the held plan, nothing of it written. Returns the change
/// and its plan.
async fn first_run(dir: &Path, sims: &Sims, config: &Path) -> (Map<String, Value>, Value) {
    let before = versions(sims);
    let out = run(dir, sims, config, &[]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "waiting for approval:\n{}",
        text(&out)
    );
    assert!(
        text(&out).contains("wait for approval in CHG"),
        "{}",
        text(&out)
    );
    let all = changes(sims);
    assert_eq!(all.len(), 1, "one change");
    let change = all[0].clone();
    assert_eq!(field(&change, "state"), "-4", "Assess: approval requested");
    assert_eq!(field(&change, "approval"), "requested");
    assert_eq!(field(&change, "type"), "normal");
    assert_eq!(field(&change, "category"), "CMDB", "the template's field");
    assert_eq!(field(&change, "assignment_group"), "cmdb-owners");
    assert!(field(&change, "description").contains("Held for approval: "));
    let digest = field(&change, "correlation_id");
    assert_eq!(digest.len(), 64, "{digest}");
    assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
    let sys_id = field(&change, "sys_id");
    assert_eq!(
        attachments(sims, sys_id),
        ["drift.csv", "drift.html", "plan.json"]
    );
    let plan = download(sims, sys_id, "plan.json").await;
    let held_updates = plan["updates"].as_array().expect("updates").len();
    assert!(held_updates > 0, "the drifted CIs wait: {plan}");
    // Nothing held was written: every CI the plan updates keeps its version.
    let after = versions(sims);
    for u in plan["updates"].as_array().unwrap() {
        let id = u["sys_id"].as_str().unwrap();
        assert_eq!(after[id], before[id], "{id} written before approval");
    }
    (change, plan)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approved_plan_is_applied_by_the_next_run_and_the_change_closed() {
    let sims = sims(15).await;
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), &sims);
    let (change, plan) = first_run(tmp.path(), &sims, &config).await;
    let sys_id = field(&change, "sys_id").to_owned();

    assert!(sims.servicenow().decide_change(&sys_id, true));
    let out = run(tmp.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let closed = sims
        .servicenow()
        .get("change_request", &sys_id)
        .expect("change");
    assert_eq!(field(&closed, "state"), "3", "Closed");
    assert_eq!(field(&closed, "close_code"), "successful");
    assert!(
        field(&closed, "close_notes").contains("applied"),
        "{}",
        field(&closed, "close_notes")
    );
    assert_eq!(
        attachments(&sims, &sys_id),
        ["drift.csv", "drift.html", "outcome.json", "plan.json"]
    );
    let outcome = download(&sims, &sys_id, "outcome.json").await;
    assert!(outcome.to_string().contains("applied"), "{outcome}");
    // Exactly the plan: each planned update holds its desired values now.
    for u in plan["updates"].as_array().unwrap() {
        let ci = sims
            .servicenow()
            .get("cmdb_ci_vmware_instance", u["sys_id"].as_str().unwrap())
            .expect("ci");
        for c in u["changes"].as_array().unwrap() {
            let f = c["field"].as_str().unwrap();
            assert_eq!(
                Some(field(&ci, f)),
                c["desired"].as_str(),
                "{f} of {}",
                u["name"]
            );
        }
    }
    assert_eq!(changes(&sims).len(), 1, "nothing left to ask for");

    // Nothing is left for review: a dry run plans nothing that needs approval.
    let dry = run(tmp.path(), &sims, &config, &["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(
        !text(&dry).contains("would wait for approval"),
        "{}",
        text(&dry)
    );
    sims.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_plan_is_discarded_and_not_asked_for_again() {
    let sims = sims(16).await;
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), &sims);
    let (change, plan) = first_run(tmp.path(), &sims, &config).await;
    let sys_id = field(&change, "sys_id").to_owned();
    let before = versions(&sims);

    assert!(sims.servicenow().decide_change(&sys_id, false));
    let out = run(tmp.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("was rejected"), "{}", text(&out));
    let cancelled = sims
        .servicenow()
        .get("change_request", &sys_id)
        .expect("change");
    assert_eq!(field(&cancelled, "state"), "4", "Canceled");
    assert!(
        notes(&sims, &sys_id)
            .iter()
            .any(|n| n.starts_with("Rejected")),
        "{:?}",
        notes(&sims, &sys_id)
    );
    // Nothing of the plan was written, and the same plan is not asked for again.
    let after = versions(&sims);
    for u in plan["updates"].as_array().unwrap() {
        let id = u["sys_id"].as_str().unwrap();
        assert_eq!(after[id], before[id], "{id} written after a rejection");
    }
    assert_eq!(
        changes(&sims).len(),
        1,
        "no new change for the rejected plan"
    );
    sims.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approved_plan_skips_the_cis_people_changed_since_as_stale() {
    let sims = sims(17).await;
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), &sims);
    let (change, plan) = first_run(tmp.path(), &sims, &config).await;
    let sys_id = field(&change, "sys_id").to_owned();
    // Someone edits one of the planned CIs while the change waits.
    let edited = plan["updates"][0]["sys_id"].as_str().unwrap().to_owned();
    let mut edit = Map::new();
    edit.insert("short_description".into(), json!("edited by hand"));
    assert!(sims
        .servicenow()
        .update_row("cmdb_ci_vmware_instance", &edited, edit));

    assert!(sims.servicenow().decide_change(&sys_id, true));
    let out = run(tmp.path(), &sims, &config, &[]);
    let closed = sims
        .servicenow()
        .get("change_request", &sys_id)
        .expect("change");
    assert_eq!(field(&closed, "state"), "3", "{}", text(&out));
    assert_eq!(field(&closed, "close_code"), "successful_issues");
    let close_notes = field(&closed, "close_notes");
    assert!(
        close_notes.contains("stale") && close_notes.contains(&edited),
        "{close_notes}"
    );
    let outcome = download(&sims, &sys_id, "outcome.json").await;
    assert!(outcome.to_string().contains("skipped_stale"), "{outcome}");
    // The edited CI is planned again and goes for approval in a change of its own.
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let all = changes(&sims);
    assert_eq!(all.len(), 2);
    let next = &all[1];
    assert_eq!(field(next, "state"), "-4");
    let again = download(&sims, field(next, "sys_id"), "plan.json").await;
    assert!(
        again["updates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["sys_id"] == edited.as_str()),
        "{again}"
    );
    sims.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_while_waiting_open_no_second_change_and_a_new_plan_supersedes_the_old() {
    let sims = sims(18).await;
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), &sims);
    let (change, plan) = first_run(tmp.path(), &sims, &config).await;
    let sys_id = field(&change, "sys_id").to_owned();

    let metrics = tmp.path().join("run.prom");
    let out = run(
        tmp.path(),
        &sims,
        &config,
        &["--metrics-file", metrics.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let prom = std::fs::read_to_string(&metrics).unwrap();
    let sample = |name: &str| {
        prom.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(sample("cmdb_reconcile_last_run_exit_code"), Some(7.0));
    assert_eq!(
        sample("cmdb_reconcile_last_run_success"),
        Some(1.0),
        "{prom}"
    );
    assert_eq!(
        sample(r#"cmdb_reconcile_review_changes{event="waiting",mapping="vmware-vm"}"#),
        Some(1.0),
        "{prom}"
    );
    let held = plan["creates"].as_array().unwrap().len()
        + plan["updates"].as_array().unwrap().len()
        + plan["retirements"].as_array().unwrap().len()
        + plan["relationships"].as_array().map_or(0, Vec::len);
    assert_eq!(
        sample(r#"cmdb_reconcile_awaiting_approval_operations{mapping="vmware-vm"}"#),
        Some(held as f64),
        "{prom}"
    );
    assert!(
        text(&out).contains(&format!(
            "wait for approval in {}",
            field(&change, "number")
        )),
        "{}",
        text(&out)
    );
    let all = changes(&sims);
    assert_eq!(all.len(), 1, "no second change for the same plan");
    assert_eq!(
        attachments(&sims, &sys_id),
        ["drift.csv", "drift.html", "plan.json"],
        "not attached twice"
    );

    // The CMDB changes under a waiting plan: the next plan differs, gets a change of its
    // own, and the old one is cancelled with a note pointing to it.
    let edited = plan["updates"][0]["sys_id"].as_str().unwrap();
    let mut edit = Map::new();
    edit.insert("short_description".into(), json!("edited by hand"));
    assert!(sims
        .servicenow()
        .update_row("cmdb_ci_vmware_instance", edited, edit));
    let out = run(tmp.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let all = changes(&sims);
    assert_eq!(all.len(), 2);
    let (old, new) = (&all[0], &all[1]);
    assert_eq!(field(old, "state"), "4", "the old change is cancelled");
    assert_eq!(field(new, "state"), "-4");
    assert_ne!(field(old, "correlation_id"), field(new, "correlation_id"));
    let number = field(new, "number");
    assert!(
        notes(&sims, &sys_id)
            .iter()
            .any(|n| n.starts_with(&format!("Superseded by {number}"))),
        "{:?}",
        notes(&sims, &sys_id)
    );
    sims.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn what_needs_no_approval_is_applied_at_once_and_a_dry_run_writes_nothing() {
    let sims = sims(19).await;
    let tmp = tempfile::tempdir().unwrap();
    // Creates need approval; updates never do.
    let config = config_with(
        tmp.path(),
        &sims,
        "creates_above = 0\nupdates_above = \"never\"\n",
    );
    let before = versions(&sims);

    let dry = run(tmp.path(), &sims, &config, &["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(
        text(&dry).contains("would wait for approval"),
        "{}",
        text(&dry)
    );
    assert!(changes(&sims).is_empty(), "a dry run opens no change");
    assert_eq!(versions(&sims), before, "a dry run writes nothing");
    // Neither the sync's plan nor its held part can be applied by hand: only the run that
    // finds the change approved applies what waits for approval.
    let mut plans = Vec::new();
    let mut dirs = vec![tmp.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().is_some_and(|n| n == "plan.json") {
                plans.push(path);
            }
        }
    }
    assert_eq!(
        plans.len(),
        2,
        "the sync's plan and its held part: {plans:?}"
    );
    for plan in &plans {
        let out = tokio::task::block_in_place(|| {
            bin(tmp.path(), &sims)
                .args(["apply", "--config"])
                .arg(&config)
                .arg("--plan")
                .arg(plan)
                .output()
                .unwrap()
        });
        assert_eq!(
            out.status.code(),
            Some(4),
            "{}: {}",
            plan.display(),
            text(&out)
        );
        assert!(text(&out).contains("wait for approval"), "{}", text(&out));
    }
    assert_eq!(
        versions(&sims),
        before,
        "a held plan is not applied by hand"
    );

    let out = run(tmp.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let all = changes(&sims);
    assert_eq!(all.len(), 1);
    let plan = download(&sims, field(&all[0], "sys_id"), "plan.json").await;
    assert!(!plan["creates"].as_array().unwrap().is_empty(), "{plan}");
    assert!(plan["updates"].as_array().unwrap().is_empty(), "{plan}");
    // The updates went through at once; the creates wait.
    let after = versions(&sims);
    assert!(
        before.iter().any(|(id, v)| after.get(id) != Some(v)),
        "no update was applied"
    );
    assert_eq!(
        after.len(),
        before.len(),
        "no CI was created before approval"
    );
    sims.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approved_change_whose_plan_was_swapped_is_not_applied() {
    let sims = sims(20).await;
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), &sims);
    let (change, plan) = first_run(tmp.path(), &sims, &config).await;
    let sys_id = field(&change, "sys_id").to_owned();
    let before = versions(&sims);

    // Someone with write access swaps the attached plan for one that writes other values.
    let o = sims.options();
    let client = reqwest::Client::new();
    let original = sims
        .servicenow()
        .rows("sys_attachment")
        .into_iter()
        .find(|r| field(r, "table_sys_id") == sys_id && field(r, "file_name") == "plan.json")
        .expect("plan.json");
    let deleted = client
        .delete(format!(
            "{}/api/now/attachment/{}",
            sims.servicenow_url(),
            field(&original, "sys_id")
        ))
        .basic_auth(&o.snow_user, Some(&o.snow_password))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let mut swapped = plan.clone();
    swapped["updates"][0]["changes"][0]["desired"] = json!("swapped");
    let uploaded = client
        .post(format!(
            "{}/api/now/attachment/file?table_name=change_request&table_sys_id={sys_id}&file_name=plan.json",
            sims.servicenow_url()
        ))
        .basic_auth(&o.snow_user, Some(&o.snow_password))
        .header("Content-Type", "application/json")
        .body(swapped.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);

    assert!(sims.servicenow().decide_change(&sys_id, true));
    let out = run(tmp.path(), &sims, &config, &[]);
    assert_eq!(out.status.code(), Some(4), "refused:\n{}", text(&out));
    let closed = sims
        .servicenow()
        .get("change_request", &sys_id)
        .expect("change");
    assert_eq!(field(&closed, "state"), "3");
    assert_eq!(field(&closed, "close_code"), "unsuccessful");
    assert!(
        field(&closed, "close_notes").starts_with("Not applied")
            && field(&closed, "close_notes").contains("correlation_id"),
        "{}",
        field(&closed, "close_notes")
    );
    // Nothing of either plan was written.
    let after = versions(&sims);
    for u in plan["updates"].as_array().unwrap() {
        let id = u["sys_id"].as_str().unwrap();
        assert_eq!(after[id], before[id], "{id} written from a swapped plan");
    }
    sims.stop().await;
}
