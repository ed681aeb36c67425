//! The CMDB side of the generated world: the rows a previous CloudForms ->
//! ServiceNow reconciliation would have written, then aged with controlled
//! drift, plus the reference tables (users, groups, locations, ESX servers, the
//! CloudForms discovery source) and [`Expected`], the list of every planted difference.
//!
//! A VM's CI carries exactly what `mappings/vmware-vm.toml` writes, all values
//! strings: `name`, `object_id` (= `ems_ref`), `correlation_id` (= `uid_ems`),
//! `vcenter_uuid` (= the provider's `uid_ems`, the vCenter instance UUID; VMware only), `cpus` (= total cores), `memory` (MB),
//! `disks`, `disks_size` (GB, rounded), `ip_address` (first IPv4 or ""),
//! `state` (on/off/paused), `guest_os_fullname` (VMware only), `used_for` (from the
//! environment tag), `owned_by` (owner's `sys_user` sys_id or ""),
//! `short_description`, `discovery_source` "CloudForms", `install_status` "1",
//! `operational_status` "1", `first_discovered`, `last_discovered`,
//! `sys_class_name`. VMware VMs go to `cmdb_ci_vmware_instance`, the others
//! to `cmdb_ci_vm_instance`.

use super::{words, CustomAttribute, Gen, Generated, PowerState, Vendor, Vm, GIB};
use chrono::{DateTime, Duration, Utc};
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{Map, Value};

/// The CMDB seed, table by table, in the order they should be loaded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cmdb {
    pub tables: Vec<CmdbTable>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CmdbTable {
    pub name: String,
    pub rows: Vec<Map<String, Value>>,
}

impl Cmdb {
    pub fn table(&self, name: &str) -> Option<&CmdbTable> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// Rows of `name`, empty when the table does not exist.
    pub fn rows(&self, name: &str) -> &[Map<String, Value>] {
        self.table(name).map_or(&[], |t| &t.rows)
    }
}

/// One planted field difference between a VM and its CI.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DriftedCi {
    pub table: String,
    pub sys_id: String,
    pub vm_id: u64,
    pub field: String,
    /// What the CMDB holds.
    pub cmdb_value: String,
    /// What the mapping derives from CloudForms.
    pub source_value: String,
}

/// Everything planted, so tests can check a reconciliation found exactly it.
/// VM ids are CloudForms ids; CI references are sys_ids.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Expected {
    pub drift: f64,
    /// Rows in `cmdb_ci_vmware_instance` / `cmdb_ci_vm_instance`, all kinds.
    pub vmware_cis: usize,
    pub vm_instance_cis: usize,
    /// Controlled drift: one changed field per listed CI (only "ordinary" VMs).
    pub drifted: Vec<DriftedCi>,
    /// VMs CloudForms knows that have no CI yet (to be created).
    pub vms_without_ci: Vec<u64>,
    /// In-scope, installed CIs whose VM no longer exists (to be retired).
    pub cis_without_vm: Vec<String>,
    /// CIs of vanished VMs that are already retired (install_status 7).
    pub retired_cis: Vec<String>,
    /// CIs out of scope (discovery_source "Manual Entry" or "ServiceNow").
    pub manual_cis: Vec<String>,
    /// Pairs of VMs with the same name in different clusters (both have CIs).
    pub duplicate_names: Vec<[u64; 2]>,
    /// Pairs of VMware VMs sharing one `uid_ems` (clones; both have CIs).
    pub clone_pairs: Vec<[u64; 2]>,
    /// Archived VMs (no provider, no storage). Their CIs still carry the
    /// vCenter instance UUID they were discovered with (`vcenter_uuid`), which the
    /// VM no longer reports.
    pub archived_vms: Vec<u64>,
    /// Orphaned VMs (no provider, still on a storage); CIs as for archived ones.
    pub orphaned_vms: Vec<u64>,
    /// VMs retired in CloudForms (`retired: true`, powered off); CIs match them.
    pub retired_vms: Vec<u64>,
    /// Owners that have no `sys_user` row: their VMs' CIs have `owned_by` "".
    pub owners_without_user: Vec<u64>,
    /// VMs carrying the custom attribute `servicenow_sys_id` (= their CI's sys_id).
    pub vms_with_servicenow_sys_id: Vec<u64>,
}

