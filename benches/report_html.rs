//! Generates `drift.html` reports of synthetic plans for the browser benchmark
//! (`benches/report-browser/`): the render time and file size here, load and filter times there.
//!
//! `cargo bench --bench report_html [-- OUT_DIR [VMS...]]` writes `drift-<VMS>.html` for each
//! size (default 3,850, 100,000 and 1,000,000 VMs: 933, 24,000 and 240,000 change rows)
//! plus `small.html` and `hostile.html` (the report tests' fixtures, for the browser checks)
//! into OUT_DIR (default `target/report-bench`). A plain harness: no timing assertions.
//!
//! The estate is `benches/plan.rs`'s (5% drift, 1% new VMs, 1% CIs of deleted VMs, through the
//! shipped `mappings/vmware-vm.toml`), planned in slices of at most 100,000 VMs so that the
//! million-VM plan fits in memory, then put together with `Plan::new`. The plan bench's estate
//! has no relationships; one synthetic `Runs on::Runs` row per created CI and a vMotion (a
//! delete and a create) per 50 drifted CIs are added so that the report shows relationships
//! at scale, in its section and under each CI.
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark reads the clock and writes files"
)]

#[path = "common/estate.rs"]
mod estate;
#[path = "../tests/report_fixture/mod.rs"]
mod report_fixture;
use estate::estate;

use std::path::PathBuf;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use cmdb_reconcile::reconcile::mapping::Mapping;
use cmdb_reconcile::reconcile::plan::{Plan, RelAction, RelChange, RelEnd};
use cmdb_reconcile::reconcile::planner;
use cmdb_reconcile::report::html;
use cmdb_reconcile::report::model::ReportModel;

/// The plan of `n` VMs against their CIs, planned slice by slice, with synthetic relationships.
fn plan_of(n: usize) -> Plan {
    let text = include_str!("../mappings/vmware-vm.toml");
    let mapping = Mapping::parse(text, "mappings/vmware-vm.toml").expect("shipped mapping");
    let now = Utc.with_ymd_and_hms(2026, 11, 27, 6, 0, 0).unwrap();
    let mut parts: Vec<Plan> = Vec::new();
    let mut offset = 0;
    while offset < n {
        let size = (n - offset).min(100_000);
        let (vms, cis, refs) = estate(offset, size);
        parts.push(planner::plan(estate::input(
            &mapping,
            (&vms, &cis, &refs),
            now,
        )));
        offset += size;
    }
    let first = parts[0].clone();
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    let mut retirements = Vec::new();
    let mut issues = Vec::new();
    let mut unchanged = 0;
    let (mut records, mut cis, mut in_scope) = (0, 0, 0);
    for part in parts {
        records += part.source.records;
        cis += part.target.cis;
        in_scope += part.target.in_scope;
        unchanged += part.summary.unchanged;
        creates.extend(part.creates);
        updates.extend(part.updates);
        retirements.extend(part.retirements);
        issues.extend(part.issues);
    }
    let mut source = first.source.clone();
    source.records = records;
    let mut target = first.target.clone();
    target.cis = cis;
    target.in_scope = in_scope;
    let mut plan = Plan::new(
        first.generated_at,
        first.mapping.clone(),
        source,
        target,
        first.safety.clone(),
        creates,
        updates,
        retirements,
        issues,
        unchanged,
    );
    let host = |h: usize| RelEnd {
        sys_id: format!("e5{h:030x}"),
        source_id: None,
        name: format!("esx-{h:03}"),
    };
    let mut rels = Vec::new();
    for (i, create) in plan.creates.iter().enumerate() {
        rels.push(RelChange {
            action: RelAction::Create,
            kind: "Runs on::Runs".into(),
            type_sys_id: "60bc4e22c0a8010e01f074cbe6bd73c3".into(),
            parent: RelEnd {
                sys_id: String::new(),
                source_id: Some(create.source_id.clone()),
                name: create.name.clone(),
            },
            child: host(i % 64),
            sys_id: None,
            sys_mod_count: String::new(),
            sys_updated_on: String::new(),
            reason: "ems host of the VM".into(),
        });
    }
    for (i, update) in plan.updates.iter().enumerate().filter(|(i, _)| i % 50 == 0) {
        let ci = RelEnd {
            sys_id: update.sys_id.clone(),
            source_id: None,
            name: update.name.clone(),
        };
        let rel = |action, child, reason: &str| RelChange {
            action,
            kind: "Runs on::Runs".into(),
            type_sys_id: "60bc4e22c0a8010e01f074cbe6bd73c3".into(),
            parent: ci.clone(),
            child,
            sys_id: (action == RelAction::Delete).then(|| format!("7e1{i:029x}")),
            sys_mod_count: String::new(),
            sys_updated_on: String::new(),
            reason: reason.into(),
        };
        rels.push(rel(RelAction::Create, host(i % 64 + 1), "vMotion"));
        rels.push(rel(RelAction::Delete, host(i % 64), "vMotion"));
    }
    rels.sort_by_key(|r| r.action);
    plan.relationships = rels;
    plan
}

fn write(path: PathBuf, page: &str) {
    std::fs::write(&path, page).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let out = args
        .first()
        .filter(|a| a.parse::<usize>().is_err())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/report-bench"));
    let mut sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![3_850, 100_000, 1_000_000];
    }
    std::fs::create_dir_all(&out).expect("output folder");
    let fixtures = [
        ("small", report_fixture::small_plan()),
        ("hostile", report_fixture::hostile_plan()),
    ];
    for (name, plan) in fixtures {
        write(
            out.join(format!("{name}.html")),
            &html::render(&ReportModel::from_plan(&plan)),
        );
    }
    for n in sizes {
        let start = Instant::now();
        let plan = plan_of(n);
        let planned = start.elapsed();
        let model = ReportModel::from_plan(&plan);
        let start = Instant::now();
        let page = html::render(&model);
        let rendered = start.elapsed();
        let path = out.join(format!("drift-{n}.html"));
        write(path.clone(), &page);
        println!(
            "{n} VMs: {} change rows, {} relationship rows, {} issues; planned in {:.1} s; \
             drift.html rendered in {:.0} ms, {:.1} MB -> {}",
            model.changes.len(),
            model.relationships.len(),
            model.summary.issues,
            planned.as_secs_f64(),
            rendered.as_secs_f64() * 1000.0,
            page.len() as f64 / 1e6,
            path.display()
        );
    }
}
