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
//! `cargo bench --bench live [-- 10000 100000] [lan] [cloud] [vms] [tickets] [catalog]`
//! (default: 10000, both models, every workload). A workload is what the job syncs and what happens between
//! its runs; each runs the job more than once on one estate, a row per run:
//!
//! - `vms`: `mappings/vmware-vm.toml` on an estate with 5% drift. `apply`: the CIs' drift and
//!   every VM's relationship rows (`cmdb_rel_ci`: the simulated CMDB starts with none, and
//!   holds the ESX servers the `Registered on` rows point at, not the datastores or
//!   datacenters of the other two types, which the infrastructure syncs write: see
//!   `benches/infra.rs`); `re-run`: the same job again, which must write nothing.
//! - `tickets`: `mappings/provision-incident.toml` with 6 provisioning requests per 100 VMs
//!   in the estate (6,000 at 100,000 VMs; about 45% of them updated within the mapping's
//!   30-day window, so about 2,700 tickets: a few months' VM churn of such an estate, and the
//!   failures and approvals around it). `first`: a ticket per request in the window;
//!   `advance`: CloudForms moves every unfinished request one step (about 1,800: approved,
//!   started, finished), so their tickets are updated (a day of changes, not an hour's);
//!   `re-run`: nothing to write.
//! - `catalog`: the catalog pass alone, as its CronJob runs it every two minutes
//!   (`cmdb-reconcile catalog`, `[catalog]` with `mappings/catalog/linux-vm.toml` and the
//!   status write-back `mappings/ritm-status.toml`, every other setting its default), on the
//!   `tickets` estate (its CloudForms service requests, 2,500 at 100,000 VMs, 808 of them
//!   updated within the 30 days the pass searches and the write-back reads, none carrying a
//!   RITM number; ServiceNow's `sc_req_item` holds only the burst's RITMs: the simulator
//!   seeds none). `order`: 20 users have ordered "Linux VM" through ServiceNow's `order_now`
//!   (the default `max_orders`: the most one pass orders unasked, a burst for a two-minute
//!   interval), so the pass checks, claims, waits the settle, reads back, searches, orders,
//!   approves and writes back each; `advance`: CloudForms starts them (stage Delivery);
//!   `finish`: they finish (Closed Complete); `re-run`: nothing to write. After the runs it
//!   times one order and one approval inside the simulated CloudForms (no HTTP): each
//!   change copies its estate (sharing the large collections it leaves alone, see
//!   `cmdb_sim::generator::Shared`), a cost of the simulator that the order rows carry and
//!   the bound does not.
//!
//! A new sync gets its rows as a new [`Workload`]: its mappings, the estate it needs, and
//! what moves between its runs ([`Between`]); the counting and the bound below are per sync
//! and need nothing new unless the sync writes somewhere other than the Table API.
//!
//! For each estate size, model and workload it runs the scenarios, each on a fresh simulated
//! estate (seed 7): `singles` (apply concurrency 8, one request per write: the default before
//! `batch_size` defaulted to 50), `batch` (concurrency 8, Batch API, 50 writes per request:
//! the default) and, under `lan` only, `sequential` (concurrency 1, one request per write;
//! under `cloud` it would take hours at 100,000 VMs). `BENCH_SCENARIOS=singles,batch` picks
//! some.
//!
//! Every row prints wall time (plan, apply), requests by kind next to the fewest that dataset
//! needs, the 429s answered, the job's peak memory, the CPU time of the job and of this
//! process (the simulators) during the run, and the round-trip lower bound with the
//! ratio of wall time to it. The bound: the job's reads must end before its writes start (the
//! plan needs them all), so it is the bound of the read phase plus that of the write phase
//! (plus the lease's 2 s settle, a wait the job needs before it writes, and the catalog's
//! order phase, below),
//! each the larger of (requests / allowed rate) and (sum of the requests' service times /
//! requests in flight), where the service time is the injected latency (plus the write time
//! under `cloud`) and the requests in flight are the job's concurrency for that phase, capped
//! by the server's slots; and never less than all ServiceNow requests / the rate. With several
//! syncs in a run (each reads, then writes) the sums over all of them are still a lower bound.
//! The requests counted are the reads the job made (not counting those answered 429), the
//! pre-write checks its design needs (one `IN` read per 100 rows to write, for each kind of
//! write of each sync: CI creates, other CI writes, relationship and classification rows
//! created and deleted), and the fewest writes: one per write, or one per 50 of a kind with
//! batches. The job's CPU time (planning) is not in the bound. The catalog's orders go one
//! at a time by design (each RITM checked just before its claim), so their phase is bound by
//! the sum of its round trips, nothing beside them: per order two ServiceNow reads (the check
//! and the claim read back) and two writes (the claim and the write-back, each with the
//! server's write time), one CloudForms search (as many pages as the write-back's source) and
//! per order an order and an approval, plus the catalog's 2 s `settle` between the claims and
//! the read-back (a wait its design needs: counted, not hidden). The catalog's plan reads
//! (items, states, RITMs; CloudForms' templates, catalogs and one search when there is a
//! RITM) are in the read phase. Its ServiceNow lease writes are not counted, as for `run`.
//!
//! Run time on 2 shared cores: the default (10,000 VMs, everything) took 15 minutes before
//! the `catalog` workload, which adds 2; at
//! 100,000 VMs, `-- 100000 lan vms` took 10 and `-- 100000 tickets` 8 (both with
//! `BENCH_SCENARIOS=singles,batch`), `-- 100000 catalog` (every model and scenario) 4 minutes.
//! `vms` at 100,000 VMs under
//! `cloud` or `sequential` is bound by the first run's 80,000 writes (about 33 and 27
//! minutes): run them on purpose.
//!
//! `BENCH_JOB_LOG=<prefix>` keeps each run's JSON log (stderr) in
//! `<prefix>-<vms>-<model>-<scenario>-<workload>-<pass>.log`, and `BENCH_JOB_RUST_LOG` is
//! its `RUST_LOG` (none by default).
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

