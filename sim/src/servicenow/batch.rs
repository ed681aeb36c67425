//! The Batch API (`POST /api/now/v1/batch`): many REST calls in one round trip. Item bodies
//! travel base64-encoded; each item runs through the same dispatcher as a direct call, as the
//! batch's caller. Items beyond the configured per-batch budget are not run and come back in
//! `unserviced_requests`, which a client must re-send (as an instance does when a batch hits
//! its time or size quota).

use std::time::Instant;

use axum::http::{Method, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::api::{dispatch, json_object, ApiRequest, ApiResponse};
use super::store::field_string;
use super::Inner;

/// Serves one batch request.
pub(crate) fn handle(inner: &Inner, req: &ApiRequest<'_>) -> ApiResponse {
    let batch = match json_object(req.body) {
        Ok(batch) => batch,
        Err(response) => return response,
    };
    let Some(items) = batch.get("rest_requests").and_then(Value::as_array) else {
        return ApiResponse::error(
            StatusCode::BAD_REQUEST,
            "Exception while reading request",
            "rest_requests is required and must be a list",
        );
    };
    let budget = inner.batch_max_items();
    let mut serviced = Vec::new();
    let mut unserviced = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let id = item.get("id").map(field_string).unwrap_or_default();
        if i < budget {
            serviced.push(run_item(inner, req, item, id));
        } else {
            unserviced.push(Value::String(id));
        }
    }
    ApiResponse::json(
        StatusCode::OK,
        &json!({
            // Always a string: PySNC sends a number and compares with `str(id)`.
            "batch_request_id": batch.get("batch_request_id").map(field_string).unwrap_or_default(),
            "serviced_requests": serviced,
            "unserviced_requests": unserviced,
        }),
    )
}

/// A batch item's call: method, path, query and body.
struct ItemCall {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Vec<u8>,
    content_type: Option<String>,
}

fn bad_item(detail: &str) -> ApiResponse {
    ApiResponse::error(
        StatusCode::BAD_REQUEST,
        "Invalid batch request item",
        detail,
    )
}

fn decode_item(item: &Value) -> Result<ItemCall, ApiResponse> {
    let method = item
        .get("method")
        .and_then(Value::as_str)
        .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
        .ok_or_else(|| bad_item("method is required"))?;
    let url = item
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_item("url is required"))?;
    // Items name a path relative to the instance, but an absolute URL means the same.
    let relative = match url::Url::parse(url) {
        Ok(absolute) => match absolute.query() {
            Some(q) => format!("{}?{q}", absolute.path()),
            None => absolute.path().to_owned(),
        },
        Err(_) => url.to_owned(),
    };
    let (path, query) = relative.split_once('?').unwrap_or((&relative, ""));
    let body = match item.get("body").and_then(Value::as_str) {
        None => Vec::new(),
        Some(encoded) => {
            // Documented examples wrap the base64 text over several lines.
            let compact: String = encoded.split_ascii_whitespace().collect();
            STANDARD
                .decode(compact)
                .map_err(|_| bad_item("body is not valid base64"))?
        }
    };
    let content_type = item
        .get("headers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|h| {
            h.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case("content-type"))
        })
        .and_then(|h| h.get("value").and_then(Value::as_str))
        .map(str::to_owned);
    Ok(ItemCall {
        method,
        content_type,
        path: path.to_owned(),
        query: url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        body,
    })
}