pub(super) fn derive(mut g: Gen, drift: f64) -> Generated {
    let n = g.vms.len();
    let mut expected = Expected {
        drift,
        ..Expected::default()
    };
    // VMs already used by one scenario are kept out of the others, so each
    // planted difference has exactly one cause.
    let mut reserved = vec![false; n];

    // Retired in CloudForms: happened a while ago, the CMDB followed.
    for i in pick(&mut g.rng, &reserved, share(n, 0.01, 1), |_| true) {
        reserved[i] = true;
        let retires_on = g.now() - Duration::days(g.rng().random_range(5..300));
        let vm = &mut g.vms[i];
        vm.retired = Some(true);
        vm.retirement_state = Some("retired");
        vm.retires_on = Some(retires_on.format("%Y-%m-%dT00:00:00Z").to_string());
        vm.power_state = PowerState::Off;
        vm.boot_time = None;
        vm.last_perf_capture_on = None;
        expected.retired_vms.push(vm.id);
    }

    // Same name in two clusters.
    let pairs = if n >= 20 { (n / 2_000).max(2) } else { 0 };
    for _ in 0..pairs {
        let Some(a) = pick(&mut g.rng, &reserved, 1, |_| true).pop() else {
            break;
        };
        reserved[a] = true;
        let (cluster_a, vendor_a) = (g.vms[a].cluster, g.vms[a].vendor);
        let vms = &g.vms;
        let candidates = pick(&mut g.rng, &reserved, 1, |j| {
            vms[j].cluster != cluster_a && vms[j].vendor == vendor_a
        });
        let Some(&b) = candidates.first() else { break };
        reserved[b] = true;
        let name = g.vms[a].name.clone();
        let hostnames = g.vms[a].hostnames.clone();
        let vm = &mut g.vms[b];
        if vm.vendor == Vendor::Vmware {
            vm.location = format!("{name}/{name}.vmx");
        }
        vm.hostnames = hostnames;
        vm.name = name;
        expected.duplicate_names.push([g.vms[a].id, g.vms[b].id]);
    }

    // Clones that kept their source's BIOS UUID.
    let clones = if n >= 20 { 2 } else { 0 };
    for _ in 0..clones {
        let vms = &g.vms;
        let found = pick(&mut g.rng, &reserved, 2, |j| {
            vms[j].vendor == Vendor::Vmware
        });
        let [a, b] = found[..] else { break };
        reserved[a] = true;
        reserved[b] = true;
        let uid = g.vms[a].uid_ems.clone();
        g.vms[b].uid_ems = uid.clone();
        g.vms[b].hardware.bios = Some(uid);
        expected.clone_pairs.push([g.vms[a].id, g.vms[b].id]);
    }

    // Owners' sys_user rows; a few owners have left and have none.
    for u in 1..g.users.len() {
        if g.rng().random_bool(0.02) {
            expected.owners_without_user.push(g.users[u].id);
        } else {
            g.users[u].sys_id = Some(g.sys_id());
        }
    }

    // The job ran a few hours ago (it runs hourly or daily): last_discovered is recent, so a
    // CI whose VM is unchanged needs no heartbeat write in the next run.
    let last_discovered = sn_time(g.now() - Duration::hours(6));

    // One CI per VM, as the last run left them.
    let mut cis: Vec<Option<(usize, Map<String, Value>)>> = Vec::with_capacity(n);
    for i in 0..n {
        let sys_id = g.sys_id();
        let row = ci_row(&g, &g.vms[i], sys_id, &last_discovered);
        cis.push(Some((i, row)));
    }

    // VMs new since the last run.
    for i in pick(&mut g.rng, &reserved, share(n, 0.01, 1), |_| true) {
        reserved[i] = true;
        cis[i] = None;
        expected.vms_without_ci.push(g.vms[i].id);
    }

    // Controlled drift.
    let with_ci = cis.iter().filter(|c| c.is_some()).count();
    let k = (drift.clamp(0.0, 1.0) * with_ci as f64).round() as usize;
    for i in pick(&mut g.rng, &reserved, k, |_| true) {
        reserved[i] = true;
        let Some((_, row)) = cis[i].as_mut() else {
            continue;
        };
        let field = *["cpus", "memory", "state", "ip_address", "name"]
            .choose(g.rng())
            .expect("non-empty");
        let source_value = str_field(row, field);
        let cmdb_value = drifted_value(&mut g, field, &source_value);
        row.insert(field.into(), Value::String(cmdb_value.clone()));
        expected.drifted.push(DriftedCi {
            table: str_field(row, "sys_class_name"),
            sys_id: str_field(row, "sys_id"),
            vm_id: g.vms[i].id,
            field: field.into(),
            cmdb_value,
            source_value,
        });
    }

    // Removed from the provider after the last run: archived (storage gone too)
    // or orphaned (files still on a datastore).
    for (share_of, archived) in [(0.01, true), (0.005, false)] {
        let with_ci: Vec<bool> = cis.iter().map(Option::is_some).collect();
        for i in pick(&mut g.rng, &reserved, share(n, share_of, 1), |j| with_ci[j]) {
            reserved[i] = true;
            let vm = &mut g.vms[i];
            vm.ems = None;
            vm.host = None;
            vm.cluster = None;
            vm.datacenter = None;
            if archived {
                vm.storage = None;
                expected.archived_vms.push(vm.id);
            } else {
                expected.orphaned_vms.push(vm.id);
            }
        }
    }

    // CloudForms' own ServiceNow samples store the CI's sys_id on the VM.
    for (i, row) in cis.iter().enumerate() {
        let Some((_, row)) = row.as_ref() else {
            continue;
        };
        if g.rng().random_bool(0.15) {
            let sys_id = str_field(row, "sys_id");
            let id = g.id();
            let vm = &mut g.vms[i];
            vm.custom_attributes.push(CustomAttribute {
                id,
                name: "servicenow_sys_id".into(),
                value: sys_id,
                section: "metadata",
                source: "EVM",
            });
            expected.vms_with_servicenow_sys_id.push(vm.id);
        }
    }

    let mut vmware_rows = Vec::new();
    let mut other_rows = Vec::new();
    for (i, row) in cis.into_iter().flatten() {
        match g.vms[i].vendor {
            Vendor::Vmware => vmware_rows.push(row),
            Vendor::Redhat => other_rows.push(row),
        }
    }

    // CIs whose VM is gone: still installed (to be retired), or already retired.
    for retired in [false, true] {
        let count = if retired {
            share(n, 0.005, 1)
        } else {
            share(n, 0.01, 1)
        };
        for _ in 0..count {
            let phantom = g.machine(false);
            let sys_id = g.sys_id();
            let mut row = ci_row(&g, &phantom, sys_id.clone(), &last_discovered);
            if retired {
                row.insert("install_status".into(), "7".into());
                row.insert("operational_status".into(), "6".into());
                row.insert("state".into(), "terminated".into());
                row.insert(
                    "last_discovered".into(),
                    sn_time(g.now() - Duration::days(40)).into(),
                );
                expected.retired_cis.push(sys_id);
            } else {
                row.insert(
                    "last_discovered".into(),
                    sn_time(g.now() - Duration::days(3)).into(),
                );
                expected.cis_without_vm.push(sys_id);
            }
            match phantom.vendor {
                Vendor::Vmware => vmware_rows.push(row),
                Vendor::Redhat => other_rows.push(row),
            }
        }
    }

    // Entered by hand or by ServiceNow's own discovery: never ours to touch.
    for m in 0..(n / 300).max(3) {
        let sys_id = g.sys_id();
        let app = *words::APPS.choose(g.rng()).expect("non-empty");
        let vendor = if m % 3 == 2 {
            Vendor::Redhat
        } else {
            Vendor::Vmware
        };
        let source = if m % 2 == 0 {
            "Manual Entry"
        } else {
            "ServiceNow"
        };
        let mut row = Map::new();
        row.insert("sys_id".into(), sys_id.clone().into());
        row.insert("sys_class_name".into(), vendor.cmdb_table().into());
        row.insert("name".into(), format!("legacy-{app}-{:02}", m + 1).into());
        for field in ["object_id", "correlation_id", "ip_address", "owned_by"] {
            row.insert(field.into(), "".into());
        }
        if vendor == Vendor::Vmware {
            row.insert("vcenter_uuid".into(), "".into());
        }
        row.insert("cpus".into(), "2".into());
        row.insert("memory".into(), "4096".into());
        row.insert("state".into(), "on".into());
        row.insert("short_description".into(), "Registered by hand".into());
        row.insert("discovery_source".into(), source.into());
        row.insert("install_status".into(), "1".into());
        row.insert("operational_status".into(), "1".into());
        expected.manual_cis.push(sys_id);
        match vendor {
            Vendor::Vmware => vmware_rows.push(row),
            Vendor::Redhat => other_rows.push(row),
        }
    }
    expected.vmware_cis = vmware_rows.len();
    expected.vm_instance_cis = other_rows.len();

    let mut tables = reference_tables(&mut g);
    tables.push(CmdbTable {
        name: Vendor::Vmware.cmdb_table().into(),
        rows: vmware_rows,
    });
    tables.push(CmdbTable {
        name: Vendor::Redhat.cmdb_table().into(),
        rows: other_rows,
    });
    for name in ["cmdb_rel_ci", "incident", "change_request"] {
        tables.push(CmdbTable {
            name: name.into(),
            rows: Vec::new(),
        });
    }

    Generated {
        estate: g.into_estate(expected),
        cmdb: Cmdb { tables },
    }
}