/// The simulators run in this process under the allocator the job uses (src/main.rs): under
/// glibc's, their allocations cost this process's (shared) cores more.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        name: "singles",
        concurrency: 8,
        batch_size: 0,
    },
    Scenario {
        name: "batch",
        concurrency: 8,
        batch_size: 50,
    },
    Scenario {
        name: "sequential",
        concurrency: 1,
        batch_size: 0,
    },
];

/// What happens in the estate before a run.
#[derive(Clone, Copy)]
enum Between {
    Nothing,
    /// CloudForms moves every unfinished provisioning request one step.
    AdvanceRequests,
    /// Users order the workload's catalog item this many times through ServiceNow's
    /// `order_now` (over HTTP, as a click does): approved RITMs for the catalog pass.
    PlaceOrders(usize),
}

/// One run of the job in a workload.
struct Pass {
    name: &'static str,
    before: Between,
    /// The run must plan no write (a re-run converges).
    writes_nothing: bool,
}

/// What the job syncs, on what estate, and what moves between its runs.
struct Workload {
    name: &'static str,
    /// Shipped mappings, as `[[sync]]`s in this order: (file name, text).
    mappings: &'static [(&'static str, &'static str)],
    /// Fraction of VMs in CloudForms whose CI drifted (`SimOptions::drift`).
    drift: f64,
    /// Provisioning requests per 100 VMs in the estate (`SimOptions::requests`).
    requests_per_100_vms: usize,
    /// The catalog pass (`[catalog]`), run alone as its CronJob does (`cmdb-reconcile
    /// catalog`); `None`: the job is `run` with the `[[sync]]`s.
    catalog: Option<CatalogLoad>,
    passes: &'static [Pass],
}

/// A catalog workload's `[catalog]`: its link, its status write-back and its item.
struct CatalogLoad {
    /// (file name, text): the catalog link, in `catalog/` beside the config.
    link: (&'static str, &'static str),
    /// (file name, text): the status sync; its plan folder is its `name`, the file's stem.
    status: (&'static str, &'static str),
    /// The ServiceNow catalog item users order.
    item: &'static str,
}

/// The catalog pass's wait between claiming RITMs and reading the claims back (`[catalog]
/// settle`, default 2 s), in a pass with orders: by design, counted in the bound.
const CATALOG_SETTLE_SECS: f64 = 2.0;
/// The default `[catalog] max_orders`: more new orders refuse the pass.
const BURST: usize = 20;

