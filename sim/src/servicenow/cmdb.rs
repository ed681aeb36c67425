//! The CMDB Instance API (ServiceNowDocs `api-reference/rest-apis/cmdb-instance-api.md`;
//! shared/reference/integrations.md E.2), over the same tables as the Table API:
//!
//! - `GET /cmdb/instance/{class}`: `[{"sys_id","name"}]` of the class and the classes
//!   extending it (`sysparm_query`, `sysparm_limit`, `sysparm_offset`);
//! - `GET /cmdb/instance/{class}/{sys_id}`: `{"outbound_relations", "attributes",
//!   "inbound_relations"}`, a relation being `{"sys_id", "type", "target"}`, `type` and
//!   `target` each `{"display_value","link","value"}` (the `target` link points back into this
//!   API under `cmdb_ci`, the `type` link at the Table API), the CI being the parent of its
//!   outbound relations and the child of its inbound ones;
//! - `POST /cmdb/instance/{class}` with `{"attributes", "source", "inbound_relations",
//!   "outbound_relations"}`, a relation being `{"target": <CI sys_id>, "type": <cmdb_rel_type
//!   sys_id>}`;
//! - `PUT`/`PATCH /cmdb/instance/{class}/{sys_id}` with `{"attributes", "source"}` (both
//!   partial; relations untouched);
//! - `POST /cmdb/instance/{class}/{sys_id}/relation` with `{"source", "inbound_relations",
//!   "outbound_relations"}`;
//! - `DELETE /cmdb/instance/{class}/{sys_id}/relation/{rel_sys_id}` (200, no body).
//!
//! `source` is required and must be a `cmdb_ci.discovery_source` choice (a `sys_choice` row,
//! so a choice a client adds counts). A new CI gets `discovery_source` = `source` and
//! `first_discovered`/`last_discovered` = now, as the doc's POST example shows. The doc lists
//! 200 (not 201) for every call. Not modelled: identification rules (a dependent class's
//! required relation), IRE reconciliation; error messages are assumptions.

use axum::http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::api::{json_object, ApiRequest, ApiResponse};
use super::schema::{Kind, TableId};
use super::store::{field_string, string_fields, Stamp, Store};
use super::table::{compiled_query, invalid_table, number_param, select, DEFAULT_LIMIT};
use super::Inner;

fn bad_request(message: &str, detail: impl Into<Value>) -> ApiResponse {
    ApiResponse::error(StatusCode::BAD_REQUEST, message, detail)
}

/// Serves one CMDB Instance API call on `class`.
pub(crate) fn handle(
    inner: &Inner,
    req: &ApiRequest<'_>,
    class: &str,
    sys_id: Option<&str>,
    relation: Option<Option<&str>>,
) -> ApiResponse {
    let table = {
        let store = inner.read_store();
        let Some(table) = store.table(class) else {
            return invalid_table(class);
        };
        let is_ci = store
            .table("cmdb_ci")
            .is_some_and(|ci| store.schema().extends(table, ci));
        if !is_ci {
            return bad_request(
                &format!("Invalid class {class}"),
                "The class is not a CMDB class (cmdb_ci or a class extending it)",
            );
        }
        table
    };
    match (&req.method, sys_id, relation) {
        (&Method::GET, None, None) => list(inner, req, table),
        (&Method::GET, Some(id), None) => {
            let store = inner.read_store();
            ci_json(&store, req.base_url, table, id)
                .map_or_else(ApiResponse::not_found, |ci| ApiResponse::result(&ci))
        }
        (&Method::POST, None, None) => create(inner, req, table),
        (&Method::PUT | &Method::PATCH, Some(id), None) => update(inner, req, table, id),
        (&Method::POST, Some(id), Some(None)) => add_relations(inner, req, table, id),
        (&Method::DELETE, Some(id), Some(Some(rel))) => delete_relation(inner, table, id, rel),
        _ => ApiResponse::method_not_allowed(),
    }
}

fn list(inner: &Inner, req: &ApiRequest<'_>, table: TableId) -> ApiResponse {
    let store = inner.read_store();
    let query = compiled_query(inner, &store, req, table);
    let limit = number_param(req, "sysparm_limit", DEFAULT_LIMIT);
    let offset = number_param(req, "sysparm_offset", 0);
    let (_, page) = select(&store, table, &query, offset, limit);
    let result: Vec<Value> = page
        .into_iter()
        .map(|(class, row)| {
            json!({
                "sys_id": store.value(class, row, "sys_id"),
                "name": store.value(class, row, "name"),
            })
        })
        .collect();
    ApiResponse::result(&result)
}

