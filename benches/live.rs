//! Benchmark of the whole job over HTTP: `cmdb-reconcile run` (plan, then apply) against the
//! simulators, under two latency models of ServiceNow:
//!
//! - `lan`: 20 ms on every request, ServiceNow limited to 250 requests/s (429 +
//!   `Retry-After: 1` beyond);
//! - `cloud`: an instance in the cloud seen from a datacenter: 100 ms round trip, every write
//!   taking the server another 100-300 ms (seeded uniform; business rules run on every CMDB
//!   write; a batch takes it per item), at most 8 requests executing at once (up to 50 more
//!   queue, 429 beyond: the API semaphores), and the same 250/s rule.
//!
//! CloudForms sits in the datacenter next to the job: 20 ms per request in both.
//!
//! `cargo bench --bench live [-- 10000 100000] [lan] [cloud]` (default: 10000, both models).
//! For each estate size and model it runs the scenarios, each on a fresh simulated estate (5%
//! drift, seed 7): `default` (apply concurrency 8, one request per write), `batch`
//! (concurrency 8, Batch API, 100 writes per request) and, under `lan` only, `sequential`
//! (concurrency 1, one request per write; under `cloud` it would take over half an hour at
//! 100,000 VMs). `BENCH_SCENARIOS=default,batch` picks some.
//!
//! Every row prints wall time (plan, apply), requests by kind next to the fewest that dataset
//! needs, the 429s answered, the job's peak memory, and the round-trip lower bound with the
//! ratio of wall time to it. The bound: the job's reads must end before its writes start (the
//! plan needs them all), so it is the bound of the read phase plus that of the write phase
//! (plus the lease's 2 s settle, a wait the job needs before it writes),
//! each the larger of (requests / allowed rate) and (sum of the requests' service times /
//! requests in flight), where the service time is the injected latency (plus the write time
//! under `cloud`) and the requests in flight are the job's concurrency for that phase, capped
//! by the server's slots; and never less than all ServiceNow requests / the rate. The
//! requests counted are the reads the job made (not counting those answered 429), the pre-write
//! checks its design needs (one `IN` read per 100 CIs to write), and the fewest writes: one
//! per write, or one per 100 with batches. The job's CPU time (planning) is not in the bound.
//!
//! The job runs as its own process (the simulators run in this one): `CMDB_BENCH_BIN` names
//! another build of it (e.g. the base commit's, for before/after figures back to back), and
//! `BENCH_MAX_RPS` the `[servicenow] max_rps` written to its config (default 240, a little
//! under the 250/s rule; `none` writes none, for builds without the setting).
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

/// CloudForms, in the datacenter, in both models.
const CF_LATENCY_MS: u64 = 20;
/// ServiceNow allows this many requests per second, then answers 429 + Retry-After: 1.
const RATE_LIMIT_PER_SEC: u64 = 250;
/// Pages the job reads at once from each API (the clients' default).
const READ_CONCURRENCY: f64 = 4.0;
/// CIs per pre-write check (`IN` read) and per CMDB page.
const PER_READ: u64 = 100;
/// The lease's settle time (`[lease] settle`, default 2 s): the job reads its claim again
/// after it, before writing, so that two runs never write at once. A wait the job needs,
/// counted in the bound.
const LEASE_SETTLE_SECS: f64 = 2.0;

/// How ServiceNow answers.
struct Model {
    name: &'static str,
    /// Round trip of every request.
    latency_ms: u64,
    /// The server's time per write: at least this, plus up to `write_jitter_ms`.
    write_ms: u64,
    write_jitter_ms: u64,
    /// Requests executing at once (the API semaphores); `None`: unbounded.
    slots: Option<u64>,
}

impl Model {
    /// The mean service time of a read and of a write, in seconds.
    fn read_secs(&self) -> f64 {
        self.latency_ms as f64 / 1000.0
    }
    fn write_secs(&self) -> f64 {
        (self.write_ms as f64 + self.write_jitter_ms as f64 / 2.0) / 1000.0
    }
}

