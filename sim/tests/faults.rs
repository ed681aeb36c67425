//! Fault injection and request statistics on both simulators, as a client sees them.

mod common;

use cmdb_sim::faults::TRANSACTION_CANCELLED;
use cmdb_sim::{Api, FaultConfig, FaultKind, FaultRule, Sims};
use common::{client, start};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn rule(kind: FaultKind, path: &str) -> FaultRule {
    let mut r = FaultRule::new(kind);
    r.path = path.into();
    r
}

fn one(r: FaultRule) -> FaultConfig {
    FaultConfig::default().with(r)
}

async fn miq(sims: &Sims, path: &str) -> reqwest::Result<reqwest::Response> {
    client()
        .get(format!("{}{path}", sims.manageiq_url()))
        .basic_auth("admin", Some("smartvm"))
        .send()
        .await
}

fn snow(sims: &Sims, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    client()
        .request(method, format!("{}{path}", sims.servicenow_http_url()))
        .basic_auth("admin", Some("admin"))
        .header("Accept", "application/json")
}

#[tokio::test]
async fn error_fires_on_the_matching_page_only_and_only_times_times() {
    let sims = start(3_000).await;
    let mut r = rule(FaultKind::Error, "/api/vms");
    r.query = Some("offset=2000".into());
    r.status = Some(503);
    r.times = Some(1);
    sims.set_faults(Api::ManageIq, one(r));
    let ok = miq(&sims, "/api/vms?offset=1000&limit=1000")
        .await
        .expect("page 2");
    assert_eq!(ok.status().as_u16(), 200);
    let failed = miq(&sims, "/api/vms?offset=2000&limit=1000")
        .await
        .expect("page 3");
    assert_eq!(failed.status().as_u16(), 503);
    let body: Value = failed.json().await.expect("JSON error");
    assert_eq!(body["error"]["kind"], "service_unavailable");
    let retried = miq(&sims, "/api/vms?offset=2000&limit=1000")
        .await
        .expect("page 3 again");
    assert_eq!(retried.status().as_u16(), 200);

    let stats = sims.stats(Api::ManageIq);
    assert_eq!(stats["total"], 3);
    assert_eq!(stats["by_route"]["GET /api/vms"]["by_status"]["503"], 1);
    assert_eq!(stats["by_route"]["GET /api/vms"]["by_status"]["200"], 2);
    assert_eq!(stats["faults"]["error"], 1);
    assert_eq!(sims.faults(Api::ManageIq)["fired"][0], 1);
}

#[tokio::test]
async fn servicenow_rate_limit_answers_429_with_its_headers() {
    let sims = start(20).await;
    let mut r = rule(FaultKind::RateLimit, "/api/now/");
    r.limit = Some(2);
    r.window_secs = 60;
    r.name = Some("cmdb-integration".into());
    sims.set_faults(Api::ServiceNow, one(r));
    let path = "/api/now/table/sys_user?sysparm_limit=1";
    for _ in 0..2 {
        let resp = snow(&sims, reqwest::Method::GET, path)
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.headers()["x-ratelimit-limit"], "2");
    }
    let resp = snow(&sims, reqwest::Method::GET, path)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 429);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("numeric Retry-After");
    assert!((1..=60).contains(&retry_after));
    assert_eq!(resp.headers()["x-ratelimit-rule"], "cmdb-integration");
    assert!(resp.headers().get("x-ratelimit-reset").is_some());
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["error"]["message"], "Rate limit exceeded");
    assert_eq!(body["status"], "failure");
    // The admin routes are neither limited nor counted.
    let stats: Value = client()
        .get(format!("{}/_sim/stats", sims.servicenow_http_url()))
        .send()
        .await
        .expect("GET /_sim/stats")
        .json()
        .await
        .expect("JSON");
    assert_eq!(stats["total"], 3);
    assert_eq!(
        stats["by_route"]["GET /api/now/table/{table}"]["by_status"]["429"],
        1
    );
    assert_eq!(stats["faults"]["rate_limit"], 1);
}

#[tokio::test]
async fn drop_response_creates_the_record_but_resets_the_connection() {
    let sims = start(20).await;
    let mut r = rule(FaultKind::DropResponse, "/api/now/table/incident");
    r.method = Some("POST".into());
    r.times = Some(1);
    sims.set_faults(Api::ServiceNow, one(r));
    let before = sims.servicenow().count("incident");
    let body = json!({"short_description": "disk full", "correlation_id": "cmdb-reconcile-42"});
    let sent = snow(&sims, reqwest::Method::POST, "/api/now/table/incident")
        .json(&body)
        .send()
        .await;
    assert!(
        sent.is_err(),
        "the client must not get the response: {sent:?}"
    );
    assert_eq!(
        sims.servicenow().count("incident"),
        before + 1,
        "yet the record exists"
    );
    // Budget spent: the retry is answered (and duplicates, which is the point).
    let again = snow(&sims, reqwest::Method::POST, "/api/now/table/incident")
        .json(&body)
        .send()
        .await
        .expect("second POST answered");
    assert_eq!(again.status().as_u16(), 201);
    let stats = sims.stats(Api::ServiceNow);
    assert_eq!(stats["faults"]["drop_response"], 1);
    assert_eq!(
        stats["by_route"]["POST /api/now/table/{table}"]["by_status"]["201"],
        2
    );
}

