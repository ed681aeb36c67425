//! Benchmark of the infrastructure syncs at scale: `cmdb-reconcile run` of every shipped
//! VMware mapping, parents first (vCenters, datacenters, clusters, ESX hosts, datastores,
//! VMs with their `Registered on`, `Stored on` and `Contains` relationship rows), against the
//! simulators with a fixed latency on every request; then `run --dry-run
//! --detailed-exitcode`, which must find zero drift (exit 0).
//!
//! `cargo bench --bench infra [-- VMS HOSTS]` (default: 100000 VMs on 2000 hosts). It prints
//! the dataset, the wall time of each run, the requests each API answered next to the
//! fewest possible for that dataset, and the job's peak memory (the job runs as its own
//! process; the simulators run in this one).
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark reads the clock and writes files"
)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use cmdb_sim::{Api, FaultConfig, SimOptions, Sims};
use serde_json::{json, Value};

/// Latency added to every request of both APIs.
const LATENCY_MS: u64 = 5;
/// Writes in flight, each a batch of up to `BATCH` writes (creates, updates and deletes
/// alike; 50 is the job's default `batch_size`).
const CONCURRENCY: usize = 16;
const BATCH: usize = 50;
const NOW: &str = "2026-11-27T06:00:00Z";
const MAPPINGS: [&str; 6] = [
    "vcenter",
    "vmware-datacenter",
    "vmware-cluster",
    "vmware-esx-host",
    "vmware-datastore",
    "vmware-vm",
];

fn faults() -> FaultConfig {
    FaultConfig::from_json(
        &json!({"seed": 1, "rules": [{"kind": "latency", "latency_ms": LATENCY_MS}]}).to_string(),
    )
    .expect("faults")
}

/// The job's JSON log line with this message: a field of it.
fn log_field(stderr: &str, message: &str, field: &str) -> Option<f64> {
    stderr
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == message)
        .find_map(|v| v[field].as_f64())
}

fn total(stats: &Value) -> u64 {
    stats["total"].as_u64().unwrap_or(0)
}

fn by_method(stats: &Value, method: &str) -> u64 {
    stats["by_method"][method].as_u64().unwrap_or(0)
}

