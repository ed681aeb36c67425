//! The Service Catalog API's `order_now`, the way a user's click orders an item:
//! `POST /api/sn_sc/servicecatalog/items/{cat_item sys_id}/order_now` (also under
//! `/api/sn_sc/v1/`) with `{"sysparm_quantity": 1, "sysparm_requested_for": "<sys_user
//! sys_id>", "variables": {"<name>": "<value>", ...}}` (integrations.md B.1, docs
//! `c_ServiceCatalogAPI.md`). It creates, as the acting user (`opened_by`, `sys_created_by`):
//!
//! - one `sc_request` (REQ): `requested_for` (the parameter, else the acting user),
//!   `approval` and `request_state` (`requested` / `requested` while the item's approval is
//!   pending, `approved` / `in_process` when it is approved), `stage`, `short_description` =
//!   the item's name;
//! - one `sc_req_item` (RITM) with `request`, `cat_item`, `requested_for`, `quantity`,
//!   `short_description` (the item's, else its name), `state` 1 (Open), `approval` as above,
//!   `stage` `waiting_for_approval` or `fulfillment`;
//! - per active variable of the item (`item_option_new` rows with `cat_item` = the item), one
//!   `sc_item_option` (`item_option_new`, `value` = the one sent, else the variable's
//!   `default_value`, `order`) and one `sc_item_option_mtom` (`request_item`, `sc_item_option`).
//!
//! The item's approval is the simulator's stand-in for its flow: the `sc_cat_item` column
//! `u_sim_approval`, `requested` or else approved. A pending RITM is approved by PATCHing its
//! `approval` through the Table API, as an approver's click would write it.
//!
//! Answer 200 `{"result": {"sys_id", "number", "request_number", "request_id", "table":
//! "sc_request"}}` (the REQ, not the RITM: B.1). Refusals: an invalid quantity (not a whole
//! number of at least 1) is 400 (B.1 "400 means an invalid quantity"; the message is the
//! simulator's); a missing or inactive item is the Table API's 404 (UNVERIFIED for this API);
//! a mandatory variable left empty is 400 "Mandatory Variables are required" (as users report
//! it; UNVERIFIED). Variables the item does not define are ignored (UNVERIFIED).
//!
//! A cart that a two-step checkout would answer with (`cart_id`) is not simulated: the
//! instance behaves as with one-step checkout.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use super::api::{json_object_or_empty, ApiRequest, ApiResponse};
use super::store::{field_string, Stamp, Store};
use super::Inner;

/// `/api/sn_sc[/vN]/servicecatalog/items/{sys_id}/order_now`.
pub(crate) fn handle(inner: &Inner, req: &ApiRequest<'_>, rest: &str) -> ApiResponse {
    let mut segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let is_version = |s: &str| {
        s.strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    if segments.first().is_some_and(|s| is_version(s)) {
        segments.remove(0);
    }
    match segments.as_slice() {
        ["servicecatalog", "items", item, "order_now"] => match req.method {
            Method::POST => order_now(inner, req, item),
            _ => ApiResponse::method_not_allowed(),
        },
        _ => ApiResponse::no_such_resource(),
    }
}

fn bad_request(message: &str) -> ApiResponse {
    ApiResponse::error(StatusCode::BAD_REQUEST, message, Value::Null)
}

/// The quantity asked for: a whole number of at least 1, as a number or a string.
fn quantity(body: &serde_json::Map<String, Value>) -> Option<u64> {
    match body.get("sysparm_quantity") {
        None | Some(Value::Null) => Some(1),
        Some(Value::Number(n)) => n.as_u64().filter(|q| *q >= 1),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok().filter(|q| *q >= 1),
        Some(_) => None,
    }
}

fn order_now(inner: &Inner, req: &ApiRequest<'_>, item_id: &str) -> ApiResponse {
    let body = match json_object_or_empty(req.body) {
        Ok(b) => b,
        Err(response) => return response,
    };
    let Some(quantity) = quantity(&body) else {
        return bad_request(
            "Invalid quantity: sysparm_quantity must be a whole number of at least 1",
        );
    };
    let given: serde_json::Map<String, Value> = match body.get("variables") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(v)) => v.clone(),
        Some(_) => return bad_request("variables must be an object"),
    };
    let stamp = Stamp::now(req.user);
    let mut store = inner.write_store();
    match place(
        &mut store, req.user, item_id, &body, &given, quantity, &stamp,
    ) {
        Ok((sys_id, number)) => ApiResponse::result(&json!({
            "sys_id": sys_id,
            "number": number,
            "request_number": number,
            "request_id": sys_id,
            "table": "sc_request",
        })),
        Err(response) => response,
    }
}