#[tokio::test]
async fn reset_cuts_the_body_and_truncate_ends_in_transaction_cancelled() {
    let sims = start(200).await;
    sims.set_faults(Api::ManageIq, one(rule(FaultKind::Reset, "/api/vms")));
    let resp = miq(&sims, "/api/vms?expand=resources&limit=100")
        .await
        .expect("head arrives");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.bytes().await.is_err(), "body cut by a reset");

    sims.set_faults(
        Api::ServiceNow,
        one(rule(
            FaultKind::Truncate,
            "/api/now/table/cmdb_ci_vmware_instance",
        )),
    );
    let resp = snow(
        &sims,
        reqwest::Method::GET,
        "/api/now/table/cmdb_ci_vmware_instance?sysparm_limit=50",
    )
    .send()
    .await
    .expect("truncated response");
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.expect("whole (truncated) body");
    assert!(
        text.ends_with(TRANSACTION_CANCELLED),
        "{}",
        &text[text.len().saturating_sub(80)..]
    );
    assert!(serde_json::from_str::<Value>(&text).is_err());
}

#[tokio::test]
async fn latency_and_slow_bodies_delay_but_deliver() {
    let sims = start(100).await;
    let mut slow = rule(FaultKind::Latency, "/api/vms");
    slow.latency_ms = 150;
    sims.set_faults(Api::ManageIq, one(slow));
    let t = Instant::now();
    let resp = miq(&sims, "/api/vms?limit=1").await.expect("GET");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(t.elapsed() >= Duration::from_millis(150));

    let mut trickle = rule(FaultKind::SlowBody, "/api/vms");
    trickle.chunk_bytes = Some(4096);
    trickle.chunk_delay_ms = Some(20);
    sims.set_faults(Api::ManageIq, one(trickle));
    let t = Instant::now();
    let page: Value = miq(&sims, "/api/vms?expand=resources&limit=100")
        .await
        .expect("GET")
        .json()
        .await
        .expect("complete JSON");
    assert_eq!(page["subcount"], 100);
    assert!(
        t.elapsed() >= Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn faults_are_set_read_and_cleared_over_http() {
    let sims = start(20).await;
    let admin = format!("{}/_sim/faults", sims.manageiq_url());
    let http = client();
    let rules = json!({"seed": 5, "rules": [{"kind": "error", "path": "/api/vms", "status": 502}]});
    let resp = http
        .post(&admin)
        .json(&rules)
        .send()
        .await
        .expect("POST faults");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        miq(&sims, "/api/vms").await.expect("GET").status().as_u16(),
        502
    );
    let state: Value = http
        .get(&admin)
        .send()
        .await
        .expect("GET faults")
        .json()
        .await
        .expect("JSON");
    assert_eq!(state["seed"], 5);
    assert_eq!(state["rules"][0]["status"], 502);
    assert_eq!(state["fired"][0], 1);

    let bad = http
        .post(&admin)
        .body(r#"[{"kind":"error","statuss":500}]"#)
        .send()
        .await
        .expect("POST bad faults");
    assert_eq!(bad.status().as_u16(), 400);

    let resp = http.delete(&admin).send().await.expect("DELETE faults");
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(
        miq(&sims, "/api/vms").await.expect("GET").status().as_u16(),
        200
    );

    let stats_url = format!("{}/_sim/stats", sims.manageiq_url());
    let resp = http.delete(&stats_url).send().await.expect("DELETE stats");
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(sims.stats(Api::ManageIq)["total"], 0);
}

#[tokio::test]
async fn faults_given_at_start_apply_from_the_first_request() {
    let mut opts = common::options(20);
    let mut r = rule(FaultKind::Error, "/api/now/table/");
    r.method = Some("PATCH".into());
    r.status = Some(500);
    opts.snow_faults = one(r);
    let sims = Sims::start(opts).await.expect("start");
    let ci = sims.servicenow().rows("cmdb_ci_vmware_instance");
    let sys_id = ci[0]["sys_id"].as_str().unwrap_or_default().to_owned();
    let resp = snow(
        &sims,
        reqwest::Method::PATCH,
        &format!("/api/now/table/cmdb_ci_vmware_instance/{sys_id}"),
    )
    .json(&json!({"cpus": "64"}))
    .send()
    .await
    .expect("PATCH");
    assert_eq!(resp.status().as_u16(), 500);
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["status"], "failure");
    let stats = sims.stats(Api::ServiceNow);
    assert_eq!(
        stats["by_route"]["PATCH /api/now/table/{table}/{sys_id}"]["by_status"]["500"],
        1
    );
}
