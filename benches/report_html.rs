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

#[path = "../tests/report_fixture/mod.rs"]
mod report_fixture;

use std::path::PathBuf;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use cmdb_reconcile::reconcile::mapping::Mapping;
use cmdb_reconcile::reconcile::plan::{Plan, RelAction, RelChange, RelEnd};
use cmdb_reconcile::reconcile::planner::{self, Input};
use cmdb_reconcile::reconcile::record::{Ci, FieldNames, References};
use cmdb_reconcile::report::html;
use cmdb_reconcile::report::model::ReportModel;
use serde_json::{json, Value};

/// VMs `offset..offset + n` of the plan bench's estate (see `benches/plan.rs`, kept in step).
fn estate(offset: usize, n: usize) -> (Vec<Value>, Vec<Ci>, References) {
    let mut names = FieldNames::default();
    let mut vms = Vec::with_capacity(n);
    let mut cis = Vec::with_capacity(n);
    let users: Vec<Ci> = (0..200)
        .map(|u| Ci {
            sys_id: format!("{:032x}", 0xabc0000 + u),
            fields: [("email".into(), format!("user{u}@example.com"))]
                .into_iter()
                .collect(),
        })
        .collect();
    for i in offset..offset + n {
        let env = ["prod", "test", "dev"][i % 3];
        let vm = json!({
            "id": (1_000_000 + i).to_string(),
            "name": format!("vm-{i:06}"),
            "vendor": "vmware",
            "ems_ref": format!("vm-{i}"),
            "uid_ems": format!("4210{i:04x}-0000-4000-8000-{i:012x}"),
            "power_state": if i % 7 == 0 { "off" } else { "on" },
            "template": false,
            "archived": false,
            "cpu_total_cores": 2 + (i % 4) * 2,
            "ram_size": 4096 * (1 + i % 4),
            "num_disks": 1 + i % 3,
            "allocated_disk_storage": (40 + (i % 10) * 10) as u64 * 1024 * 1024 * 1024,
            "ipaddresses": [format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256), "fe80::1"],
            "hardware": {"guest_os_full_name": "Red Hat Enterprise Linux 8 (64-bit)"},
            "ext_management_system": {"name": "vc1", "guid": "vc-guid-1"},
            "ems_cluster_name": format!("Cluster-{}", i % 20),
            "evm_owner_email": format!("user{}@example.com", i % 200),
            "tags": [{"name": format!("/managed/environment/{env}")}],
        });
        if i % 100 != 0 {
            let drift = i % 20 == 1;
            let fields = [
                ("name", format!("vm-{i:06}")),
                ("object_id", format!("vm-{i}")),
                (
                    "correlation_id",
                    format!("4210{i:04x}-0000-4000-8000-{i:012x}"),
                ),
                ("vcenter_uuid", "vc-guid-1".into()),
                ("cpus", (2 + (i % 4) * 2 + usize::from(drift)).to_string()),
                ("memory", (4096 * (1 + i % 4)).to_string()),
                ("disks", (1 + i % 3).to_string()),
                ("disks_size", (40 + (i % 10) * 10).to_string()),
                (
                    "ip_address",
                    format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256),
                ),
                ("state", if i % 7 == 0 { "off" } else { "on" }.into()),
                (
                    "guest_os_fullname",
                    "Red Hat Enterprise Linux 8 (64-bit)".into(),
                ),
                (
                    "used_for",
                    ["Production", "Test", "Development"][i % 3].into(),
                ),
                ("owned_by", format!("{:032x}", 0xabc0000 + i % 200)),
                ("discovery_source", "CloudForms".into()),
                ("install_status", "1".into()),
                ("last_discovered", "2026-11-26 12:00:00".into()),
                ("sys_updated_on", "2026-11-26 12:00:00".into()),
                ("sys_mod_count", "4".into()),
            ];
            cis.push(Ci::new(
                format!("{i:032x}"),
                fields.into_iter().map(|(k, v)| (names.intern(k), v)),
            ));
        }
        vms.push(vm);
    }
    for j in 0..n / 100 {
        let mut ci = cis[j].clone();
        ci.sys_id = format!("dead{:028x}", offset + j);
        ci.fields
            .insert(names.intern("object_id"), format!("vm-gone-{}", offset + j));
        ci.fields.insert(
            names.intern("correlation_id"),
            format!("gone-{}", offset + j),
        );
        ci.fields
            .insert(names.intern("name"), format!("gone-{}", offset + j));
        cis.push(ci);
    }
    let mut refs = References::default();
    refs.add_table("sys_user", users);
    (vms, cis, refs)
}

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
        parts.push(planner::plan(Input {
            mapping: &mapping,
            records: &vms,
            source_origin: "bench".into(),
            source_incomplete: None,
            cis: &cis,
            target_origin: "bench".into(),
            references: &refs,
            now,
            allow_mass_change: true,
            relations: None,
            classifications: None,
        }));
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