/// `{"display_value","link","value"}`.
fn linked(display: &str, link: String, value: &str) -> Value {
    json!({"display_value": display, "link": link, "value": value})
}

/// The CI `sys_id` (of `table` or a class extending it) as the API returns it.
fn ci_json(store: &Store, base_url: &str, table: TableId, sys_id: &str) -> Option<Value> {
    let (class, row) = store.find(table, sys_id)?;
    let def = store.def(class);
    let mut attributes = Map::new();
    for (col, column) in def.columns.iter().enumerate() {
        let value = row.get(col);
        let rendered = match (&column.reference, column.kind) {
            (Some(target), Kind::Reference) if !value.is_empty() => {
                let display = store
                    .table(target)
                    .and_then(|t| store.find(t, value))
                    .map_or("", |(c, r)| store.display_value(c, r));
                linked(
                    display,
                    format!("{base_url}/api/now/table/{target}/{value}"),
                    value,
                )
            }
            _ => Value::String(value.to_owned()),
        };
        attributes.insert(column.name.clone(), rendered);
    }
    let (outbound, inbound) = relations(store, base_url, sys_id);
    Some(json!({
        "outbound_relations": outbound,
        "attributes": attributes,
        "inbound_relations": inbound,
    }))
}

/// The CI's outbound (it is the parent) and inbound (it is the child) relations.
fn relations(store: &Store, base_url: &str, sys_id: &str) -> (Vec<Value>, Vec<Value>) {
    let (Some(rels), Some(types), Some(cis)) = (
        store.table("cmdb_rel_ci"),
        store.table("cmdb_rel_type"),
        store.table("cmdb_ci"),
    ) else {
        return (Vec::new(), Vec::new());
    };
    let entry = |rel: &str, type_id: &str, target: &str| {
        let type_name = store
            .find(types, type_id)
            .map_or("", |(c, r)| store.value(c, r, "name"));
        let target_name = store
            .find(cis, target)
            .map_or("", |(c, r)| store.display_value(c, r));
        json!({
            "sys_id": rel,
            "type": linked(type_name, format!("{base_url}/api/now/table/cmdb_rel_type/{type_id}"), type_id),
            "target": linked(target_name, format!("{base_url}/api/now/cmdb/instance/cmdb_ci/{target}"), target),
        })
    };
    let mut outbound = Vec::new();
    let mut inbound = Vec::new();
    for (class, row) in store.rows(rels, false) {
        let value = |name: &str| store.value(class, row, name);
        if value("parent") == sys_id {
            outbound.push(entry(value("sys_id"), value("type"), value("child")));
        }
        if value("child") == sys_id {
            inbound.push(entry(value("sys_id"), value("type"), value("parent")));
        }
    }
    (outbound, inbound)
}

/// `source`, checked against the `cmdb_ci.discovery_source` choices.
fn source<'b>(store: &Store, body: &'b Map<String, Value>) -> Result<&'b str, ApiResponse> {
    let Some(source) = body
        .get("source")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return Err(bad_request(
            "Missing required field: source",
            "source must be a discovery_source choice value",
        ));
    };
    let known = store.table("sys_choice").is_some_and(|choices| {
        store.rows_where(choices, "value", source).any(|(c, r)| {
            store.value(c, r, "name") == "cmdb_ci"
                && store.value(c, r, "element") == "discovery_source"
                && store.value(c, r, "inactive") != "true"
        })
    });
    if known {
        Ok(source)
    } else {
        Err(bad_request(
            &format!("Invalid data source [{source}]"),
            "source must be a choice value of cmdb_ci.discovery_source",
        ))
    }
}

/// A relation to write: (parent, child, type), all sys_ids.
type NewRelation = (String, String, String);

/// The `inbound_relations` / `outbound_relations` of a body, checked: targets are CIs, types
/// are relationship types.
fn requested_relations(
    store: &Store,
    body: &Map<String, Value>,
    ci: &str,
) -> Result<Vec<NewRelation>, ApiResponse> {
    let (Some(cis), Some(types)) = (store.table("cmdb_ci"), store.table("cmdb_rel_type")) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (key, outbound) in [("outbound_relations", true), ("inbound_relations", false)] {
        let Some(list) = body.get(key) else { continue };
        let Some(list) = list.as_array() else {
            return Err(bad_request(&format!("{key} must be a list"), Value::Null));
        };
        for item in list {
            let target = item.get("target").map(field_string).unwrap_or_default();
            let type_id = item.get("type").map(field_string).unwrap_or_default();
            if store.find(cis, &target).is_none() {
                return Err(bad_request(
                    &format!("Invalid target [{target}] in {key}"),
                    "target must be the sys_id of a CI",
                ));
            }
            if store.find(types, &type_id).is_none() {
                return Err(bad_request(
                    &format!("Invalid relation type [{type_id}] in {key}"),
                    "type must be the sys_id of a cmdb_rel_type",
                ));
            }
            let (parent, child) = if outbound {
                (ci.to_owned(), target)
            } else {
                (target, ci.to_owned())
            };
            out.push((parent, child, type_id));
        }
    }
    Ok(out)
}

