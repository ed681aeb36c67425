//! The service catalog over HTTP: `/api/service_catalogs` (`ServiceTemplateCatalog`: `id,
//! name, description, tenant_id`), `/api/service_templates` (`ServiceTemplate`) and each
//! catalog's `service_templates` subcollection, read like the other flat collections; and
//! ordering (integrations.md A.1, `config/api.yml`: `order` is a collection, resource,
//! subcollection and subresource action of `service_templates`):
//!
//! - `POST /api/service_templates/:id` and `POST /api/service_catalogs/:cid/service_templates/:sid`
//!   with `{"action": "order", <dialog fields>}` answer the new service request as
//!   `/api/service_requests/:id` renders it (`href` there), awaiting approval;
//! - `POST /api/service_templates` and `POST /api/service_catalogs/:cid/service_templates`
//!   with `{"action": "order", "resources": [{"href": ".../service_templates/:id", <fields>}]}`
//!   answer `{"results": [<request>, ...]}`; a resource that cannot be ordered gets
//!   `{"success": false, "message": ...}` in its place (UNVERIFIED: the per-resource failure
//!   shape of ManageIQ's bulk actions).
//!
//! Refusals: another action is 400 "Unsupported Action <a> for the service_templates
//! resource specified" (wording UNVERIFIED); a template that is not there (or not in that
//! catalog) is 404 "Couldn't find ServiceTemplate with 'id'=N"; a required dialog field
//! left empty is 400 "Failed to order Service Template id:N name:'x' - VM Name is required"
//! (A.1 "Failed to order … - <errors>"); `schedule_time` (a scheduled order, which answers a
//! schedule rather than a request) is 400, the simulator's own refusal.
//!
//! The template columns are a subset of ManageIQ's `service_templates` table (`id, name,
//! description, guid, type, service_type, prov_type, display, service_template_catalog_id,
//! tenant_id, created_at, updated_at`; the set is UNVERIFIED against `openapi.json`).

use super::catalog::TENANT_ID;
use super::flat::FlatCollection;
use crate::generator::{Estate, ServiceTemplate};
use serde_json::{json, Map, Value};

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Actions offered on the template collections.
pub const TEMPLATE_ACTIONS: &[&str] = &["query", "order"];

fn template_record(e: &Estate, t: &ServiceTemplate) -> Map<String, Value> {
    let tpl = &e.templates[t.template];
    obj(json!({
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "guid": t.guid,
        "options": {},
        "created_at": t.created_on,
        "updated_at": t.created_on,
        "type": "ServiceTemplate",
        "service_type": "atomic",
        "prov_type": tpl.vendor.as_str(),
        "display": true,
        "service_template_catalog_id": e.service_catalogs[t.catalog].id,
        "tenant_id": TENANT_ID,
        "internal": false,
    }))
}

/// `/api/service_catalogs`.
pub fn catalogs(e: &Estate) -> FlatCollection {
    let items = e
        .service_catalogs
        .iter()
        .map(|c| {
            obj(json!({
                "id": c.id, "name": c.name, "description": c.description, "tenant_id": TENANT_ID,
            }))
        })
        .collect();
    FlatCollection::with(
        "service_catalogs",
        "ServiceTemplateCatalog",
        "service_catalogs".into(),
        &["query"],
        &[],
        items,
    )
}

/// `/api/service_templates`, or a catalog's subcollection when `catalog` is its id.
pub fn templates(e: &Estate, catalog: Option<u64>) -> FlatCollection {
    let items = e
        .service_templates
        .iter()
        .filter(|t| catalog.is_none_or(|c| e.service_catalogs[t.catalog].id == c))
        .map(|t| template_record(e, t))
        .collect();
    let path = match catalog {
        Some(c) => format!("service_catalogs/{c}/service_templates"),
        None => "service_templates".into(),
    };
    FlatCollection::with(
        "service_templates",
        "ServiceTemplate",
        path,
        TEMPLATE_ACTIONS,
        &[],
        items,
    )
}

/// The template id an order resource names by `href` (`.../service_templates/:id`) or `id`.
pub fn resource_template_id(resource: &Map<String, Value>) -> Option<u64> {
    if let Some(href) = resource.get("href").and_then(Value::as_str) {
        let (head, id) = href.trim_end_matches('/').rsplit_once('/')?;
        if !head.ends_with("service_templates") {
            return None;
        }
        return id.parse().ok();
    }
    match resource.get("id")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}