/// One variable definition of the item: sys_id, name, default, mandatory, order.
struct Variable {
    sys_id: String,
    name: String,
    default: String,
    mandatory: bool,
    order: String,
}

fn variables_of(store: &Store, item: &str) -> Vec<Variable> {
    let Some(definitions) = store.table("item_option_new") else {
        return Vec::new();
    };
    let mut list: Vec<Variable> = store
        .rows_where(definitions, "cat_item", item)
        .filter(|(c, r)| store.value(*c, r, "active") != "false")
        .map(|(c, r)| Variable {
            sys_id: store.value(c, r, "sys_id").to_owned(),
            name: store.value(c, r, "name").to_owned(),
            default: store.value(c, r, "default_value").to_owned(),
            mandatory: store.value(c, r, "mandatory") == "true",
            order: store.value(c, r, "order").to_owned(),
        })
        .collect();
    list.sort_by_key(|v| (v.order.parse::<i64>().unwrap_or(0), v.name.clone()));
    list
}

/// Creates the REQ, the RITM and the variables; the REQ's sys_id and number.
fn place(
    store: &mut Store,
    user: &str,
    item_id: &str,
    body: &serde_json::Map<String, Value>,
    given: &serde_json::Map<String, Value>,
    quantity: u64,
    stamp: &Stamp,
) -> Result<(String, String), ApiResponse> {
    let table = |store: &Store, name: &str| {
        store.table(name).ok_or_else(|| {
            ApiResponse::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the instance has no table {name}"),
                Value::Null,
            )
        })
    };
    let items = table(store, "sc_cat_item")?;
    let (class, item) = store
        .find(items, item_id)
        .ok_or_else(ApiResponse::not_found)?;
    if store.value(class, item, "active") == "false" {
        return Err(ApiResponse::not_found());
    }
    let name = store.value(class, item, "name").to_owned();
    let short = store.value(class, item, "short_description").to_owned();
    let approved = store.value(class, item, "u_sim_approval") != "requested";

    let variables = variables_of(store, item_id);
    let value_of = |v: &Variable| {
        given
            .get(&v.name)
            .filter(|x| !x.is_null())
            .map_or_else(|| v.default.clone(), field_string)
    };
    if variables
        .iter()
        .any(|v| v.mandatory && value_of(v).trim().is_empty())
    {
        return Err(bad_request("Mandatory Variables are required"));
    }

    let requested_for = match body.get("sysparm_requested_for").map(field_string) {
        Some(id) if !id.is_empty() => id,
        _ => store
            .user(user)
            .map(|(c, r)| store.value(c, r, "sys_id").to_owned())
            .unwrap_or_default(),
    };
    let (approval, request_state, stage) = if approved {
        ("approved", "in_process", "fulfillment")
    } else {
        ("requested", "requested", "waiting_for_approval")
    };
    let f = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let requests = table(store, "sc_request")?;
    let request = store
        .insert(
            requests,
            f(&[
                ("requested_for", &requested_for),
                ("approval", approval),
                ("request_state", request_state),
                ("stage", stage),
                ("short_description", &name),
            ]),
            stamp,
        )
        .map_err(|_| bad_request("could not create the request"))?;
    let ritms = table(store, "sc_req_item")?;
    let quantity = quantity.to_string();
    let ritm = store
        .insert(
            ritms,
            f(&[
                ("request", &request),
                ("cat_item", item_id),
                ("requested_for", &requested_for),
                ("quantity", &quantity),
                (
                    "short_description",
                    if short.is_empty() { &name } else { &short },
                ),
                ("state", "1"),
                ("approval", approval),
                ("stage", stage),
            ]),
            stamp,
        )
        .map_err(|_| bad_request("could not create the requested item"))?;
    let options = table(store, "sc_item_option")?;
    let links = table(store, "sc_item_option_mtom")?;
    for v in &variables {
        let value = value_of(v);
        let option = store
            .insert(
                options,
                f(&[
                    ("item_option_new", &v.sys_id),
                    ("value", &value),
                    ("order", &v.order),
                ]),
                stamp,
            )
            .map_err(|_| bad_request("could not store a variable"))?;
        store
            .insert(
                links,
                f(&[("request_item", &ritm), ("sc_item_option", &option)]),
                stamp,
            )
            .map_err(|_| bad_request("could not link a variable"))?;
    }
    let number = store
        .find(requests, &request)
        .map(|(c, r)| store.value(c, r, "number").to_owned())
        .unwrap_or_default();
    Ok((request, number))
}