fn run_item(inner: &Inner, outer: &ApiRequest<'_>, item: &Value, id: String) -> Value {
    let started = Instant::now();
    let response = match decode_item(item) {
        Ok(call) => dispatch(
            inner,
            &ApiRequest {
                method: call.method,
                path: &call.path,
                query: call.query,
                body: &call.body,
                content_type: call.content_type.as_deref(),
                user: outer.user,
                base_url: outer.base_url,
            },
            true,
        ),
        Err(response) => response,
    };
    let exclude_headers = item.get("exclude_response_headers").is_some_and(|v| {
        v.as_bool().unwrap_or(false) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
    });
    let headers: Vec<Value> = if exclude_headers {
        Vec::new()
    } else {
        let content_type = response.body_type().map(|t| ("Content-Type", t.to_owned()));
        content_type
            .into_iter()
            .chain(response.headers.iter().cloned())
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect()
    };
    json!({
        "id": id,
        "status_code": response.status.as_u16(),
        "status_text": response.status.canonical_reason().unwrap_or(""),
        "headers": headers,
        "body": STANDARD.encode(response.body.as_deref().unwrap_or_default()),
        "execution_time": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servicenow::{ServiceNow, SnowConfig};
    use serde_json::Map;

    fn snow_with_vms(n: usize) -> (ServiceNow, Vec<String>) {
        let snow = ServiceNow::new(SnowConfig::default());
        let rows = (0..n)
            .map(|i| {
                let mut row = Map::new();
                row.insert("name".into(), json!(format!("vm{i}")));
                row
            })
            .collect();
        snow.seed("cmdb_ci_vmware_instance", rows);
        let ids = snow
            .rows("cmdb_ci_vmware_instance")
            .iter()
            .map(|r| r["sys_id"].as_str().unwrap_or_default().to_owned())
            .collect();
        (snow, ids)
    }

    fn post_batch(snow: &ServiceNow, batch: &Value) -> Value {
        let body = serde_json::to_vec(batch).expect("json");
        let req = ApiRequest {
            method: Method::POST,
            path: "/api/now/v1/batch",
            query: Vec::new(),
            body: &body,
            content_type: Some("application/json"),
            user: "admin",
            base_url: "https://127.0.0.1:1",
        };
        let response = dispatch(&snow.inner, &req, false);
        assert_eq!(response.status, StatusCode::OK);
        response.json_body()
    }

    fn item(id: &str, method: &str, url: &str, body: Option<Value>) -> Value {
        let mut item = json!({
            "id": id,
            "method": method,
            "url": url,
            "headers": [{"name": "Content-Type", "value": "application/json"}],
        });
        if let Some(body) = body {
            item["body"] = json!(STANDARD.encode(body.to_string()));
        }
        item
    }

    fn decoded_body(item: &Value) -> Value {
        let bytes = STANDARD
            .decode(item["body"].as_str().expect("a body"))
            .expect("base64");
        serde_json::from_slice(&bytes).expect("json")
    }

    fn header<'a>(item: &'a Value, name: &str) -> Option<&'a str> {
        item["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .find(|h| h["name"] == name)
            .and_then(|h| h["value"].as_str())
    }

    #[test]
    fn items_run_like_direct_calls() {
        let (snow, ids) = snow_with_vms(3);
        let response = post_batch(
            &snow,
            &json!({
                "batch_request_id": 7,
                "rest_requests": [
                    item("patch", "PATCH", &format!("/api/now/table/cmdb_ci_vmware_instance/{}?sysparm_display_value=all", ids[0]), Some(json!({"cpus": 4}))),
                    item("list", "GET", "/api/now/table/cmdb_ci_vmware_instance?sysparm_limit=2&sysparm_suppress_pagination_header=true", None),
                    item("post", "POST", "/api/now/v2/table/cmdb_ci_vmware_instance", Some(json!({"name": "vm9"}))),
                    item("delete", "DELETE", &format!("/api/now/table/cmdb_ci_vmware_instance/{}", ids[1]), None),
                    item("missing", "GET", "/api/now/table/cmdb_ci_vmware_instance/0123", None),
                ],
            }),
        );
        assert_eq!(response["batch_request_id"], "7");
        assert_eq!(response["unserviced_requests"], json!([]));
        let items = response["serviced_requests"].as_array().expect("items");
        let statuses: Vec<(&str, u64, &str)> = items
            .iter()
            .map(|i| {
                (
                    i["id"].as_str().unwrap_or_default(),
                    i["status_code"].as_u64().unwrap_or_default(),
                    i["status_text"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            statuses,
            vec![
                ("patch", 200, "OK"),
                ("list", 200, "OK"),
                ("post", 201, "Created"),
                ("delete", 204, "No Content"),
                ("missing", 404, "Not Found"),
            ]
        );
        let patched = decoded_body(&items[0]);
        assert_eq!(
            patched["result"]["cpus"],
            json!({"display_value": "4", "value": "4"})
        );
        assert_eq!(patched["result"]["sys_mod_count"]["value"], "1");
        assert_eq!(header(&items[1], "X-Total-Count"), Some("3"));
        assert_eq!(header(&items[1], "Link"), None);
        assert_eq!(
            decoded_body(&items[1])["result"].as_array().map(Vec::len),
            Some(2)
        );
        let location = header(&items[2], "Location").expect("a location");
        assert!(location.starts_with("https://127.0.0.1:1/api/now/table/cmdb_ci_vmware_instance/"));
        assert_eq!(items[3]["body"], "");
        assert_eq!(
            decoded_body(&items[4])["error"]["message"],
            "No Record found"
        );
        // The writes happened.
        assert_eq!(
            snow.get("cmdb_ci_vmware_instance", &ids[0]).expect("row")["cpus"],
            "4"
        );
        assert!(snow.get("cmdb_ci_vmware_instance", &ids[1]).is_none());
        assert_eq!(snow.count("cmdb_ci_vmware_instance"), 3);
    }

    #[test]
    fn items_beyond_the_budget_are_unserviced_until_re_sent() {
        let (snow, ids) = snow_with_vms(3);
        snow.set_batch_max_items(Some(2));
        let patch = |id: &str, sys_id: &str| {
            item(
                id,
                "PATCH",
                &format!("/api/now/table/cmdb_ci_vmware_instance/{sys_id}"),
                Some(json!({"state": "off"})),
            )
        };
        let all: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(i, s)| patch(&i.to_string(), s))
            .collect();
        let first = post_batch(
            &snow,
            &json!({"batch_request_id": "1", "rest_requests": all}),
        );
        assert_eq!(first["serviced_requests"].as_array().map(Vec::len), Some(2));
        assert_eq!(first["unserviced_requests"], json!(["2"]));
        assert_eq!(
            snow.get("cmdb_ci_vmware_instance", &ids[2]).expect("row")["state"],
            ""
        );
        let again = post_batch(
            &snow,
            &json!({"batch_request_id": "2", "rest_requests": [all[2].clone()]}),
        );
        assert_eq!(again["serviced_requests"][0]["id"], "2");
        assert_eq!(again["unserviced_requests"], json!([]));
        assert_eq!(
            snow.get("cmdb_ci_vmware_instance", &ids[2]).expect("row")["state"],
            "off"
        );
        snow.set_batch_max_items(None);
        let unlimited = post_batch(
            &snow,
            &json!({"batch_request_id": "3", "rest_requests": all}),
        );
        assert_eq!(
            unlimited["serviced_requests"].as_array().map(Vec::len),
            Some(3)
        );
    }

    #[test]
    fn bad_items_fail_alone() {
        let (snow, _) = snow_with_vms(1);
        let mut no_headers = item(
            "quiet",
            "GET",
            "/api/now/table/cmdb_ci_vmware_instance",
            None,
        );
        no_headers["exclude_response_headers"] = json!(true);
        let mut bad_base64 = item("b64", "POST", "/api/now/table/t", None);
        bad_base64["body"] = json!("%%%");
        let response = post_batch(
            &snow,
            &json!({
                "rest_requests": [
                    item("nested", "POST", "/api/now/v1/batch", Some(json!({"rest_requests": []}))),
                    bad_base64,
                    json!({"id": "nourl", "method": "GET"}),
                    item("nowhere", "GET", "/api/global/user_role_inheritance", None),
                    item("abs", "GET", "https://elsewhere.example/api/now/table/cmdb_ci_vmware_instance?sysparm_limit=1", None),
                    no_headers,
                ],
            }),
        );
        assert_eq!(response["batch_request_id"], "");
        let codes: Vec<u64> = response["serviced_requests"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["status_code"].as_u64().unwrap_or_default())
            .collect();
        assert_eq!(codes, vec![400, 400, 400, 400, 200, 200]);
        assert_eq!(response["serviced_requests"][5]["headers"], json!([]));
        let refused = dispatch(
            &snow.inner,
            &ApiRequest {
                method: Method::POST,
                path: "/api/now/batch",
                query: Vec::new(),
                body: b"{}",
                content_type: None,
                user: "admin",
                base_url: "http://x",
            },
            false,
        );
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    }
}
