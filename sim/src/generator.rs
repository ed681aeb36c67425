//! Deterministic data generator: a realistic CloudForms estate (providers,
//! datacenters, clusters, hosts, datastores, owners, tags, VMs and templates) and,
//! derived from it, the ServiceNow CMDB a previous reconciliation would have left
//! behind, with controlled drift. The same [`GenOptions`] always give the same
//! output, byte for byte: every random draw comes from one `ChaCha8Rng` seeded
//! with `seed`, and nothing reads the clock (`now` is passed in).
//!
//! What the CMDB rows contain follows the shipped mapping
//! `mappings/vmware-vm.toml`: see [`cmdb`] for the field-by-field derivation.

pub mod cmdb;
pub mod requests;
pub mod service_catalog;
mod words;

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::HashSet;

pub use cmdb::{Cmdb, CmdbTable, DriftedCi, Expected};
pub use requests::{Advanced, Fate, MiqRequest, NewRequest, RequestKind, RequestTask, Stage};
pub use service_catalog::{
    cat_item_sys_id, dialog_values, OrderError, ServiceCatalog, ServiceTemplate,
};
use words::GuestOs;

/// CFME numbers ids by region (`region * 10^12 + n`); region 10 gives ids beyond
/// 32 bits, as on real appliances, so a client that parses ids into `i32` breaks here.
pub const ID_BASE: u64 = 10_000_000_000_000;

const GIB: u64 = 1024 * 1024 * 1024;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// VMs served at `/api/vms` (archived and orphaned ones included, templates not).
    pub vms: usize,
    /// Fraction of CIs (of VMs that have one) whose cpus/memory/state/ip_address/name differ.
    pub drift: f64,
    pub seed: u64,
    /// The generator's "now": timestamps are drawn relative to it.
    pub now: DateTime<Utc>,
    /// Provisioning requests at `/api/requests` (see [`requests`]); 12 cover every stage
    /// and status.
    pub requests: usize,
    /// Hypervisor hosts wanted; `None`: about one per 25 VMs. Rounded up to fill the
    /// clusters evenly (at least two per cluster).
    pub hosts: Option<usize>,
}

/// Everything generated: the CloudForms side and the CMDB seed.
#[derive(Debug, Clone, Serialize)]
pub struct Generated {
    pub estate: Estate,
    pub cmdb: Cmdb,
}

/// The CloudForms side of the generated world, plus what a reconciliation of it
/// against the generated CMDB should find ([`Expected`]).
/// A part of an [`Estate`] that copies of it share until one changes it (copy on write):
/// the simulated ManageIQ copies its estate on every change (a request keeps the snapshot it
/// started with), and most changes (an order, an approval) touch none of the large
/// collections. Reads as the value; changing it through `&mut` copies it first if shared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shared<T>(std::sync::Arc<T>);

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Self {
        Self(std::sync::Arc::new(value))
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone> std::ops::DerefMut for Shared<T> {
    fn deref_mut(&mut self) -> &mut T {
        std::sync::Arc::make_mut(&mut self.0)
    }
}

impl<'a, T> IntoIterator for &'a Shared<Vec<T>> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (*self.0).serialize(s)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Estate {
    pub seed: u64,
    pub now: DateTime<Utc>,
    pub providers: Vec<Provider>,
    pub datacenters: Vec<Datacenter>,
    /// The providers' folders (`/api/providers/:id/folders`): each datacenter, its
    /// provider's root folder and, on VMware, a datacenter's hidden `vm` and `host` folders.
    pub folders: Shared<Vec<Folder>>,
    pub clusters: Shared<Vec<Cluster>>,
    pub hosts: Shared<Vec<Host>>,
    pub storages: Shared<Vec<Storage>>,
    /// `users[0]` is the appliance administrator; the others own VMs.
    pub users: Shared<Vec<User>>,
    pub groups: Vec<Group>,
    pub tags: Shared<Vec<Tag>>,
    /// Served at `/api/vms`, ordered by id.
    pub vms: Shared<Vec<Vm>>,
    /// Served at `/api/templates` only, ordered by id.
    pub templates: Shared<Vec<Vm>>,
    /// Provisioning requests (`/api/requests`), ordered by id.
    pub requests: Vec<MiqRequest>,
    /// `/api/service_catalogs`, ordered by id.
    pub service_catalogs: Vec<ServiceCatalog>,
    /// `/api/service_templates`, ordered by id.
    pub service_templates: Vec<ServiceTemplate>,
    /// The last id of the estate's id sequence: objects added later (requests, tasks, the
    /// VMs they create) take ids above it.
    pub next_id: u64,
    /// The last `vm-N` MoRef each provider (by index) handed out, counting machines since
    /// removed: vCenter never reuses a MoRef, and the CIs of removed VMs keep theirs, so a VM
    /// provisioned later must number above them all.
    pub last_moref: Vec<u64>,
    pub expected: Shared<Expected>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    Vmware,
    Redhat,
}

impl Vendor {
    /// The `vendor` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Vmware => "vmware",
            Vendor::Redhat => "redhat",
        }
    }

    /// The `vendor_display` virtual attribute.
    pub fn display(self) -> &'static str {
        match self {
            Vendor::Vmware => "VMware",
            Vendor::Redhat => "RedHat",
        }
    }

    pub fn ems_type(self) -> &'static str {
        match self {
            Vendor::Vmware => "ManageIQ::Providers::Vmware::InfraManager",
            Vendor::Redhat => "ManageIQ::Providers::Redhat::InfraManager",
        }
    }

    pub fn vm_type(self) -> &'static str {
        match self {
            Vendor::Vmware => "ManageIQ::Providers::Vmware::InfraManager::Vm",
            Vendor::Redhat => "ManageIQ::Providers::Redhat::InfraManager::Vm",
        }
    }

    pub fn template_type(self) -> &'static str {
        match self {
            Vendor::Vmware => "ManageIQ::Providers::Vmware::InfraManager::Template",
            Vendor::Redhat => "ManageIQ::Providers::Redhat::InfraManager::Template",
        }
    }

    pub fn host_type(self) -> &'static str {
        match self {
            Vendor::Vmware => "ManageIQ::Providers::Vmware::InfraManager::HostEsx",
            Vendor::Redhat => "ManageIQ::Providers::Redhat::InfraManager::Host",
        }
    }

    /// The CMDB class (and table) that holds this vendor's VMs.
    pub fn cmdb_table(self) -> &'static str {
        match self {
            Vendor::Vmware => "cmdb_ci_vmware_instance",
            Vendor::Redhat => "cmdb_ci_vm_instance",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    On,
    Off,
    Suspended,
    /// Templates.
    Never,
}

