//! Provisioning requests (`/api/requests`, `/api/provision_requests`, `/api/service_requests`)
//! and their tasks, with ManageIQ's state machine: a request waits for approval, is approved
//! (or denied), its tasks go pending -> active -> finished, and the request rolls their state,
//! status and message up as `MiqRequest#update_request_status` does (integrations.md A.2).
//!
//! The generator plants a few requests in every stage with every outcome (`plant`, drawn
//! from a stream of its own so no other generated value changes); [`Estate::advance_requests`]
//! and [`Estate::add_request`] move them on. A task that finishes `Ok` or `Warn` created a
//! VM: it is added to [`Estate::vms`] with the request's name, template and requester.
//!
//! Values from ManageIQ's source (ManageIQ/manageiq at ef8c0702): request messages
//! "VM Provisioning - Request Created" / "Service_Template_Provisioning - Request Created"
//! (`MiqRequest` default `"#{TASK_DESCRIPTION} - Request Created"`); task messages
//! "Automation Starting" (pending, `miq_request_task.rb`), `Preparing to Clone [tpl] to Vm
//! [name]` (`MiqProvision::StateMachine#prepare_provision`), "VM Provisioning completed" and
//! "Service_Template_Provisioning completed" (`after_ae_delivery`); descriptions `Provision from
//! [tpl] to [name]` (`MiqProvision.get_description`) and `Provisioning Service [x] from [x]`
//! (integrations.md A.1); the roll-up messages "Pending = 2", "Request complete" and "Request
//! completed with errors". The `Warn`, `Error` and `Timeout` task messages are the simulator's
//! own (a real one is whatever the failing automate step wrote).

use super::{iso, Estate, PowerState, Vendor, Vm, ID_BASE};
use chrono::{DateTime, Duration, Utc};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// How a request ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Fate {
    /// Finished, status `Ok`: its VM exists.
    Ok,
    /// Finished, status `Warn`: its VM exists but post-provisioning reported a problem.
    Warn,
    /// Finished, status `Error`: no VM.
    Error,
    /// Finished, status `Timeout`: no VM.
    Timeout,
    /// Denied at approval: `approval_state` denied, finished, status `Denied`, no task.
    Denied,
}

impl Fate {
    pub const ALL: [Fate; 5] = [
        Fate::Ok,
        Fate::Warn,
        Fate::Error,
        Fate::Timeout,
        Fate::Denied,
    ];

    /// The request `status` it ends with.
    pub fn as_str(self) -> &'static str {
        match self {
            Fate::Ok => "Ok",
            Fate::Warn => "Warn",
            Fate::Error => "Error",
            Fate::Timeout => "Timeout",
            Fate::Denied => "Denied",
        }
    }

    /// `Ok`, `Warn`, ... (case-insensitive).
    pub fn parse(s: &str) -> Option<Fate> {
        Fate::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
    }

    fn creates_vm(self) -> bool {
        matches!(self, Fate::Ok | Fate::Warn)
    }
}

/// Which collection a request belongs to besides `/api/requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// `MiqProvisionRequest`, request_type `template`, at `/api/provision_requests`.
    Provision,
    /// `ServiceTemplateProvisionRequest`, request_type `clone_to_service`, at
    /// `/api/service_requests`: a catalog order whose service task has one VM task under it.
    Service,
}

impl RequestKind {
    pub fn type_name(self) -> &'static str {
        match self {
            RequestKind::Provision => "MiqProvisionRequest",
            RequestKind::Service => "ServiceTemplateProvisionRequest",
        }
    }

    pub fn request_type(self) -> &'static str {
        match self {
            RequestKind::Provision => "template",
            RequestKind::Service => "clone_to_service",
        }
    }

    /// The collection of this type (`provision_requests`, `service_requests`).
    pub fn collection(self) -> &'static str {
        match self {
            RequestKind::Provision => "provision_requests",
            RequestKind::Service => "service_requests",
        }
    }

    /// `TASK_DESCRIPTION` of the request class.
    pub fn task_description(self) -> &'static str {
        match self {
            RequestKind::Provision => "VM Provisioning",
            RequestKind::Service => "Service_Template_Provisioning",
        }
    }
}

/// Where a request is in the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// `approval_state` pending_approval, `request_state` pending, no task yet.
    PendingApproval,
    /// Approved; tasks pending.
    Pending,
    /// Tasks active.
    Active,
    /// Done (or denied).
    Finished,
}