/// The CI the mapping derives from `vm`, all values strings.
fn ci_row(g: &Gen, vm: &Vm, sys_id: String, last_discovered: &str) -> Map<String, Value> {
    let cluster_name = vm.cluster.map_or("", |c| g.clusters[c].name.as_str());
    let vcenter_uuid = vm
        .ems
        .and_then(|e| g.providers[e].uid_ems.as_deref())
        .unwrap_or("");
    let state = match vm.power_state {
        PowerState::On => "on",
        PowerState::Suspended => "paused",
        PowerState::Off | PowerState::Never => "off",
    };
    let used_for = vm
        .tags
        .iter()
        .filter_map(|&t| {
            g.tags[t as usize]
                .name
                .strip_prefix("/managed/environment/")
        })
        .find_map(|env| match env {
            "prod" => Some("Production"),
            "test" => Some("Test"),
            "dev" => Some("Development"),
            _ => None,
        })
        .unwrap_or("");
    let owned_by = vm
        .owner
        .and_then(|o| g.users[o].sys_id.as_deref())
        .unwrap_or("");
    let disks_size = (vm.allocated_disk_storage() as f64 / GIB as f64).round() as u64;

    let mut row = Map::new();
    let mut put = |k: &str, v: String| {
        row.insert(k.to_owned(), Value::String(v));
    };
    put("sys_id", sys_id);
    put("sys_class_name", vm.vendor.cmdb_table().into());
    put("name", vm.name.clone());
    put("object_id", vm.ems_ref.clone());
    put("correlation_id", vm.uid_ems.clone());
    // `vcenter_uuid` and `guest_os_fullname` are columns of the VMware class only: the CIs of
    // other VMs (`cmdb_ci_vm_instance`, mappings/vm.toml) do not have them.
    let vmware = vm.vendor == Vendor::Vmware;
    if vmware {
        put("vcenter_uuid", vcenter_uuid.into());
    }
    put("cpus", vm.hardware.cpu_total_cores().to_string());
    put("memory", vm.hardware.memory_mb.to_string());
    put("disks", vm.disks.len().to_string());
    put("disks_size", disks_size.to_string());
    put("ip_address", vm.first_ipv4().unwrap_or("").into());
    put("state", state.into());
    if vmware {
        put(
            "guest_os_fullname",
            vm.hardware.guest_os_full_name.unwrap_or("").into(),
        );
    }
    put("used_for", used_for.into());
    put("owned_by", owned_by.into());
    put(
        "short_description",
        format!("CloudForms VM {} in {cluster_name}", vm.name),
    );
    put("discovery_source", "CloudForms".into());
    put("install_status", "1".into());
    put("operational_status", "1".into());
    put("first_discovered", iso_to_sn(&vm.created_on));
    put("last_discovered", last_discovered.into());
    row
}

