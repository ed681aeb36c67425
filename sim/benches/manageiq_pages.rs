//! Measures what the simulators cost at scale: generating and seeding a
//! 100,000-VM estate (and its ~100,000 CIs), resident memory once both serve
//! it, and the latency of 1000-VM ManageIQ pages read the ways a client does.
//! Run with `cargo bench -p cmdb-sim --bench manageiq_pages` (release build);
//! `CMDB_SIM_BENCH_VMS` changes the estate size.

use cmdb_sim::generator::{generate, GenOptions};
use cmdb_sim::{SimOptions, Sims};
use std::time::{Duration, Instant};

/// Attributes the shipped VMware mapping reads.
const MAPPING_ATTRIBUTES: &str = "name,ems_ref,uid_ems,power_state,ipaddresses,cpu_total_cores,\
    ram_size,allocated_disk_storage,num_disks,evm_owner_email,host_name,ems_cluster_name,\
    ext_management_system.name,ext_management_system.guid,hardware.guest_os_full_name,tags,archived";

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn summary(label: &str, mut samples: Vec<Duration>, bytes: usize) {
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    println!(
        "{label:<48} pages {:>4}  median {:>7.2} ms  p95 {:>7.2} ms  max {:>7.2} ms  ~{:.1} MB/page",
        samples.len(),
        ms(pct(0.5)),
        ms(pct(0.95)),
        ms(samples[samples.len() - 1]),
        bytes as f64 / samples.len().max(1) as f64 / 1e6,
    );
}

/// Pages through `/api/vms` by following `links.next`; (latency per page, bytes).
async fn walk(http: &reqwest::Client, first: String) -> (Vec<Duration>, usize) {
    let (mut samples, mut bytes) = (Vec::new(), 0);
    let mut next = Some(first);
    while let Some(url) = next.take() {
        let t = Instant::now();
        let body = http
            .get(&url)
            .basic_auth("admin", Some("smartvm"))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("page request");
        let body = body.bytes().await.expect("page body");
        samples.push(t.elapsed());
        bytes += body.len();
        let page: serde_json::Value = serde_json::from_slice(&body).expect("JSON page");
        next = page["links"]["next"].as_str().map(str::to_owned);
    }
    (samples, bytes)
}

/// Key-set paging: `filter[]=id>last&sort_by=id` until a short page.
async fn keyset(http: &reqwest::Client, base: &str) -> (Vec<Duration>, usize) {
    let (mut samples, mut bytes, mut last) = (Vec::new(), 0, 0u64);
    loop {
        let url = format!(
            "{base}/api/vms?expand=resources&attributes={MAPPING_ATTRIBUTES}&limit=1000&sort_by=id&filter[]=id>{last}"
        );
        let t = Instant::now();
        let body = http
            .get(&url)
            .basic_auth("admin", Some("smartvm"))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("page request")
            .bytes()
            .await
            .expect("page body");
        samples.push(t.elapsed());
        bytes += body.len();
        let page: serde_json::Value = serde_json::from_slice(&body).expect("JSON page");
        let ids: Vec<u64> = page["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["id"].as_str().and_then(|s| s.parse().ok()))
            .collect();
        match ids.last() {
            Some(&id) if ids.len() == 1000 => last = id,
            _ => return (samples, bytes),
        }
    }
}

#[tokio::main]
async fn main() {
    let vms: usize = std::env::var("CMDB_SIM_BENCH_VMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    // The simulators first, in a fresh process, so RSS is theirs alone.
    let rss_before = rss_mib();
    let t = Instant::now();
    let sims = Sims::start(SimOptions {
        vms,
        ..SimOptions::default()
    })
    .await
    .expect("simulators start");
    let e = &sims.estate().expected;
    let cis = e.vmware_cis + e.vm_instance_cis;
    println!(
        "Sims::start (generate + seed ServiceNow + listen): {:.2?}",
        t.elapsed()
    );
    println!(
        "RSS: {rss_before:.0} MiB before start, {:.0} MiB serving {vms} VMs and {cis} CIs",
        rss_mib()
    );
    let t = Instant::now();
    let generated = generate(&GenOptions {
        vms,
        hosts: None,
        drift: 0.05,
        seed: 1,
        now: chrono::Utc::now(),
        requests: 12,
    });
    println!(
        "generate alone: {} VMs + {} CIs in {:.2?}",
        generated.estate.vms.len(),
        generated.estate.expected.vmware_cis + generated.estate.expected.vm_instance_cis,
        t.elapsed()
    );
    drop(generated);

    let http = reqwest::Client::new();
    let base = sims.manageiq_url();
    let (s, b) = walk(
        &http,
        format!("{base}/api/vms?expand=resources&limit=1000&offset=0"),
    )
    .await;
    summary("full records (expand=resources)", s, b);
    let (s, b) = walk(
        &http,
        format!("{base}/api/vms?expand=resources&attributes={MAPPING_ATTRIBUTES}&limit=1000&offset=0&sort_by=id"),
    )
    .await;
    summary("mapping attributes, sort_by=id", s, b);
    let (s, b) = walk(
        &http,
        format!(
            "{base}/api/vms?expand=resources&attributes={MAPPING_ATTRIBUTES}&filter[]=vendor=vmware&limit=1000&offset=0"
        ),
    )
    .await;
    summary("mapping attributes, filter[]=vendor=vmware", s, b);
    let (s, b) = keyset(&http, &base).await;
    summary("mapping attributes, key-set filter[]=id>N", s, b);
    let (s, b) = walk(
        &http,
        format!("{base}/api/vms?expand=resources&attributes=name&sort_by=name&limit=1000&offset=0"),
    )
    .await;
    summary("name only, sort_by=name", s, b);
    println!("RSS after the reads: {:.0} MiB", rss_mib());
    sims.stop().await;
}