const WORKLOADS: [Workload; 3] = [
    Workload {
        name: "vms",
        mappings: &[("vmware-vm.toml", include_str!("../mappings/vmware-vm.toml"))],
        drift: 0.05,
        requests_per_100_vms: 0,
        catalog: None,
        passes: &[
            Pass {
                name: "apply",
                before: Between::Nothing,
                writes_nothing: false,
            },
            Pass {
                name: "re-run",
                before: Between::Nothing,
                writes_nothing: true,
            },
        ],
    },
    Workload {
        name: "tickets",
        mappings: &[(
            "provision-incident.toml",
            include_str!("../mappings/provision-incident.toml"),
        )],
        drift: 0.05,
        requests_per_100_vms: 6,
        catalog: None,
        passes: &[
            Pass {
                name: "first",
                before: Between::Nothing,
                writes_nothing: false,
            },
            Pass {
                name: "advance",
                before: Between::AdvanceRequests,
                writes_nothing: false,
            },
            Pass {
                name: "re-run",
                before: Between::Nothing,
                writes_nothing: true,
            },
        ],
    },
    Workload {
        name: "catalog",
        mappings: &[],
        drift: 0.05,
        // The estate's CloudForms requests, as `tickets`: 5 in 12 are service requests
        // (2,500 at 100,000 VMs, about 1,100 updated within the 30 days the catalog pass
        // searches and the status sync reads), none carrying a RITM number.
        requests_per_100_vms: 6,
        catalog: Some(CatalogLoad {
            link: (
                "linux-vm.toml",
                include_str!("../mappings/catalog/linux-vm.toml"),
            ),
            status: (
                "ritm-status.toml",
                include_str!("../mappings/ritm-status.toml"),
            ),
            item: "Linux VM",
        }),
        passes: &[
            Pass {
                name: "order",
                before: Between::PlaceOrders(BURST),
                writes_nothing: false,
            },
            Pass {
                name: "advance",
                before: Between::AdvanceRequests,
                writes_nothing: false,
            },
            Pass {
                name: "finish",
                before: Between::AdvanceRequests,
                writes_nothing: false,
            },
            Pass {
                name: "re-run",
                before: Between::Nothing,
                writes_nothing: true,
            },
        ],
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

/// What the plans of one run say it must write, counted for the bound.
#[derive(Default)]
struct Planned {
    /// CI writes: creates, and updates, retirements, deletes and Absent marks.
    ci_creates: u64,
    ci_others: u64,
    /// Relationship (`cmdb_rel_ci`) and classification (`cmdb_key_value`) rows.
    rel_creates: u64,
    rel_deletes: u64,
    kv_creates: u64,
    kv_deletes: u64,
    /// Every write, each one item of the server's write time.
    writes: u64,
    /// The fewest write requests: per sync and kind, one per write or per `batch` writes.
    min_writes: u64,
    /// The pre-write checks: per sync and kind, one `IN` read per 100 writes.
    checks: u64,
    /// Source records read (after the mappings' filters), and the CloudForms pages they need.
    records: u64,
    min_miq: u64,
    /// Target rows read, and the fewest pages for them.
    cis: u64,
    min_snow_reads: u64,
}

impl Planned {
    fn of(plans: &[Value], batch: u64) -> Planned {
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let count = |list: &Value, action: &str| {
            list.as_array().map_or(0, |l| {
                l.iter().filter(|c| c["action"] == action).count() as u64
            })
        };
        let mut p = Planned {
            // One /api/auth for the token.
            min_miq: 1,
            ..Planned::default()
        };
        for plan in plans {
            let s = &plan["summary"];
            let kinds = [
                n(&s["creates"]),
                n(&s["updates"]) + n(&s["retirements"]) + n(&s["deletes"]) + n(&s["marked_absent"]),
                count(&plan["relationships"], "create"),
                count(&plan["relationships"], "delete"),
                count(&plan["classifications"], "create"),
                count(&plan["classifications"], "delete"),
            ];
            p.ci_creates += kinds[0];
            p.ci_others += kinds[1];
            p.rel_creates += kinds[2];
            p.rel_deletes += kinds[3];
            p.kv_creates += kinds[4];
            p.kv_deletes += kinds[5];
            for k in kinds {
                p.writes += k;
                p.min_writes += k.div_ceil(batch);
                p.checks += k.div_ceil(PER_READ);
            }
            let records = n(&plan["source"]["records"]);
            p.records += records;
            // CloudForms filters server-side: pages of the records the mapping selects.
            p.min_miq += records.div_ceil(1000).max(1);
            let cis = n(&plan["target"]["cis"]);
            p.cis += cis;
            p.min_snow_reads += cis.div_ceil(1000).max(1);
        }
        p
    }
}

/// The config of one scenario in `dir`, the workload's mappings beside it.
fn write_config(
    dir: &std::path::Path,
    sims: &Sims,
    workload: &Workload,
    scenario: &Scenario,
) -> std::path::PathBuf {
    let o = sims.options();
    let mut syncs = String::new();
    for (file, text) in workload.mappings {
        std::fs::write(dir.join(file), text).unwrap();
        syncs.push_str(&format!("[[sync]]\nmapping = \"{file}\"\n"));
    }
    if let Some(c) = &workload.catalog {
        std::fs::create_dir_all(dir.join("catalog")).unwrap();
        let link = dir.join("catalog").join(c.link.0);
        let status = dir.join(c.status.0);
        std::fs::write(&link, c.link.1).unwrap();
        std::fs::write(&status, c.status.1).unwrap();
        // Defaults otherwise: approve = "job", max_orders = 20, settle = "2s".
        syncs.push_str(&format!(
            "[catalog]\nlinks = [{:?}]\nstatus = {:?}\n",
            link.display().to_string(),
            status.display().to_string()
        ));
    }
    let max_rps = std::env::var("BENCH_MAX_RPS").unwrap_or_else(|_| "240".into());
    let max_rps = if max_rps == "none" {
        String::new()
    } else {
        format!("max_rps = {max_rps}\n")
    };
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[cloudforms]\nurl = \"{}\"\nuser = \"{}\"\npassword_env = \"BENCH_CF\"\n\n\
             [servicenow]\nurl = \"{}\"\nuser = \"{}\"\npassword_env = \"BENCH_SN\"\n{max_rps}\n\
             [apply]\nconcurrency = {}\nbatch_size = {}\n\n[report]\ndir = \"reports\"\nformats = [\"json\"]\n\n{syncs}",
            sims.manageiq_url(),
            o.miq_user,
            sims.servicenow_url(),
            o.snow_user,
            scenario.concurrency,
            scenario.batch_size
        ),
    )
    .unwrap();
    config
}

