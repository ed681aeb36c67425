//! The attribute catalogue of `/api/vms` and `/api/templates`: every physical
//! column of the `vms` table in column order (the order a full record is
//! rendered in), the virtual attributes the simulator computes, and the
//! relations `attributes=` can render nested (`hardware.memory_mb`).
//! Columns the simulator does not model are NULL, and ManageIQ leaves NULL
//! physical columns out of a record.

use super::field::Field;
use crate::generator::{Estate, PowerState, Vendor, Vm, ID_BASE};
use serde_json::{json, Map, Value};

/// The tenant every object belongs to ("My Company").
pub const TENANT_ID: u64 = ID_BASE + 1;

pub type Getter = for<'a> fn(&'a Vm, &'a Estate) -> Field<'a>;

pub struct Attr {
    pub name: &'static str,
    pub get: Getter,
}

pub type KeyGetter = for<'a> fn(&'a Vm, &'a Estate, &str) -> Field<'a>;

pub enum RelKind {
    /// A single related object with these keys; absent when `present` is false.
    One {
        keys: &'static [&'static str],
        get: KeyGetter,
        present: fn(&Vm) -> bool,
    },
    /// A list of related records (`tags`, `custom_attributes`, `disks`);
    /// the `&str` is the base URL for hrefs.
    Many(fn(&Vm, &Estate, &str) -> Value),
}

pub struct Relation {
    pub name: &'static str,
    pub kind: RelKind,
}

pub fn physical(name: &str) -> Option<&'static Attr> {
    PHYSICAL.iter().find(|a| a.name == name)
}

pub fn virtual_attr(name: &str) -> Option<&'static Attr> {
    VIRTUAL.iter().find(|a| a.name == name)
}

pub fn relation(name: &str) -> Option<&'static Relation> {
    RELATIONS.iter().find(|r| r.name == name)
}

/// Array-valued virtual attributes cannot be sorted on (no SQL behind them).
pub fn sortable_virtual(name: &str) -> bool {
    !matches!(name, "ipaddresses" | "hostnames" | "mac_addresses")
}

fn null<'a>(_: &'a Vm, _: &'a Estate) -> Field<'a> {
    Field::Null
}

fn opt_str(v: &Option<String>) -> Field<'_> {
    v.as_deref().map_or(Field::Null, Field::Str)
}

fn opt_time(v: &Option<String>) -> Field<'_> {
    v.as_deref().map_or(Field::Null, Field::Time)
}

/// VMware-only columns are NULL on RHV VMs.
fn vmware<'a>(vm: &Vm, f: Field<'a>) -> Field<'a> {
    if vm.vendor == Vendor::Vmware {
        f
    } else {
        Field::Null
    }
}

fn on_vmware<'a>(vm: &Vm, f: Field<'a>) -> Field<'a> {
    if vm.vendor == Vendor::Vmware && vm.power_state == PowerState::On {
        f
    } else {
        Field::Null
    }
}

fn strings(v: &[String]) -> Field<'_> {
    Field::Owned(Value::Array(
        v.iter().map(|s| Value::String(s.clone())).collect(),
    ))
}

fn yaml_ref(s: &str) -> String {
    format!("--- \"{s}\"\n")
}

macro_rules! attr {
    ($name:literal, $get:expr) => {
        Attr {
            name: $name,
            get: $get,
        }
    };
}