fn run(dir: &Path, config: &Path, sims: &Sims, extra: &[&str]) -> (Output, f64) {
    let o = sims.options();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_cmdb-reconcile"))
        .args(["run", "--log-format", "json", "--now", NOW, "--config"])
        .arg(config)
        .args(extra)
        .current_dir(dir)
        .env("BENCH_CF", &o.miq_password)
        .env("BENCH_SN", &o.snow_password)
        // The estate is dated `NOW`: a run that writes takes a pinned --now only so.
        .env("CMDB_RECONCILE_TEST_CLOCK", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("run cmdb-reconcile");
    (out, started.elapsed().as_secs_f64())
}

/// The plans of a run folder, in the order the syncs ran.
fn plans(run_dir: &Path) -> Vec<Value> {
    MAPPINGS
        .iter()
        .map(|m| {
            let text = std::fs::read_to_string(run_dir.join(m).join("plan.json")).unwrap();
            serde_json::from_str(&text).unwrap()
        })
        .collect()
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let vms = args.first().copied().unwrap_or(100_000);
    let hosts = args.get(1).copied().unwrap_or(2_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let generating = Instant::now();
    let sims = runtime
        .block_on(Sims::start(SimOptions {
            vms,
            hosts: Some(hosts),
            drift: 0.05,
            seed: 7,
            now: NOW.parse().unwrap(),
            miq_faults: faults(),
            snow_faults: faults(),
            ..Default::default()
        }))
        .expect("simulators");
    let estate = sims.estate();
    println!(
        "cmdb-reconcile infrastructure syncs: {vms} VMs on {} hosts in {} clusters, {} datastores, {} datacenters, {} providers (5% drift, seed 7; generated in {:.1} s); {LATENCY_MS} ms latency per request on both APIs; apply concurrency {CONCURRENCY}, batches of {BATCH}; {} cores",
        estate.hosts.len(),
        estate.clusters.len(),
        estate.storages.len(),
        estate.datacenters.len(),
        estate.providers.len(),
        generating.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let mut syncs = String::new();
    for m in MAPPINGS {
        let file = format!("{m}.toml");
        std::fs::copy(root.join(&file), dir.path().join(&file)).unwrap();
        syncs.push_str(&format!("[[sync]]\nmapping = \"{file}\"\n"));
    }
    let o = sims.options().clone();
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[cloudforms]\nurl = \"{}\"\nuser = \"{}\"\npassword_env = \"BENCH_CF\"\n\n\
             [servicenow]\nurl = \"{}\"\nuser = \"{}\"\npassword_env = \"BENCH_SN\"\n\n\
             [apply]\nconcurrency = {CONCURRENCY}\nbatch_size = {BATCH}\ndeadline = \"6h\"\n\n\
             [report]\ndir = \"reports\"\nformats = [\"json\"]\n\n{syncs}",
            sims.manageiq_url(),
            o.miq_user,
            sims.servicenow_url(),
            o.snow_user,
        ),
    )
    .unwrap();

    // Run 1: read, plan and apply every sync, parents first.
    let (out, wall) = run(dir.path(), &config, &sims, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "run failed ({}):\n{}",
        out.status,
        stderr.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    let run_dir = std::fs::read_dir(dir.path().join("reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let first = plans(&run_dir);
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let mut ci_writes = 0;
    let mut ci_creates = 0;
    let mut rel_creates = 0;
    let mut rel_deletes = 0;
    // The fewest write requests: every sync sends its CI creates, its other CI writes, then
    // its relationship rows created and deleted, each kind in batches.
    let mut min_writes = 0;
    let mut records = 0;
    let mut min_miq = 0;
    let mut min_snow_reads = 0;
    for p in &first {
        let s = &p["summary"];
        let others =
            n(&s["updates"]) + n(&s["retirements"]) + n(&s["deletes"]) + n(&s["marked_absent"]);
        ci_creates += n(&s["creates"]);
        ci_writes += n(&s["creates"]) + others;
        let (mut creates, mut deletes) = (0, 0);
        for r in p["relationships"].as_array().into_iter().flatten() {
            if r["action"] == "create" {
                creates += 1;
            } else {
                deletes += 1;
            }
        }
        rel_creates += creates;
        rel_deletes += deletes;
        for kind in [n(&s["creates"]), others, creates, deletes] {
            min_writes += kind.div_ceil(BATCH as u64);
        }
        let read = n(&p["source"]["records"]);
        records += read;
        // One page per 1000 records, one more per provider for a subcollection; a login.
        min_miq += read.div_ceil(1000).max(1) + 1;
        if p["mapping"]["collection"] == "providers/folders" {
            min_miq += estate.providers.len() as u64;
        }
        min_snow_reads += n(&p["target"]["cis"]).div_ceil(1000).max(1);
    }
    let rel_rows = sims.servicenow().count("cmdb_rel_ci");
    let miq = sims.stats(Api::ManageIq);
    let snow = sims.stats(Api::ServiceNow);
    println!(
        "run 1 (plan + apply): wall {wall:.1} s, peak RSS {:.0} MiB; {records} records read; planned {ci_writes} CI writes ({ci_creates} creates) and {rel_creates} relationship rows to create, {rel_deletes} to delete; the CMDB now holds {rel_rows} relationship rows",
        log_field(&stderr, "done", "peak_rss_mib").unwrap_or(f64::NAN),
    );
    println!(
        "  CloudForms: {} requests (minimum {min_miq}); ServiceNow: {} requests: GET {} (minimum {min_snow_reads} for the target tables; plus lookups, relationship rows and pre-write checks), POST {} (batches included), PATCH {}, DELETE {}, batch {}; write requests minimum {min_writes}",
        total(&miq),
        total(&snow),
        by_method(&snow, "GET"),
        by_method(&snow, "POST"),
        by_method(&snow, "PATCH"),
        by_method(&snow, "DELETE"),
        snow["by_route"]["POST /api/now/v1/batch"]["total"].as_u64().unwrap_or(0),
    );

    // Run 2: the re-plan. Zero drift: exit 0 with --detailed-exitcode.
    sims.reset_stats(Api::ManageIq);
    sims.reset_stats(Api::ServiceNow);
    let (out, wall) = run(
        dir.path(),
        &config,
        &sims,
        &["--dry-run", "--detailed-exitcode"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the re-plan found drift:\n{}",
        stderr.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    let miq = sims.stats(Api::ManageIq);
    let snow = sims.stats(Api::ServiceNow);
    println!(
        "run 2 (re-plan, --dry-run): zero drift; wall {wall:.1} s, peak RSS {:.0} MiB; CloudForms {} requests, ServiceNow {} requests (no writes: POST {}, PATCH {}, DELETE {})",
        log_field(&stderr, "done", "peak_rss_mib").unwrap_or(f64::NAN),
        total(&miq),
        total(&snow),
        by_method(&snow, "POST"),
        by_method(&snow, "PATCH"),
        by_method(&snow, "DELETE"),
    );
    runtime.block_on(sims.stop());
}