/// One `MiqRequest`. Indexes point into the [`Estate`]'s vectors.
#[derive(Debug, Clone, Serialize)]
pub struct MiqRequest {
    pub id: u64,
    pub kind: RequestKind,
    pub fate: Fate,
    pub stage: Stage,
    /// Index into [`Estate::users`]: the requester, who has a `sys_user` row.
    pub requester: usize,
    /// Index into [`Estate::templates`].
    pub template: usize,
    /// The VM the request asks for (`options.vm_name`).
    pub vm_name: String,
    /// The catalog item ordered (service requests).
    pub service_template_id: Option<u64>,
    pub approval_state: &'static str,
    pub request_state: &'static str,
    pub status: &'static str,
    pub message: String,
    pub created_on: String,
    pub updated_on: String,
    pub fulfilled_on: Option<String>,
    /// Ordered by id; empty until approved.
    pub tasks: Vec<RequestTask>,
    /// The dialog values of a catalog order (`options.dialog`), keys `dialog_*`; `None`: the
    /// VM name alone, as `dialog_option_0_vm_target_name` (a service request) or nothing.
    pub dialog: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One `MiqRequestTask`: the VM task (`MiqProvision`) or a service request's top task
/// (`ServiceTemplateProvisionTask`, whose destination is the Service).
#[derive(Debug, Clone, Serialize)]
pub struct RequestTask {
    pub id: u64,
    /// `ServiceTemplateProvisionTask` rather than a VM task.
    pub service: bool,
    /// `miq_request_task_id`: the service task a VM task belongs to.
    pub parent: Option<u64>,
    pub state: &'static str,
    pub status: &'static str,
    pub message: String,
    /// The provisioning state machine's current step (VM tasks).
    pub phase: Option<&'static str>,
    pub created_on: String,
    pub updated_on: String,
    /// The VM (VM task) or Service (service task) id.
    pub destination: Option<u64>,
}

/// What [`Estate::add_request`] needs.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub vm_name: String,
    pub fate: Fate,
    /// A CloudForms `userid`; `None`: the first user who has a `sys_user` row.
    pub userid: Option<String>,
    pub kind: RequestKind,
    /// A `/api/templates` id; `None`: the first template with a provider.
    pub template_id: Option<u64>,
}

/// What [`Estate::advance_requests`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Advanced {
    /// The `updated_on` every moved request got.
    pub updated_on: String,
    /// Ids of the requests that moved, in id order.
    pub requests: Vec<u64>,
    /// Ids of the VMs their finished tasks created (now at `/api/vms`).
    pub vms: Vec<u64>,
}

/// The requests a default estate starts with: every stage, every status, both kinds (a
/// finished Ok one of each).
const SPREAD: [(Stage, Fate, RequestKind); 12] = [
    (Stage::Finished, Fate::Ok, RequestKind::Provision),
    (Stage::Finished, Fate::Ok, RequestKind::Service),
    (Stage::Finished, Fate::Warn, RequestKind::Service),
    (Stage::Finished, Fate::Error, RequestKind::Provision),
    (Stage::Finished, Fate::Timeout, RequestKind::Provision),
    (Stage::Finished, Fate::Denied, RequestKind::Service),
    (Stage::PendingApproval, Fate::Ok, RequestKind::Provision),
    (Stage::PendingApproval, Fate::Denied, RequestKind::Provision),
    (Stage::Pending, Fate::Ok, RequestKind::Service),
    (Stage::Pending, Fate::Error, RequestKind::Provision),
    (Stage::Active, Fate::Ok, RequestKind::Provision),
    (Stage::Active, Fate::Warn, RequestKind::Service),
];

/// The simulator's failure messages (a real one is what the failing automate step wrote).
const ERRORS: [&str; 3] = [
    "Error: Clone of the template failed: insufficient free space on the datastore",
    "Error: No host in the cluster has enough free memory for the VM",
    "Error: IP address allocation failed: the network has no free address",
];
const TIMEOUT: &str = "Timeout: the VM clone did not complete within 3600 seconds";
const WARNING: &str = "VM Provisioning completed with warnings: guest customization did not finish";

impl Estate {
    /// Takes the next free id of the estate's sequence (ids above every generated one).
    pub(super) fn take_id(&mut self) -> u64 {
        self.next_id += 2;
        self.next_id
    }

    /// Moves every unfinished request one step: awaiting approval -> approved with pending
    /// tasks (or, fated `Denied`, denied and finished); pending -> active; active -> finished
    /// with its fate, creating the VM of an `Ok` or `Warn` task. Every request that moves
    /// gets `updated_on` = `stamp` (ISO 8601, `...Z`).
    pub fn advance_requests(&mut self, stamp: &str) -> Advanced {
        let mut done = Advanced {
            updated_on: stamp.to_owned(),
            ..Advanced::default()
        };
        for r in 0..self.requests.len() {
            if self.requests[r].stage == Stage::Finished {
                continue;
            }
            if let Some(vm) = self.step(r, stamp, None) {
                done.vms.push(vm);
            }
            done.requests.push(self.requests[r].id);
        }
        done
    }