/// The `vms` table's columns in column order.
pub static PHYSICAL: &[Attr] = &[
    attr!("id", |vm, _| Field::Id(vm.id)),
    attr!("vendor", |vm, _| Field::Str(vm.vendor.as_str())),
    attr!("format", null),
    attr!("version", null),
    attr!("name", |vm, _| Field::Str(&vm.name)),
    attr!("description", |vm, _| opt_str(&vm.description)),
    attr!("location", |vm, _| Field::Str(&vm.location)),
    attr!("config_xml", null),
    attr!("autostart", null),
    attr!("host_id", |vm, e| vm
        .host
        .map_or(Field::Null, |h| Field::Id(e.hosts[h].id))),
    attr!("last_sync_on", null),
    attr!("created_on", |vm, _| Field::Time(&vm.created_on)),
    attr!("updated_on", |vm, _| Field::Time(&vm.updated_on)),
    attr!("storage_id", |vm, e| vm
        .storage
        .map_or(Field::Null, |s| Field::Id(e.storages[s].id))),
    attr!("guid", |vm, _| Field::Str(&vm.guid)),
    attr!("ems_id", |vm, e| vm
        .ems
        .map_or(Field::Null, |p| Field::Id(e.providers[p].id))),
    attr!("last_scan_on", null),
    attr!("last_scan_attempt_on", null),
    attr!("uid_ems", |vm, _| Field::Str(&vm.uid_ems)),
    attr!("retires_on", |vm, _| opt_time(&vm.retires_on)),
    attr!("retired", |vm, _| vm
        .retired
        .map_or(Field::Null, Field::Bool)),
    attr!("boot_time", |vm, _| opt_time(&vm.boot_time)),
    attr!("tools_status", |vm, _| vmware(
        vm,
        Field::Str(match vm.power_state {
            PowerState::On => "toolsOk",
            PowerState::Never => "toolsNotInstalled",
            _ => "toolsNotRunning",
        })
    )),
    attr!("standby_action", |vm, _| vmware(
        vm,
        Field::Str("checkpoint")
    )),
    attr!("power_state", |vm, _| Field::Str(vm.power_state.as_str())),
    attr!("state_changed_on", |vm, _| Field::Time(
        &vm.state_changed_on
    )),
    attr!("previous_state", |vm, _| vm
        .previous_state
        .map_or(Field::Null, Field::Str)),
    attr!("connection_state", |vm, _| Field::Str(
        if vm.ems.is_some() {
            "connected"
        } else {
            "disconnected"
        }
    )),
    attr!("last_perf_capture_on", |vm, _| opt_time(
        &vm.last_perf_capture_on
    )),
    attr!("registered", null),
    attr!("busy", null),
    attr!("smart", null),
    attr!("memory_reserve", |vm, _| vmware(vm, Field::Int(0))),
    attr!("memory_reserve_expand", |vm, _| vmware(
        vm,
        Field::Bool(false)
    )),
    attr!("memory_limit", |vm, _| vmware(vm, Field::Int(-1))),
    attr!("memory_shares", |vm, _| vmware(
        vm,
        Field::Int(vm.hardware.memory_mb as i64 * 10)
    )),
    attr!("memory_shares_level", |vm, _| vmware(
        vm,
        Field::Str("normal")
    )),
    attr!("cpu_reserve", |vm, _| vmware(vm, Field::Int(0))),
    attr!("cpu_reserve_expand", |vm, _| vmware(vm, Field::Bool(false))),
    attr!("cpu_limit", |vm, _| vmware(vm, Field::Int(-1))),
    attr!("cpu_shares", |vm, _| vmware(
        vm,
        Field::Int(i64::from(vm.hardware.cpu_total_cores()) * 1000)
    )),
    attr!("cpu_shares_level", |vm, _| vmware(vm, Field::Str("normal"))),
    attr!("cpu_affinity", null),
    attr!("ems_created_on", null),
    attr!("template", |vm, _| Field::Bool(vm.template)),
    attr!("evm_owner_id", |vm, e| vm
        .owner
        .map_or(Field::Null, |o| Field::Id(e.users[o].id))),
    attr!("ems_ref_obj", |vm, _| match vm.vendor {
        Vendor::Vmware => Field::Str(&vm.ems_ref),
        Vendor::Redhat => Field::Owned(Value::String(yaml_ref(&vm.ems_ref))),
    }),
    attr!("miq_group_id", |vm, e| Field::Id(e.groups[vm.group].id)),
    attr!("linked_clone", |vm, _| vmware(
        vm,
        Field::Bool(!vm.template)
    )),
    attr!("fault_tolerance", |vm, _| vmware(vm, Field::Bool(false))),
    attr!("type", |vm, _| Field::Str(if vm.template {
        vm.vendor.template_type()
    } else {
        vm.vendor.vm_type()
    })),
    attr!("ems_ref", |vm, _| Field::Str(&vm.ems_ref)),
    attr!("ems_cluster_id", |vm, e| vm
        .cluster
        .map_or(Field::Null, |c| Field::Id(e.clusters[c].id))),
    attr!("retirement_warn", null),
    attr!("retirement_last_warn", null),
    attr!("vnc_port", null),
    attr!("flavor_id", null),
    attr!("availability_zone_id", null),
    attr!("cloud_network_id", null),
    attr!("cloud_subnet_id", null),
    attr!("cloud", |_, _| Field::Bool(false)),
    attr!("raw_power_state", |vm, _| Field::Str(
        vm.power_state.raw(vm.vendor)
    )),
    attr!("publicly_available", null),
    attr!("orchestration_stack_id", null),
    attr!("retirement_requester", null),
    attr!("tenant_id", |_, _| Field::Id(TENANT_ID)),
    attr!("resource_group_id", null),
    attr!("deprecated", null),
    attr!("storage_profile_id", null),
    attr!("cpu_hot_add_enabled", |vm, _| vmware(
        vm,
        Field::Bool(vm.cpu_hot_add_enabled)
    )),
    attr!("cpu_hot_remove_enabled", |vm, _| vmware(
        vm,
        Field::Bool(false)
    )),
    attr!("memory_hot_add_enabled", |vm, _| vmware(
        vm,
        Field::Bool(vm.memory_hot_add_enabled)
    )),
    attr!("memory_hot_add_limit", |vm, _| on_vmware(
        vm,
        Field::Int((vm.hardware.memory_mb as i64 * 4).min(262_144))
    )),
    attr!("memory_hot_add_increment", |vm, _| on_vmware(
        vm,
        Field::Int(128)
    )),
    attr!("retirement_state", |vm, _| vm
        .retirement_state
        .map_or(Field::Null, Field::Str)),
    attr!("cloud_tenant_id", null),
];

