//! The synthetic estate the benchmarks plan: VMs of one vCenter with CIs for 99% of them
//! (5% drifted), 1% new VMs and 1% CIs of deleted VMs, and 200 users for owner lookups.
//! Shared by `benches/plan.rs` and `benches/report_html.rs` (`#[path]` module, not a target).

use chrono::{DateTime, Utc};
use cmdb_reconcile::reconcile::mapping::Mapping;
use cmdb_reconcile::reconcile::planner::Input;
use cmdb_reconcile::reconcile::record::{Ci, FieldNames, References, Val};
use serde_json::json;

/// VMs `offset..offset + n` and their CIs; slices with different offsets never share an id.
/// Each VM is written as the JSON CloudForms sends and made compact at once, as the live
/// client does page by page; rows are built as the ServiceNow reader builds them (names and
/// layouts shared).
pub fn estate(offset: usize, n: usize) -> (Vec<Val>, Vec<Ci>, References) {
    let mut names = FieldNames::default();
    let mut cis = Vec::with_capacity(n);
    let users: Vec<Ci> = (0..200)
        .map(|u| Ci {
            sys_id: format!("{:032x}", 0xabc0000 + u),
            fields: [("email".into(), format!("user{u}@example.com"))]
                .into_iter()
                .collect(),
        })
        .collect();
    // The two sides are read by different tasks in a run, so their records are built on
    // different threads here too (each thread allocates from its own heap arena).
    let vms = std::thread::scope(|scope| {
        let vms = scope.spawn(|| {
            let mut keys = FieldNames::default();
            let mut vms = Vec::with_capacity(n);
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
                vms.push(Val::from_json(vm, &mut keys));
            }
            vms
        });
        for i in offset..offset + n {
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
                cis.push(Ci {
                    sys_id: format!("{i:032x}"),
                    fields: names.row(fields),
                });
            }
        }
        vms.join().expect("the VMs")
    });
    for j in 0..n / 100 {
        let mut ci = cis[j].clone();
        ci.sys_id = format!("dead{:028x}", offset + j);
        let gone = |field: &str, value: &str| match field {
            "object_id" => format!("vm-gone-{}", offset + j),
            "correlation_id" => format!("gone-{}", offset + j),
            "name" => format!("gone-{}", offset + j),
            _ => value.to_owned(),
        };
        ci.fields = names.row(
            ci.fields
                .iter()
                .map(|(k, v)| (k.clone(), gone(k, v)))
                .collect::<Vec<_>>(),
        );
        cis.push(ci);
    }
    let mut refs = References::default();
    refs.add_table("sys_user", users);
    (vms, cis, refs)
}

/// The planner's input for a slice of the estate: complete, no relationships, mass changes
/// allowed (a benchmark measures the plan, not the guards).
pub fn input<'a>(
    mapping: &'a Mapping,
    (vms, cis, refs): (&'a [Val], &'a [Ci], &'a References),
    now: DateTime<Utc>,
) -> Input<'a> {
    Input {
        mapping,
        records: vms.into(),
        source_origin: "bench".into(),
        source_incomplete: None,
        cis,
        target_origin: "bench".into(),
        references: refs,
        now,
        allow_mass_change: true,
        relations: None,
        classifications: None,
    }
}
