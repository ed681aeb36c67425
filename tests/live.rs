//! The whole job over real HTTP against the simulators on 127.0.0.1: plan -> apply -> plan
//! converges, apply is idempotent, and the job stays safe when the network or the servers
//! misbehave (rate limits, 5xx, resets, lost responses, lost pages, bad credentials, stale
//! plans, servers that never answer).
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures, write files and read the clock"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cmdb_reconcile::app::{self, Status};
use cmdb_reconcile::config::SyncConfig;
use cmdb_sim::{Api, FaultConfig, Sims};
use serde_json::{json, Value};

mod common;

use common::{config, now, plan, sims, TABLE};

fn rows(sims: &Sims) -> Vec<serde_json::Map<String, Value>> {
    sims.servicenow().rows(TABLE)
}

fn writes(stats: &Value) -> u64 {
    let by_route = stats.get("by_route").cloned().unwrap_or(json!({}));
    by_route
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(route, _)| {
                    ["POST", "PATCH", "PUT", "DELETE"]
                        .iter()
                        .any(|v| route.starts_with(v))
                })
                .map(|(_, counts)| counts.get("total").and_then(Value::as_u64).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_apply_plan_converges_and_a_second_apply_writes_nothing() {
    let sims = sims(600).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sims, dir.path());

    let first = plan(&config, &dir.path().join("1")).await;
    let s = &first.plan.summary;
    assert!(first.plan.source.complete, "{:?}", first.plan.source);
    assert!(
        s.creates > 0 && s.updates > 0,
        "the generated CMDB drifts: {s:?}"
    );
    let before = rows(&sims).len();

    let status = app::run_apply(&config, std::slice::from_ref(&first))
        .await
        .unwrap();
    assert_eq!(status, Status::Clean);
    assert_eq!(
        rows(&sims).len(),
        before + s.creates,
        "exactly the planned creates"
    );
    let outcome: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("1/vmware-vm/outcome.json")).unwrap(),
    )
    .unwrap();
    assert!(outcome.to_string().contains("applied"), "{outcome}");

    let second = plan(&config, &dir.path().join("2")).await;
    assert!(
        !second.plan.has_changes(),
        "no drift left: {:?}",
        second.plan.summary
    );

    // Applying the same reviewed plan again is a no-op.
    sims.reset_stats(Api::ServiceNow);
    let status = app::run_apply(&config, std::slice::from_ref(&first))
        .await
        .unwrap();
    assert_eq!(status, Status::Clean);
    assert_eq!(
        writes(&sims.stats(Api::ServiceNow)),
        0,
        "{}",
        sims.stats(Api::ServiceNow)
    );
    assert_eq!(rows(&sims).len(), before + s.creates);
}