fn host_of<'a>(vm: &Vm, e: &'a Estate) -> Option<&'a crate::generator::Host> {
    vm.host.map(|h| &e.hosts[h])
}

/// Virtual attributes the simulator computes (only rendered when asked for).
pub static VIRTUAL: &[Attr] = &[
    attr!("active", |vm, _| Field::Bool(
        !vm.template && vm.ems.is_some() && vm.retired != Some(true)
    )),
    attr!("archived", |vm, _| Field::Bool(vm.archived())),
    attr!("orphaned", |vm, _| Field::Bool(vm.orphaned())),
    attr!("disconnected", |vm, _| Field::Bool(vm.ems.is_none())),
    attr!("normalized_state", |vm, _| Field::Str(if vm.template {
        "template"
    } else if vm.retired == Some(true) {
        "retired"
    } else if vm.archived() {
        "archived"
    } else if vm.orphaned() {
        "orphaned"
    } else {
        vm.power_state.as_str()
    })),
    attr!("ipaddresses", |vm, _| strings(&vm.ipaddresses)),
    attr!("hostnames", |vm, _| strings(&vm.hostnames)),
    attr!("mac_addresses", |vm, _| strings(&vm.mac_addresses)),
    attr!("num_cpu", |vm, _| Field::Int(i64::from(
        vm.hardware.cpu_sockets
    ))),
    attr!("cpu_total_cores", |vm, _| Field::Int(i64::from(
        vm.hardware.cpu_total_cores()
    ))),
    attr!("cpu_cores_per_socket", |vm, _| Field::Int(i64::from(
        vm.hardware.cpu_cores_per_socket
    ))),
    attr!("ram_size", |vm, _| Field::Int(vm.hardware.memory_mb as i64)),
    attr!("mem_cpu", |vm, _| Field::Int(vm.hardware.memory_mb as i64)),
    attr!("ram_size_in_bytes", |vm, _| Field::Int(
        vm.hardware.memory_mb as i64 * 1024 * 1024
    )),
    attr!("allocated_disk_storage", |vm, _| Field::Int(
        vm.allocated_disk_storage() as i64
    )),
    attr!("provisioned_storage", |vm, _| Field::Int(
        (vm.allocated_disk_storage() + vm.hardware.memory_mb * 1024 * 1024) as i64
    )),
    attr!("used_disk_storage", |vm, _| vm
        .used_disk_storage
        .map_or(Field::Null, |u| Field::Int(u as i64))),
    attr!("num_disks", |vm, _| Field::Int(vm.disks.len() as i64)),
    attr!("num_hard_disks", |vm, _| Field::Int(vm.disks.len() as i64)),
    attr!("os_image_name", |vm, _| Field::Str(
        vm.hardware.os_image_name
    )),
    attr!("platform", |vm, _| Field::Str(vm.hardware.platform)),
    attr!("host_name", |vm, e| host_of(vm, e)
        .map_or(Field::Null, |h| Field::Str(&h.name))),
    attr!("v_host_vmm_product", |vm, e| host_of(vm, e)
        .map_or(Field::Null, |h| Field::Str(h.vmm_product))),
    attr!("ems_cluster_name", |vm, e| vm
        .cluster
        .map_or(Field::Null, |c| Field::Str(&e.clusters[c].name))),
    attr!("v_owning_cluster", |vm, e| vm
        .cluster
        .map_or(Field::Null, |c| Field::Str(&e.clusters[c].name))),
    attr!("storage_name", |vm, e| vm
        .storage
        .map_or(Field::Null, |s| Field::Str(&e.storages[s].name))),
    attr!("v_datastore_path", |vm, e| vm.storage.map_or(
        Field::Null,
        |s| Field::Owned(Value::String(format!(
            "{}/{}",
            e.storages[s].name, vm.location
        )))
    )),
    attr!("v_owning_datacenter", |vm, e| vm
        .datacenter
        .map_or(Field::Null, |d| Field::Str(&e.datacenters[d].name))),
    attr!("v_owning_folder", |vm, _| vm
        .folder
        .map_or(Field::Null, Field::Str)),
    attr!("v_owning_resource_pool", |vm, _| if vm.ems.is_some() {
        Field::Str(&vm.resource_pool)
    } else {
        Field::Null
    }),
    attr!(
        "v_annotation",
        |vm, _| if vm.hardware.annotation.is_empty() {
            Field::Null
        } else {
            Field::Str(&vm.hardware.annotation)
        }
    ),
    attr!("v_is_a_template", |vm, _| Field::Str(if vm.template {
        "True"
    } else {
        "False"
    })),
    attr!("v_total_snapshots", |vm, _| Field::Int(i64::from(
        vm.snapshots
    ))),
    attr!("evm_owner_userid", |vm, e| vm
        .owner
        .map_or(Field::Null, |o| Field::Str(&e.users[o].userid))),
    attr!("evm_owner_email", |vm, e| vm
        .owner
        .map_or(Field::Null, |o| Field::Str(&e.users[o].email))),
    attr!("evm_owner_name", |vm, e| vm
        .owner
        .map_or(Field::Null, |o| Field::Str(&e.users[o].name))),
    attr!("owning_ldap_group", |vm, e| Field::Str(
        &e.groups[vm.group].description
    )),
    attr!("vendor_display", |vm, _| Field::Str(vm.vendor.display())),
    attr!("thin_provisioned", |_, _| Field::Bool(true)),
    attr!("has_rdm_disk", |_, _| Field::Bool(false)),
    attr!("is_evm_appliance", |_, _| Field::Bool(false)),
    attr!("region_number", |_, _| Field::Int(10)),
    attr!("region_description", |_, _| Field::Str("Region 10")),
];