fn drifted_value(g: &mut Gen, field: &str, current: &str) -> String {
    let other = |g: &mut Gen, options: &[&str]| -> String {
        let options: Vec<&str> = options.iter().copied().filter(|o| *o != current).collect();
        (*options.choose(g.rng()).expect("at least one other value")).to_owned()
    };
    match field {
        "cpus" => other(g, &["1", "2", "4", "8", "16"]),
        "memory" => other(g, &["1024", "2048", "4096", "8192", "16384", "32768"]),
        "state" => other(g, &["on", "off", "paused"]),
        "ip_address" => format!(
            "10.250.{}.{}",
            g.rng().random_range(0..250),
            g.rng().random_range(1..254)
        ),
        _ => format!("{current}-old"),
    }
}

/// The sys_id every ServiceNow instance gives its `admin` user.
pub const ADMIN_SYS_ID: &str = "6816f79cc0a8016401c5a33be04be441";

/// The CMDB's reference data: groups, users, locations, the CloudForms discovery source
/// choice, ESX servers. (Relationship types are the instance's own: the simulator installs
/// them.)
fn reference_tables(g: &mut Gen) -> Vec<CmdbTable> {
    let mut groups = Vec::new();
    for (name, description) in words::SUPPORT_GROUPS {
        let mut row = Map::new();
        row.insert("sys_id".into(), g.sys_id().into());
        row.insert("name".into(), (*name).into());
        row.insert("description".into(), (*description).into());
        row.insert("active".into(), "true".into());
        groups.push(row);
    }

    // The built-in administrator has the same sys_id on every instance.
    let mut users = vec![user_row(
        ADMIN_SYS_ID.to_owned(),
        "admin",
        "System",
        "Administrator",
        "admin@example.com",
        true,
    )];
    for u in 1..g.users.len() {
        let Some(sys_id) = g.users[u].sys_id.clone() else {
            continue;
        };
        let active = g.rng().random_bool(0.97);
        let user = &g.users[u];
        users.push(user_row(
            sys_id,
            &user.userid,
            &user.first_name,
            &user.last_name,
            &user.email,
            active,
        ));
    }
    for s in 0..10 {
        let first = *words::FIRST_NAMES.choose(g.rng()).expect("non-empty");
        let last = *words::LAST_NAMES.choose(g.rng()).expect("non-empty");
        let sys_id = g.sys_id();
        users.push(user_row(
            sys_id,
            &format!("sd.agent{:02}", s + 1),
            first,
            last,
            &format!("servicedesk{:02}@example.com", s + 1),
            true,
        ));
    }

    let mut locations = Vec::new();
    let mut location_ids = Vec::new();
    for (_, name, city, country, street) in words::SITES {
        let sys_id = g.sys_id();
        location_ids.push(sys_id.clone());
        let mut row = Map::new();
        row.insert("sys_id".into(), sys_id.into());
        row.insert("name".into(), (*name).into());
        row.insert("street".into(), (*street).into());
        row.insert("city".into(), (*city).into());
        row.insert("country".into(), (*country).into());
        locations.push(row);
    }

    // The site registered CloudForms as a discovery source (integrations.md E.3): a choice
    // of `cmdb_ci.discovery_source`, which the CMDB Instance API and IRE require of `source`.
    let mut choices = Vec::new();
    let mut choice = Map::new();
    choice.insert("sys_id".into(), g.sys_id().into());
    for (k, v) in [
        ("name", "cmdb_ci"),
        ("element", "discovery_source"),
        ("value", "CloudForms"),
        ("label", "CloudForms"),
        ("sequence", "100"),
        ("language", "en"),
        ("inactive", "false"),
    ] {
        choice.insert(k.into(), v.into());
    }
    choices.push(choice);

    let mut esx = Vec::new();
    for h in 0..g.hosts.len() {
        let ems = g.hosts[h].ems;
        if g.providers[ems].vendor != Vendor::Vmware {
            continue;
        }
        let sys_id = g.sys_id();
        g.hosts[h].sys_id = Some(sys_id.clone());
        let host = &g.hosts[h];
        let site = g.datacenters[g.clusters[host.cluster].datacenter].site;
        let mut row = Map::new();
        let mut put = |k: &str, v: String| {
            row.insert(k.to_owned(), Value::String(v));
        };
        put("sys_id", sys_id);
        put("sys_class_name", "cmdb_ci_esx_server".into());
        put("name", host.name.clone());
        // Discovery's fields: the MoRef as `morid`; the vCenter's instance UUID beside it, so
        // a host is keyed by MoRef and vCenter as VMs are (MoRefs repeat across vCenters).
        put("morid", host.ems_ref.clone());
        put(
            "vcenter_uuid",
            g.providers[ems].uid_ems.clone().unwrap_or_default(),
        );
        put("ip_address", host.ipaddress.clone());
        put(
            "cpu_count",
            (host.cpu_sockets * host.cpu_cores_per_socket).to_string(),
        );
        put("ram", host.memory_mb.to_string());
        put("location", location_ids[site].clone());
        put("discovery_source", "ServiceNow".into());
        put("install_status", "1".into());
        put("operational_status", "1".into());
        esx.push(row);
    }

    vec![
        CmdbTable {
            name: "sys_user_group".into(),
            rows: groups,
        },
        CmdbTable {
            name: "sys_user".into(),
            rows: users,
        },
        CmdbTable {
            name: "cmn_location".into(),
            rows: locations,
        },
        CmdbTable {
            name: "sys_choice".into(),
            rows: choices,
        },
        CmdbTable {
            name: "cmdb_ci_esx_server".into(),
            rows: esx,
        },
    ]
}

