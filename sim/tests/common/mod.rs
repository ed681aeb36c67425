//! Helpers shared by the simulator's integration tests: starting the
//! simulators, authenticated ManageIQ requests, and the recorded fixtures in
//! `tests/fixtures/manageiq/` of the workspace (one copy, shared with the main package).

#![allow(dead_code)] // each test binary uses a different part of this module

use chrono::{TimeZone, Utc};
use cmdb_sim::{SimOptions, Sims};
use serde_json::Value;
use std::path::PathBuf;

/// A fixed generator clock, so every run sees the same data.
pub fn fixed_now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 8, 0, 0)
        .single()
        .expect("valid date")
}

pub fn options(vms: usize) -> SimOptions {
    SimOptions {
        vms,
        seed: 7,
        now: fixed_now(),
        ..SimOptions::default()
    }
}

pub async fn start(vms: usize) -> Sims {
    Sims::start(options(vms)).await.expect("simulators start")
}

pub fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/manageiq")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading fixture `{}`: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing fixture `{name}`: {e}"))
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("HTTP client")
}

/// GET `path_and_query` on ManageIQ with Basic auth; (status, JSON body).
pub async fn miq_get(sims: &Sims, path_and_query: &str) -> (u16, Value) {
    let url = format!("{}{path_and_query}", sims.manageiq_url());
    let resp = client()
        .get(&url)
        .basic_auth("admin", Some("smartvm"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

pub fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The JSON type of a value, ids (`id`, `*_id`) counted as one type whether
/// integer (older fixtures) or string (CFME 5.9+).
pub fn json_type(key: &str, v: &Value) -> &'static str {
    let is_id = key == "id" || key.ends_with("_id");
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) if is_id => "id",
        Value::String(_) if is_id => "id",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