    /// Queues a new request awaiting approval, as an order or `POST /api/provision_requests`
    /// leaves it (created and updated at `stamp`). Returns its id.
    pub fn add_request(&mut self, new: NewRequest, stamp: &str) -> Result<u64, String> {
        let name = new.vm_name.trim();
        if name.is_empty() {
            return Err("`vm_name` must not be empty".into());
        }
        let requester = match &new.userid {
            Some(u) => self
                .users
                .iter()
                .position(|x| x.userid == *u)
                .ok_or_else(|| format!("no user with userid `{u}`"))?,
            None => requesters(self)
                .first()
                .copied()
                .ok_or("the estate has no user with a sys_user row")?,
        };
        let template = match new.template_id {
            Some(id) => self
                .templates
                .iter()
                .position(|t| t.id == id && t.ems.is_some())
                .ok_or_else(|| format!("no template with id {id} and a provider"))?,
            None => self
                .templates
                .iter()
                .position(|t| t.ems.is_some())
                .ok_or("the estate has no template with a provider")?,
        };
        let id = self.take_id();
        let service_template_id = (new.kind == RequestKind::Service).then(|| self.take_id());
        self.requests.push(MiqRequest {
            id,
            kind: new.kind,
            fate: new.fate,
            stage: Stage::PendingApproval,
            requester,
            template,
            vm_name: name.to_owned(),
            service_template_id,
            approval_state: "pending_approval",
            request_state: "pending",
            status: "Ok",
            message: format!("{} - Request Created", new.kind.task_description()),
            created_on: stamp.to_owned(),
            updated_on: stamp.to_owned(),
            fulfilled_on: None,
            tasks: Vec::new(),
            dialog: None,
        });
        Ok(id)
    }

    /// The `approve` or `deny` action on request `id` (`POST /api/requests/:id
    /// {"action":"approve","reason":...}`, integrations.md A.2): a request awaiting approval
    /// is approved (tasks created, pending; a request fated `Denied` then ends `Ok`) or
    /// denied (`MiqRequest#approval_denied`: denied, finished, status Denied); one already
    /// decided is left as it is (UNVERIFIED: what ManageIQ does then). `Err` when there is
    /// no such request.
    pub fn decide_request(&mut self, id: u64, approve: bool, stamp: &str) -> Result<(), String> {
        let r = self
            .requests
            .iter()
            .position(|r| r.id == id)
            .ok_or_else(|| format!("no request with id {id}"))?;
        if self.requests[r].stage != Stage::PendingApproval {
            return Ok(());
        }
        let req = &mut self.requests[r];
        if approve {
            if req.fate == Fate::Denied {
                req.fate = Fate::Ok;
            }
        } else {
            req.fate = Fate::Denied;
        }
        self.step(r, stamp, None);
        Ok(())
    }

    /// One step of request `r`; the id of the VM it created, if any. `made`: the VM the
    /// request made already (a generated finished request), so finishing creates none.
    fn step(&mut self, r: usize, stamp: &str, made: Option<u64>) -> Option<u64> {
        let mut created = None;
        match self.requests[r].stage {
            Stage::Finished => return None,
            Stage::PendingApproval if self.requests[r].fate == Fate::Denied => {
                // MiqRequest#approval_denied: the message stays as it was.
                let req = &mut self.requests[r];
                req.approval_state = "denied";
                req.request_state = "finished";
                req.status = "Denied";
                req.stage = Stage::Finished;
            }
            Stage::PendingApproval => {
                self.requests[r].approval_state = "approved";
                self.create_tasks(r, stamp);
                self.requests[r].stage = Stage::Pending;
            }
            Stage::Pending => {
                self.activate_tasks(r, stamp);
                self.requests[r].stage = Stage::Active;
            }
            Stage::Active => {
                created = self.finish_tasks(r, stamp, made);
                self.requests[r].stage = Stage::Finished;
            }
        }
        let req = &mut self.requests[r];
        req.updated_on = stamp.to_owned();
        roll_up(req, stamp);
        created
    }

