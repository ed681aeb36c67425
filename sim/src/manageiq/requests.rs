//! Provisioning requests over HTTP: `/api/requests` (every type), `/api/provision_requests`
//! (`MiqProvisionRequest`, request_type `template`) and `/api/service_requests`
//! (`ServiceTemplateProvisionRequest`, request_type `clone_to_service`); each resource at
//! `/api/<collection>/:id`, its tasks at `/api/<collection>/:id/request_tasks[/:task_id]`,
//! and every task at `/api/request_tasks[/:id]` (the href ManageIQ gives a task rendered
//! inside a request). Paging, `expand=resources`, `attributes=`, `sort_*` and `filter[]` as
//! on the other flat collections, including the datetime rules of `filter[]`
//! (`updated_on>2026-12-01T00:00:00Z`; `>=` answers 400 "Unsupported operator for datetime: >=").
//!
//! A request record has the columns of integrations.md A.2 in this order: `id, description,
//! approval_state, type, created_on, updated_on, fulfilled_on, requester_id, requester_name,
//! request_type, request_state, message, status, options, userid, source_id, source_type,
//! destination_id, destination_type, tenant_id, service_order_id, process,
//! cancelation_status, initiated_by, parent_id` (the order and the left-out NULLs of the
//! documented `POST /api/requests` answer, manageiq_docs `api/reference/requests.md`, copied
//! to `tests/fixtures/manageiq/doc_requests_create_response.json`; an older example,
//! `api/examples/order_service.md`, shows NULLs as `null`: a client must take a missing
//! column as NULL). As elsewhere in the simulator, ids and
//! `*_id` are strings and NULL columns are left out of the record (so `fulfilled_on` appears
//! once the request finished; `destination_*`, `service_order_id`, `cancelation_status` and
//! `parent_id` are NULL here); values nested in `options` or in rendered tasks keep their
//! nulls, as the normalizer renders nested hashes. `options` holds `vm_name`,
//! `src_vm_id` (`[template id (number), template name]`), `number_of_vms` (1),
//! `owner_email`, `owner_first_name`, `owner_last_name`, `vm_target_name`, `request_type`,
//! and for a service request also `src_id` (the catalog item), `cart_state` and `dialog`
//! (an order's dialog values, `dialog_*`; for a generated request
//! `dialog_option_0_vm_target_name`). A real service request keeps the VM name only in
//! its dialog and its VM task: the top-level VM keys on a service request are the
//! simulator's (UNVERIFIED for a real one).
//!
//! `attributes=miq_request_tasks` renders the request's tasks inline (a reflection named in
//! `attributes=`, which ManageIQ's renderer renders through `virtual_attribute_search`). No
//! API spec covers it, but ManageIQ's own manageiq-v2v UI reads
//! `/api/service_requests/:id?attributes=miq_request_tasks` and its fixture shows this shape:
//! every task with `href` `/api/request_tasks/:id` (ManageIQ/manageiq-v2v
//! `migrationsCompleted.fixtures.js`); still UNVERIFIED against a live server.
//! `expand=request_tasks` renders the same list under `request_tasks`. Naming only virtual
//! attributes or reflections keeps every physical column, as the renderer does.
//! `v_approved_by` (virtual) is "Administrator" once approved or denied, else "".
//!
//! A task record: `id, description, state, request_type, userid, options, created_on,
//! updated_on, message, status, type, miq_request_id, source_id, source_type,
//! destination_id, destination_type, miq_request_task_id, phase, phase_context, tenant_id,
//! cancelation_status`. A VM task (`ManageIQ::Providers::<Vendor>::InfraManager::Provision`,
//! request_type `template`) has `source_type`/`destination_type` `VmOrTemplate` (the
//! polymorphic base class) and, once finished `Ok` or `Warn`, `destination_id` = the VM's id
//! at `/api/vms`; a service request's top task (`ServiceTemplateProvisionTask`,
//! request_type `clone_to_service`) has `destination_type` `Service`.

use super::catalog::TENANT_ID;
use super::flat::FlatCollection;
use crate::generator::{Estate, MiqRequest, RequestKind, RequestTask};
use serde_json::{json, Map, Value};

/// The three request collections, by name.
pub const COLLECTIONS: [&str; 3] = ["requests", "provision_requests", "service_requests"];

/// A request record's keys, in order (physical columns, then virtual and reflections).
const REQUEST_KEYS: &[&str] = &[
    "id",
    "description",
    "approval_state",
    "type",
    "created_on",
    "updated_on",
    "fulfilled_on",
    "requester_id",
    "requester_name",
    "request_type",
    "request_state",
    "message",
    "status",
    "options",
    "userid",
    "source_id",
    "source_type",
    "destination_id",
    "destination_type",
    "tenant_id",
    "service_order_id",
    "process",
    "cancelation_status",
    "initiated_by",
    "parent_id",
    "v_approved_by",
    "miq_request_tasks",
    "request_tasks",
];