/// Runs one scenario of one workload: a fresh estate, then the workload's passes, a row each.
fn run(
    vms: usize,
    model: &Model,
    workload: &Workload,
    scenario: &Scenario,
    runtime: &tokio::runtime::Runtime,
) {
    let sims = runtime
        .block_on(Sims::start(SimOptions {
            vms,
            drift: workload.drift,
            seed: 7,
            // The job reads the wall clock (the ticket sync's 30-day window is from it).
            now: Utc::now(),
            requests: vms * workload.requests_per_100_vms / 100,
            miq_faults: miq_faults(),
            snow_faults: snow_faults(model),
            ..Default::default()
        }))
        .expect("simulators");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &sims, workload, scenario);
    for pass in workload.passes {
        let moved = match pass.before {
            Between::Nothing => String::new(),
            Between::PlaceOrders(n) => {
                let item = workload.catalog.as_ref().expect("a catalog workload").item;
                runtime.block_on(place_orders(&sims, item, n));
                format!(" after users ordered {n} \"{item}\" through order_now")
            }
            Between::AdvanceRequests => {
                // Timed: the simulated CloudForms copies its estate on every change (an order
                // and an approval are one each; collections they leave alone are shared), the
                // cost the catalog's order rows carry.
                let started = Instant::now();
                let advanced = sims.manageiq().advance_requests();
                format!(
                    " after CloudForms moved {} requests on ({} VMs made; the simulator's change took {:.2} s)",
                    advanced.requests.len(),
                    advanced.vms.len(),
                    started.elapsed().as_secs_f64()
                )
            }
        };
        sims.reset_stats(Api::ManageIq);
        sims.reset_stats(Api::ServiceNow);
        run_pass(
            vms,
            model,
            workload,
            scenario,
            pass,
            &moved,
            &sims,
            dir.path(),
            &config,
        );
    }
    if let Some(c) = &workload.catalog {
        simulator_write_cost(&sims, c.item);
    }
    runtime.block_on(sims.stop());
}