fn write_relations(store: &mut Store, relations: Vec<NewRelation>, stamp: &Stamp) {
    let Some(rels) = store.table("cmdb_rel_ci") else {
        return;
    };
    for (parent, child, type_id) in relations {
        let fields = vec![
            ("parent".to_owned(), parent),
            ("child".to_owned(), child),
            ("type".to_owned(), type_id),
        ];
        // A new sys_id cannot collide.
        let _ = store.insert(rels, fields, stamp);
    }
}

fn attributes(body: &Map<String, Value>) -> Result<Vec<(String, String)>, ApiResponse> {
    match body.get("attributes") {
        None => Ok(Vec::new()),
        Some(Value::Object(a)) => Ok(string_fields(a)),
        Some(_) => Err(bad_request("attributes must be an object", Value::Null)),
    }
}

fn create(inner: &Inner, req: &ApiRequest<'_>, table: TableId) -> ApiResponse {
    let body = match json_object(req.body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let stamp = Stamp::now(req.user);
    let mut store = inner.write_store();
    let source = match source(&store, &body) {
        Ok(source) => source.to_owned(),
        Err(response) => return response,
    };
    let mut fields = match attributes(&body) {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    for (name, value) in [
        ("first_discovered", &stamp.now),
        ("last_discovered", &stamp.now),
    ] {
        if fields.iter().all(|(k, _)| k != name) {
            fields.push((name.to_owned(), value.clone()));
        }
    }
    fields.retain(|(k, _)| k != "discovery_source");
    fields.push(("discovery_source".to_owned(), source));
    // Relations are checked before anything is written (the target cannot be the new CI).
    if let Err(response) = requested_relations(&store, &body, "") {
        return response;
    }
    let Ok(sys_id) = store.insert(table, fields, &stamp) else {
        return ApiResponse::error(
            StatusCode::FORBIDDEN,
            "Operation Failed",
            "the sys_id is taken",
        );
    };
    let relations = requested_relations(&store, &body, &sys_id).unwrap_or_default();
    write_relations(&mut store, relations, &stamp);
    ci_json(&store, req.base_url, table, &sys_id)
        .map_or_else(ApiResponse::not_found, |ci| ApiResponse::result(&ci))
}

fn update(inner: &Inner, req: &ApiRequest<'_>, table: TableId, sys_id: &str) -> ApiResponse {
    let body = match json_object(req.body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mut store = inner.write_store();
    if let Err(response) = source(&store, &body) {
        return response;
    }
    let fields = match attributes(&body) {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    if store
        .update(table, sys_id, fields, &Stamp::now(req.user))
        .is_none()
    {
        return ApiResponse::not_found();
    }
    ci_json(&store, req.base_url, table, sys_id)
        .map_or_else(ApiResponse::not_found, |ci| ApiResponse::result(&ci))
}

fn add_relations(inner: &Inner, req: &ApiRequest<'_>, table: TableId, sys_id: &str) -> ApiResponse {
    let body = match json_object(req.body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mut store = inner.write_store();
    if store.find(table, sys_id).is_none() {
        return ApiResponse::not_found();
    }
    if let Err(response) = source(&store, &body) {
        return response;
    }
    let relations = match requested_relations(&store, &body, sys_id) {
        Ok(relations) => relations,
        Err(response) => return response,
    };
    write_relations(&mut store, relations, &Stamp::now(req.user));
    ci_json(&store, req.base_url, table, sys_id)
        .map_or_else(ApiResponse::not_found, |ci| ApiResponse::result(&ci))
}

fn delete_relation(inner: &Inner, table: TableId, sys_id: &str, rel: &str) -> ApiResponse {
    let mut store = inner.write_store();
    let Some(rels) = store.table("cmdb_rel_ci") else {
        return ApiResponse::not_found();
    };
    let involves = store.find(table, sys_id).is_some()
        && store.find(rels, rel).is_some_and(|(c, r)| {
            store.value(c, r, "parent") == sys_id || store.value(c, r, "child") == sys_id
        });
    if involves && store.delete(rels, rel) {
        ApiResponse::empty(StatusCode::OK)
    } else {
        ApiResponse::not_found()
    }
}