pub static RELATIONS: &[Relation] = &[
    Relation {
        name: "hardware",
        kind: RelKind::One {
            keys: &[
                "id",
                "virtual_hw_version",
                "guest_os",
                "cpu_sockets",
                "bios",
                "annotation",
                "vm_or_template_id",
                "memory_mb",
                "manufacturer",
                "model",
                "cpu_cores_per_socket",
                "cpu_total_cores",
                "guest_os_full_name",
            ],
            get: hardware,
            present: |_| true,
        },
    },
    Relation {
        name: "operating_system",
        kind: RelKind::One {
            keys: &[
                "id",
                "name",
                "product_name",
                "product_type",
                "vm_or_template_id",
            ],
            get: operating_system,
            present: |vm| !vm.template,
        },
    },
    Relation {
        name: "ext_management_system",
        kind: RelKind::One {
            keys: &[
                "id",
                "name",
                "created_on",
                "updated_on",
                "guid",
                "zone_id",
                "type",
                "api_version",
                "uid_ems",
                "hostname",
                "ipaddress",
                "last_refresh_date",
                "tenant_id",
            ],
            get: ems,
            present: |vm| vm.ems.is_some(),
        },
    },
    Relation {
        name: "ems_cluster",
        kind: RelKind::One {
            keys: &[
                "id",
                "name",
                "ems_id",
                "created_on",
                "updated_on",
                "uid_ems",
                "ems_ref_obj",
                "ems_ref",
            ],
            get: cluster,
            present: |vm| vm.cluster.is_some(),
        },
    },
    Relation {
        name: "host",
        kind: RelKind::One {
            keys: &[
                "id",
                "name",
                "hostname",
                "ipaddress",
                "vmm_vendor",
                "vmm_version",
                "vmm_product",
                "vmm_buildnumber",
                "created_on",
                "updated_on",
                "guid",
                "ems_id",
                "power_state",
                "uid_ems",
                "connection_state",
                "ems_ref_obj",
                "type",
                "ems_ref",
                "ems_cluster_id",
            ],
            get: host,
            present: |vm| vm.host.is_some(),
        },
    },
    Relation {
        name: "storage",
        kind: RelKind::One {
            keys: &[
                "id",
                "name",
                "store_type",
                "total_space",
                "free_space",
                "created_on",
                "multiplehostaccess",
                "location",
                "ems_ref",
                "ems_id",
            ],
            get: storage,
            present: |vm| vm.storage.is_some(),
        },
    },
    Relation {
        name: "evm_owner",
        kind: RelKind::One {
            keys: &[
                "id",
                "name",
                "email",
                "created_on",
                "userid",
                "first_name",
                "last_name",
                "current_group_id",
            ],
            get: owner,
            present: |vm| vm.owner.is_some(),
        },
    },
    Relation {
        name: "miq_group",
        kind: RelKind::One {
            keys: &["id", "description", "group_type", "sequence", "tenant_id"],
            get: group,
            present: |_| true,
        },
    },
    Relation {
        name: "tenant",
        kind: RelKind::One {
            keys: &["id", "name", "description", "divisible"],
            get: tenant,
            present: |_| true,
        },
    },
    Relation {
        name: "tags",
        kind: RelKind::Many(all_tags),
    },
    Relation {
        name: "custom_attributes",
        kind: RelKind::Many(custom_attributes),
    },
    Relation {
        name: "disks",
        kind: RelKind::Many(disks),
    },
];