    /// The request's tasks, pending: a VM task, under a service task for a service request
    /// (whose Service exists from the start, `create_tasks_for_service`).
    fn create_tasks(&mut self, r: usize, stamp: &str) {
        let mut tasks = Vec::new();
        let mut parent = None;
        if self.requests[r].kind == RequestKind::Service {
            let id = self.take_id();
            let service = self.take_id();
            parent = Some(id);
            tasks.push(RequestTask {
                id,
                service: true,
                parent: None,
                state: "pending",
                status: "Ok",
                message: "Automation Starting".into(),
                phase: None,
                created_on: stamp.to_owned(),
                updated_on: stamp.to_owned(),
                destination: Some(service),
            });
        }
        let id = self.take_id();
        tasks.push(RequestTask {
            id,
            service: false,
            parent,
            state: "pending",
            status: "Ok",
            message: "Automation Starting".into(),
            phase: None,
            created_on: stamp.to_owned(),
            updated_on: stamp.to_owned(),
            destination: None,
        });
        self.requests[r].tasks = tasks;
    }

    fn activate_tasks(&mut self, r: usize, stamp: &str) {
        let clone = format!(
            "Preparing to Clone [{}] to Vm [{}]",
            self.templates[self.requests[r].template].name, self.requests[r].vm_name
        );
        for t in &mut self.requests[r].tasks {
            t.state = "active";
            t.message.clone_from(&clone);
            if !t.service {
                t.phase = Some("prepare_provision");
            }
            t.updated_on = stamp.to_owned();
        }
    }

    fn finish_tasks(&mut self, r: usize, stamp: &str, made: Option<u64>) -> Option<u64> {
        let req = &self.requests[r];
        let (fate, id) = (req.fate, req.id);
        let (vm, created) = match (fate.creates_vm(), made) {
            (false, _) => (None, None),
            (true, Some(made)) => (Some(made), None),
            (true, None) => {
                let (template, name, owner) = (req.template, req.vm_name.clone(), req.requester);
                let vm = provision_vm(self, template, &name, owner, stamp);
                (Some(vm), Some(vm))
            }
        };
        let (status, message, phase) = finished(fate, id);
        for t in &mut self.requests[r].tasks {
            t.state = "finished";
            t.status = status;
            t.updated_on = stamp.to_owned();
            if t.service {
                t.message = if fate == Fate::Ok {
                    format!("{} completed", RequestKind::Service.task_description())
                } else {
                    message.clone()
                };
            } else {
                t.message.clone_from(&message);
                t.phase = Some(phase);
                t.destination = vm;
            }
        }
        created
    }
}

/// A finished VM task's status, message and phase.
fn finished(fate: Fate, id: u64) -> (&'static str, String, &'static str) {
    match fate {
        Fate::Ok | Fate::Denied => (
            "Ok",
            format!("{} completed", RequestKind::Provision.task_description()),
            "finish",
        ),
        Fate::Warn => ("Warn", WARNING.to_owned(), "finish"),
        Fate::Error => (
            "Error",
            ERRORS[(id % ERRORS.len() as u64) as usize].to_owned(),
            "poll_clone_complete",
        ),
        Fate::Timeout => ("Timeout", TIMEOUT.to_owned(), "poll_clone_complete"),
    }
}