const MODELS: [Model; 2] = [
    Model {
        name: "lan",
        latency_ms: 20,
        write_ms: 0,
        write_jitter_ms: 0,
        slots: None,
    },
    Model {
        name: "cloud",
        latency_ms: 100,
        write_ms: 100,
        write_jitter_ms: 200,
        slots: Some(8),
    },
];

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

fn miq_faults() -> FaultConfig {
    let rules = vec![json!({"kind": "latency", "latency_ms": CF_LATENCY_MS})];
    FaultConfig::from_json(&json!({"seed": 1, "rules": rules}).to_string()).expect("faults")
}

fn snow_faults(model: &Model) -> FaultConfig {
    let mut rules = vec![
        json!({"kind": "latency", "latency_ms": model.latency_ms}),
        json!({"kind": "rate_limit", "limit": RATE_LIMIT_PER_SEC, "window_secs": 1, "retry_after_secs": 1}),
    ];
    if model.write_ms + model.write_jitter_ms > 0 {
        rules.push(json!({"kind": "write_time", "path": "/api/now/",
            "latency_ms": model.write_ms, "jitter_ms": model.write_jitter_ms}));
    }
    if let Some(slots) = model.slots {
        rules.push(json!({"kind": "in_flight", "limit": slots, "queue": 50}));
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

/// The lower bound of one phase: `requests` round trips, `write_items` of them writes that
/// also take the server's write time, at most `in_flight` at once (and at most the server's
/// slots executing writes), at most `rate` per second.
fn phase_bound(
    model: &Model,
    requests: f64,
    write_items: f64,
    in_flight: f64,
    rate: Option<f64>,
) -> f64 {
    let server = write_items * model.write_secs();
    let by_client = (requests * model.read_secs() + server) / in_flight;
    let by_slots = model.slots.map_or(0.0, |slots| server / slots as f64);
    let by_rate = rate.map_or(0.0, |r| requests / r);
    by_client.max(by_slots).max(by_rate)
}

fn run(vms: usize, model: &Model, scenario: &Scenario, runtime: &tokio::runtime::Runtime) {
    let now = Utc::now();
    let sims = runtime
        .block_on(Sims::start(SimOptions {
            vms,
            drift: 0.05,
            seed: 7,
            now,
            miq_faults: miq_faults(),
            snow_faults: snow_faults(model),
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
    let max_rps = std::env::var("BENCH_MAX_RPS").unwrap_or_else(|_| "240".into());
    let max_rps = if max_rps == "none" {
        String::new()
    } else {
        format!("max_rps = {max_rps}\n")
    };
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[cloudforms]\nurl = \"{}\"\nuser = \"{}\"\npassword_env = \"BENCH_CF\"\n\n\
             [servicenow]\nurl = \"{}\"\nuser = \"{}\"\npassword_env = \"BENCH_SN\"\n{max_rps}\n\
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

    let bin = std::env::var("CMDB_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cmdb-reconcile").to_owned());
    let cis_before = sims.servicenow().count("cmdb_ci_vmware_instance");
    let started = Instant::now();
    let out = Command::new(&bin)
        .args(["run", "--log-format", "json", "--config"])
        .arg(&config)
        .env("BENCH_CF", &o.miq_password)
        .env("BENCH_SN", &o.snow_password)
        .env_remove("RUST_LOG")
        .env_remove("SERVICENOW_MAX_RPS")
        .env_remove("CLOUDFORMS_MAX_RPS")
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
    let refused = snow_stats["by_status"]["429"].as_u64().unwrap_or(0);
    // Pages of the VMs the mapping's filter selects (CloudForms filters server-side), plus
    // one /api/auth.
    let min_miq = n(&plan["source"]["records"]).div_ceil(1000) + 1;
    let min_snow_reads = (cis_before as u64).div_ceil(1000);
    let batch = scenario.batch_size.max(1) as u64;
    let others = updates + retirements;
    let min_writes = creates.div_ceil(batch) + others.div_ceil(batch);
    // The reads the job made, less those refused (each 429 is a request sent again), split
    // into the pre-write checks (one IN read per 100 CIs to write) and the plan's reads.
    let gets: u64 = snow
        .iter()
        .filter(|(route, _)| route.starts_with("GET "))
        .map(|(_, n)| n)
        .sum();
    let refused_gets: u64 = snow_stats["by_route"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(route, _)| route.starts_with("GET "))
                .filter_map(|(_, v)| v["by_status"]["429"].as_u64())
                .sum()
        })
        .unwrap_or(0);
    let checks = creates.div_ceil(PER_READ) + others.div_ceil(PER_READ);
    let plan_reads = (gets - refused_gets).saturating_sub(checks);
    let rate = Some(RATE_LIMIT_PER_SEC as f64);
    let cloudforms = Model {
        name: "cloudforms",
        latency_ms: CF_LATENCY_MS,
        write_ms: 0,
        write_jitter_ms: 0,
        slots: None,
    };
    let cf_bound = phase_bound(&cloudforms, min_miq as f64, 0.0, READ_CONCURRENCY, None);
    let sn_reads = phase_bound(model, plan_reads as f64, 0.0, READ_CONCURRENCY, rate);
    let read_bound = cf_bound.max(sn_reads);
    let write_bound = phase_bound(
        model,
        (checks + min_writes) as f64,
        writes as f64,
        scenario.concurrency as f64,
        rate,
    );
    let needed = plan_reads + checks + min_writes;
    let rate_bound = needed as f64 / RATE_LIMIT_PER_SEC as f64;
    let bound = (read_bound + write_bound + LEASE_SETTLE_SECS).max(rate_bound);

    let plan_secs = log_field(&stderr, "plan written", "seconds").unwrap_or(f64::NAN);
    let apply_secs = log_field(&stderr, "plan applied", "seconds").unwrap_or(f64::NAN);
    let rss = log_field(&stderr, "done", "peak_rss_mib").unwrap_or(f64::NAN);
    println!(
        "{vms:>6} VMs  {:<5} {:<10}  wall {wall:6.1} s (plan {plan_secs:5.1} s, apply {apply_secs:6.1} s)  bound {bound:6.1} s (reads {read_bound:.1} + writes {write_bound:.1} + lease settle {LEASE_SETTLE_SECS:.0}; rate {rate_bound:.1})  wall/bound {:.2}  429s {refused}  peak RSS {rss:4.0} MiB",
        model.name,
        scenario.name,
        wall / bound,
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
        "        ServiceNow: {} requests ({needed} needed): table GETs {table_gets} (minimum {min_snow_reads} for the CMDB read; {checks} pre-write checks), \
         POST {}, PATCH {}, DELETE {}, batch {}; writes minimum {min_writes}; 429 answered {refused}; most in flight {}",
        snow.values().sum::<u64>(),
        got(&snow, "POST /api/now/table/{table}"),
        got(&snow, "PATCH /api/now/table/{table}/{sys_id}"),
        got(&snow, "DELETE /api/now/table/{table}/{sys_id}"),
        got(&snow, "POST /api/now/v1/batch"),
        snow_stats["max_in_flight"].as_u64().unwrap_or(0),
    );
    runtime.block_on(sims.stop());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        vec![10_000]
    } else {
        sizes
    };
    let named: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| MODELS.iter().any(|m| m.name == *a))
        .collect();
    let models: Vec<&Model> = MODELS
        .iter()
        .filter(|m| named.is_empty() || named.contains(&m.name))
        .collect();
    let picked = std::env::var("BENCH_SCENARIOS").ok();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "cmdb-reconcile run against the simulators: 5% drift, seed 7; ServiceNow rate limit {RATE_LIMIT_PER_SEC}/s; CloudForms {CF_LATENCY_MS} ms; {} cores; job {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::var("CMDB_BENCH_BIN").unwrap_or_else(|_| "this build".into()),
    );
    for vms in sizes {
        for model in &models {
            for scenario in &SCENARIOS {
                if scenario.name == "sequential" && model.slots.is_some() {
                    continue;
                }
                if picked
                    .as_deref()
                    .is_some_and(|p| !p.split(',').any(|s| s == scenario.name))
                {
                    continue;
                }
                run(vms, model, scenario, &runtime);
            }
        }
    }
}