fn hardware<'a>(vm: &'a Vm, _: &'a Estate, key: &str) -> Field<'a> {
    let hw = &vm.hardware;
    match key {
        "id" => Field::Id(hw.id),
        "virtual_hw_version" => hw.virtual_hw_version.map_or(Field::Null, Field::Str),
        "guest_os" => Field::Str(hw.guest_os),
        "cpu_sockets" => Field::Int(i64::from(hw.cpu_sockets)),
        "bios" => opt_str(&hw.bios),
        "annotation" => Field::Str(&hw.annotation),
        "vm_or_template_id" => Field::Id(vm.id),
        "memory_mb" => Field::Int(hw.memory_mb as i64),
        "manufacturer" | "model" => Field::Str(""),
        "cpu_cores_per_socket" => Field::Int(i64::from(hw.cpu_cores_per_socket)),
        "cpu_total_cores" => Field::Int(i64::from(hw.cpu_total_cores())),
        "guest_os_full_name" => hw.guest_os_full_name.map_or(Field::Null, Field::Str),
        _ => Field::Null,
    }
}

fn operating_system<'a>(vm: &'a Vm, _: &'a Estate, key: &str) -> Field<'a> {
    match key {
        "id" => Field::Id(vm.hardware.id),
        "name" => vm.hostnames.first().map_or(Field::Null, |h| Field::Str(h)),
        "product_name" => Field::Str(
            vm.hardware
                .guest_os_full_name
                .unwrap_or(vm.hardware.guest_os),
        ),
        "product_type" => Field::Str(vm.hardware.platform),
        "vm_or_template_id" => Field::Id(vm.id),
        _ => Field::Null,
    }
}

