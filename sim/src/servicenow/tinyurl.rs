//! Tiny URLs: `POST /api/now/tinyurl` with `{"url": "<page>?<query>"}` keeps the query in
//! `sys_tiny_url` and answers `{"result": "<page>?sysparm_tiny=<id>"}`; a Table API list given
//! `sysparm_tiny=<id>` reads the kept query's parameters as if they had been sent.
//!
//! Sources: no ServiceNow document describes this REST resource. Its shape is that of the
//! instance's own UI scripts (GlideNavigation and list widgets POST `{url}` to
//! `/api/now/tinyurl` and open `response.result`, or read its `sysparm_tiny` parameter); the
//! `sys_tiny_url` columns (`tiny_url`, `data`, `data_hash`) are those community scripts read
//! and write; ids look like the docs' example `sysparm_tiny=7ea02c4ff8a8b510f877c74d78b60460`
//! (StandaloneClientMethods.md). Assumptions: the status (200), re-using the id of an
//! identical query, and that the Table API honours `sysparm_tiny` as UI pages do.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::api::{json_object, ApiRequest, ApiResponse};
use super::store::{new_sys_id, stable_sys_id, Stamp};
use super::Inner;

/// Serves `POST /api/now/tinyurl`.
pub(crate) fn create(inner: &Inner, req: &ApiRequest<'_>) -> ApiResponse {
    let body = match json_object(req.body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(url) = body.get("url").and_then(Value::as_str) else {
        return ApiResponse::error(
            StatusCode::BAD_REQUEST,
            "Exception while reading request",
            "url is required",
        );
    };
    let (page, data) = url.split_once('?').unwrap_or((url, ""));
    let hash = stable_sys_id(data);
    let mut store = inner.write_store();
    let Some(table) = store.table("sys_tiny_url") else {
        return ApiResponse::no_such_resource();
    };
    let existing = store
        .rows_where(table, "data_hash", &hash)
        .find(|(class, row)| store.value(*class, row, "data") == data)
        .map(|(class, row)| store.value(class, row, "tiny_url").to_owned());
    let id = match existing {
        Some(id) => id,
        None => {
            let id = new_sys_id();
            let fields = vec![
                ("tiny_url".to_owned(), id.clone()),
                ("data".to_owned(), data.to_owned()),
                ("data_hash".to_owned(), hash),
            ];
            if store.insert(table, fields, &Stamp::now(req.user)).is_err() {
                return ApiResponse::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Operation Failed",
                    Value::Null,
                );
            }
            id
        }
    };
    ApiResponse::result(&json!(format!("{page}?sysparm_tiny={id}")))
}

/// The request with the parameters of its `sysparm_tiny` added (those it sends itself win);
/// `None` when it names no tiny URL, or one the instance does not have.
pub(crate) fn expand<'a>(inner: &Inner, req: &ApiRequest<'a>) -> Option<ApiRequest<'a>> {
    let id = req.param("sysparm_tiny")?;
    let data = {
        let store = inner.read_store();
        let table = store.table("sys_tiny_url")?;
        let (class, row) = store.rows_where(table, "tiny_url", id).next()?;
        store.value(class, row, "data").to_owned()
    };
    let mut query: Vec<(String, String)> = req
        .query
        .iter()
        .filter(|(k, _)| k != "sysparm_tiny")
        .cloned()
        .collect();
    for (k, v) in url::form_urlencoded::parse(data.as_bytes()).into_owned() {
        if query.iter().all(|(have, _)| *have != k) {
            query.push((k, v));
        }
    }
    Some(ApiRequest {
        method: req.method.clone(),
        path: req.path,
        query,
        body: req.body,
        content_type: req.content_type,
        user: req.user,
        base_url: req.base_url,
    })
}
