//! The lease over real HTTP and real processes: two runs started together against one
//! simulator, on "two hosts" (separate lock files, so only the ServiceNow lease stands between
//! them) and on one host (one lock file): exactly one writes, the other exits 5 naming the
//! holder, and the CMDB holds no duplicate CI. A dead holder's live claim blocks until
//! `--force-unlock`.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures, write files and read the clock"
)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use cmdb_sim::{SimOptions, Sims};
use serde_json::{json, Map, Value};

const TABLE: &str = "cmdb_ci_vmware_instance";
const LEASE_TABLE: &str = "u_cmdb_reconcile_lease";

async fn sims(vms: usize) -> Sims {
    Sims::start(SimOptions {
        vms,
        drift: 0.05,
        seed: 23,
        now: "2026-11-27T06:00:00Z".parse().unwrap(),
        ..Default::default()
    })
    .await
    .expect("simulators start")
}

/// A config of its own in `dir`, with its own lock file: a separate "host".
fn write_config(dir: &Path, sims: &Sims) -> PathBuf {
    std::fs::write(
        dir.join("vmware-vm.toml"),
        include_str!("../mappings/vmware-vm.toml"),
    )
    .unwrap();
    let path = dir.join("cmdb-reconcile.toml");
    std::fs::write(
        &path,
        format!(
            "[cloudforms]\nurl = \"{}\"\nuser = \"admin\"\npassword_env = \"TEST_CF_PASSWORD\"\n\n\
             [servicenow]\nurl = \"{}\"\nuser = \"admin\"\npassword_env = \"TEST_SN_PASSWORD\"\n\n\
             [lease]\nlock_file = \"run.lock\"\nsettle = \"1s\"\n\n\
             [[sync]]\nmapping = \"vmware-vm.toml\"\n",
            sims.manageiq_url(),
            sims.servicenow_url()
        ),
    )
    .unwrap();
    path
}

fn start(dir: &Path, config: &Path, sims: &Sims, extra: &[&str]) -> Child {
    let o = sims.options();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cmdb-reconcile"));
    for var in ["CMDB_RECONCILE_CONFIG", "SERVICENOW_URL", "CLOUDFORMS_URL"] {
        cmd.env_remove(var);
    }
    cmd.current_dir(dir)
        .env_remove("RUST_LOG")
        .args(["--log-format", "text", "run", "--config"])
        .arg(config)
        .args(extra)
        .env("TEST_CF_PASSWORD", &o.miq_password)
        .env("TEST_SN_PASSWORD", &o.snow_password)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// CIs sharing the first identity rule's key (a non-empty one): duplicates a second writer
/// would have made.
fn duplicate_identities(rows: &[Map<String, Value>]) -> usize {
    let mut seen = HashSet::new();
    rows.iter()
        .filter(|r| {
            r.get("object_id")
                .and_then(Value::as_str)
                .is_some_and(|v| !v.is_empty())
        })
        .filter(|r| {
            let key = (r["object_id"].to_string(), r["vcenter_uuid"].to_string());
            !seen.insert(key)
        })
        .count()
}

/// Starts two runs at once and returns their outputs, the winner first.
fn race(a: (&Path, &Path), b: (&Path, &Path), sims: &Sims) -> (Output, Output) {
    let first = start(a.0, a.1, sims, &[]);
    let second = start(b.0, b.1, sims, &[]);
    let (x, y) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    if x.status.code() == Some(0) {
        (x, y)
    } else {
        (y, x)
    }
}

fn assert_one_wrote(winner: &Output, loser: &Output, sims: &Sims, before: &[Map<String, Value>]) {
    assert_eq!(winner.status.code(), Some(0), "{}", text(winner));
    assert_eq!(loser.status.code(), Some(5), "{}", text(loser));
    assert!(text(loser).contains("busy:"), "{}", text(loser));
    assert!(
        text(loser).contains("cmdb-reconcile pid"),
        "names the holder: {}",
        text(loser)
    );
    assert!(
        !text(loser).contains("applied"),
        "the loser wrote: {}",
        text(loser)
    );
    let rows = sims.servicenow().rows(TABLE);
    assert!(rows.len() > before.len(), "the winner created CIs");
    assert_eq!(
        duplicate_identities(&rows),
        duplicate_identities(before),
        "no duplicate CI beyond those the generated CMDB starts with"
    );
    assert!(
        sims.servicenow().rows(LEASE_TABLE).is_empty(),
        "both claims are gone: {:?}",
        sims.servicenow().rows(LEASE_TABLE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_at_once_one_writes_the_other_exits_5() {
    let sims = sims(400).await;
    let before = sims.servicenow().rows(TABLE);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ca, cb) = (write_config(a.path(), &sims), write_config(b.path(), &sims));
    let (winner, loser) =
        tokio::task::block_in_place(|| race((a.path(), &ca), (b.path(), &cb), &sims));
    assert_one_wrote(&winner, &loser, &sims, &before);
    assert!(
        text(&loser).contains("holds the lease `cmdb-reconcile`"),
        "the ServiceNow lease refused it: {}",
        text(&loser)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_on_one_host_one_writes_the_other_exits_5() {
    let sims = sims(400).await;
    let before = sims.servicenow().rows(TABLE);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sims);
    let (winner, loser) =
        tokio::task::block_in_place(|| race((dir.path(), &config), (dir.path(), &config), &sims));
    assert_one_wrote(&winner, &loser, &sims, &before);
    assert!(
        text(&loser).contains("lock file"),
        "the lock file refused it: {}",
        text(&loser)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_claim_blocks_until_force_unlock() {
    let sims = sims(50).await;
    // A run on another host died holding a claim that has not expired yet.
    sims.servicenow().seed(
        LEASE_TABLE,
        vec![
            json!({"u_name": "cmdb-reconcile", "u_holder": "ghost run", "u_host": "gone-host",
                    "u_expires": "2999-01-01 00:00:00", "sys_created_on": "2026-01-01 00:00:00"})
            .as_object()
            .unwrap()
            .clone(),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sims);
    let blocked = tokio::task::block_in_place(|| {
        start(dir.path(), &config, &sims, &[])
            .wait_with_output()
            .unwrap()
    });
    assert_eq!(blocked.status.code(), Some(5), "{}", text(&blocked));
    assert!(
        text(&blocked).contains("ghost run on host gone-host"),
        "{}",
        text(&blocked)
    );
    let forced = tokio::task::block_in_place(|| {
        start(dir.path(), &config, &sims, &["--force-unlock"])
            .wait_with_output()
            .unwrap()
    });
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    assert!(sims.servicenow().rows(LEASE_TABLE).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_claim_does_not_block() {
    let sims = sims(50).await;
    sims.servicenow().seed(
        LEASE_TABLE,
        vec![
            json!({"u_name": "cmdb-reconcile", "u_holder": "old run", "u_host": "h",
                    "u_expires": "2000-01-01 00:00:00"})
            .as_object()
            .unwrap()
            .clone(),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sims);
    let out = tokio::task::block_in_place(|| {
        start(dir.path(), &config, &sims, &[])
            .wait_with_output()
            .unwrap()
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        sims.servicenow().rows(LEASE_TABLE).is_empty(),
        "the winner cleared the dead claim"
    );
}