fn ems<'a>(vm: &'a Vm, e: &'a Estate, key: &str) -> Field<'a> {
    let Some(p) = vm.ems.map(|p| &e.providers[p]) else {
        return Field::Null;
    };
    match key {
        "id" => Field::Id(p.id),
        "name" => Field::Str(&p.name),
        "created_on" => Field::Time(&p.created_on),
        "updated_on" => Field::Time(&p.updated_on),
        "guid" => Field::Str(&p.guid),
        "zone_id" => Field::Id(p.zone_id),
        "type" => Field::Str(p.vendor.ems_type()),
        "api_version" => Field::Str(&p.api_version),
        "uid_ems" => opt_str(&p.uid_ems),
        "hostname" => Field::Str(&p.hostname),
        "ipaddress" => Field::Str(&p.ipaddress),
        "last_refresh_date" => Field::Time(&p.last_refresh_date),
        "tenant_id" => Field::Id(TENANT_ID),
        _ => Field::Null,
    }
}

fn cluster<'a>(vm: &'a Vm, e: &'a Estate, key: &str) -> Field<'a> {
    let Some(c) = vm.cluster.map(|c| &e.clusters[c]) else {
        return Field::Null;
    };
    match key {
        "id" => Field::Id(c.id),
        "name" => Field::Str(&c.name),
        "ems_id" => Field::Id(e.providers[c.ems].id),
        "created_on" | "updated_on" => Field::Time(&c.created_on),
        "uid_ems" => Field::Str(&c.uid_ems),
        "ems_ref_obj" => match e.providers[c.ems].vendor {
            Vendor::Vmware => Field::Str(&c.ems_ref),
            Vendor::Redhat => Field::Owned(Value::String(yaml_ref(&c.ems_ref))),
        },
        "ems_ref" => Field::Str(&c.ems_ref),
        _ => Field::Null,
    }
}

fn host<'a>(vm: &'a Vm, e: &'a Estate, key: &str) -> Field<'a> {
    let Some(h) = host_of(vm, e) else {
        return Field::Null;
    };
    let vendor = e.providers[h.ems].vendor;
    match key {
        "id" => Field::Id(h.id),
        "name" | "hostname" => Field::Str(&h.name),
        "ipaddress" => Field::Str(&h.ipaddress),
        "vmm_vendor" => Field::Str(vendor.as_str()),
        "vmm_version" => Field::Str(h.vmm_version),
        "vmm_product" => Field::Str(h.vmm_product),
        "vmm_buildnumber" => Field::Str(h.vmm_buildnumber),
        "created_on" => Field::Time(&h.created_on),
        "updated_on" => Field::Time(&h.updated_on),
        "guid" => Field::Str(&h.guid),
        "ems_id" => Field::Id(e.providers[h.ems].id),
        "power_state" => Field::Str("on"),
        "uid_ems" => Field::Str(&h.uid_ems),
        "connection_state" => Field::Str("connected"),
        "ems_ref_obj" => match vendor {
            Vendor::Vmware => Field::Str(&h.ems_ref),
            Vendor::Redhat => Field::Owned(Value::String(yaml_ref(&h.ems_ref))),
        },
        "type" => Field::Str(vendor.host_type()),
        "ems_ref" => Field::Str(&h.ems_ref),
        "ems_cluster_id" => Field::Id(e.clusters[h.cluster].id),
        _ => Field::Null,
    }
}