fn faults(json: Value) -> FaultConfig {
    FaultConfig::from_json(&json.to_string()).expect("fault config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_storms_and_flaky_reads_still_converge() {
    let sims = sims(500).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sims, dir.path());
    // ServiceNow allows 15 requests a second, then answers 429 with Retry-After: 1;
    // CloudForms drops connections and answers 503 now and then.
    sims.set_faults(
        Api::ServiceNow,
        faults(json!({"seed": 3, "rules": [
            {"kind": "rate_limit", "limit": 15, "window_secs": 1, "retry_after_secs": 1}
        ]})),
    );
    sims.set_faults(
        Api::ManageIq,
        faults(json!({"seed": 4, "rules": [
            {"kind": "error", "status": 503, "path": "/api/vms", "probability": 0.5, "times": 3},
            {"kind": "reset", "path": "/api/vms", "probability": 0.5, "times": 2}
        ]})),
    );
    let first = plan(&config, &dir.path().join("1")).await;
    assert!(first.plan.source.complete, "{:?}", first.plan.source);
    assert_eq!(
        app::run_apply(&config, std::slice::from_ref(&first))
            .await
            .unwrap(),
        Status::Clean
    );
    let stats = sims.stats(Api::ServiceNow);
    assert!(
        stats["by_status"]["429"].as_u64().unwrap_or(0) > 0,
        "the storm happened: {stats}"
    );
    let miq = sims.stats(Api::ManageIq);
    assert!(
        miq["by_status"]["503"].as_u64().unwrap_or(0) > 0
            || miq["faults"].to_string().contains("reset"),
        "{miq}"
    );
    sims.set_faults(Api::ServiceNow, FaultConfig::default());
    let second = plan(&config, &dir.path().join("2")).await;
    assert!(!second.plan.has_changes(), "{:?}", second.plan.summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_lost_for_good_blocks_every_retirement() {
    let sims = sims(600).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sims, dir.path());
    // Page size 200: the page at offset 400 always fails.
    sims.set_faults(
        Api::ManageIq,
        faults(json!({"rules": [
            {"kind": "error", "status": 503, "path": "/api/vms", "query": "offset=400"}
        ]})),
    );
    let planned = plan(&config, &dir.path().join("1")).await;
    let p = &planned.plan;
    assert!(!p.source.complete);
    assert!(
        p.source
            .incomplete_reason
            .as_deref()
            .unwrap_or("")
            .contains("offset=400"),
        "{:?}",
        p.source
    );
    assert_eq!(
        p.summary.retirements + p.summary.deletes + p.summary.marked_absent,
        0
    );
    assert!(
        p.safety.retirements_blocked.is_some() && p.safety.retirements_withheld > 0,
        "{:?}",
        p.safety
    );
    // Creates and updates are still sound (the CMDB read is complete); the run says partial.
    let status = app::run_apply(&config, std::slice::from_ref(&planned))
        .await
        .unwrap();
    assert_eq!(status, Status::Partial);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_create_responses_never_duplicate_a_ci() {
    let sims = sims(400).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sims, dir.path());
    let planned = plan(&config, &dir.path().join("1")).await;
    let creates = planned.plan.creates.len();
    assert!(
        creates >= 2,
        "the estate has VMs without CIs: {:?}",
        planned.plan.summary
    );
    // The server creates the CI, then resets the connection instead of answering.
    sims.set_faults(
        Api::ServiceNow,
        faults(json!({"rules": [
            {"kind": "drop_response", "method": "POST", "path": "/api/now/table", "times": 2}
        ]})),
    );
    let before = rows(&sims).len();
    assert_eq!(
        app::run_apply(&config, std::slice::from_ref(&planned))
            .await
            .unwrap(),
        Status::Clean
    );
    assert_eq!(
        rows(&sims).len(),
        before + creates,
        "each create landed exactly once"
    );
    let all = rows(&sims);
    for create in &planned.plan.creates {
        // The full identity: a MoRef like vm-1336 is unique only within its vCenter.
        let n = all
            .iter()
            .filter(|r| {
                create.identity.iter().all(|f| {
                    r.get(&f.field)
                        .and_then(Value::as_str)
                        .map(str::to_lowercase)
                        == Some(f.value.to_lowercase())
                })
            })
            .count();
        assert_eq!(n, 1, "{:?} created {n} times", create.identity);
    }
    let outcome = std::fs::read_to_string(dir.path().join("1/vmware-vm/outcome.json")).unwrap();
    assert!(outcome.contains("found by identity"), "{outcome}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ci_edited_after_the_plan_is_skipped_as_stale() {
    let sims = sims(400).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sims, dir.path());
    let planned = plan(&config, &dir.path().join("1")).await;
    let victim = planned
        .plan
        .updates
        .iter()
        .find(|u| u.has_writes())
        .expect("an update")
        .clone();
    // Someone edits the CI by hand after the owners reviewed the plan.
    let mut edit = serde_json::Map::new();
    edit.insert("short_description".into(), json!("edited by hand"));
    sims.servicenow().update_row(TABLE, &victim.sys_id, edit);
    assert_eq!(
        app::run_apply(&config, std::slice::from_ref(&planned))
            .await
            .unwrap(),
        Status::Clean
    );
    let row = sims
        .servicenow()
        .get(TABLE, &victim.sys_id)
        .expect("still there");
    assert_eq!(
        row.get("short_description").and_then(Value::as_str),
        Some("edited by hand")
    );
    let change = &victim.changes[0];
    assert_eq!(
        row.get(&change.field).and_then(Value::as_str),
        Some(change.current.as_str()),
        "not overwritten"
    );
    let outcome = std::fs::read_to_string(dir.path().join("1/vmware-vm/outcome.json")).unwrap();
    assert!(
        outcome.contains("skipped_stale") && outcome.contains(&victim.sys_id),
        "{outcome}"
    );
}

// --- the binary: exit codes and messages -------------------------------------------------

fn bin(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cmdb-reconcile"));
    cmd.current_dir(dir)
        .env_remove("RUST_LOG")
        .args(["--log-format", "text"]);
    for var in [
        "CMDB_RECONCILE_CONFIG",
        "CLOUDFORMS_URL",
        "SERVICENOW_URL",
        "CLOUDFORMS_USER",
        "SERVICENOW_USER",
        "CLOUDFORMS_PASSWORD",
        "SERVICENOW_PASSWORD",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn write_config(dir: &Path, cf_url: &str, sn_url: &str, timeout: &str) -> PathBuf {
    std::fs::write(
        dir.join("vmware-vm.toml"),
        include_str!("../mappings/vmware-vm.toml"),
    )
    .unwrap();
    let path = dir.join("cmdb-reconcile.toml");
    std::fs::write(
        &path,
        format!(
            "[cloudforms]\nurl = \"{cf_url}\"\nuser = \"admin\"\npassword_env = \"TEST_CF_PASSWORD\"\ntimeout = \"{timeout}\"\nretries = 1\n\n\
             [servicenow]\nurl = \"{sn_url}\"\nuser = \"admin\"\npassword_env = \"TEST_SN_PASSWORD\"\ntimeout = \"{timeout}\"\nretries = 1\n\n\
             [[sync]]\nmapping = \"vmware-vm.toml\"\n"
        ),
    )
    .unwrap();
    path
}

/// The binary in `dir`, with the simulators' passwords in the variables the config names.
fn bin_for(dir: &Path, sims: &Sims) -> Command {
    let o = sims.options();
    let mut cmd = bin(dir);
    cmd.env("TEST_CF_PASSWORD", &o.miq_password)
        .env("TEST_SN_PASSWORD", &o.snow_password);
    cmd
}

/// A config file in `dir` for the shipped VMware mapping against the simulators.
fn sims_config(dir: &Path, sims: &Sims) -> PathBuf {
    write_config(dir, &sims.manageiq_url(), &sims.servicenow_url(), "30s")
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_from_the_binary_applies_and_a_dry_run_reports_changes() {
    let sims = sims(300).await;
    let dir = tempfile::tempdir().unwrap();
    let config = sims_config(dir.path(), &sims);
    let run = |extra: &[&str]| {
        bin_for(dir.path(), &sims)
            .args(["run", "--config"])
            .arg(&config)
            // The estate's clock, not the machine's: a week after it, the CIs the first run
            // marks Absent are due for retirement on the second (the plans would differ).
            .args(["--now", "2026-11-27T06:00:00Z"])
            // A run that writes takes a pinned --now only in tests (README "Development").
            .env("CMDB_RECONCILE_TEST_CLOCK", "1")
            .args(extra)
            .output()
            .unwrap()
    };
    let dry = tokio::task::block_in_place(|| run(&["--dry-run", "--detailed-exitcode"]));
    assert_eq!(dry.status.code(), Some(2), "{}", output_text(&dry));
    let real = tokio::task::block_in_place(|| run(&[]));
    assert_eq!(real.status.code(), Some(0), "{}", output_text(&real));
    assert!(
        output_text(&real).contains("applied"),
        "{}",
        output_text(&real)
    );
    // CIs long gone were only marked Absent by that run: a CI is retired only after an
    // earlier run marked it so (README "Lifecycle and safety"). The next run retires them.
    let second = tokio::task::block_in_place(|| run(&[]));
    assert_eq!(second.status.code(), Some(0), "{}", output_text(&second));
    let again = tokio::task::block_in_place(|| run(&["--dry-run", "--detailed-exitcode"]));
    assert_eq!(
        again.status.code(),
        Some(0),
        "no drift left: {}",
        output_text(&again)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_without_certificate_checks_warns_naming_the_api() {
    let sims = sims(50).await;
    let dir = tempfile::tempdir().unwrap();
    let config = sims_config(dir.path(), &sims);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("retries = 1\n", "retries = 1\nverify_tls = false\n");
    std::fs::write(&config, text).unwrap();
    let plan = || {
        bin_for(dir.path(), &sims)
            .args(["plan", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    for _ in 0..2 {
        let out = tokio::task::block_in_place(plan);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(0), "{text}");
        let warnings: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("verify_tls = false"))
            .collect();
        assert_eq!(warnings.len(), 2, "once per API and run: {text}");
        assert!(warnings.iter().any(|l| l.contains("CloudForms")), "{text}");
        assert!(warnings.iter().any(|l| l.contains("ServiceNow")), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_one_clear_message_and_exit_1() {
    let sims = sims(50).await;
    let dir = tempfile::tempdir().unwrap();
    let config = sims_config(dir.path(), &sims);
    let out = tokio::task::block_in_place(|| {
        bin(dir.path())
            .args(["plan", "--config"])
            .arg(&config)
            .env("TEST_CF_PASSWORD", "wrong-password-123")
            .env("TEST_SN_PASSWORD", &sims.options().snow_password)
            .output()
            .unwrap()
    });
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let text = output_text(&out);
    assert!(
        text.contains("401") && text.contains(&sims.manageiq_url()),
        "{text}"
    );
    assert!(
        !text.contains("wrong-password-123"),
        "the secret leaked: {text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_or_a_wrong_url_fails_in_bounded_time() {
    let sims = sims(50).await;
    // Accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    // Nothing listens here.
    let closed_url = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    for (cf_url, expect) in [
        (silent_url.as_str(), "timed out"),
        (closed_url.as_str(), ""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), cf_url, &sims.servicenow_url(), "1s");
        let started = Instant::now();
        let out = tokio::task::block_in_place(|| {
            bin_for(dir.path(), &sims)
                .args(["plan", "--config"])
                .arg(&config)
                .output()
                .unwrap()
        });
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "took {:?}",
            started.elapsed()
        );
        assert!(text.contains(cf_url), "names the URL: {text}");
        assert!(text.to_lowercase().contains(expect), "{text}");
    }
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_ticket_closes_green_on_success_and_stays_open_red_on_refusal() {
    let sims = sims(300).await;
    let incidents = |sims: &Sims| sims.servicenow().rows("incident");
    let before = incidents(&sims).len();
    let run = |dir: &Path, config: &Path| {
        bin_for(dir, &sims)
            .args(["run", "--config"])
            .arg(config)
            .output()
            .unwrap()
    };

    // Success: one ticket, resolved with a summary, then closed.
    let dir = tempfile::tempdir().unwrap();
    let config = sims_config(dir.path(), &sims);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[ticket]\nfields = { category = \"software\" }\n");
    std::fs::write(&config, &text).unwrap();
    let out = tokio::task::block_in_place(|| run(dir.path(), &config));
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let all = incidents(&sims);
    assert_eq!(all.len(), before + 1, "one ticket per run");
    let ticket = all
        .iter()
        .find(|r| {
            r.get("correlation_id")
                .and_then(Value::as_str)
                .is_some_and(|c| c.starts_with("cmdb-reconcile-"))
        })
        .expect("the run ticket");
    let field = |r: &serde_json::Map<String, Value>, f: &str| {
        r.get(f).and_then(Value::as_str).unwrap_or("").to_owned()
    };
    assert_eq!(field(ticket, "state"), "7", "closed: {ticket:?}");
    assert_eq!(field(ticket, "close_code"), "Solution provided");
    assert!(
        field(ticket, "close_notes").contains("vmware-vm"),
        "{ticket:?}"
    );
    assert_eq!(field(ticket, "category"), "software");

    // Refused by a guard: the ticket stays open, urgent, saying why.
    let dir = tempfile::tempdir().unwrap();
    let config = sims_config(dir.path(), &sims);
    std::fs::write(
        &config,
        format!("{}\n[ticket]\n", std::fs::read_to_string(&config).unwrap()),
    )
    .unwrap();
    let strict = format!(
        "{}\n[guards]\nmax_update = 0\n",
        include_str!("../mappings/vmware-vm.toml")
    );
    std::fs::write(dir.path().join("vmware-vm.toml"), strict).unwrap();
    // Drift to trip max_update: a hand edit of a field the job owns.
    let ci = sims
        .servicenow()
        .rows(TABLE)
        .into_iter()
        .find(|r| field(r, "discovery_source") == "CloudForms" && field(r, "install_status") == "1")
        .unwrap();
    let mut edit = serde_json::Map::new();
    edit.insert("cpus".into(), json!("97"));
    sims.servicenow()
        .update_row(TABLE, &field(&ci, "sys_id"), edit);
    let out = tokio::task::block_in_place(|| run(dir.path(), &config));
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));
    let all = incidents(&sims);
    assert_eq!(all.len(), before + 2);
    let open = all
        .iter()
        .filter(|r| {
            field(r, "correlation_id").starts_with("cmdb-reconcile-") && field(r, "state") == "2"
        })
        .collect::<Vec<_>>();
    assert_eq!(open.len(), 1, "{all:?}");
    assert_eq!(field(open[0], "urgency"), "1");
    // work_notes is a journal field: the note is a sys_journal_field entry of the ticket.
    let notes: Vec<String> = sims
        .servicenow()
        .rows("sys_journal_field")
        .iter()
        .filter(|e| field(e, "element_id") == field(open[0], "sys_id"))
        .filter(|e| field(e, "element") == "work_notes")
        .map(|e| field(e, "value"))
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("Refused")),
        "{notes:?} {:?}",
        open[0]
    );
}

// --- relationships ---------------------------------------------------------------------

fn registered_on(sims: &Sims) -> Vec<serde_json::Map<String, Value>> {
    rel_rows(sims, "Registered on::Has registered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relationships_are_created_converge_and_follow_a_vmotion() {
    let sims = sims(300).await;
    let dir = tempfile::tempdir().unwrap();
    // The shipped VMware mapping keeps each VM's `Registered on::Has registered` row to its
    // ESX server, found as the simulated CMDB keys hosts (MoRef and vCenter).
    let config = config(&sims, dir.path());

    let first = plan(&config, &dir.path().join("1")).await;
    let (creates, deletes) = first.plan.relationship_counts();
    assert!(
        creates > 100,
        "every VM on a known host gets its row: {creates}; {:?}",
        first.plan.issues.iter().take(3).collect::<Vec<_>>()
    );
    assert_eq!(deletes, 0);
    app::run_apply(&config, std::slice::from_ref(&first))
        .await
        .unwrap();
    let rows = registered_on(&sims);
    assert_eq!(
        rows.len(),
        creates,
        "one row per planned create, no duplicate"
    );

    let second = plan(&config, &dir.path().join("2")).await;
    assert_eq!(second.plan.relationship_counts(), (0, 0), "converged");
    let again = app::run_apply(&config, std::slice::from_ref(&second))
        .await
        .unwrap();
    assert_eq!(again, Status::Clean);
    assert_eq!(
        registered_on(&sims).len(),
        creates,
        "a second apply writes none"
    );

    // A vMotion as the CMDB sees it: the row now points at another host. The next plan
    // deletes that row and creates the right one.
    let moved = &rows[0];
    let hosts = sims.servicenow().rows("cmdb_ci_esx_server");
    let other = hosts
        .iter()
        .find(|h| h["sys_id"] != moved["child"])
        .unwrap()["sys_id"]
        .clone();
    let mut edit = serde_json::Map::new();
    edit.insert("child".into(), other);
    assert!(sims
        .servicenow()
        .update_row("cmdb_rel_ci", moved["sys_id"].as_str().unwrap(), edit));
    let third = plan(&config, &dir.path().join("3")).await;
    assert_eq!(third.plan.relationship_counts(), (1, 1));
    app::run_apply(&config, std::slice::from_ref(&third))
        .await
        .unwrap();
    let last = plan(&config, &dir.path().join("4")).await;
    assert_eq!(last.plan.relationship_counts(), (0, 0));
    assert_eq!(registered_on(&sims).len(), creates);

    // A vMotion in CloudForms: the VM's row moves to its new host's ESX server.
    let estate = sims.manageiq().estate();
    let esx_of = |host: usize| {
        let h = &estate.hosts[host];
        let uuid = estate.providers[h.ems].uid_ems.clone();
        hosts
            .iter()
            .find(|r| {
                r["morid"] == h.ems_ref.as_str() && r["vcenter_uuid"].as_str() == uuid.as_deref()
            })
            .map(|r| r["sys_id"].clone())
    };
    let child_rows = |sys_id: &Value| {
        registered_on(&sims)
            .into_iter()
            .filter(|r| &r["child"] == sys_id)
            .count()
    };
    let (vm, target) = estate
        .vms
        .iter()
        .filter(|v| v.vendor == cmdb_sim::generator::Vendor::Vmware && v.retired != Some(true))
        .find_map(|v| {
            let from = esx_of(v.host?)?;
            // Its row to its host is there (the first apply made it).
            (child_rows(&from) > 0).then_some(())?;
            let to = (0..estate.hosts.len())
                .find(|&h| Some(estate.hosts[h].ems) == v.ems && Some(h) != v.host)?;
            esx_of(to)?;
            Some((v.id, to))
        })
        .expect("a VM on a known host, and another host of its vCenter");
    let to_esx = esx_of(target).unwrap();
    let before = child_rows(&to_esx);
    sims.manageiq()
        .vmotion(vm, estate.hosts[target].id, None)
        .unwrap();
    let moved = plan(&config, &dir.path().join("5")).await;
    assert_eq!(moved.plan.relationship_counts(), (1, 1));
    app::run_apply(&config, std::slice::from_ref(&moved))
        .await
        .unwrap();
    assert_eq!(child_rows(&to_esx), before + 1);
    assert_eq!(registered_on(&sims).len(), creates);
    let settled = plan(&config, &dir.path().join("6")).await;
    assert_eq!(settled.plan.relationship_counts(), (0, 0));
}

/// An exposition text, line by line: `name{labels}` -> value; every sample's family has a
/// `# HELP` and a `# TYPE gauge` line before it.
fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    let mut typed = std::collections::BTreeSet::new();
    let mut helped = std::collections::BTreeSet::new();
    let mut samples = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().unwrap().to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(kind, "gauge", "{line}");
            typed.insert(name.to_owned());
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line `{line}`"
            );
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            assert!(name.starts_with("cmdb_reconcile_"), "{line}");
            assert!(typed.contains(name) && helped.contains(name), "{line}");
            assert!(
                !name.ends_with("_total"),
                "per-run counts are gauges: {line}"
            );
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("value of `{line}`"));
            assert!(
                samples.insert(series.to_owned(), value).is_none(),
                "twice: {line}"
            );
        }
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_writes_its_metrics_and_a_failed_run_keeps_the_last_success() {
    let sims = sims(300).await;
    let dir = tempfile::tempdir().unwrap();
    let config = sims_config(dir.path(), &sims);
    // Two 429s from the CMDB read and one 503 from CloudForms: retried, and counted.
    sims.set_faults(
        Api::ServiceNow,
        faults(json!({"rules": [
            {"kind": "error", "status": 429, "method": "GET", "path": "/api/now/table/cmdb_ci_vmware_instance", "times": 2}
        ]})),
    );
    sims.set_faults(
        Api::ManageIq,
        faults(
            json!({"rules": [{"kind": "error", "status": 503, "path": "/api/vms", "times": 1}]}),
        ),
    );
    let metrics = dir.path().join("cmdb-reconcile.prom");
    let run = |config: &Path| {
        bin_for(dir.path(), &sims)
            .args(["-q", "run", "--config"])
            .arg(config)
            .arg("--metrics-file")
            .arg(&metrics)
            .output()
            .unwrap()
    };
    let out = tokio::task::block_in_place(|| run(&config));
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(out.stdout.is_empty(), "-q: nothing on stdout");
    let text = std::fs::read_to_string(&metrics).unwrap();
    let m = parse_metrics(&text);
    let get = |series: &str| {
        *m.get(series)
            .unwrap_or_else(|| panic!("no `{series}` in\n{text}"))
    };
    assert_eq!(get("cmdb_reconcile_last_run_exit_code"), 0.0);
    assert_eq!(get("cmdb_reconcile_last_run_success"), 1.0);
    let started = get("cmdb_reconcile_last_run_timestamp_seconds");
    assert_eq!(
        get("cmdb_reconcile_last_success_timestamp_seconds"),
        started
    );
    assert!(get("cmdb_reconcile_last_run_duration_seconds") > 0.0);
    assert_eq!(
        get(r#"cmdb_reconcile_http_rate_limited{api="servicenow"}"#),
        2.0
    );
    assert!(get(r#"cmdb_reconcile_http_retries{api="servicenow"}"#) >= 2.0);
    assert!(get(r#"cmdb_reconcile_http_retries{api="cloudforms"}"#) >= 1.0);
    assert!(get(r#"cmdb_reconcile_http_requests{api="cloudforms"}"#) >= 3.0);
    assert!(get(r#"cmdb_reconcile_http_requests{api="servicenow"}"#) > 10.0);
    assert_eq!(
        get(r#"cmdb_reconcile_source_complete{mapping="vmware-vm"}"#),
        1.0
    );
    for phase in ["read", "plan", "apply"] {
        let series = format!(
            r#"cmdb_reconcile_phase_duration_seconds{{mapping="vmware-vm",phase="{phase}"}}"#
        );
        assert!(get(&series) > 0.0, "{series}");
    }
    // The plan's own counts, and what apply did with them.
    let report = std::fs::read_dir(dir.path().join("reports"))
        .unwrap()
        .map(|e| e.unwrap().path().join("vmware-vm"))
        .find(|p| p.join("plan.json").exists())
        .expect("the sync's folder in the run's folder");
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("plan.json")).unwrap()).unwrap();
    assert_eq!(
        get(r#"cmdb_reconcile_source_records{mapping="vmware-vm"}"#),
        plan["source"]["records"].as_f64().unwrap()
    );
    let creates = plan["summary"]["creates"].as_f64().unwrap();
    assert!(creates > 0.0);
    assert_eq!(
        get(r#"cmdb_reconcile_planned_operations{action="create",mapping="vmware-vm"}"#),
        creates
    );
    assert_eq!(
        get(r#"cmdb_reconcile_operations{action="create",mapping="vmware-vm",outcome="applied"}"#),
        creates
    );
    assert_eq!(
        get(r#"cmdb_reconcile_operations{action="create",mapping="vmware-vm",outcome="failed"}"#),
        0.0
    );
    let drifted: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("cmdb_reconcile_field_drift{"))
        .map(|(_, v)| v)
        .sum();
    let planned_drift: f64 = plan["summary"]["drift_by_field"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert_eq!(drifted, planned_drift);
    assert!(text.contains(&format!(
        "cmdb_reconcile_build_info{{commit=\"{}\",version=\"{}\"}} 1",
        cmdb_reconcile::metrics::build_commit(),
        env!("CARGO_PKG_VERSION")
    )));

    // A failed run (CloudForms unreachable): success 0, and the last success survives.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let broken = write_config(dir.path(), &closed, &sims.servicenow_url(), "2s");
    let out = tokio::task::block_in_place(|| run(&broken));
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let m = parse_metrics(&std::fs::read_to_string(&metrics).unwrap());
    assert_eq!(m["cmdb_reconcile_last_run_exit_code"], 1.0);
    assert_eq!(m["cmdb_reconcile_last_run_success"], 0.0);
    assert_eq!(m["cmdb_reconcile_last_success_timestamp_seconds"], started);
    // The file was replaced whole: no temporary file is left beside it.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A misspelt table is an error naming it, never an empty CMDB (which would plan a create
/// for every VM): the instance answers 400 "Invalid table", and nothing is planned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_table_is_an_error_not_an_empty_cmdb() {
    let sims = sims(50).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&sims, dir.path());
    let mapping = include_str!("../mappings/vmware-vm.toml").replace(
        "table = \"cmdb_ci_vmware_instance\"",
        "table = \"cmdb_ci_vmware_instanse\"",
    );
    let path = dir.path().join("misspelt.toml");
    std::fs::write(&path, mapping).unwrap();
    config.syncs[0].mapping = path;
    config.out_dir = Some(dir.path().join("out"));
    let Err(error) = app::plan_all(&config, now(), false).await else {
        panic!("an unknown table is an error");
    };
    let text = format!("{error:#}");
    assert!(
        text.contains("cmdb_ci_vmware_instanse") && text.contains("Invalid table"),
        "{text}"
    );
    assert!(!dir.path().join("out").join("misspelt/plan.json").exists());
}

/// The shipped infrastructure mappings against the simulators, planned before any is
/// applied (`plan` then `apply`): vCenters, datacenters (read as provider folders) and
/// clusters are created; their `vcenter_ref` and the clusters' datacenter rows follow the
/// next run, once the CIs they point at exist; ESX hosts Discovery already owns are foreign,
/// not taken over, and the third run has nothing left to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infrastructure_mappings_create_vcenters_and_clusters_and_converge() {
    let sims = sims(300).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&sims, dir.path());
    config.syncs = [
        "vcenter",
        "vmware-datacenter",
        "vmware-cluster",
        "vmware-esx-host",
    ]
    .iter()
    .map(|m| {
        SyncConfig::live(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("mappings/{m}.toml")),
        )
    })
    .collect();
    let run = |n: usize| {
        let mut c = config.clone();
        c.report_dir = dir.path().join(n.to_string());
        c
    };
    let first = app::plan_all(&run(1), now(), false).await.unwrap();
    let creates: Vec<usize> = first.iter().map(|p| p.plan.summary.creates).collect();
    let estate = sims.manageiq().estate();
    let vmware = |ems: usize| estate.providers[ems].vendor == cmdb_sim::generator::Vendor::Vmware;
    let vmware_dcs = estate.datacenters.iter().filter(|d| vmware(d.ems)).count();
    assert!(
        creates[0] >= 2 && creates[2] >= 2,
        "vCenters and clusters: {creates:?}"
    );
    assert_eq!(creates[1], vmware_dcs, "one CI per VMware datacenter");
    assert_eq!(creates[3], 0, "Discovery's ESX hosts are not created again");
    assert!(
        first[3]
            .plan
            .issues
            .iter()
            .any(|i| i.kind.as_str() == "foreign"),
        "they are reported as foreign"
    );
    assert_eq!(
        app::run_apply(&run(1), &first).await.unwrap(),
        Status::Clean
    );
    let vcenters = sims.servicenow().rows("cmdb_ci_vcenter");
    assert_eq!(vcenters.len(), creates[0]);

    let second = app::plan_all(&run(2), now(), false).await.unwrap();
    assert_eq!(second[0].plan.summary.updates, 0);
    for i in [1, 2] {
        assert_eq!(
            second[i].plan.summary.updates, creates[i],
            "vcenter_ref filled in"
        );
    }
    assert_eq!(
        second[2].plan.relationship_counts(),
        (creates[2], 0),
        "each cluster contained by its datacenter"
    );
    app::run_apply(&run(2), &second).await.unwrap();
    let clusters = sims.servicenow().rows("cmdb_ci_vcenter_cluster");
    let datacenters = sims.servicenow().rows("cmdb_ci_vcenter_datacenter");
    for c in clusters.iter().chain(&datacenters) {
        assert!(
            vcenters.iter().any(|v| v["sys_id"] == c["vcenter_ref"]),
            "{c:?}"
        );
    }
    let contains = rel_rows(&sims, "Contains::Contained by");
    assert_eq!(contains.len(), clusters.len());
    for r in &contains {
        let dc = datacenters
            .iter()
            .find(|d| d["sys_id"] == r["parent"])
            .unwrap();
        let cluster = clusters.iter().find(|c| c["sys_id"] == r["child"]).unwrap();
        let c = estate
            .clusters
            .iter()
            .find(|c| {
                c.ems_ref == cluster["morid"].as_str().unwrap()
                    && estate.providers[c.ems].uid_ems.as_deref()
                        == cluster["vcenter_uuid"].as_str()
            })
            .unwrap();
        assert_eq!(
            dc["morid"],
            estate.datacenters[c.datacenter].ems_ref.as_str()
        );
    }
    let third = app::plan_all(&run(3), now(), false).await.unwrap();
    assert!(third.iter().all(|p| !p.plan.has_changes()), "converged");
}

/// `run` plans and applies sync by sync, parents first: the clusters created by one run
/// already point at the vCenters the same run created, and a second run changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_applies_parents_first_so_references_resolve_in_the_same_run() {
    let sims = sims(300).await;
    let dir = tempfile::tempdir().unwrap();
    let config = sims_config(dir.path(), &sims);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[[sync]]\nmapping = \"vmware-vm.toml\"\n", "");
    let syncs: String = [
        "vcenter",
        "vmware-datacenter",
        "vmware-cluster",
        "vmware-esx-host",
    ]
    .iter()
    .map(|m| format!("[[sync]]\nmapping = {:?}\n", root.join(format!("{m}.toml"))))
    .collect();
    std::fs::write(&config, format!("{text}{syncs}")).unwrap();
    let run = |extra: &[&str]| {
        bin_for(dir.path(), &sims)
            .args(["run", "--now", "2026-11-27T06:00:00Z", "--config"])
            .arg(&config)
            .env("CMDB_RECONCILE_TEST_CLOCK", "1")
            .args(extra)
            .output()
            .unwrap()
    };
    let first = tokio::task::block_in_place(|| run(&[]));
    assert_eq!(first.status.code(), Some(0), "{}", output_text(&first));
    let vcenters = sims.servicenow().rows("cmdb_ci_vcenter");
    let clusters = sims.servicenow().rows("cmdb_ci_vcenter_cluster");
    assert!(!vcenters.is_empty() && !clusters.is_empty());
    for c in &clusters {
        assert!(
            vcenters.iter().any(|v| v["sys_id"] == c["vcenter_ref"]),
            "set in the run that created both: {c:?}"
        );
    }
    let again = tokio::task::block_in_place(|| run(&["--dry-run", "--detailed-exitcode"]));
    assert_eq!(again.status.code(), Some(0), "{}", output_text(&again));
}

/// The rows of one relationship type in the simulated CMDB.
fn rel_rows(sims: &Sims, name: &str) -> Vec<serde_json::Map<String, Value>> {
    let kind = sims
        .servicenow()
        .rows("cmdb_rel_type")
        .into_iter()
        .find(|t| t["name"] == name)
        .expect("the standard type is installed")["sys_id"]
        .clone();
    sims.servicenow()
        .rows("cmdb_rel_ci")
        .into_iter()
        .filter(|r| r["type"] == kind)
        .collect()
}

/// The shipped infrastructure mappings in one `run`, applied parents first: ESX hosts this
/// job owns (none in the CMDB before: Discovery never saw them) are created with their
/// cluster's `Members::Member of` row, datastores with their `vcenter_ref`, and the VMs'
/// `Registered on` and `Stored on` rows point at the CIs the same run created; the next plan
/// has nothing to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infrastructure_cis_and_their_relationships_in_one_run() {
    let sims = sims(300).await;
    for h in sims.servicenow().rows("cmdb_ci_esx_server") {
        assert!(sims
            .servicenow()
            .delete_row("cmdb_ci_esx_server", h["sys_id"].as_str().unwrap()));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&sims, dir.path());
    config.syncs = [
        "vcenter",
        "vmware-datacenter",
        "vmware-cluster",
        "vmware-esx-host",
        "vmware-datastore",
        "vmware-vm",
    ]
    .iter()
    .map(|m| {
        SyncConfig::live(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("mappings/{m}.toml")),
        )
    })
    .collect();
    config.report_dir = dir.path().join("1");
    let (_, status) = app::plan_and_apply(&config, now(), false).await.unwrap();
    assert_eq!(status, Status::Clean);

    let estate = sims.manageiq().estate();
    let vmware_hosts = estate
        .hosts
        .iter()
        .filter(|h| estate.providers[h.ems].vendor == cmdb_sim::generator::Vendor::Vmware)
        .count();
    let esx = sims.servicenow().rows("cmdb_ci_esx_server");
    assert_eq!(esx.len(), vmware_hosts, "one ESX server per VMware host");
    let members = rel_rows(&sims, "Members::Member of");
    assert_eq!(
        members.len(),
        vmware_hosts,
        "each host a member of its cluster"
    );
    let clusters = sims.servicenow().rows("cmdb_ci_vcenter_cluster");
    for m in &members {
        let cluster = clusters
            .iter()
            .find(|c| c["sys_id"] == m["parent"])
            .unwrap();
        let host = esx.iter().find(|h| h["sys_id"] == m["child"]).unwrap();
        let h = estate
            .hosts
            .iter()
            .find(|h| {
                h.ems_ref == host["morid"].as_str().unwrap()
                    && estate.providers[h.ems].uid_ems.as_deref() == host["vcenter_uuid"].as_str()
            })
            .unwrap();
        assert_eq!(
            cluster["morid"],
            estate.clusters[h.cluster].ems_ref.as_str()
        );
    }
    // The VMs' rows point at the ESX servers this run created.
    let registered = rel_rows(&sims, "Registered on::Has registered");
    assert!(!registered.is_empty());
    assert!(registered
        .iter()
        .all(|r| esx.iter().any(|h| h["sys_id"] == r["child"])));

    // Datastores: one CI per VMware datastore, each VM stored on its own.
    let vmware = |ems: usize| estate.providers[ems].vendor == cmdb_sim::generator::Vendor::Vmware;
    let datastores = sims.servicenow().rows("cmdb_ci_vcenter_datastore");
    let vmware_storages = estate
        .storages
        .iter()
        .filter(|s| vmware(estate.clusters[s.cluster].ems))
        .count();
    assert_eq!(datastores.len(), vmware_storages);
    let vcenters = sims.servicenow().rows("cmdb_ci_vcenter");
    assert!(datastores
        .iter()
        .all(|d| vcenters.iter().any(|v| v["sys_id"] == d["vcenter_ref"])));
    let stored_on = rel_rows(&sims, "Provides storage for::Stored on");
    let vms = sims.servicenow().rows("cmdb_ci_vmware_instance");
    assert!(!stored_on.is_empty());
    for r in &stored_on {
        let ds = datastores
            .iter()
            .find(|d| d["sys_id"] == r["parent"])
            .unwrap();
        let vm = vms.iter().find(|v| v["sys_id"] == r["child"]).unwrap();
        let v = estate
            .vms
            .iter()
            .find(|v| {
                Some(v.ems_ref.as_str()) == vm["object_id"].as_str()
                    && v.ems.and_then(|e| estate.providers[e].uid_ems.as_deref())
                        == vm["vcenter_uuid"].as_str()
            })
            .unwrap();
        assert_eq!(
            ds["morid"],
            estate.storages[v.storage.unwrap()].ems_ref.as_str(),
            "{vm:?}"
        );
    }

    // Datacenters contain their clusters and VMs (each once).
    let contains = rel_rows(&sims, "Contains::Contained by");
    let datacenters = sims.servicenow().rows("cmdb_ci_vcenter_datacenter");
    assert!(contains
        .iter()
        .all(|r| datacenters.iter().any(|d| d["sys_id"] == r["parent"])));
    let clusters = sims.servicenow().rows("cmdb_ci_vcenter_cluster");
    let contained = |rows: &[serde_json::Map<String, Value>]| {
        contains
            .iter()
            .filter(|r| rows.iter().any(|c| c["sys_id"] == r["child"]))
            .count()
    };
    assert_eq!(contained(&clusters), clusters.len());
    assert_eq!(contained(&vms), registered.len());

    config.report_dir = dir.path().join("2");
    let again = app::plan_all(&config, now(), false).await.unwrap();
    for p in &again {
        assert!(!p.plan.has_changes(), "{} converged", p.plan.mapping.name);
    }
}

/// `[classify]` over HTTP: every VM's CloudForms tags become `cmdb_key_value` rows of its CI,
/// a second plan finds nothing to change, and a row whose tag the VM does not have (added
/// by hand with the job's `tag`) is deleted while another source's row is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_become_classification_rows_and_converge() {
    let sims = sims(300).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&sims, dir.path());
    let path = dir.path().join("vmware-vm-tags.toml");
    std::fs::write(
        &path,
        format!(
            "{}\n[classify]\nfrom_tag = \"*\"\n",
            include_str!("../mappings/vmware-vm.toml")
        ),
    )
    .unwrap();
    config.syncs[0].mapping = path;
    let first = plan(&config, &dir.path().join("1")).await;
    let (creates, deletes) = first.plan.classification_counts();
    assert!(creates > 100, "{creates}");
    assert_eq!(deletes, 0);
    app::run_apply(&config, std::slice::from_ref(&first))
        .await
        .unwrap();
    let rows = sims.servicenow().rows("cmdb_key_value");
    assert_eq!(rows.len(), creates, "one row per planned create");
    assert!(rows.iter().all(|r| r["tag"] == "CloudForms"));

    let second = plan(&config, &dir.path().join("2")).await;
    assert_eq!(second.plan.classification_counts(), (0, 0), "converged");

    // A row the VM's tags do not hold, with the job's tag, and one of another source.
    let ci = rows[0]["configuration_item"].clone();
    let mut stale = serde_json::Map::new();
    stale.insert("configuration_item".into(), ci.clone());
    stale.insert("key".into(), "environment".into());
    stale.insert("value".into(), "no-such-entry".into());
    stale.insert("tag".into(), "CloudForms".into());
    let mut other = stale.clone();
    other.insert("tag".into(), "Tags".into());
    sims.servicenow().seed("cmdb_key_value", vec![stale, other]);
    let third = plan(&config, &dir.path().join("3")).await;
    assert_eq!(third.plan.classification_counts(), (0, 1));
    assert_eq!(third.plan.classifications[0].value, "no-such-entry");
    app::run_apply(&config, std::slice::from_ref(&third))
        .await
        .unwrap();
    let left = sims.servicenow().rows("cmdb_key_value");
    assert_eq!(left.len(), creates + 1, "another source's row stays");
    let last = plan(&config, &dir.path().join("4")).await;
    assert_eq!(last.plan.classification_counts(), (0, 0));
}
