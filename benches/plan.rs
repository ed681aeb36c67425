//! Benchmark of the pure core: N VMs against N CIs with 5% drift, 1% new VMs and 1% CIs of
//! deleted VMs, through the shipped `mappings/vmware-vm.toml`.
//!
//! `cargo bench --bench plan [-- N ...]` (default: 100000 and 1000000) prints, for each size,
//! the best and median wall and CPU time of the planner over several runs (records and CIs
//! already in memory, in the compact forms the readers build: this measures the core, not
//! parsing) and the peak resident memory. Each size runs in a process of its own (this
//! program again), so each peak is that size's alone. A plain harness: no timing
//! assertions, no extra crate.
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark reads the clock and writes files"
)]

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use cmdb_reconcile::reconcile::mapping::Mapping;
use cmdb_reconcile::reconcile::planner;
use cmdb_reconcile::reconcile::record::{Ci, References, Val};

/// The job's allocator (src/main.rs), so that the core is measured as the job runs it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/estate.rs"]
mod estate;

fn estate(n: usize) -> (Vec<Val>, Vec<Ci>, References) {
    estate::estate(0, n)
}

/// CPU time of this process (user + system), from /proc: steadier than wall time on a
/// machine that is busy with other work.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Set in the process that measures one size.
const CHILD: &str = "CMDB_PLAN_BENCH_SIZE";

fn main() {
    if let Some(n) = std::env::var(CHILD).ok().and_then(|n| n.parse().ok()) {
        return measure(n);
    }
    let mut sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = vec![100_000, 1_000_000];
    }
    let me = std::env::current_exe().expect("the benchmark's own path");
    for n in sizes {
        let status = std::process::Command::new(&me)
            .env(CHILD, n.to_string())
            .status()
            .expect("run one size");
        assert!(status.success(), "the {n} run failed: {status}");
    }
}

/// Plans `n` x `n` several times and prints the figures.
fn measure(n: usize) {
    let text = include_str!("../mappings/vmware-vm.toml");
    let mapping = Mapping::parse(text, "mappings/vmware-vm.toml").expect("shipped mapping");
    let now = Utc.with_ymd_and_hms(2026, 11, 27, 6, 0, 0).unwrap();
    let (vms, cis, refs) = estate(n);
    let rss_inputs = peak_rss_mib();
    let runs = if n > 300_000 { 3 } else { 5 };
    let mut times: Vec<Duration> = Vec::new();
    let mut cpu: Vec<Duration> = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        // The previous run's plan is dropped first: one plan alive at a time, as in a run.
        drop(last.take());
        let start = Instant::now();
        let cpu_start = cpu_time();
        let plan = planner::plan(estate::input(&mapping, (&vms, &cis, &refs), now));
        times.push(start.elapsed());
        cpu.push(cpu_time() - cpu_start);
        last = Some(plan);
    }
    times.sort();
    cpu.sort();
    let plan = last.expect("ran");
    let peak = peak_rss_mib();
    let s = &plan.summary;
    println!(
        "plan: {n} VMs x {} CIs -> {} creates, {} updates ({} heartbeat), {} absent, {} unchanged, {} issues",
        cis.len(),
        s.creates,
        s.updates,
        s.heartbeats,
        s.marked_absent,
        s.unchanged,
        s.issues
    );
    println!(
        "plan time: best {:.0} ms, median {:.0} ms over {} runs",
        times[0].as_secs_f64() * 1000.0,
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times.len()
    );
    println!(
        "plan CPU time: best {:.0} ms, median {:.0} ms",
        cpu[0].as_secs_f64() * 1000.0,
        cpu[cpu.len() / 2].as_secs_f64() * 1000.0
    );
    // The planner borrows its inputs; their drop is the caller's, measured apart (once, on
    // the inputs themselves: a copy to drop would double the peak).
    let start = Instant::now();
    drop((vms, cis, refs));
    println!(
        "(not included: dropping the inputs after the run: {:.0} ms)",
        start.elapsed().as_secs_f64() * 1000.0
    );
    if let (Some(inputs), Some(peak)) = (rss_inputs, peak) {
        println!("peak RSS: {peak:.0} MiB (inputs alone: {inputs:.0} MiB)");
    }
}
