//! Benchmark of the whole job over HTTP: `cmdb-reconcile run` (plan, then apply) against the
//! simulators with 20 ms latency on every request and a ServiceNow rate limit.
//!
//! `cargo bench --bench live [-- 10000 100000]` (default: 10000). For each estate size it runs
//! three configurations, each on a fresh simulated estate (5% drift, seed 7):
//! `default` (apply concurrency 8, one request per write), `batch` (concurrency 8, Batch API,
//! 100 writes per request) and `sequential` (concurrency 1, one request per write). It prints
//! wall time of plan and apply, round trips by kind (from the simulators' counters) next to
//! the fewest possible for that dataset, 429s received, and the job's peak memory (the job
//! runs as its own process; the simulators run in this one).
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark reads the clock and writes files"
)]

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use chrono::Utc;
use cmdb_sim::{Api, FaultConfig, SimOptions, Sims};
use serde_json::{json, Value};

const LATENCY_MS: u64 = 20;
/// ServiceNow allows this many requests per second, then answers 429 + Retry-After: 1.
const RATE_LIMIT_PER_SEC: u64 = 250;

struct Scenario {
    name: &'static str,
    concurrency: usize,
    batch_size: usize,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "default",
        concurrency: 8,
        batch_size: 0,
    },
    Scenario {
        name: "batch",
        concurrency: 8,
        batch_size: 100,
    },
    Scenario {
        name: "sequential",
        concurrency: 1,
        batch_size: 0,
    },
];

fn faults(rate_limit: bool) -> FaultConfig {
    let mut rules = vec![json!({"kind": "latency", "latency_ms": LATENCY_MS})];
    if rate_limit {
        rules.push(json!({"kind": "rate_limit", "limit": RATE_LIMIT_PER_SEC, "window_secs": 1, "retry_after_secs": 1}));
    }
    FaultConfig::from_json(&json!({"seed": 1, "rules": rules}).to_string()).expect("faults")
}

fn route_totals(stats: &Value) -> BTreeMap<String, u64> {
    stats["by_route"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v["total"].as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// The job's JSON log lines with this message.
fn log_field(stderr: &str, message: &str, field: &str) -> Option<f64> {
    stderr
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == message)
        .find_map(|v| v[field].as_f64())
}

fn run(vms: usize, scenario: &Scenario, runtime: &tokio::runtime::Runtime) {
    let now = Utc::now();
    let sims = runtime
        .block_on(Sims::start(SimOptions {
            vms,
            drift: 0.05,
            seed: 7,
            now,
            miq_faults: faults(false),
            snow_faults: faults(true),
            ..Default::default()
        }))
        .expect("simulators");
    let o = sims.options().clone();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("vmware-vm.toml"),
        include_str!("../mappings/vmware-vm.toml"),
    )
    .unwrap();
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[cloudforms]\nurl = \"{}\"\nuser = \"{}\"\npassword_env = \"BENCH_CF\"\n\n\
             [servicenow]\nurl = \"{}\"\nuser = \"{}\"\npassword_env = \"BENCH_SN\"\n\n\
             [apply]\nconcurrency = {}\nbatch_size = {}\n\n[report]\ndir = \"reports\"\nformats = [\"json\"]\n\n\
             [[sync]]\nmapping = \"vmware-vm.toml\"\n",
            sims.manageiq_url(),
            o.miq_user,
            sims.servicenow_url(),
            o.snow_user,
            scenario.concurrency,
            scenario.batch_size
        ),
    )
    .unwrap();

    let cis_before = sims.servicenow().count("cmdb_ci_vmware_instance");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_cmdb-reconcile"))
        .args(["run", "--log-format", "json", "--config"])
        .arg(&config)
        .env("BENCH_CF", &o.miq_password)
        .env("BENCH_SN", &o.snow_password)
        .env_remove("RUST_LOG")
        .output()
        .expect("run cmdb-reconcile");
    let wall = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "run failed ({}):\n{}\n{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );

    let plan_file = std::fs::read_dir(dir.path().join("reports"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("vmware-vm")
        .join("plan.json");
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(plan_file).unwrap()).unwrap();
    let s = &plan["summary"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let (creates, updates) = (n(&s["creates"]), n(&s["updates"]));
    let retirements = n(&s["retirements"]) + n(&s["deletes"]) + n(&s["marked_absent"]);
    let writes = creates + updates + retirements;

    let miq = route_totals(&sims.stats(Api::ManageIq));
    let snow_stats = sims.stats(Api::ServiceNow);
    let snow = route_totals(&snow_stats);
    let got = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    // Pages of the VMs the mapping's filter selects (CloudForms filters server-side), plus
    // one /api/auth.
    let min_miq = n(&plan["source"]["records"]).div_ceil(1000) + 1;
    let min_snow_reads = (cis_before as u64).div_ceil(1000);
    let min_writes = if scenario.batch_size > 1 {
        creates + (updates + retirements).div_ceil(scenario.batch_size as u64)
    } else {
        writes
    };
    let plan_secs = log_field(&stderr, "plan written", "seconds").unwrap_or(f64::NAN);
    let apply_secs = log_field(&stderr, "plan applied", "seconds").unwrap_or(f64::NAN);
    let rss = log_field(&stderr, "done", "peak_rss_mib").unwrap_or(f64::NAN);
    println!(
        "{vms:>6} VMs  {:<10}  wall {wall:6.1} s (plan {plan_secs:5.1} s, apply {apply_secs:6.1} s)  peak RSS {rss:4.0} MiB",
        scenario.name
    );
    println!(
        "        planned: {creates} creates, {updates} updates, {retirements} retirements ({writes} writes)"
    );
    println!(
        "        CloudForms: {} requests (GET /api/vms {}, /api/auth {}), minimum {min_miq}",
        miq.values().sum::<u64>(),
        got(&miq, "GET /api/vms"),
        got(&miq, "GET /api/auth"),
    );
    let table_gets = got(&snow, "GET /api/now/table/{table}");
    println!(
        "        ServiceNow: {} requests: table GETs {table_gets} (minimum {min_snow_reads} for the CMDB read, plus lookups and pre-write checks), \
         POST {}, PATCH {}, DELETE {}, batch {}; writes minimum {min_writes}; 429 answered {}",
        snow.values().sum::<u64>(),
        got(&snow, "POST /api/now/table/{table}"),
        got(&snow, "PATCH /api/now/table/{table}/{sys_id}"),
        got(&snow, "DELETE /api/now/table/{table}/{sys_id}"),
        got(&snow, "POST /api/now/v1/batch"),
        snow_stats["by_status"]["429"].as_u64().unwrap_or(0),
    );
    runtime.block_on(sims.stop());
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000]
    } else {
        sizes
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "cmdb-reconcile run against the simulators: {LATENCY_MS} ms latency per request, ServiceNow rate limit {RATE_LIMIT_PER_SEC}/s, 5% drift, seed 7; {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for vms in sizes {
        for scenario in &SCENARIOS {
            run(vms, scenario, &runtime);
        }
    }
}