/// A task record's keys, in order.
const TASK_KEYS: &[&str] = &[
    "id",
    "description",
    "state",
    "request_type",
    "userid",
    "options",
    "created_on",
    "updated_on",
    "message",
    "status",
    "type",
    "miq_request_id",
    "source_id",
    "source_type",
    "destination_id",
    "destination_type",
    "miq_request_task_id",
    "phase",
    "phase_context",
    "tenant_id",
    "cancelation_status",
];

/// Actions the real server lists on the request collections (for an administrator).
const REQUEST_ACTIONS: &[&str] = &["query", "approve", "deny", "cancel", "edit"];

/// The kind a collection holds (`None`: every request).
pub fn kind_of(collection: &str) -> Option<RequestKind> {
    match collection {
        "provision_requests" => Some(RequestKind::Provision),
        "service_requests" => Some(RequestKind::Service),
        _ => None,
    }
}

/// The model class a collection serves (names it in a 404).
pub fn klass(collection: &str) -> &'static str {
    match kind_of(collection) {
        Some(RequestKind::Provision) => "MiqProvisionRequest",
        Some(RequestKind::Service) => "ServiceTemplateProvisionRequest",
        None => "MiqRequest",
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn static_name(collection: &str) -> &'static str {
    COLLECTIONS
        .into_iter()
        .find(|c| *c == collection)
        .unwrap_or("requests")
}

/// One request collection of the estate as it is now.
pub fn collection(e: &Estate, name: &str, base: &str) -> FlatCollection {
    let kind = kind_of(name);
    let items = e
        .requests
        .iter()
        .filter(|r| kind.is_none_or(|k| r.kind == k))
        .map(|r| request_record(e, r, base))
        .collect();
    let name = static_name(name);
    FlatCollection::with(
        name,
        klass(name),
        name.to_owned(),
        REQUEST_ACTIONS,
        &["miq_request_tasks", "request_tasks"],
        items,
    )
    .keyed(REQUEST_KEYS)
}

/// A request's `request_tasks` subcollection, or `None` when the collection has no such
/// request.
pub fn tasks_of(e: &Estate, collection: &str, id: u64) -> Option<FlatCollection> {
    let kind = kind_of(collection);
    let r = e
        .requests
        .iter()
        .find(|r| r.id == id && kind.is_none_or(|k| r.kind == k))?;
    let items = r.tasks.iter().map(|t| task_record(e, r, t)).collect();
    Some(
        FlatCollection::with(
            "request_tasks",
            "MiqRequestTask",
            format!("{}/{id}/request_tasks", static_name(collection)),
            &[],
            &[],
            items,
        )
        .keyed(TASK_KEYS),
    )
}

/// Every task, at `/api/request_tasks`.
pub fn all_tasks(e: &Estate) -> FlatCollection {
    let mut items: Vec<Map<String, Value>> = e
        .requests
        .iter()
        .flat_map(|r| r.tasks.iter().map(move |t| task_record(e, r, t)))
        .collect();
    items.sort_by_key(|m| m.get("id").and_then(Value::as_u64));
    FlatCollection::with(
        "request_tasks",
        "MiqRequestTask",
        "request_tasks".into(),
        &["cancel"],
        &[],
        items,
    )
    .keyed(TASK_KEYS)
}

/// The record of a request as `/api/requests/:id` serves it (`href` first); NULL columns
/// left out, `miq_request_tasks` not included.
pub fn request_json(e: &Estate, r: &MiqRequest, base: &str) -> Value {
    let mut m = Map::new();
    m.insert(
        "href".into(),
        format!("{base}/api/requests/{}", r.id).into(),
    );
    for (k, v) in request_record(e, r, base) {
        if !v.is_null() && k != "miq_request_tasks" && k != "request_tasks" && !k.starts_with("v_")
        {
            m.insert(k.clone(), normalize(&k, v));
        }
    }
    Value::Object(m)
}