impl PowerState {
    /// The `power_state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::On => "on",
            PowerState::Off => "off",
            PowerState::Suspended => "suspended",
            PowerState::Never => "never",
        }
    }

    /// The provider-native `raw_power_state`.
    pub fn raw(self, vendor: Vendor) -> &'static str {
        match (vendor, self) {
            (Vendor::Vmware, PowerState::On) => "poweredOn",
            (Vendor::Vmware, PowerState::Off) => "poweredOff",
            (Vendor::Vmware, PowerState::Suspended) => "suspended",
            (Vendor::Redhat, PowerState::On) => "up",
            (Vendor::Redhat, PowerState::Off) => "down",
            (Vendor::Redhat, PowerState::Suspended) => "suspended",
            (_, PowerState::Never) => "never",
        }
    }
}

/// A vCenter or RHV-M provider (`ext_management_system`).
#[derive(Debug, Clone, Serialize)]
pub struct Provider {
    pub id: u64,
    pub name: String,
    pub vendor: Vendor,
    /// ManageIQ's own record GUID (not the vCenter's).
    pub guid: String,
    /// `uid_ems`: the vCenter's `about.instanceUuid` (VMware only), which Discovery and the
    /// shipped mapping write to the CMDB's `vcenter_uuid`.
    pub uid_ems: Option<String>,
    pub hostname: String,
    pub ipaddress: String,
    pub api_version: String,
    pub zone_id: u64,
    pub created_on: String,
    pub updated_on: String,
    pub last_refresh_date: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Datacenter {
    pub id: u64,
    pub name: String,
    pub ems: usize,
    /// `ems_ref` = `uid_ems`: the MoRef (`datacenter-NN`) on VMware, the RHV API path on RHV.
    pub ems_ref: String,
    pub uid_ems: String,
    /// Index into the site list (drives the location tag and `cmn_location`).
    pub site: usize,
}

/// An `EmsFolder`. ManageIQ stores a datacenter as a folder of a Datacenter type.
#[derive(Debug, Clone, Serialize)]
pub struct Folder {
    pub id: u64,
    pub name: String,
    pub ems: usize,
    pub ems_ref: String,
    pub uid_ems: String,
    /// The datacenter this folder is (not the one it is in).
    pub datacenter: Option<usize>,
    /// ManageIQ hides the root folder and a datacenter's `vm`/`host` folders.
    pub hidden: bool,
}

impl Folder {
    /// The `type` column.
    pub fn type_name(&self, vendor: Vendor) -> String {
        let kind = if self.datacenter.is_some() {
            "Datacenter"
        } else {
            "Folder"
        };
        format!("{}::{kind}", vendor.ems_type())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub id: u64,
    pub name: String,
    pub ems: usize,
    pub datacenter: usize,
    pub uid_ems: String,
    pub ems_ref: String,
    pub created_on: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub id: u64,
    pub name: String,
    pub ipaddress: String,
    pub ems: usize,
    pub cluster: usize,
    pub uid_ems: String,
    pub ems_ref: String,
    pub guid: String,
    pub vmm_product: &'static str,
    pub vmm_version: &'static str,
    pub vmm_buildnumber: &'static str,
    pub cpu_sockets: u32,
    pub cpu_cores_per_socket: u32,
    pub memory_mb: u64,
    pub created_on: String,
    pub updated_on: String,
    /// sys_id of its `cmdb_ci_esx_server` row (VMware hosts only).
    pub sys_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Storage {
    pub id: u64,
    pub name: String,
    pub store_type: &'static str,
    pub total_space: u64,
    pub free_space: u64,
    pub location: String,
    pub ems_ref: String,
    pub cluster: usize,
    pub created_on: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: u64,
    pub userid: String,
    pub first_name: String,
    pub last_name: String,
    pub name: String,
    pub email: String,
    pub group: usize,
    pub created_on: String,
    /// sys_id of the owner's `sys_user` row; `None` when the CMDB has no such user.
    pub sys_id: Option<String>,
}

/// A CloudForms group (`miq_group`).
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub id: u64,
    pub description: String,
    pub group_type: &'static str,
    pub sequence: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tag {
    pub id: u64,
    /// Full name, e.g. `/managed/environment/prod`.
    pub name: String,
}

impl Tag {
    pub fn is_managed(&self) -> bool {
        self.name.starts_with("/managed/")
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Hardware {
    pub id: u64,
    pub guest_os: &'static str,
    pub guest_os_full_name: Option<&'static str>,
    pub os_image_name: &'static str,
    pub platform: &'static str,
    /// VMware BIOS UUID (= `uid_ems`); RHV reports none.
    pub bios: Option<String>,
    pub cpu_sockets: u32,
    pub cpu_cores_per_socket: u32,
    pub memory_mb: u64,
    pub annotation: String,
    pub virtual_hw_version: Option<&'static str>,
}

impl Hardware {
    pub fn cpu_total_cores(&self) -> u32 {
        self.cpu_sockets * self.cpu_cores_per_socket
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    pub id: u64,
    pub device_name: String,
    pub location: String,
    pub filename: String,
    pub controller_type: &'static str,
    pub size: u64,
    pub size_on_disk: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CustomAttribute {
    pub id: u64,
    pub name: String,
    pub value: String,
    pub section: &'static str,
    /// `VC` (imported from the provider) or `EVM` (set in CloudForms).
    pub source: &'static str,
}

/// A VM or template as CloudForms stores it. Relations are indexes into the
/// [`Estate`]'s vectors; `None` where CloudForms has none (archived, orphaned).
#[derive(Debug, Clone, Serialize)]
pub struct Vm {
    pub id: u64,
    pub name: String,
    pub description: Option<String>,
    pub vendor: Vendor,
    pub template: bool,
    pub location: String,
    pub ems: Option<usize>,
    pub host: Option<usize>,
    pub cluster: Option<usize>,
    pub storage: Option<usize>,
    pub datacenter: Option<usize>,
    pub guid: String,
    pub uid_ems: String,
    pub ems_ref: String,
    pub created_on: String,
    pub updated_on: String,
    pub boot_time: Option<String>,
    pub state_changed_on: String,
    pub previous_state: Option<&'static str>,
    pub last_perf_capture_on: Option<String>,
    pub power_state: PowerState,
    pub hardware: Hardware,
    pub disks: Vec<Disk>,
    pub used_disk_storage: Option<u64>,
    pub ipaddresses: Vec<String>,
    pub hostnames: Vec<String>,
    pub mac_addresses: Vec<String>,
    pub owner: Option<usize>,
    pub group: usize,
    /// Indexes into [`Estate::tags`].
    pub tags: Vec<u32>,
    pub custom_attributes: Vec<CustomAttribute>,
    pub retired: Option<bool>,
    pub retirement_state: Option<&'static str>,
    pub retires_on: Option<String>,
    pub folder: Option<&'static str>,
    pub resource_pool: String,
    pub snapshots: u32,
    pub cpu_hot_add_enabled: bool,
    pub memory_hot_add_enabled: bool,
}

impl Vm {
    /// No provider and no storage.
    pub fn archived(&self) -> bool {
        self.ems.is_none() && self.storage.is_none()
    }

    /// No provider but still on a storage.
    pub fn orphaned(&self) -> bool {
        self.ems.is_none() && self.storage.is_some()
    }

    pub fn allocated_disk_storage(&self) -> u64 {
        self.disks.iter().map(|d| d.size).sum()
    }

    pub fn first_ipv4(&self) -> Option<&str> {
        self.ipaddresses
            .iter()
            .map(String::as_str)
            .find(|ip| !ip.contains(':'))
    }
}

/// Generates the estate and the CMDB. Same options, same output.
pub fn generate(opts: &GenOptions) -> Generated {
    let mut g = Gen::new(opts);
    g.topology();
    g.people();
    g.tag_catalogue();
    g.machines();
    let mut generated = cmdb::derive(g, opts.drift);
    requests::plant(&mut generated.estate, opts.requests);
    service_catalog::plant(&mut generated.estate);
    let catalog = service_catalog::servicenow_rows(&generated.estate);
    generated.cmdb.tables.extend(catalog);
    generated
}

/// Generator state: the RNG, id counters and everything drawn so far.
pub(crate) struct Gen {
    rng: ChaCha8Rng,
    /// A second stream for values added after the first (vCenter instance UUIDs, datacenter
    /// MoRefs): drawing them from `rng` would change every estate generated so far.
    aux: ChaCha8Rng,
    now: DateTime<Utc>,
    seed: u64,
    target_vms: usize,
    hosts_wanted: Option<usize>,
    next_id: u64,
    next_ipv4: u32,
    next_mac: u32,
    /// Next `vm-N` MoRef per provider. vCenters start close together so the same
    /// MoRef exists in two of them, as happens in real estates.
    next_moref: Vec<u64>,
    /// Cluster, host and datastore MoRefs drawn so far, by provider: a vCenter never gives
    /// two objects one MoRef (the CMDB keys hosts by MoRef and vCenter).
    morefs: HashSet<(usize, String)>,
    name_counters: std::collections::HashMap<String, u32>,
    pub(crate) providers: Vec<Provider>,
    pub(crate) datacenters: Vec<Datacenter>,
    pub(crate) clusters: Vec<Cluster>,
    pub(crate) hosts: Vec<Host>,
    pub(crate) storages: Vec<Storage>,
    pub(crate) users: Vec<User>,
    pub(crate) groups: Vec<Group>,
    pub(crate) tags: Vec<Tag>,
    pub(crate) vms: Vec<Vm>,
    pub(crate) templates: Vec<Vm>,
    /// Placement lookups, built once the topology exists (drawing a VM must not
    /// scan every host: that made 100,000 VMs take seconds).
    clusters_by_vendor: [Vec<usize>; 2],
    hosts_by_cluster: Vec<Vec<usize>>,
    storages_by_cluster: Vec<Vec<usize>>,
    /// Tag indexes by category and value, for drawing.
    env_tags: Vec<(&'static str, u32)>,
    dept_tags: Vec<u32>,
    site_tags: Vec<u32>,
    folder_tags: Vec<u32>,
}

impl Gen {
    fn new(opts: &GenOptions) -> Self {
        Gen {
            rng: ChaCha8Rng::seed_from_u64(opts.seed),
            aux: ChaCha8Rng::seed_from_u64(opts.seed ^ 0x1f5a_7c3e_9d2b_4a61),
            now: opts.now,
            seed: opts.seed,
            target_vms: opts.vms,
            hosts_wanted: opts.hosts,
            next_id: 0,
            next_ipv4: 0,
            next_mac: 0,
            next_moref: Vec::new(),
            morefs: HashSet::new(),
            name_counters: std::collections::HashMap::new(),
            providers: Vec::new(),
            datacenters: Vec::new(),
            clusters: Vec::new(),
            hosts: Vec::new(),
            storages: Vec::new(),
            users: Vec::new(),
            groups: Vec::new(),
            tags: Vec::new(),
            vms: Vec::new(),
            templates: Vec::new(),
            clusters_by_vendor: [Vec::new(), Vec::new()],
            hosts_by_cluster: Vec::new(),
            storages_by_cluster: Vec::new(),
            env_tags: Vec::new(),
            dept_tags: Vec::new(),
            site_tags: Vec::new(),
            folder_tags: Vec::new(),
        }
    }

    pub(crate) fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Ids share one increasing sequence with small gaps (deleted rows), so ids of
    /// different kinds never collide and are never dense.
    fn id(&mut self) -> u64 {
        self.next_id += self.rng.random_range(1..=3);
        ID_BASE + self.next_id
    }

    pub(crate) fn uuid(&mut self) -> String {
        let bytes: [u8; 16] = self.rng.random();
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .hyphenated()
            .to_string()
    }

    /// `prefix` and a number drawn from `range`, the next free one if `ems` already has it
    /// (one draw either way, so the values drawn after it do not change).
    fn moref(&mut self, ems: usize, prefix: &str, range: std::ops::Range<i32>) -> String {
        let mut n = self.rng.random_range(range);
        loop {
            let moref = format!("{prefix}{n}");
            if self.morefs.insert((ems, moref.clone())) {
                return moref;
            }
            n += 1;
        }
    }

    /// A UUID from the second stream (see `aux`).
    fn aux_uuid(&mut self) -> String {
        let bytes: [u8; 16] = self.aux.random();
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .hyphenated()
            .to_string()
    }

    /// A VMware BIOS UUID: vCenter-created VMs start with `42`.
    fn bios_uuid(&mut self) -> String {
        let mut bytes: [u8; 16] = self.rng.random();
        bytes[0] = 0x42;
        uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
    }

    /// A ServiceNow sys_id: 32 lowercase hex digits.
    pub(crate) fn sys_id(&mut self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes: [u8; 16] = self.rng.random();
        let mut out = String::with_capacity(32);
        for b in bytes {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }

    /// `now` minus a random number of seconds in `range`, as ManageIQ renders it.
    fn ago(&mut self, range: std::ops::Range<i64>) -> String {
        let secs = self.rng.random_range(range);
        iso(self.now - Duration::seconds(secs))
    }

    fn ipv4(&mut self) -> String {
        let i = self.next_ipv4;
        self.next_ipv4 += 1;
        format!(
            "10.{}.{}.{}",
            16 + i / (254 * 254),
            (i / 254) % 254 + 1,
            i % 254 + 1
        )
    }

    fn mac(&mut self, vendor: Vendor) -> String {
        let i = self.next_mac;
        self.next_mac += 1;
        let prefix = match vendor {
            Vendor::Vmware => "00:50:56",
            Vendor::Redhat => "56:6f:1a",
        };
        format!(
            "{prefix}:{:02x}:{:02x}:{:02x}",
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff
        )
    }

    fn topology(&mut self) {
        let n = self.target_vms;
        let vcenters = (2 + n / 40_000).min(6);
        let rhvms = (1 + n / 80_000).min(3);
        // About 25 VMs per hypervisor host, at least two hosts per cluster.
        let hosts_wanted = self.hosts_wanted.unwrap_or(n / 25).max(4);
        for p in 0..vcenters + rhvms {
            let vendor = if p < vcenters {
                Vendor::Vmware
            } else {
                Vendor::Redhat
            };
            let ordinal = if p < vcenters {
                p + 1
            } else {
                p - vcenters + 1
            };
            let site = p % words::SITES.len();
            let (site_code, ..) = words::SITES[site];
            let name = match vendor {
                Vendor::Vmware => format!("vc{ordinal:02}-{site_code}"),
                Vendor::Redhat => format!("rhvm{ordinal:02}-{site_code}"),
            };
            let id = self.id();
            let guid = self.uuid();
            let uid_ems = (vendor == Vendor::Vmware).then(|| self.aux_uuid());
            let created_on = self.ago(86_400 * 1500..86_400 * 2000);
            let updated_on = self.ago(0..3_600);
            let last_refresh_date = self.ago(0..900);
            let zone_id = ID_BASE + 1;
            self.providers.push(Provider {
                id,
                hostname: format!("{name}.corp.example.com"),
                ipaddress: format!("192.0.2.{}", 10 + p),
                name,
                vendor,
                guid,
                uid_ems,
                api_version: match vendor {
                    Vendor::Vmware => "6.7.3".into(),
                    Vendor::Redhat => "4.4.10.7".into(),
                },
                zone_id,
                created_on,
                updated_on,
                last_refresh_date,
            });
            self.next_moref
                .push(1000 + self.rng.random_range(0..40) as u64);
            let dcs = if n >= 2_000 { 2 } else { 1 };
            for d in 0..dcs {
                let dc_site = (site + d) % words::SITES.len();
                let (ems_ref, uid_ems) = match vendor {
                    Vendor::Vmware => {
                        // Distinct within the vCenter; other vCenters may reuse it.
                        let n = self.aux.random_range(2..400) + d * 500;
                        let moref = format!("datacenter-{n}");
                        (moref.clone(), moref)
                    }
                    Vendor::Redhat => {
                        let uid = self.aux_uuid();
                        (format!("/api/datacenters/{uid}"), uid)
                    }
                };
                let dc = Datacenter {
                    id: self.id(),
                    ems_ref,
                    uid_ems,
                    name: format!(
                        "{}-DC{}",
                        words::SITES[dc_site].0.to_uppercase(),
                        p * 2 + d + 1
                    ),
                    ems: p,
                    site: dc_site,
                };
                self.datacenters.push(dc);
                let dc_index = self.datacenters.len() - 1;
                let clusters = self.rng.random_range(2..=3);
                for c in 0..clusters {
                    self.cluster(p, dc_index, c);
                }
            }
        }
        // Spread the hosts over the clusters, weighted towards VMware as the VMs are.
        let clusters = self.clusters.len();
        let per_cluster = hosts_wanted.div_ceil(clusters).max(2);
        for c in 0..clusters {
            for h in 0..per_cluster {
                self.host(c, h);
            }
            for s in 0..self.rng.random_range(2..=3) {
                self.storage(c, s);
            }
        }
        self.hosts_by_cluster = vec![Vec::new(); clusters];
        for (h, host) in self.hosts.iter().enumerate() {
            self.hosts_by_cluster[host.cluster].push(h);
        }
        self.storages_by_cluster = vec![Vec::new(); clusters];
        for (i, storage) in self.storages.iter().enumerate() {
            self.storages_by_cluster[storage.cluster].push(i);
        }
        for (c, cluster) in self.clusters.iter().enumerate() {
            let vendor = self.providers[cluster.ems].vendor;
            self.clusters_by_vendor[vendor_slot(vendor)].push(c);
        }
    }

    fn cluster(&mut self, ems: usize, datacenter: usize, ordinal: usize) {
        let vendor = self.providers[ems].vendor;
        let id = self.id();
        let uid = self.uuid();
        let (uid_ems, ems_ref) = match vendor {
            Vendor::Vmware => {
                let moref = self.moref(ems, "domain-c", 7..9000);
                (moref.clone(), moref)
            }
            Vendor::Redhat => (uid.clone(), format!("/api/clusters/{uid}")),
        };
        let purpose = ["Prod", "NonProd", "Infra"][ordinal % 3];
        let created_on = self.ago(86_400 * 1000..86_400 * 1500);
        self.clusters.push(Cluster {
            id,
            name: format!("{}-{}", self.datacenters[datacenter].name, purpose),
            ems,
            datacenter,
            uid_ems,
            ems_ref,
            created_on,
        });
    }

    fn host(&mut self, cluster: usize, ordinal: usize) {
        let ems = self.clusters[cluster].ems;
        let vendor = self.providers[ems].vendor;
        let site = words::SITES[self.datacenters[self.clusters[cluster].datacenter].site].0;
        let id = self.id();
        let name = match vendor {
            Vendor::Vmware => format!(
                "esx{:02}{:02}.{site}.corp.example.com",
                cluster + 1,
                ordinal + 1
            ),
            Vendor::Redhat => format!(
                "rhvh{:02}{:02}.{site}.corp.example.com",
                cluster + 1,
                ordinal + 1
            ),
        };
        let uid = self.uuid();
        // ManageIQ's VMware parser stores a host's name as its `uid_ems`, its MoRef as `ems_ref`.
        let (uid_ems, ems_ref) = match vendor {
            Vendor::Vmware => (name.clone(), self.moref(ems, "host-", 10..99_999)),
            Vendor::Redhat => (uid.clone(), format!("/api/hosts/{uid}")),
        };
        let (product, version, build) = match vendor {
            Vendor::Vmware => *[("ESXi", "6.7.0", "17700523"), ("ESXi", "7.0.3", "21930508")]
                .choose(&mut self.rng)
                .expect("non-empty"),
            Vendor::Redhat => ("rhel-h", "4.4", "4.4.10"),
        };
        let guid = self.uuid();
        let created_on = self.ago(86_400 * 400..86_400 * 1400);
        let updated_on = self.ago(0..3_600);
        let memory_mb = *[262_144u64, 524_288, 786_432]
            .choose(&mut self.rng)
            .expect("non-empty");
        let ipaddress = format!(
            "172.{}.{}.{}",
            16 + cluster / 250,
            cluster % 250,
            10 + ordinal
        );
        self.hosts.push(Host {
            id,
            name,
            ipaddress,
            ems,
            cluster,
            uid_ems,
            ems_ref,
            guid,
            vmm_product: product,
            vmm_version: version,
            vmm_buildnumber: build,
            cpu_sockets: 2,
            cpu_cores_per_socket: *[16u32, 20, 24].choose(&mut self.rng).expect("non-empty"),
            memory_mb,
            created_on,
            updated_on,
            sys_id: None,
        });
    }

    fn storage(&mut self, cluster: usize, ordinal: usize) {
        let vendor = self.providers[self.clusters[cluster].ems].vendor;
        let id = self.id();
        let total_space = self.rng.random_range(8u64..64) * 1024 * GIB;
        let free_space = total_space / 100 * self.rng.random_range(10..60);
        let uid = self.uuid();
        let (name, store_type, location, ems_ref) = match vendor {
            Vendor::Vmware => (
                format!(
                    "ds-{}-{:02}",
                    self.clusters[cluster].name.to_lowercase(),
                    ordinal + 1
                ),
                "VMFS",
                format!("ds:///vmfs/volumes/{}/", &uid[..23]),
                self.moref(self.clusters[cluster].ems, "datastore-", 10..99_999),
            ),
            Vendor::Redhat => (
                format!(
                    "sd-{}-{:02}",
                    self.clusters[cluster].name.to_lowercase(),
                    ordinal + 1
                ),
                "NFS",
                format!(
                    "nfs{:02}.corp.example.com:/exports/rhv{:02}",
                    cluster + 1,
                    ordinal + 1
                ),
                format!("/api/storagedomains/{uid}"),
            ),
        };
        let created_on = self.ago(86_400 * 400..86_400 * 1400);
        self.storages.push(Storage {
            id,
            name,
            store_type,
            total_space,
            free_space,
            location,
            ems_ref,
            cluster,
            created_on,
        });
    }

    fn people(&mut self) {
        let super_admin = Group {
            id: self.id(),
            description: "EvmGroup-super_administrator".into(),
            group_type: "system",
            sequence: 1,
        };
        self.groups.push(super_admin);
        for (i, dept) in words::DEPARTMENTS.iter().enumerate() {
            let id = self.id();
            self.groups.push(Group {
                id,
                description: format!("cf-{dept}-users"),
                group_type: "user",
                sequence: 20 + i as u32,
            });
        }
        let created_on = self.ago(86_400 * 1500..86_400 * 2000);
        let admin_id = self.id();
        self.users.push(User {
            id: admin_id,
            userid: "admin".into(),
            first_name: "Administrator".into(),
            last_name: String::new(),
            name: "Administrator".into(),
            email: "cloudforms-admin@example.com".into(),
            group: 0,
            created_on,
            sys_id: None,
        });
        let owners = (self.target_vms / 40).clamp(10, 2_000);
        let mut seen = HashSet::new();
        for _ in 0..owners {
            let first = *words::FIRST_NAMES.choose(&mut self.rng).expect("non-empty");
            let last = *words::LAST_NAMES.choose(&mut self.rng).expect("non-empty");
            let base = format!("{}{}", first[..1].to_lowercase(), last.to_lowercase());
            let mut userid = base.clone();
            let mut n = 1;
            while !seen.insert(userid.clone()) {
                n += 1;
                userid = format!("{base}{n}");
            }
            let email = if n == 1 {
                format!(
                    "{}.{}@example.com",
                    first.to_lowercase(),
                    last.to_lowercase()
                )
            } else {
                format!(
                    "{}.{}{n}@example.com",
                    first.to_lowercase(),
                    last.to_lowercase()
                )
            };
            let id = self.id();
            let group = self.rng.random_range(1..self.groups.len());
            let created_on = self.ago(86_400 * 30..86_400 * 1500);
            self.users.push(User {
                id,
                userid,
                first_name: first.into(),
                last_name: last.into(),
                name: format!("{first} {last}"),
                email,
                group,
                created_on,
                sys_id: None,
            });
        }
    }

    fn tag_catalogue(&mut self) {
        for env in ["prod", "test", "dev"] {
            let idx = self.add_tag(format!("/managed/environment/{env}"));
            self.env_tags.push((env, idx));
        }
        for dept in words::DEPARTMENTS {
            let idx = self.add_tag(format!("/managed/department/{dept}"));
            self.dept_tags.push(idx);
        }
        for (site, ..) in words::SITES {
            let idx = self.add_tag(format!("/managed/location/{site}"));
            self.site_tags.push(idx);
        }
        // Tags outside `/managed`: only `attributes=tags` shows them.
        for folder in ["Production", "Test", "Development"] {
            let idx = self.add_tag(format!("/folder_path_blue/datacenters:vm:{folder}"));
            self.folder_tags.push(idx);
        }
    }

    fn add_tag(&mut self, name: String) -> u32 {
        let id = self.id();
        self.tags.push(Tag { id, name });
        (self.tags.len() - 1) as u32
    }

    fn machines(&mut self) {
        let templates = (self.target_vms * 3 / 100).max(2);
        let total = self.target_vms + templates;
        // Templates are interleaved with VMs in the id sequence, as on a real appliance.
        let template_slots: HashSet<usize> =
            rand::seq::index::sample(&mut self.rng, total, templates)
                .into_iter()
                .collect();
        for i in 0..total {
            let vm = self.machine(template_slots.contains(&i));
            if vm.template {
                self.templates.push(vm);
            } else {
                self.vms.push(vm);
            }
        }
    }

    /// Draws one live VM (or template) with everything CloudForms would know of it.
    /// Also used for "phantom" VMs whose CIs outlived them.
    pub(crate) fn machine(&mut self, template: bool) -> Vm {
        let vendor = if self.rng.random_bool(0.75) {
            Vendor::Vmware
        } else {
            Vendor::Redhat
        };
        let cluster = *self.clusters_by_vendor[vendor_slot(vendor)]
            .choose(&mut self.rng)
            .expect("every vendor has clusters");
        let ems = self.clusters[cluster].ems;
        let datacenter = self.clusters[cluster].datacenter;
        let host = *self.hosts_by_cluster[cluster]
            .choose(&mut self.rng)
            .expect("clusters have hosts");
        let storage = *self.storages_by_cluster[cluster]
            .choose(&mut self.rng)
            .expect("clusters have storages");

        let env_roll = self.rng.random_range(0..100);
        let env = match env_roll {
            0..50 => Some(0),
            50..75 => Some(1),
            75..95 => Some(2),
            _ => None,
        };
        let os = pick_os(&mut self.rng, vendor);
        let windows = os.platform == "windows";
        let app = *words::APPS.choose(&mut self.rng).expect("non-empty");
        let env_code = match env {
            Some(0) => "prd",
            Some(1) => "tst",
            Some(2) => "dev",
            _ => "lab",
        };
        let name = self.unique_name(env_code, app, windows, template);

        let id = self.id();
        let guid = self.uuid();
        let (uid_ems, ems_ref, bios, location) = match vendor {
            Vendor::Vmware => {
                let uid = self.bios_uuid();
                self.next_moref[ems] += self.rng.random_range(1..=4);
                let moref = format!("vm-{}", self.next_moref[ems]);
                let location = format!("{name}/{name}.vmx");
                (uid.clone(), moref, Some(uid), location)
            }
            Vendor::Redhat => {
                let uid = self.uuid();
                let ems_ref = format!("/api/vms/{uid}");
                let location = format!("{uid}.ovf");
                (uid, ems_ref, None, location)
            }
        };

        let power_state = if template {
            PowerState::Never
        } else {
            match self.rng.random_range(0..100) {
                0..80 => PowerState::On,
                80..97 => PowerState::Off,
                _ => PowerState::Suspended,
            }
        };

        let cpu_sockets = *[1u32, 1, 2, 2, 4].choose(&mut self.rng).expect("non-empty");
        let cpu_cores_per_socket = *[1u32, 1, 2, 4].choose(&mut self.rng).expect("non-empty");
        let memory_mb = *[1024u64, 2048, 4096, 4096, 8192, 8192, 16384, 32768, 65536]
            .choose(&mut self.rng)
            .expect("non-empty");
        let hardware_id = self.id();
        let annotation = if self.rng.random_bool(0.3) {
            format!("Owner: {app} team\nCreated by CloudForms")
        } else {
            String::new()
        };
        let hardware = Hardware {
            id: hardware_id,
            guest_os: os.guest_os,
            guest_os_full_name: os.full_name,
            os_image_name: os.image_name,
            platform: os.platform,
            bios,
            cpu_sockets,
            cpu_cores_per_socket,
            memory_mb,
            annotation,
            virtual_hw_version: match vendor {
                Vendor::Vmware => Some(
                    *["13", "14", "15", "17"]
                        .choose(&mut self.rng)
                        .expect("non-empty"),
                ),
                Vendor::Redhat => None,
            },
        };

        let disks = self.disks(vendor, &name, storage);
        let thin_used: u64 = disks.iter().map(|d| d.size_on_disk).sum();
        let used_disk_storage =
            (vendor == Vendor::Vmware || self.rng.random_bool(0.7)).then_some(thin_used);

        let (ipaddresses, hostnames, mac_addresses) =
            self.network(vendor, &name, windows, power_state);

        let owner = (!template && self.rng.random_bool(0.9))
            .then(|| self.rng.random_range(1..self.users.len()));
        let group = owner.map_or(0, |o| self.users[o].group);

        let mut tags = Vec::new();
        if let Some(e) = env {
            tags.push(self.env_tags[e].1);
        }
        if self.rng.random_bool(0.8) {
            tags.push(*self.dept_tags.choose(&mut self.rng).expect("non-empty"));
        }
        tags.push(self.site_tags[self.datacenters[datacenter].site]);
        if vendor == Vendor::Vmware && self.rng.random_bool(0.3) {
            tags.push(self.folder_tags[env.unwrap_or(0).min(2)]);
        }

        let mut custom_attributes = Vec::new();
        if vendor == Vendor::Vmware && self.rng.random_bool(0.3) {
            let value = *["gold", "silver", "bronze", "none"]
                .choose(&mut self.rng)
                .expect("non-empty");
            let id = self.id();
            custom_attributes.push(CustomAttribute {
                id,
                name: "Backup Policy".into(),
                value: value.into(),
                section: "custom_field",
                source: "VC",
            });
        }

        let created_on = self.ago(86_400 * 30..86_400 * 2000);
        let updated_on = self.ago(0..86_400 * 2);
        let boot_time = (power_state == PowerState::On).then(|| self.ago(3_600..86_400 * 200));
        let state_changed_on = self.ago(3_600..86_400 * 20);
        let previous_state = match (self.rng.random_bool(0.7), power_state) {
            (false, _) | (_, PowerState::Never) => None,
            (true, PowerState::On) => Some(PowerState::Off.raw(vendor)),
            (true, _) => Some(PowerState::On.raw(vendor)),
        };
        let last_perf_capture_on = (power_state == PowerState::On && self.rng.random_bool(0.6))
            .then(|| self.ago(0..3_600));
        let description = self
            .rng
            .random_bool(0.25)
            .then(|| format!("{app} server ({env_code})"));

        let (retired, retirement_state, retires_on) = if !template && self.rng.random_bool(0.05) {
            // Retirement scheduled in the future.
            let days = self.rng.random_range(10..400);
            (None, None, Some(iso_date(self.now + Duration::days(days))))
        } else {
            (None, None, None)
        };

        let folder = match vendor {
            Vendor::Vmware => Some(match env {
                Some(0) => "Production",
                Some(1) => "Test",
                Some(2) => "Development",
                _ => "Discovered virtual machine",
            }),
            Vendor::Redhat => None,
        };
        let resource_pool = match vendor {
            Vendor::Vmware => "Resources".into(),
            Vendor::Redhat => format!("Default for Cluster {}", self.clusters[cluster].name),
        };

        Vm {
            id,
            name,
            description,
            vendor,
            template,
            location,
            ems: Some(ems),
            host: (!template || self.rng.random_bool(0.5)).then_some(host),
            cluster: Some(cluster),
            storage: Some(storage),
            datacenter: Some(datacenter),
            guid,
            uid_ems,
            ems_ref,
            created_on,
            updated_on,
            boot_time,
            state_changed_on,
            previous_state,
            last_perf_capture_on,
            power_state,
            hardware,
            disks,
            used_disk_storage,
            ipaddresses,
            hostnames,
            mac_addresses,
            owner,
            group,
            tags,
            custom_attributes,
            retired,
            retirement_state,
            retires_on,
            folder,
            resource_pool,
            snapshots: self.rng.random_range(0..3),
            cpu_hot_add_enabled: vendor == Vendor::Vmware && self.rng.random_bool(0.5),
            memory_hot_add_enabled: vendor == Vendor::Vmware && self.rng.random_bool(0.5),
        }
    }

    /// `prd-web-014` for Linux, `WPRDWEB014` for Windows, `tpl-...` for templates;
    /// unique across the estate (deliberate duplicates are made later).
    fn unique_name(&mut self, env: &str, app: &str, windows: bool, template: bool) -> String {
        let key = if template {
            format!("tpl-{app}")
        } else if windows {
            format!("W{}{}", env.to_uppercase(), app.to_uppercase())
        } else {
            format!("{env}-{app}")
        };
        let counter = self.name_counters.entry(key.clone()).or_insert(0);
        *counter += 1;
        let n = *counter;
        if windows && !template {
            format!("{key}{n:03}")
        } else {
            format!("{key}-{n:03}")
        }
    }

    fn disks(&mut self, vendor: Vendor, name: &str, storage: usize) -> Vec<Disk> {
        let count = *[1usize, 1, 2, 2, 3, 4]
            .choose(&mut self.rng)
            .expect("non-empty");
        let mut disks = Vec::with_capacity(count);
        for d in 0..count {
            let gib = *[16u64, 20, 40, 50, 60, 80, 100, 200, 250, 500, 1024]
                .choose(&mut self.rng)
                .expect("non-empty");
            // A few disks are not a whole number of GiB (resized by hand): their
            // size rounds down to whole GB in the CMDB (never at exactly .5).
            let size = if self.rng.random_bool(0.03) {
                gib * GIB + self.rng.random_range(GIB / 10..GIB * 2 / 5)
            } else {
                gib * GIB
            };
            let size_on_disk = size / 100 * self.rng.random_range(15..95);
            let id = self.id();
            let (device_name, location, filename, controller_type) = match vendor {
                Vendor::Vmware => (
                    format!("Hard disk {}", d + 1),
                    format!("0:{d}"),
                    format!(
                        "[{}] {name}/{name}{}.vmdk",
                        self.storages[storage].name,
                        if d == 0 {
                            String::new()
                        } else {
                            format!("_{d}")
                        }
                    ),
                    "VirtualLsiLogicSASController",
                ),
                Vendor::Redhat => {
                    let uid = self.uuid();
                    (
                        format!("{name}_Disk{}", d + 1),
                        d.to_string(),
                        uid,
                        "virtio_scsi",
                    )
                }
            };
            disks.push(Disk {
                id,
                device_name,
                location,
                filename,
                controller_type,
                size,
                size_on_disk,
            });
        }
        disks
    }

    /// IP addresses (IPv4 first, then IPv6), guest hostnames and MACs. VMs without
    /// running guest tools report no addresses; a few report only IPv6.
    fn network(
        &mut self,
        vendor: Vendor,
        name: &str,
        windows: bool,
        power: PowerState,
    ) -> (Vec<String>, Vec<String>, Vec<String>) {
        let nics = if self.rng.random_bool(0.1) { 2 } else { 1 };
        let macs: Vec<String> = (0..nics).map(|_| self.mac(vendor)).collect();
        let reports = match power {
            PowerState::Never => false,
            PowerState::On => self.rng.random_bool(0.97),
            PowerState::Suspended => true,
            PowerState::Off => self.rng.random_bool(0.5),
        };
        if !reports {
            return (Vec::new(), Vec::new(), macs);
        }
        let mut ips = Vec::new();
        let ipv6_only = self.rng.random_bool(0.01);
        if !ipv6_only {
            for _ in 0..nics {
                ips.push(self.ipv4());
            }
        }
        for mac in &macs {
            let m: Vec<&str> = mac.split(':').collect();
            ips.push(format!("fe80::250:56ff:fe{}:{}{}", m[3], m[4], m[5]));
        }
        if ipv6_only || self.rng.random_bool(0.2) {
            let n = self.next_ipv4;
            ips.push(format!("2001:db8:{:x}::{:x}", n >> 16, n & 0xffff));
            self.next_ipv4 += 1;
        }
        let domain = if windows {
            "ad.example.com"
        } else {
            "corp.example.com"
        };
        let hostnames = vec![format!("{}.{domain}", name.to_lowercase())];
        (ips, hostnames, macs)
    }

    /// Folders are drawn last (their ids too), so adding them changed no other value.
    fn folders(&mut self) -> Vec<Folder> {
        let mut folders = Vec::new();
        for p in 0..self.providers.len() {
            let vmware = self.providers[p].vendor == Vendor::Vmware;
            let id = self.id();
            let root = if vmware { "group-d1" } else { "root_dc" };
            folders.push(Folder {
                id,
                name: "Datacenters".into(),
                ems: p,
                ems_ref: root.into(),
                uid_ems: root.into(),
                datacenter: None,
                hidden: true,
            });
            for d in 0..self.datacenters.len() {
                let dc = &self.datacenters[d];
                if dc.ems != p {
                    continue;
                }
                let (name, ems_ref, uid_ems) =
                    (dc.name.clone(), dc.ems_ref.clone(), dc.uid_ems.clone());
                let id = self.id();
                folders.push(Folder {
                    id,
                    name,
                    ems: p,
                    ems_ref: ems_ref.clone(),
                    uid_ems,
                    datacenter: Some(d),
                    hidden: false,
                });
                // vCenter numbers a datacenter's folders right after it (datacenter-2: group-v3, group-h4).
                let Some(n) = ems_ref
                    .strip_prefix("datacenter-")
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    continue;
                };
                for (name, moref) in [
                    ("vm", format!("group-v{}", n + 1)),
                    ("host", format!("group-h{}", n + 2)),
                ] {
                    let id = self.id();
                    folders.push(Folder {
                        id,
                        name: name.into(),
                        ems: p,
                        ems_ref: moref.clone(),
                        uid_ems: moref,
                        datacenter: None,
                        hidden: true,
                    });
                }
            }
        }
        folders
    }

    fn into_estate(mut self, expected: Expected) -> Estate {
        let folders = self.folders();
        Estate {
            seed: self.seed,
            now: self.now,
            providers: self.providers,
            datacenters: self.datacenters,
            folders: folders.into(),
            clusters: self.clusters.into(),
            hosts: self.hosts.into(),
            storages: self.storages.into(),
            users: self.users.into(),
            groups: self.groups,
            tags: self.tags.into(),
            vms: self.vms.into(),
            templates: self.templates.into(),
            requests: Vec::new(),
            service_catalogs: Vec::new(),
            service_templates: Vec::new(),
            next_id: ID_BASE + self.next_id,
            last_moref: self.next_moref,
            expected: expected.into(),
        }
    }
}

fn vendor_slot(vendor: Vendor) -> usize {
    match vendor {
        Vendor::Vmware => 0,
        Vendor::Redhat => 1,
    }
}

fn pick_os(rng: &mut ChaCha8Rng, vendor: Vendor) -> &'static GuestOs {
    let table = words::guest_os_table(vendor);
    let total: u32 = table.iter().map(|o| o.weight).sum();
    let mut roll = rng.random_range(0..total);
    for os in table {
        if roll < os.weight {
            return os;
        }
        roll -= os.weight;
    }
    &table[0]
}

/// ManageIQ's timestamp format: ISO 8601 UTC with `Z`, whole seconds.
pub fn iso(t: DateTime<Utc>) -> String {
    // By hand: chrono's strftime interpretation dominated generating 100,000 VMs.
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// ManageIQ renders `retires_on` (a date) as midnight UTC.
fn iso_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT00:00:00Z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn opts(vms: usize, seed: u64) -> GenOptions {
        GenOptions {
            vms,
            hosts: None,
            drift: 0.05,
            seed,
            now: Utc
                .with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
                .single()
                .expect("valid date"),
            requests: 12,
        }
    }

    #[test]
    fn same_seed_gives_identical_output() {
        let a = serde_json::to_vec(&generate(&opts(500, 9))).expect("serialize");
        let b = serde_json::to_vec(&generate(&opts(500, 9))).expect("serialize");
        let c = serde_json::to_vec(&generate(&opts(500, 10))).expect("serialize");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn estate_has_the_requested_vms_and_separate_templates() {
        let g = generate(&opts(1_000, 3));
        assert_eq!(g.estate.vms.len(), 1_000);
        assert!(g.estate.vms.iter().all(|v| !v.template));
        assert!(!g.estate.templates.is_empty());
        assert!(g.estate.templates.iter().all(|v| v.template));
        let ids: Vec<u64> = g.estate.vms.iter().map(|v| v.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "vms are ordered by id");
        assert!(g.estate.vms.iter().any(|v| v.vendor == Vendor::Vmware));
        assert!(g.estate.vms.iter().any(|v| v.vendor == Vendor::Redhat));
        assert!(g.estate.vms.iter().any(Vm::archived));
        assert!(g.estate.vms.iter().any(Vm::orphaned));
        assert!(g.estate.vms.iter().any(|v| v.retired == Some(true)));
    }

    #[test]
    fn tiny_estates_generate() {
        for vms in [0, 1, 3, 19] {
            let g = generate(&opts(vms, 1));
            assert_eq!(g.estate.vms.len(), vms);
            assert!(g.estate.templates.len() >= 2);
            assert!(g.estate.expected.manual_cis.len() >= 3);
        }
    }

    #[test]
    fn iso_matches_chrono() {
        let t = Utc
            .with_ymd_and_hms(2024, 2, 9, 3, 4, 5)
            .single()
            .expect("valid date");
        assert_eq!(iso(t), t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    }

    #[test]
    fn addresses_list_ipv4_before_ipv6() {
        let g = generate(&opts(1_000, 4));
        for vm in &g.estate.vms {
            let first_v6 = vm.ipaddresses.iter().position(|ip| ip.contains(':'));
            let last_v4 = vm.ipaddresses.iter().rposition(|ip| !ip.contains(':'));
            if let (Some(v6), Some(v4)) = (first_v6, last_v4) {
                assert!(v4 < v6, "{:?}", vm.ipaddresses);
            }
        }
    }

    #[test]
    fn morefs_are_unique_within_a_vcenter() {
        let g = generate(&opts(20_000, 6));
        let e = &g.estate;
        let mut seen = HashSet::new();
        let clusters = e.clusters.iter().map(|c| (c.ems, &c.ems_ref));
        let hosts = e.hosts.iter().map(|h| (h.ems, &h.ems_ref));
        let storages = e
            .storages
            .iter()
            .map(|s| (e.clusters[s.cluster].ems, &s.ems_ref));
        let folders = e.folders.iter().map(|f| (f.ems, &f.ems_ref));
        for (ems, moref) in clusters.chain(hosts).chain(storages).chain(folders) {
            assert!(seen.insert((ems, moref)), "{moref} twice in provider {ems}");
        }
        assert!(e.hosts.len() > 500);
    }

    #[test]
    fn vmware_vms_carry_moref_and_bios_uuid() {
        let g = generate(&opts(300, 5));
        let vm = g
            .estate
            .vms
            .iter()
            .find(|v| v.vendor == Vendor::Vmware)
            .expect("a VMware VM");
        assert!(vm.ems_ref.starts_with("vm-"), "{}", vm.ems_ref);
        assert!(vm.uid_ems.starts_with("42"), "{}", vm.uid_ems);
        assert_eq!(vm.hardware.bios.as_deref(), Some(vm.uid_ems.as_str()));
    }
}
