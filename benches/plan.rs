//! Benchmark of the pure core: N VMs against N CIs (default 100,000) with 5% drift, 1% new
//! VMs and 1% CIs of deleted VMs, through the shipped `mappings/vmware-vm.toml`.
//!
//! `cargo bench --bench plan [-- N]` prints the best and median wall and CPU time of the
//! planner over several runs (records and CIs already in memory: this measures the core, not
//! parsing) and the process's peak resident memory. A plain harness: no timing assertions,
//! no extra crate.
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark reads the clock and writes files"
)]

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use cmdb_reconcile::reconcile::mapping::Mapping;
use cmdb_reconcile::reconcile::planner;
use cmdb_reconcile::reconcile::record::{Ci, References};
use serde_json::Value;

#[path = "common/estate.rs"]
mod estate;

fn estate(n: usize) -> (Vec<Value>, Vec<Ci>, References) {
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

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let text = include_str!("../mappings/vmware-vm.toml");
    let mapping = Mapping::parse(text, "mappings/vmware-vm.toml").expect("shipped mapping");
    let now = Utc.with_ymd_and_hms(2026, 11, 27, 6, 0, 0).unwrap();
    let (vms, cis, refs) = estate(n);
    let rss_inputs = peak_rss_mib();
    let mut times: Vec<Duration> = Vec::new();
    let mut cpu: Vec<Duration> = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let start = Instant::now();
        let cpu_start = cpu_time();
        let plan = planner::plan(estate::input(&mapping, (&vms, &cis, &refs), now));
        times.push(start.elapsed());
        cpu.push(cpu_time() - cpu_start);
        last = Some(plan);
    }
    times.sort();
    cpu.sort();
    // The planner borrows its inputs; their drop is the caller's, measured apart.
    let mut drops = Vec::new();
    for _ in 0..3 {
        let (records, targets) = (vms.clone(), cis.clone());
        let start = Instant::now();
        drop((records, targets));
        drops.push(start.elapsed());
    }
    drops.sort();
    let plan = last.expect("ran");
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
    println!(
        "(not included: dropping the inputs after the run: {:.0} ms)",
        drops[0].as_secs_f64() * 1000.0
    );
    if let (Some(inputs), Some(peak)) = (rss_inputs, peak_rss_mib()) {
        println!("peak RSS: {peak:.0} MiB (inputs alone: {inputs:.0} MiB)");
    }
}