fn request_record(e: &Estate, r: &MiqRequest, base: &str) -> Map<String, Value> {
    let user = &e.users[r.requester];
    let tpl = &e.templates[r.template];
    let description = match r.kind {
        RequestKind::Provision => format!("Provision from [{}] to [{}]", tpl.name, r.vm_name),
        RequestKind::Service => {
            let item = service_item(e, r);
            format!("Provisioning Service [{item}] from [{item}]")
        }
    };
    let (source_id, source_type) = match r.kind {
        RequestKind::Provision => (Some(tpl.id), "VmOrTemplate"),
        RequestKind::Service => (r.service_template_id, "ServiceTemplate"),
    };
    let mut options = obj(json!({
        "request_type": r.kind.request_type(),
        "src_vm_id": [tpl.id, tpl.name],
        "vm_name": r.vm_name,
        "number_of_vms": 1,
        "vm_target_name": r.vm_name,
        "owner_email": user.email,
        "owner_first_name": user.first_name,
        "owner_last_name": user.last_name,
        "requester_group": e.groups[user.group].description,
    }));
    if r.kind == RequestKind::Service {
        options.insert(
            "src_id".into(),
            r.service_template_id.map(|i| i.to_string()).into(),
        );
        options.insert("cart_state".into(), "ordered".into());
        let dialog = match &r.dialog {
            Some(d) => Value::Object(d.clone()),
            None => json!({"dialog_option_0_vm_target_name": r.vm_name}),
        };
        options.insert("dialog".into(), dialog);
    }
    let tasks: Vec<Value> = r
        .tasks
        .iter()
        .map(|t| nested_task(task_record(e, r, t), base))
        .collect();
    let approved_by = if r.approval_state == "pending_approval" {
        ""
    } else {
        e.users.first().map_or("", |u| u.name.as_str())
    };
    obj(json!({
        "id": r.id,
        "description": description,
        "approval_state": r.approval_state,
        "type": r.kind.type_name(),
        "created_on": r.created_on,
        "updated_on": r.updated_on,
        "fulfilled_on": r.fulfilled_on,
        "requester_id": user.id,
        "requester_name": user.name,
        "request_type": r.kind.request_type(),
        "request_state": r.request_state,
        "message": r.message,
        "status": r.status,
        "options": Value::Object(options),
        "userid": user.userid,
        "source_id": source_id,
        "source_type": source_type,
        "destination_id": null,
        "destination_type": null,
        "tenant_id": TENANT_ID,
        "service_order_id": null,
        "process": true,
        "cancelation_status": null,
        "initiated_by": "user",
        "parent_id": null,
        "v_approved_by": approved_by,
        "miq_request_tasks": tasks.clone(),
        "request_tasks": tasks,
    }))
}

/// The catalog item a service request ordered: its service template's name, or for a
/// generated request (which names no template of `/api/service_templates`) one named after
/// its VM template.
fn service_item(e: &Estate, r: &MiqRequest) -> String {
    r.service_template_id
        .and_then(|id| e.service_templates.iter().find(|t| t.id == id))
        .map_or_else(
            || format!("{} VM", e.templates[r.template].name),
            |t| t.name.clone(),
        )
}

fn task_record(e: &Estate, r: &MiqRequest, t: &RequestTask) -> Map<String, Value> {
    let user = &e.users[r.requester];
    let tpl = &e.templates[r.template];
    let hostname = r.vm_name.to_lowercase();
    let (description, request_type, klass, source_id, source_type, destination_type) = if t.service
    {
        let item = service_item(e, r);
        (
            format!("Provisioning [{item}] for Service [{item}]"),
            "clone_to_service",
            "ServiceTemplateProvisionTask".to_owned(),
            r.service_template_id,
            "ServiceTemplate",
            "Service",
        )
    } else {
        let ems = tpl.vendor.ems_type();
        (
            format!("Provision from [{}] to [{}]", tpl.name, r.vm_name),
            "template",
            format!("{ems}::Provision"),
            Some(tpl.id),
            "VmOrTemplate",
            "VmOrTemplate",
        )
    };
    let mut options = obj(json!({
        "request_type": request_type,
        "src_vm_id": [tpl.id, tpl.name],
        "vm_name": r.vm_name,
        "number_of_vms": 1,
        "owner_email": user.email,
    }));
    if !t.service {
        options.insert("vm_target_name".into(), r.vm_name.clone().into());
        options.insert("vm_target_hostname".into(), hostname.into());
        options.insert("pass".into(), 1.into());
    }
    obj(json!({
        "id": t.id,
        "description": description,
        "state": t.state,
        "request_type": request_type,
        "userid": user.userid,
        "options": Value::Object(options),
        "created_on": t.created_on,
        "updated_on": t.updated_on,
        "message": t.message,
        "status": t.status,
        "type": klass,
        "miq_request_id": r.id,
        "source_id": source_id,
        "source_type": source_type,
        "destination_id": t.destination,
        "destination_type": t.destination.map(|_| destination_type),
        "miq_request_task_id": t.parent,
        "phase": t.phase,
        "phase_context": {},
        "tenant_id": TENANT_ID,
        "cancelation_status": null,
    }))
}

/// A task as rendered inside a request: `href` first, ids as strings, nulls kept.
fn nested_task(record: Map<String, Value>, base: &str) -> Value {
    let id = record.get("id").and_then(Value::as_u64).unwrap_or(0);
    let mut m = Map::new();
    m.insert(
        "href".into(),
        format!("{base}/api/request_tasks/{id}").into(),
    );
    for (k, v) in record {
        m.insert(k.clone(), normalize(&k, v));
    }
    Value::Object(m)
}

/// ManageIQ's normalizer on one scalar: `id` and `*_id` numbers become strings.
fn normalize(key: &str, v: Value) -> Value {
    match v {
        Value::Number(n) if super::field::is_id_key(key) => Value::String(n.to_string()),
        other => other,
    }
}