/// What one order and its approval cost the simulated CloudForms itself, timed in process
/// (no HTTP, no latency): it copies its estate on every change (but for the collections the
/// change leaves alone, which the copies share), so an order row's wall time carries 2 such
/// copies per order on top of its round trips.
fn simulator_write_cost(sims: &Sims, item: &str) {
    let template = sims
        .estate()
        .service_templates
        .iter()
        .find(|t| t.name == item)
        .map(|t| t.id)
        .expect("the template");
    let mut dialog = serde_json::Map::new();
    dialog.insert("dialog_vm_name".into(), json!("bench-cost"));
    let started = Instant::now();
    let id = sims
        .manageiq()
        .order_service(template, dialog, None)
        .expect("order");
    let order = started.elapsed().as_secs_f64();
    let started = Instant::now();
    sims.manageiq().decide_request(id, true).expect("approve");
    let approve = started.elapsed().as_secs_f64();
    println!(
        "        the simulated CloudForms' own time for one order {order:.3} s and its approval {approve:.3} s (it copies its estate on every change, sharing what the change leaves alone; the job's round trips exclude it)"
    );
}

/// `n` users order `item` through ServiceNow's `order_now`, one after another (a burst within
/// one CronJob interval); each makes an approved RITM (the simulated item's approval).
async fn place_orders(sims: &Sims, item: &str, n: usize) {
    let o = sims.options();
    let item_id = sims
        .servicenow()
        .rows("sc_cat_item")
        .into_iter()
        .find(|r| r.get("name").and_then(Value::as_str) == Some(item))
        .and_then(|r| r.get("sys_id").and_then(Value::as_str).map(str::to_owned))
        .expect("the catalog item");
    let client = reqwest::Client::new();
    for i in 0..n {
        let url = format!(
            "{}/api/sn_sc/servicecatalog/items/{item_id}/order_now",
            sims.servicenow_url()
        );
        let body =
            json!({"sysparm_quantity": 1, "variables": {"vm_name": format!("bench-cat-{i:03}")}});
        // The rate limit answers 429 to a burst too: wait as a browser's retry would.
        loop {
            let r = client
                .post(&url)
                .basic_auth(&o.snow_user, Some(&o.snow_password))
                .json(&body)
                .send()
                .await
                .expect("order_now");
            if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            assert!(r.status().is_success(), "order_now: {}", r.status());
            break;
        }
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "a benchmark row names everything it ran"
)]
fn run_pass(
    vms: usize,
    model: &Model,
    workload: &Workload,
    scenario: &Scenario,
    pass: &Pass,
    moved: &str,
    sims: &Sims,
    dir: &std::path::Path,
    config: &std::path::Path,
) {
    let o = sims.options();
    let bin = std::env::var("CMDB_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cmdb-reconcile").to_owned());
    let reports = dir.join("reports");
    let before: Vec<_> = std::fs::read_dir(&reports)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    let cpu_before = cpu_times();
    let started = Instant::now();
    let command = if workload.catalog.is_some() {
        "catalog"
    } else {
        "run"
    };
    let out = Command::new(&bin)
        .args([command, "--log-format", "json", "--config"])
        .arg(config)
        .env("BENCH_CF", &o.miq_password)
        .env("BENCH_SN", &o.snow_password)
        .env_remove("RUST_LOG")
        .envs(std::env::var("BENCH_JOB_RUST_LOG").map(|v| ("RUST_LOG", v)))
        .env_remove("SERVICENOW_MAX_RPS")
        .env_remove("CLOUDFORMS_MAX_RPS")
        .output()
        .expect("run cmdb-reconcile");
    let wall = started.elapsed().as_secs_f64();
    let cpu_after = cpu_times();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(prefix) = std::env::var_os("BENCH_JOB_LOG") {
        // The job's JSON log, e.g. to see where a run's time went.
        let mut path = std::path::PathBuf::from(prefix);
        path.as_mut_os_string().push(format!(
            "-{vms}-{}-{}-{}-{}.log",
            model.name, scenario.name, workload.name, pass.name
        ));
        std::fs::write(&path, stderr.as_bytes()).expect("write the job's log");
    }
    assert!(
        out.status.success(),
        "run failed ({}):\n{}\n{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );

    // This run's folder (one per run), a plan per sync in it.
    let run_dir = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir() && !before.contains(p))
        .expect("the run's report folder");
    let read_plan = |folder: &str| -> Value {
        let text = std::fs::read_to_string(run_dir.join(folder).join("plan.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    // The syncs' plans, the catalog's status sync among them (its folder is its name).
    let plans: Vec<Value> = workload
        .mappings
        .iter()
        .map(|(file, _)| *file)
        .chain(workload.catalog.as_ref().map(|c| c.status.0))
        .map(|file| read_plan(file.trim_end_matches(".toml")))
        .collect();
    let batch = scenario.batch_size.max(1) as u64;
    let p = Planned::of(&plans, batch);
    // The catalog's orders (new and resumed).
    let orders = if workload.catalog.is_some() {
        read_plan("catalog")["orders"]
            .as_array()
            .map_or(0, |o| o.len() as u64)
    } else {
        0
    };
    if pass.writes_nothing {
        assert_eq!(p.writes + orders, 0, "the {} run planned writes", pass.name);
    }

    let miq = route_totals(&sims.stats(Api::ManageIq));
    let snow_stats = sims.stats(Api::ServiceNow);
    let snow = route_totals(&snow_stats);
    let got = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    let refused = snow_stats["by_status"]["429"].as_u64().unwrap_or(0);
    // The reads the job made, less those refused (each 429 is a request sent again), split
    // into the pre-write checks and the plan's reads.
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
    // An order's two reads of its RITM (the check before its claim, the claim read back
    // after the settle) belong to the order phase, not to the plan's reads.
    let plan_reads = (gets - refused_gets).saturating_sub(p.checks + 2 * orders);
    let rate = Some(RATE_LIMIT_PER_SEC as f64);
    let cloudforms = Model {
        name: "cloudforms",
        latency_ms: CF_LATENCY_MS,
        write_ms: 0,
        write_jitter_ms: 0,
        slots: None,
    };
    // The catalog pass in CloudForms: its plan reads the templates and the catalogs, and
    // searches the service requests of the last 30 days (the status sync's source, so as many
    // pages) when there is a RITM to order; its orders search once more, then order and
    // approve each.
    let search_pages = if workload.catalog.is_some() {
        p.min_miq.saturating_sub(1)
    } else {
        0
    };
    let (cf_plan_min, cf_order_min) = match (&workload.catalog, orders) {
        (None, _) => (p.min_miq, 0),
        (Some(_), 0) => (p.min_miq + 2, 0),
        (Some(_), n) => (p.min_miq + 2 + search_pages, search_pages + 2 * n),
    };
    let cf_bound = phase_bound(&cloudforms, cf_plan_min as f64, 0.0, READ_CONCURRENCY, None);
    let sn_reads = phase_bound(model, plan_reads as f64, 0.0, READ_CONCURRENCY, rate);
    let read_bound = cf_bound.max(sn_reads);
    let write_bound = phase_bound(
        model,
        (p.checks + p.min_writes) as f64,
        p.writes as f64,
        scenario.concurrency as f64,
        rate,
    );
    // The orders, one after another by design (each RITM checked just before its claim):
    // per order a check and a claim, the settle, per order the claim read back, one search,
    // per order the order, its approval and the write-back; nothing runs beside them.
    let order_bound = if orders > 0 {
        let o = orders as f64;
        let sn = phase_bound(model, 4.0 * o, 2.0 * o, 1.0, rate);
        let cf = phase_bound(&cloudforms, cf_order_min as f64, 0.0, 1.0, None);
        sn + cf + CATALOG_SETTLE_SECS
    } else {
        0.0
    };
    let needed = plan_reads + p.checks + p.min_writes + 4 * orders;
    let rate_bound = needed as f64 / RATE_LIMIT_PER_SEC as f64;
    let bound = (read_bound + order_bound + write_bound + LEASE_SETTLE_SECS).max(rate_bound);

    let writes_total = write_bound + order_bound;
    let plan_secs = log_field(&stderr, "plan written", "seconds").unwrap_or(f64::NAN);
    // A run with nothing to write applies nothing (and logs no apply).
    let apply_secs = log_field(&stderr, "plan applied", "seconds").unwrap_or(0.0);
    let rss = log_field(&stderr, "done", "peak_rss_mib").unwrap_or(f64::NAN);
    println!(
        "{vms:>6} VMs  {:<5} {:<10} {:<16} wall {wall:6.1} s (plan {plan_secs:5.1} s, apply {apply_secs:6.1} s)  bound {bound:6.1} s (reads {read_bound:.1} + writes {writes_total:.1} + lease settle {LEASE_SETTLE_SECS:.0}; rate {rate_bound:.1})  wall/bound {:.2}  429s {refused}  peak RSS {rss:4.0} MiB{}",
        model.name,
        scenario.name,
        format!("{}/{}", workload.name, pass.name),
        wall / bound,
        if workload.catalog.is_some() {
            format!("\n        catalog: {orders} orders; bound's order phase {order_bound:.1} s (one at a time, catalog settle {CATALOG_SETTLE_SECS:.0} s in it when there are orders), in the writes above; plan and apply above are the status sync's")
        } else {
            String::new()
        },
    );
    println!(
        "        planned{moved}: {} source records, {} target rows; CIs: {} creates, {} other writes; relationship rows: {} creates, {} deletes; classification rows: {} creates, {} deletes ({} writes)",
        p.records, p.cis, p.ci_creates, p.ci_others, p.rel_creates, p.rel_deletes, p.kv_creates, p.kv_deletes, p.writes
    );
    let miq_routes: Vec<String> = miq
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(route, n)| format!("{route} {n}"))
        .collect();
    println!(
        "        CloudForms: {} requests ({}), minimum {}",
        miq.values().sum::<u64>(),
        miq_routes.join(", "),
        cf_plan_min + cf_order_min,
    );
    println!(
        "        CPU during the run: the job {:.1} s, this process (the simulators) {:.1} s (user + system)",
        cpu_after.1 - cpu_before.1,
        cpu_after.0 - cpu_before.0,
    );
    let table_gets = got(&snow, "GET /api/now/table/{table}");
    println!(
        "        ServiceNow: {} requests ({needed} needed): table GETs {table_gets} (minimum {} for the target read; {} pre-write checks), \
         POST {}, PATCH {}, DELETE {}, batch {}; writes minimum {}; 429 answered {refused}; most in flight {}",
        snow.values().sum::<u64>(),
        p.min_snow_reads,
        p.checks,
        got(&snow, "POST /api/now/table/{table}"),
        got(&snow, "PATCH /api/now/table/{table}/{sys_id}"),
        got(&snow, "DELETE /api/now/table/{table}/{sys_id}"),
        got(&snow, "POST /api/now/v1/batch"),
        p.min_writes,
        snow_stats["max_in_flight"].as_u64().unwrap_or(0),
    );
}

/// CPU seconds (user + system) of this process and of its waited-for children (the job's
/// runs), from `/proc/self/stat` (in USER_HZ, 100 per second on Linux); NaN elsewhere.
fn cpu_times() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces:
    // utime, stime, cutime and cstime are the 14th to 17th fields, 12th to 15th here.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = after
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|f| f.parse().ok())
        .collect();
    match fields[..] {
        [utime, stime, cutime, cstime] => ((utime + stime) / 100.0, (cutime + cstime) / 100.0),
        _ => (f64::NAN, f64::NAN),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        vec![10_000]
    } else {
        sizes
    };
    let named = |names: Vec<&'static str>| -> Vec<&'static str> {
        let picked: Vec<&'static str> = names
            .iter()
            .copied()
            .filter(|n| args.iter().any(|a| a == n))
            .collect();
        if picked.is_empty() {
            names
        } else {
            picked
        }
    };
    let models = named(MODELS.iter().map(|m| m.name).collect());
    let workloads = named(WORKLOADS.iter().map(|w| w.name).collect());
    let picked = std::env::var("BENCH_SCENARIOS").ok();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "cmdb-reconcile run against the simulators: seed 7; ServiceNow rate limit {RATE_LIMIT_PER_SEC}/s; CloudForms {CF_LATENCY_MS} ms; {} cores; job {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::var("CMDB_BENCH_BIN").unwrap_or_else(|_| "this build".into()),
    );
    for vms in sizes {
        for model in MODELS.iter().filter(|m| models.contains(&m.name)) {
            for workload in WORKLOADS.iter().filter(|w| workloads.contains(&w.name)) {
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
                    run(vms, model, workload, scenario, &runtime);
                }
            }
        }
    }
}