/// `MiqRequest#update_request_status`: the tasks' common state (else active), the first of
/// Error, Timeout, Warn among their statuses (else Ok), "Request complete" or "Request
/// completed with errors" and `fulfilled_on` once finished, and a single task's own message.
/// Without tasks (awaiting approval, denied) nothing changes.
fn roll_up(req: &mut MiqRequest, stamp: &str) {
    if req.tasks.is_empty() {
        return;
    }
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &req.tasks {
        *states.entry(t.state).or_default() += 1;
    }
    let mut message = states
        .iter()
        .map(|(s, n)| format!("{} = {n}", capitalize(s)))
        .collect::<Vec<_>>()
        .join("; ");
    let state = match states.keys().next() {
        Some(s) if states.len() == 1 => *s,
        _ => "active",
    };
    let status = ["Error", "Timeout", "Warn"]
        .into_iter()
        .find(|s| req.tasks.iter().any(|t| t.status == *s))
        .unwrap_or("Ok");
    if state == "finished" {
        req.fulfilled_on = Some(stamp.to_owned());
        message = if status == "Ok" {
            "Request complete".into()
        } else {
            "Request completed with errors".into()
        };
    }
    if let [only] = req.tasks.as_slice() {
        message.clone_from(&only.message);
    }
    req.request_state = state;
    req.status = status;
    req.message = message;
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Users who can request: not the administrator, and known to ServiceNow (`sys_user`), so
/// the job can resolve them to a caller.
fn requesters(e: &Estate) -> Vec<usize> {
    (1..e.users.len())
        .filter(|&u| e.users[u].sys_id.is_some())
        .collect()
}

/// The VM a finished task created: the template's hardware, disks and placement (its
/// cluster's first host), a fresh identity, powered on, owned by the requester.
fn provision_vm(e: &mut Estate, template: usize, name: &str, owner: usize, stamp: &str) -> u64 {
    let id = e.take_id();
    let hardware_id = e.take_id();
    let mut rng = ChaCha8Rng::seed_from_u64(e.seed ^ id);
    let tpl = e.templates[template].clone();
    let vendor = tpl.vendor;
    let serial = id - ID_BASE;
    let uuid = |rng: &mut ChaCha8Rng, vmware_bios: bool| {
        let mut bytes: [u8; 16] = rng.random();
        if vmware_bios {
            bytes[0] = 0x42;
        }
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .hyphenated()
            .to_string()
    };
    let guid = uuid(&mut rng, false);
    let (uid_ems, ems_ref, location) = match vendor {
        Vendor::Vmware => {
            let uid = uuid(&mut rng, true);
            // Above every MoRef the provider ever handed out, as vCenter numbers new objects:
            // also above VMs since removed, whose CIs still hold theirs.
            let top = e
                .vms
                .iter()
                .chain(&e.templates)
                .filter(|v| v.ems == tpl.ems)
                .filter_map(|v| v.ems_ref.strip_prefix("vm-")?.parse::<u64>().ok())
                .chain(tpl.ems.and_then(|p| e.last_moref.get(p)).copied())
                .max()
                .unwrap_or(1000);
            if let Some(last) = tpl.ems.and_then(|p| e.last_moref.get_mut(p)) {
                *last = top + 1;
            }
            (uid, format!("vm-{}", top + 1), format!("{name}/{name}.vmx"))
        }
        Vendor::Redhat => {
            let uid = uuid(&mut rng, false);
            (uid.clone(), format!("/api/vms/{uid}"), format!("{uid}.ovf"))
        }
    };
    let host = tpl.host.or_else(|| {
        let cluster = tpl.cluster?;
        e.hosts.iter().position(|h| h.cluster == cluster)
    });
    let mut hardware = tpl.hardware.clone();
    hardware.id = hardware_id;
    hardware.bios = (vendor == Vendor::Vmware).then(|| uid_ems.clone());
    hardware.annotation = format!("Provisioned by CloudForms for {}", e.users[owner].name);
    let storage_name = tpl.storage.map(|s| e.storages[s].name.clone());
    let mut disks = tpl.disks.clone();
    for (d, disk) in disks.iter_mut().enumerate() {
        disk.id = e.take_id();
        if vendor == Vendor::Vmware {
            let suffix = if d == 0 {
                String::new()
            } else {
                format!("_{d}")
            };
            let ds = storage_name.as_deref().unwrap_or("datastore1");
            disk.filename = format!("[{ds}] {name}/{name}{suffix}.vmdk");
        } else {
            disk.filename = uuid(&mut rng, false);
            disk.device_name = format!("{name}_Disk{}", d + 1);
        }
    }
    let k = serial % (254 * 254);
    let ip = format!("10.240.{}.{}", k / 254 % 254, k % 254 + 1);
    let mac = match vendor {
        Vendor::Vmware => format!("00:50:56:fe:{:02x}:{:02x}", (k >> 8) & 0xff, k & 0xff),
        Vendor::Redhat => format!("56:6f:1a:fe:{:02x}:{:02x}", (k >> 8) & 0xff, k & 0xff),
    };
    let domain = if tpl.hardware.platform == "windows" {
        "ad.example.com"
    } else {
        "corp.example.com"
    };
    let vm = Vm {
        id,
        name: name.to_owned(),
        description: None,
        vendor,
        template: false,
        location,
        ems: tpl.ems,
        host,
        cluster: tpl.cluster,
        storage: tpl.storage,
        datacenter: tpl.datacenter,
        guid,
        uid_ems,
        ems_ref,
        created_on: stamp.to_owned(),
        updated_on: stamp.to_owned(),
        boot_time: Some(stamp.to_owned()),
        state_changed_on: stamp.to_owned(),
        previous_state: None,
        last_perf_capture_on: None,
        power_state: PowerState::On,
        hardware,
        used_disk_storage: Some(disks.iter().map(|d| d.size_on_disk).sum()),
        disks,
        ipaddresses: vec![ip],
        hostnames: vec![format!("{}.{domain}", name.to_lowercase())],
        mac_addresses: vec![mac],
        owner: Some(owner),
        group: e.users[owner].group,
        tags: tpl.tags.clone(),
        custom_attributes: Vec::new(),
        retired: None,
        retirement_state: None,
        retires_on: None,
        folder: tpl.folder,
        resource_pool: tpl.resource_pool.clone(),
        snapshots: 0,
        cpu_hot_add_enabled: tpl.cpu_hot_add_enabled,
        memory_hot_add_enabled: tpl.memory_hot_add_enabled,
    };
    // Ids only grow, so the VM list stays ordered by id.
    e.vms.push(vm);
    id
}

/// Plants `n` requests in the generated estate: the first twelve cover every stage and every
/// status ([`SPREAD`]), more are drawn (mostly finished and Ok). Finished `Ok`/`Warn`
/// requests point at VMs that exist (their owner requested them, shortly before the VM's
/// `created_on`); the others ask for new names (`new-<app>-NNN`). Ids follow `created_on`.
/// Draws come from a stream of their own, so adding requests changed no other value.
pub(super) fn plant(e: &mut Estate, n: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(e.seed ^ 0x5e9d_31a7_c4b2_0f68);
    let people = requesters(e);
    let templates: Vec<usize> = (0..e.templates.len())
        .filter(|&t| e.templates[t].ems.is_some())
        .collect();
    if n == 0 || people.is_empty() || templates.is_empty() {
        return;
    }
    let mut plan: Vec<(Stage, Fate, RequestKind)> = SPREAD.iter().copied().take(n).collect();
    while plan.len() < n {
        let stage = match rng.random_range(0..100) {
            0..70 => Stage::Finished,
            70..80 => Stage::PendingApproval,
            80..90 => Stage::Pending,
            _ => Stage::Active,
        };
        let fate = match rng.random_range(0..100) {
            0..70 => Fate::Ok,
            70..78 => Fate::Warn,
            78..90 => Fate::Error,
            90..95 => Fate::Timeout,
            _ if matches!(stage, Stage::Pending | Stage::Active) => Fate::Error,
            _ => Fate::Denied,
        };
        let kind = if rng.random_bool(0.3) {
            RequestKind::Service
        } else {
            RequestKind::Provision
        };
        plan.push((stage, fate, kind));
    }
    plan.shuffle(&mut rng);

    // Existing VMs a finished request may have created: live, owned by a requester, not one
    // the CMDB scenarios use (duplicates, clones), with a template on the same provider.
    let x = &e.expected;
    let special: HashSet<u64> = x
        .duplicate_names
        .iter()
        .chain(&x.clone_pairs)
        .flatten()
        .copied()
        .chain(x.retired_vms.iter().copied())
        .collect();
    let mut made: Vec<usize> = (0..e.vms.len())
        .filter(|&v| {
            let vm = &e.vms[v];
            vm.ems.is_some()
                && vm.retired.is_none()
                && !special.contains(&vm.id)
                && vm.owner.is_some_and(|o| e.users[o].sys_id.is_some())
                && templates.iter().any(|&t| e.templates[t].ems == vm.ems)
        })
        .collect();
    made.shuffle(&mut rng);

    struct Draft {
        kind: RequestKind,
        stage: Stage,
        fate: Fate,
        requester: usize,
        template: usize,
        vm_name: String,
        vm: Option<u64>,
        created: DateTime<Utc>,
        updated: DateTime<Utc>,
    }
    let now = e.now;
    let mut drafts = Vec::with_capacity(n);
    for (i, &(mut stage, fate, kind)) in plan.iter().enumerate() {
        let existing = (stage == Stage::Finished && fate.creates_vm())
            .then(|| made.pop())
            .flatten();
        if stage == Stage::Finished && fate.creates_vm() && existing.is_none() {
            // No VM to have made (a tiny estate): still running, its VM comes on advancing.
            stage = Stage::Active;
        }
        let (requester, template, vm_name, vm, created, updated) = match existing {
            Some(v) => {
                let vm = &e.vms[v];
                let same_ems: Vec<usize> = templates
                    .iter()
                    .copied()
                    .filter(|&t| e.templates[t].ems == vm.ems)
                    .collect();
                let template = *same_ems.choose(&mut rng).unwrap_or(&templates[0]);
                let done = parse(&vm.created_on).unwrap_or(now);
                let took = Duration::minutes(rng.random_range(12..150));
                let waited = Duration::minutes(rng.random_range(1..600));
                let owner = vm.owner.unwrap_or(people[0]);
                (
                    owner,
                    template,
                    vm.name.clone(),
                    Some(vm.id),
                    done - took - waited,
                    done,
                )
            }
            None => {
                let requester = *people.choose(&mut rng).unwrap_or(&people[0]);
                let template = *templates.choose(&mut rng).unwrap_or(&templates[0]);
                let app = e.templates[template]
                    .name
                    .split('-')
                    .nth(1)
                    .unwrap_or("app")
                    .to_owned();
                let created = now - Duration::minutes(rng.random_range(30..14 * 24 * 60));
                let updated = match stage {
                    Stage::PendingApproval => created,
                    Stage::Pending => created + Duration::minutes(rng.random_range(1..10)),
                    Stage::Active | Stage::Finished => {
                        created + Duration::minutes(rng.random_range(10..25))
                    }
                };
                let name = format!("new-{app}-{:03}", i + 1);
                (requester, template, name, None, created, updated.min(now))
            }
        };
        drafts.push(Draft {
            kind,
            stage,
            fate,
            requester,
            template,
            vm_name,
            vm,
            created,
            updated,
        });
    }
    drafts.sort_by_key(|d| d.created);

    for d in drafts {
        let id = e.take_id();
        let service_template_id = (d.kind == RequestKind::Service).then(|| e.take_id());
        let created = iso(d.created);
        let updated = iso(d.updated);
        let approved = d.created + (d.updated - d.created) / 4;
        e.requests.push(MiqRequest {
            id,
            kind: d.kind,
            fate: d.fate,
            stage: Stage::PendingApproval,
            requester: d.requester,
            template: d.template,
            vm_name: d.vm_name,
            service_template_id,
            approval_state: "pending_approval",
            request_state: "pending",
            status: "Ok",
            message: format!("{} - Request Created", d.kind.task_description()),
            created_on: created.clone(),
            updated_on: created,
            fulfilled_on: None,
            tasks: Vec::new(),
            dialog: None,
        });
        let r = e.requests.len() - 1;
        // Walk the state machine to the planned stage, the last step at the planned time.
        let steps: i32 = match (d.stage, d.fate) {
            (Stage::PendingApproval, _) => 0,
            (Stage::Finished, Fate::Denied) | (Stage::Pending, _) => 1,
            (Stage::Active, _) => 2,
            (Stage::Finished, _) => 3,
        };
        for step in 0..steps {
            let at = if step + 1 == steps {
                updated.clone()
            } else {
                iso(approved + (d.updated - approved) * step / steps)
            };
            // A finished Ok/Warn request's VM exists already: finishing creates no other.
            e.step(r, &at, d.vm);
        }
    }
}

fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::super::{generate, GenOptions};
    use super::*;
    use chrono::TimeZone;

    fn estate(vms: usize, requests: usize) -> Estate {
        generate(&GenOptions {
            vms,
            drift: 0.05,
            seed: 3,
            now: Utc
                .with_ymd_and_hms(2026, 12, 1, 8, 0, 0)
                .single()
                .expect("valid date"),
            requests,
            hosts: None,
        })
        .estate
    }

    #[test]
    fn a_default_estate_has_every_state_and_status() {
        let e = estate(200, 12);
        assert_eq!(e.requests.len(), 12);
        let states: HashSet<&str> = e.requests.iter().map(|r| r.request_state).collect();
        let statuses: HashSet<&str> = e
            .requests
            .iter()
            .filter(|r| r.request_state == "finished")
            .map(|r| r.status)
            .collect();
        let approvals: HashSet<&str> = e.requests.iter().map(|r| r.approval_state).collect();
        assert_eq!(states, HashSet::from(["pending", "active", "finished"]));
        assert_eq!(
            statuses,
            HashSet::from(["Ok", "Warn", "Error", "Timeout", "Denied"])
        );
        assert_eq!(
            approvals,
            HashSet::from(["pending_approval", "approved", "denied"])
        );
        assert!(e
            .requests
            .windows(2)
            .all(|w| w[0].id < w[1].id && w[0].created_on <= w[1].created_on));
        for r in &e.requests {
            assert!(e.users[r.requester].sys_id.is_some());
            assert!(r.updated_on >= r.created_on, "{r:?}");
        }
        // Finished Ok requests point at VMs that exist, named as asked.
        for r in e
            .requests
            .iter()
            .filter(|r| r.status == "Ok" && r.request_state == "finished")
        {
            let task = r.tasks.iter().find(|t| !t.service).expect("a VM task");
            let vm = e
                .vms
                .iter()
                .find(|v| Some(v.id) == task.destination)
                .expect("its VM exists");
            assert_eq!(vm.name, r.vm_name);
            assert_eq!(vm.owner, Some(r.requester));
        }
    }

    #[test]
    fn advancing_walks_the_state_machine_and_creates_vms() {
        let mut e = estate(200, 12);
        let vms = e.vms.len();
        let mut stamp = 0;
        while e.requests.iter().any(|r| r.stage != Stage::Finished) {
            stamp += 1;
            let at = format!("2026-12-02T10:00:{stamp:02}Z");
            let moved = e.advance_requests(&at);
            assert!(!moved.requests.is_empty());
            for id in &moved.requests {
                let r = e.requests.iter().find(|r| r.id == *id).expect("moved");
                assert_eq!(r.updated_on, at);
            }
            assert!(stamp < 5, "every request finishes within four steps");
        }
        for r in &e.requests {
            assert_eq!(r.request_state, "finished");
            assert_eq!(r.status, r.fate.as_str(), "{r:?}");
            if r.fate != Fate::Denied {
                assert!(r.fulfilled_on.is_some());
            }
        }
        let created = e.vms.len() - vms;
        // Unfinished at the start: pending approval Ok, pending Ok, active Ok, active Warn.
        assert_eq!(created, 4);
        assert!(e.vms.windows(2).all(|w| w[0].id < w[1].id));
        let last = e.vms.last().expect("a VM");
        assert!(e.requests.iter().any(|r| r.vm_name == last.name));
    }

    /// vCenter never reuses a MoRef: a VM provisioned later numbers above every VM the
    /// provider ever had, also those since removed whose CIs (installed or retired) keep
    /// theirs. Otherwise the new VM matches a stranger's CI by `object_id`.
    #[test]
    fn a_provisioned_vm_takes_a_moref_no_ci_holds() {
        let mut generated = generate(&GenOptions {
            vms: 5_000,
            drift: 0.05,
            seed: 7,
            now: Utc
                .with_ymd_and_hms(2026, 12, 1, 8, 0, 0)
                .single()
                .expect("valid date"),
            requests: 30,
            hosts: None,
        });
        let held: HashSet<(String, String)> = generated
            .cmdb
            .tables
            .iter()
            .flat_map(|t| &t.rows)
            .filter_map(|r| {
                let text = |f: &str| r.get(f)?.as_str().map(str::to_owned);
                Some((text("object_id")?, text("vcenter_uuid")?))
            })
            .collect();
        assert!(!held.is_empty());
        let e = &mut generated.estate;
        let mut created = Vec::new();
        for step in 0..5 {
            created.extend(
                e.advance_requests(&format!("2026-12-02T10:00:0{step}Z"))
                    .vms,
            );
        }
        assert!(!created.is_empty());
        for id in created {
            let vm = e.vms.iter().find(|v| v.id == id).expect("created VM");
            let (Vendor::Vmware, Some(p)) = (vm.vendor, vm.ems) else {
                continue;
            };
            let uuid = e.providers[p].uid_ems.clone().unwrap_or_default();
            assert!(
                !held.contains(&(vm.ems_ref.clone(), uuid)),
                "{} took {}, which a CI already holds",
                vm.name,
                vm.ems_ref
            );
        }
    }

    #[test]
    fn roll_up_follows_update_request_status() {
        let mut e = estate(50, 0);
        let id = e
            .add_request(
                NewRequest {
                    vm_name: "new-web-900".into(),
                    fate: Fate::Ok,
                    userid: None,
                    kind: RequestKind::Service,
                    template_id: None,
                },
                "2026-12-02T10:00:00Z",
            )
            .expect("added");
        let get = |e: &Estate| {
            e.requests
                .iter()
                .find(|r| r.id == id)
                .cloned()
                .expect("there")
        };
        assert_eq!(
            get(&e).message,
            "Service_Template_Provisioning - Request Created"
        );
        e.advance_requests("2026-12-02T10:00:01Z");
        let r = get(&e);
        assert_eq!((r.approval_state, r.request_state), ("approved", "pending"));
        assert_eq!(r.message, "Pending = 2");
        e.advance_requests("2026-12-02T10:00:02Z");
        assert_eq!(get(&e).message, "Active = 2");
        e.advance_requests("2026-12-02T10:00:03Z");
        let r = get(&e);
        assert_eq!((r.request_state, r.status), ("finished", "Ok"));
        assert_eq!(r.message, "Request complete");
        assert_eq!(r.fulfilled_on.as_deref(), Some("2026-12-02T10:00:03Z"));
        let vm = r
            .tasks
            .iter()
            .find(|t| !t.service)
            .and_then(|t| t.destination);
        assert_eq!(vm, e.vms.last().map(|v| v.id));
    }
}