fn storage<'a>(vm: &'a Vm, e: &'a Estate, key: &str) -> Field<'a> {
    let Some(s) = vm.storage.map(|s| &e.storages[s]) else {
        return Field::Null;
    };
    match key {
        "id" => Field::Id(s.id),
        "name" => Field::Str(&s.name),
        "store_type" => Field::Str(s.store_type),
        "total_space" => Field::Int(s.total_space as i64),
        "free_space" => Field::Int(s.free_space as i64),
        "created_on" => Field::Time(&s.created_on),
        "multiplehostaccess" => Field::Int(1),
        "location" => Field::Str(&s.location),
        "ems_ref" => Field::Str(&s.ems_ref),
        "ems_id" => Field::Id(e.providers[e.clusters[s.cluster].ems].id),
        _ => Field::Null,
    }
}

fn owner<'a>(vm: &'a Vm, e: &'a Estate, key: &str) -> Field<'a> {
    let Some(u) = vm.owner.map(|o| &e.users[o]) else {
        return Field::Null;
    };
    match key {
        "id" => Field::Id(u.id),
        "name" => Field::Str(&u.name),
        "email" => Field::Str(&u.email),
        "created_on" => Field::Time(&u.created_on),
        "userid" => Field::Str(&u.userid),
        "first_name" => Field::Str(&u.first_name),
        "last_name" => Field::Str(&u.last_name),
        "current_group_id" => Field::Id(e.groups[u.group].id),
        _ => Field::Null,
    }
}

fn group<'a>(vm: &'a Vm, e: &'a Estate, key: &str) -> Field<'a> {
    let g = &e.groups[vm.group];
    match key {
        "id" => Field::Id(g.id),
        "description" => Field::Str(&g.description),
        "group_type" => Field::Str(g.group_type),
        "sequence" => Field::Int(i64::from(g.sequence)),
        "tenant_id" => Field::Id(TENANT_ID),
        _ => Field::Null,
    }
}

fn tenant<'a>(_: &'a Vm, _: &'a Estate, key: &str) -> Field<'a> {
    match key {
        "id" => Field::Id(TENANT_ID),
        "name" => Field::Str("My Company"),
        "description" => Field::Str("Tenant for My Company"),
        "divisible" => Field::Bool(true),
        _ => Field::Null,
    }
}

/// `attributes=tags`: every tag, `/managed` or not, with its `/api/tags` href.
fn all_tags(vm: &Vm, e: &Estate, base: &str) -> Value {
    Value::Array(
        vm.tags
            .iter()
            .map(|&t| {
                let tag = &e.tags[t as usize];
                json!({"href": format!("{base}/api/tags/{}", tag.id), "id": tag.id.to_string(), "name": tag.name})
            })
            .collect(),
    )
}

/// `expand=tags`: the tags subcollection, `/managed` tags only.
pub fn managed_tags(vm: &Vm, e: &Estate, base: &str, collection: &str) -> Value {
    Value::Array(
        vm.tags
            .iter()
            .map(|&t| &e.tags[t as usize])
            .filter(|tag| tag.is_managed())
            .map(|tag| {
                json!({
                    "href": format!("{base}/api/{collection}/{}/tags/{}", vm.id, tag.id),
                    "id": tag.id.to_string(),
                    "name": tag.name,
                })
            })
            .collect(),
    )
}