fn user_row(
    sys_id: String,
    user_name: &str,
    first: &str,
    last: &str,
    email: &str,
    active: bool,
) -> Map<String, Value> {
    let mut row = Map::new();
    row.insert("sys_id".into(), sys_id.into());
    row.insert("user_name".into(), user_name.into());
    row.insert("first_name".into(), first.into());
    row.insert("last_name".into(), last.into());
    row.insert(
        "name".into(),
        format!("{first} {last}").trim().to_owned().into(),
    );
    row.insert("email".into(), email.into());
    row.insert(
        "active".into(),
        if active { "true" } else { "false" }.into(),
    );
    row
}

/// `k` distinct unreserved VM indexes satisfying `ok`, in a seeded random order.
fn pick(
    rng: &mut ChaCha8Rng,
    reserved: &[bool],
    k: usize,
    ok: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let candidates: Vec<usize> = (0..reserved.len())
        .filter(|&i| !reserved[i] && ok(i))
        .collect();
    let k = k.min(candidates.len());
    rand::seq::index::sample(rng, candidates.len(), k)
        .into_iter()
        .map(|c| candidates[c])
        .collect()
}

/// `fraction` of `n`, rounded, at least `min` when `n` allows it.
fn share(n: usize, fraction: f64, min: usize) -> usize {
    let k = (n as f64 * fraction).round() as usize;
    k.max(min).min(n / 10)
}