/// One custom attribute as the subcollection renders it.
pub fn custom_attribute_json(
    vm: &Vm,
    ca: &crate::generator::CustomAttribute,
    base: &str,
    collection: &str,
) -> Value {
    let mut m = Map::new();
    m.insert(
        "href".into(),
        format!(
            "{base}/api/{collection}/{}/custom_attributes/{}",
            vm.id, ca.id
        )
        .into(),
    );
    m.insert("id".into(), ca.id.to_string().into());
    m.insert("section".into(), ca.section.into());
    m.insert("name".into(), ca.name.clone().into());
    m.insert("value".into(), ca.value.clone().into());
    m.insert("resource_type".into(), "VmOrTemplate".into());
    m.insert("resource_id".into(), vm.id.to_string().into());
    m.insert("source".into(), ca.source.into());
    Value::Object(m)
}

fn custom_attributes(vm: &Vm, _: &Estate, base: &str) -> Value {
    let collection = if vm.template { "templates" } else { "vms" };
    Value::Array(
        vm.custom_attributes
            .iter()
            .map(|ca| custom_attribute_json(vm, ca, base, collection))
            .collect(),
    )
}

fn disks(vm: &Vm, e: &Estate, _: &str) -> Value {
    let storage_id = vm.storage.map(|s| e.storages[s].id.to_string());
    Value::Array(
        vm.disks
            .iter()
            .map(|d| {
                let mut m = Map::new();
                m.insert("id".into(), d.id.to_string().into());
                m.insert("device_name".into(), d.device_name.clone().into());
                m.insert("device_type".into(), "disk".into());
                m.insert("location".into(), d.location.clone().into());
                m.insert("filename".into(), d.filename.clone().into());
                m.insert("hardware_id".into(), vm.hardware.id.to_string().into());
                m.insert("mode".into(), "persistent".into());
                m.insert("controller_type".into(), d.controller_type.into());
                m.insert("size".into(), d.size.into());
                m.insert("size_on_disk".into(), d.size_on_disk.into());
                m.insert("present".into(), true.into());
                m.insert("start_connected".into(), true.into());
                m.insert("disk_type".into(), "thin".into());
                if let Some(s) = &storage_id {
                    m.insert("storage_id".into(), s.clone().into());
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// Actions on one VM, as the real server lists them for an administrator.
pub const VM_RESOURCE_ACTIONS: &[(&str, &str)] = &[
    ("add_lifecycle_event", "post"),
    ("add_event", "post"),
    ("refresh", "post"),
    ("shutdown_guest", "post"),
    ("reboot_guest", "post"),
    ("start", "post"),
    ("stop", "post"),
    ("suspend", "post"),
    ("shelve", "post"),
    ("shelve_offload", "post"),
    ("pause", "post"),
    ("request_console", "post"),
    ("reset", "post"),
    ("retire", "post"),
    ("delete", "post"),
    ("set_owner", "post"),
    ("set_ownership", "post"),
    ("scan", "post"),
    ("delete", "delete"),
];

/// Actions on the `/api/vms` collection.
pub const VM_COLLECTION_ACTIONS: &[&str] = &[
    "query",
    "edit",
    "add_event",
    "refresh",
    "shutdown_guest",
    "reboot_guest",
    "start",
    "stop",
    "suspend",
    "shelve",
    "shelve_offload",
    "pause",
    "request_console",
    "reset",
    "retire",
    "request_retire",
    "set_owner",
    "set_ownership",
    "set_miq_server",
    "scan",
    "delete",
    "assign_tags",
    "unassign_tags",
];

pub const TEMPLATE_RESOURCE_ACTIONS: &[(&str, &str)] = &[
    ("refresh", "post"),
    ("set_owner", "post"),
    ("set_ownership", "post"),
    ("delete", "post"),
    ("delete", "delete"),
];

pub const TEMPLATE_COLLECTION_ACTIONS: &[&str] = &[
    "query",
    "edit",
    "refresh",
    "set_owner",
    "set_ownership",
    "delete",
    "assign_tags",
    "unassign_tags",
];