fn str_field(row: &Map<String, Value>, field: &str) -> String {
    row.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// ServiceNow's datetime format, UTC: `2016-01-19 04:52:04`.
fn sn_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `2017-01-25T23:39:51Z` -> `2017-01-25 23:39:51`.
fn iso_to_sn(iso: &str) -> String {
    iso.trim_end_matches('Z').replacen('T', " ", 1)
}

#[cfg(test)]
mod tests {
    use super::super::{generate, GenOptions};
    use chrono::{TimeZone, Utc};
    use std::collections::HashMap;

    fn gen(vms: usize, drift: f64) -> super::Generated {
        generate(&GenOptions {
            vms,
            hosts: None,
            drift,
            seed: 11,
            now: Utc
                .with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
                .single()
                .expect("valid date"),
            requests: 12,
        })
    }

    #[test]
    fn every_planted_difference_is_listed() {
        let g = gen(2_000, 0.05);
        let e = &g.estate.expected;
        let vmware = g.cmdb.rows("cmdb_ci_vmware_instance");
        let other = g.cmdb.rows("cmdb_ci_vm_instance");
        assert_eq!(e.vmware_cis, vmware.len());
        assert_eq!(e.vm_instance_cis, other.len());
        assert_eq!(e.vms_without_ci.len(), 20);
        assert_eq!(e.cis_without_vm.len(), 20);
        assert_eq!(e.retired_cis.len(), 10);
        assert!(e.manual_cis.len() >= 3);
        assert!(e.duplicate_names.len() >= 2);
        assert_eq!(e.clone_pairs.len(), 2);
        let with_vm = 2_000 - e.vms_without_ci.len();
        assert_eq!(e.drifted.len(), (0.05 * with_vm as f64).round() as usize);
        assert_eq!(
            vmware.len() + other.len(),
            with_vm + e.cis_without_vm.len() + e.retired_cis.len() + e.manual_cis.len()
        );
    }

    #[test]
    fn undrifted_cis_match_their_vm_and_drifted_ones_differ_in_one_field() {
        let g = gen(1_000, 0.1);
        let by_object: HashMap<(&str, &str), &serde_json::Map<String, serde_json::Value>> = g
            .cmdb
            .rows("cmdb_ci_vmware_instance")
            .iter()
            .map(|r| {
                (
                    (
                        r["object_id"].as_str().unwrap_or_default(),
                        r["vcenter_uuid"].as_str().unwrap_or_default(),
                    ),
                    r,
                )
            })
            .collect();
        let drifted: HashMap<u64, &super::DriftedCi> = g
            .estate
            .expected
            .drifted
            .iter()
            .map(|d| (d.vm_id, d))
            .collect();
        let mut checked = 0;
        for vm in g
            .estate
            .vms
            .iter()
            .filter(|v| v.vendor == super::Vendor::Vmware)
        {
            let Some(ems) = vm.ems else { continue };
            let uuid = g.estate.providers[ems]
                .uid_ems
                .as_deref()
                .unwrap_or_default();
            let Some(row) = by_object.get(&(vm.ems_ref.as_str(), uuid)) else {
                continue;
            };
            let cpus = vm.hardware.cpu_total_cores().to_string();
            let gb = (vm.allocated_disk_storage() as f64 / super::GIB as f64).round() as u64;
            assert_eq!(row["disks_size"], gb.to_string().as_str());
            let name_ok = row["name"] == vm.name.as_str();
            let cpus_ok = row["cpus"] == cpus.as_str();
            match drifted.get(&vm.id) {
                Some(d) if d.field == "name" => assert!(!name_ok && cpus_ok),
                Some(d) if d.field == "cpus" => assert!(name_ok && !cpus_ok),
                _ => assert!(name_ok && cpus_ok, "{row:?} vs {}", vm.name),
            }
            assert_eq!(row["correlation_id"], vm.uid_ems.as_str());
            checked += 1;
        }
        assert!(checked > 500, "checked {checked}");
    }

    #[test]
    fn owned_by_points_at_a_sys_user_row() {
        let g = gen(500, 0.0);
        let users: Vec<&str> = g
            .cmdb
            .rows("sys_user")
            .iter()
            .filter_map(|r| r["sys_id"].as_str())
            .collect();
        let owned: Vec<&str> = g
            .cmdb
            .rows("cmdb_ci_vmware_instance")
            .iter()
            .filter_map(|r| r["owned_by"].as_str())
            .filter(|s| !s.is_empty())
            .collect();
        assert!(!owned.is_empty());
        assert!(owned.iter().all(|o| users.contains(o)));
    }
}
