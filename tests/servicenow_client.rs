//! The live ServiceNow connector over real HTTP against the simulator on 127.0.0.1: complete
//! concurrent reads, authentication (Basic, OAuth grants, token renewal), TLS, retries under
//! injected faults, single-record writes, identity lookups, `IN` chunks, the Batch API's
//! re-sends and timeouts. Every test checks data, not just the absence of an error.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures, write files and read the clock"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cmdb_reconcile::net::{ErrorKind, HttpSettings, RetryPolicy, Secret};
use cmdb_reconcile::reconcile::record::Ci;
use cmdb_reconcile::servicenow::{
    escape_query_value, BatchRequest, ServiceNow, ServiceNowConfig, SnAuth,
};
use cmdb_sim::{Api, FaultConfig, FaultKind, FaultRule, SimOptions, Sims};
use serde_json::{json, Map, Value};

const VMS: &str = "cmdb_ci_vmware_instance";
const TABLE_ROUTE: &str = "GET /api/now/table/{table}";
const TOKEN_ROUTE: &str = "POST /oauth_token.do";
const BATCH_ROUTE: &str = "POST /api/now/v1/batch";

async fn start(opts: SimOptions) -> Sims {
    Sims::start(opts).await.expect("simulators start")
}

async fn sims() -> Sims {
    start(SimOptions {
        vms: 300,
        ..SimOptions::default()
    })
    .await
}

fn basic(sims: &Sims) -> SnAuth {
    SnAuth::Basic {
        user: sims.options().snow_user.clone(),
        password: Secret::new(sims.options().snow_password.clone()),
    }
}

fn oauth(sims: &Sims, with_user: bool) -> SnAuth {
    let o = sims.options();
    SnAuth::OAuth {
        client_id: o.snow_client_id.clone(),
        client_secret: Secret::new(o.snow_client_secret.clone()),
        user: with_user.then(|| o.snow_user.clone()),
        password: with_user.then(|| Secret::new(o.snow_password.clone())),
    }
}

/// Small pages so that 300 VMs span several; fast retries so that the suite stays quick.
fn config(url: String, auth: SnAuth) -> ServiceNowConfig {
    let mut cfg = ServiceNowConfig::new(url, auth);
    cfg.page_size = 50;
    cfg.concurrency = 4;
    cfg.http = HttpSettings {
        timeout: Duration::from_secs(10),
        ..HttpSettings::default()
    };
    cfg.retry = RetryPolicy {
        max_attempts: 4,
        max_rate_limited_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    };
    cfg
}

fn client(cfg: ServiceNowConfig) -> ServiceNow {
    ServiceNow::new(cfg).expect("client builds")
}

fn basic_client(sims: &Sims) -> ServiceNow {
    client(config(sims.servicenow_url(), basic(sims)))
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn text(row: &Map<String, Value>, field: &str) -> String {
    match row.get(field) {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The store's rows by sys_id.
fn store_rows(sims: &Sims, table: &str) -> BTreeMap<String, Map<String, Value>> {
    sims.servicenow()
        .rows(table)
        .into_iter()
        .map(|row| (text(&row, "sys_id"), row))
        .collect()
}

fn route_total(sims: &Sims, route: &str) -> u64 {
    sims.stats(Api::ServiceNow)["by_route"][route]["total"]
        .as_u64()
        .unwrap_or(0)
}

fn status_total(sims: &Sims, status: u16) -> u64 {
    sims.stats(Api::ServiceNow)["by_status"][status.to_string()]
        .as_u64()
        .unwrap_or(0)
}

fn fault_total(sims: &Sims, fault: &str) -> u64 {
    sims.stats(Api::ServiceNow)["faults"][fault]
        .as_u64()
        .unwrap_or(0)
}

fn rule(kind: FaultKind, path: &str) -> FaultRule {
    FaultRule {
        path: path.to_owned(),
        ..FaultRule::new(kind)
    }
}

/// Asserts that the read returned exactly the store's rows with exactly `fields`.
fn assert_matches_store(cis: &[Ci], sims: &Sims, table: &str, fields: &[String]) {
    let store = store_rows(sims, table);
    assert_eq!(cis.len(), store.len(), "row count");
    let ids: BTreeSet<&str> = cis.iter().map(|c| c.sys_id.as_str()).collect();
    assert_eq!(ids.len(), cis.len(), "sys_ids are distinct");
    let sorted: Vec<&str> = cis.iter().map(|c| c.sys_id.as_str()).collect();
    assert!(
        sorted.windows(2).all(|w| w[0] < w[1]),
        "rows in sys_id order"
    );
    for ci in cis {
        let row = store
            .get(&ci.sys_id)
            .unwrap_or_else(|| panic!("{} not in store", ci.sys_id));
        let keys: BTreeSet<&str> = ci.fields.keys().map(|k| &**k).collect();
        let wanted: BTreeSet<&str> = fields.iter().map(String::as_str).collect();
        assert_eq!(keys, wanted, "only the requested fields");
        for field in fields {
            assert_eq!(ci.get(field), text(row, field), "{} {field}", ci.sys_id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_read_equals_the_store_and_pages_concurrently() {
    let sims = sims().await;
    let total = sims.servicenow().count(VMS);
    assert!(total > 200, "{total} VMs");
    // Nine pages: the first alone (for the total), then eight, four at a time.
    let page_size = total.div_ceil(9);
    let mut latency = rule(FaultKind::Latency, "/api/now/table/");
    latency.latency_ms = 300;
    sims.set_faults(Api::ServiceNow, FaultConfig::default().with(latency));
    let mut cfg = config(sims.servicenow_url(), basic(&sims));
    cfg.page_size = page_size;
    let sn = client(cfg);
    let fields = strings(&["name", "cpus", "owned_by", "install_status", "ip_address"]);
    let started = Instant::now();
    let cis = sn.read_table(VMS, &fields, None).await.expect("read");
    let elapsed = started.elapsed();

    assert_matches_store(&cis, &sims, VMS, &fields);
    // References arrive as bare sys_ids of sys_user rows.
    let users = store_rows(&sims, "sys_user");
    let owners: Vec<&str> = cis
        .iter()
        .map(|c| c.get("owned_by"))
        .filter(|o| !o.is_empty())
        .collect();
    assert!(!owners.is_empty());
    assert!(owners.iter().all(|o| users.contains_key(*o)), "{owners:?}");
    // Nine pages (or eight), no re-read; 300 ms each: one, then two waves of four, rather
    // than nine in a row.
    let pages = total.div_ceil(page_size) as u64;
    assert!((8..=9).contains(&pages), "{pages}");
    assert_eq!(route_total(&sims, TABLE_ROUTE), pages);
    assert_eq!(sn.requests_sent(), pages);
    // Pages overlapped at the server, within the configured concurrency (timing nothing).
    let in_flight = sims.stats(Api::ServiceNow)["max_in_flight"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        (2..=4).contains(&in_flight),
        "{in_flight} pages at once ({elapsed:?})"
    );
}

#[tokio::test]
async fn queries_filter_and_no_fields_means_sys_ids_only() {
    let sims = sims().await;
    let sn = basic_client(&sims);
    let store = store_rows(&sims, VMS);
    let retired: BTreeSet<String> = store
        .iter()
        .filter(|(_, r)| text(r, "install_status") == "7")
        .map(|(id, _)| id.clone())
        .collect();
    assert!(!retired.is_empty());
    // The caller's ORDERBY is replaced by sys_id order; `^NQ` groups keep their meaning.
    let cis = sn
        .read_table(VMS, &[], Some("install_status=7^ORDERBYDESCname"))
        .await
        .expect("read");
    let got: BTreeSet<String> = cis.iter().map(|c| c.sys_id.clone()).collect();
    assert_eq!(got, retired);
    assert!(cis.iter().all(|c| c.fields.is_empty()));
    let some_name = store
        .values()
        .find(|r| text(r, "install_status") != "7")
        .map(|r| text(r, "name"))
        .expect("an installed VM");
    let either = sn
        .read_table(
            VMS,
            &strings(&["name"]),
            Some(&format!(
                "install_status=7^NQname={}",
                escape_query_value(&some_name)
            )),
        )
        .await
        .expect("read");
    let expected: BTreeSet<&str> = store
        .iter()
        .filter(|(_, r)| text(r, "install_status") == "7" || text(r, "name") == some_name)
        .map(|(id, _)| id.as_str())
        .collect();
    let got: BTreeSet<&str> = either.iter().map(|c| c.sys_id.as_str()).collect();
    assert_eq!(got, expected);
    assert!(expected.len() > retired.len());
}

#[tokio::test]
async fn basic_and_both_oauth_grants_act_as_their_user() {
    let sims = sims().await;
    let o = sims.options().clone();
    for (auth, acting, tokens) in [
        (basic(&sims), o.snow_user.clone(), 0),
        (oauth(&sims, true), o.snow_user.clone(), 1),
        (oauth(&sims, false), o.snow_client_id.clone(), 1),
    ] {
        sims.reset_stats(Api::ServiceNow);
        let sn = client(config(sims.servicenow_url(), auth));
        // A multi-page read (pages in parallel) and a write share one token.
        let cis = sn
            .read_table(VMS, &strings(&["name"]), None)
            .await
            .expect("read");
        assert_eq!(cis.len(), sims.servicenow().count(VMS));
        let created = sn
            .create(VMS, &pairs(&[("name", "auth-probe")]))
            .await
            .expect("create");
        assert_eq!(created.get("sys_created_by"), acting);
        assert_eq!(route_total(&sims, TOKEN_ROUTE), tokens);
        assert_eq!(status_total(&sims, 401), 0);
        assert_eq!(sn.requests_sent(), sims.stats(Api::ServiceNow)["total"]);
    }
}

#[tokio::test]
async fn tokens_are_renewed_before_expiry_and_once_when_refused() {
    let sims = start(SimOptions {
        vms: 20,
        snow_token_ttl_secs: 1,
        ..SimOptions::default()
    })
    .await;
    let sn = client(config(sims.servicenow_url(), oauth(&sims, true)));
    let id = store_rows(&sims, VMS).into_keys().next().expect("a VM");
    let name = strings(&["name"]);
    assert!(sn.get(VMS, &id, &name).await.expect("get").is_some());
    // Past 90% of the 1 s lifetime: renewed before use, so the instance never says 401.
    tokio::time::sleep(Duration::from_millis(950)).await;
    assert!(sn.get(VMS, &id, &name).await.expect("get").is_some());
    assert_eq!(route_total(&sims, TOKEN_ROUTE), 2);
    assert_eq!(status_total(&sims, 401), 0);

    // A token the instance refuses anyway is renewed once and the call goes through.
    let mut refuse = rule(FaultKind::Error, "/api/now/table/");
    refuse.status = Some(401);
    refuse.times = Some(1);
    sims.set_faults(Api::ServiceNow, FaultConfig::default().with(refuse));
    sims.reset_stats(Api::ServiceNow);
    let row = sn
        .update(VMS, &id, &pairs(&[("cpus", "12")]))
        .await
        .expect("update after renewal");
    assert_eq!(row.get("cpus"), "12");
    assert_eq!(route_total(&sims, TOKEN_ROUTE), 1);
    assert_eq!(status_total(&sims, 401), 1);
    assert_eq!(
        text(&sims.servicenow().get(VMS, &id).expect("row"), "cpus"),
        "12"
    );
}

#[tokio::test]
async fn bad_credentials_give_one_clear_error_without_the_secret() {
    let sims = sims().await;
    let wrong = "wrong-pw-7f3a";
    let sn = client(config(
        sims.servicenow_url(),
        SnAuth::Basic {
            user: sims.options().snow_user.clone(),
            password: Secret::new(wrong),
        },
    ));
    let err = sn
        .read_table(VMS, &strings(&["name"]), None)
        .await
        .expect_err("refused");
    let shown = err.to_string();
    assert_eq!(err.status, Some(401));
    assert!(shown.starts_with(&format!(
        "GET {}/api/now/table/{VMS}?",
        sims.servicenow_url()
    )));
    assert!(shown.contains("User Not Authenticated"), "{shown}");
    assert!(!shown.contains(wrong) && !format!("{err:?}").contains(wrong));
    assert_eq!(sn.requests_sent(), 1, "a 401 is not retried");

    let secret = "client-secret-9c1e";
    let sn = client(config(
        sims.servicenow_url(),
        SnAuth::OAuth {
            client_id: sims.options().snow_client_id.clone(),
            client_secret: Secret::new(secret),
            user: None,
            password: None,
        },
    ));
    let err = sn.get(VMS, "whatever", &[]).await.expect_err("refused");
    let shown = err.to_string();
    assert_eq!(
        shown,
        format!(
            "POST {}/oauth_token.do: 401 Unauthorized: server_error: access_denied",
            sims.servicenow_url()
        )
    );
    assert!(!format!("{err:?}").contains(secret));
    assert_eq!(sn.requests_sent(), 1);
}

#[tokio::test]
async fn https_works_with_the_instance_ca_and_fails_without_it() {
    let sims = sims().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sims.ca_pem().expect("a CA")).expect("CA written");
    let url = sims.servicenow_https_url();
    assert!(url.starts_with("https://"));

    let mut cfg = config(url.clone(), basic(&sims));
    cfg.http.ca_file = Some(ca);
    let cis = client(cfg)
        .read_table(VMS, &strings(&["name"]), None)
        .await
        .expect("read over TLS");
    assert_matches_store(&cis, &sims, VMS, &strings(&["name"]));

    let mut cfg = config(url.clone(), basic(&sims));
    cfg.retry.max_attempts = 1;
    let err = client(cfg)
        .read_table(VMS, &strings(&["name"]), None)
        .await
        .expect_err("an unknown CA is refused");
    // Not retried: an untrusted certificate stays untrusted.
    assert_eq!(err.kind, ErrorKind::Tls, "{err}");
    assert!(err.url.starts_with(&url), "{err}");
    assert!(err.message.to_lowercase().contains("certificate"), "{err}");
    // What to do about it: trust the CA that signed it.
    assert!(err.message.contains("`ca_file`"), "{err}");
}

#[tokio::test]
async fn rate_limits_gateway_errors_and_cut_bodies_are_retried_to_a_complete_read() {
    let sims = sims().await;
    let mut limit = rule(FaultKind::RateLimit, "/api/now/table/");
    limit.limit = Some(3);
    limit.window_secs = 1;
    limit.retry_after_secs = Some(1);
    let mut unavailable = rule(FaultKind::Error, "/api/now/table/");
    unavailable.status = Some(503);
    unavailable.times = Some(2);
    let mut cut = rule(FaultKind::Truncate, "/api/now/table/");
    cut.query = Some("sysparm_offset=150".into());
    cut.times = Some(1);
    sims.set_faults(
        Api::ServiceNow,
        FaultConfig::default()
            .with(limit)
            .with(unavailable)
            .with(cut),
    );
    let mut cfg = config(sims.servicenow_url(), basic(&sims));
    cfg.retry.max_attempts = 8;
    let sn = client(cfg);
    let fields = strings(&["name", "state", "owned_by"]);
    let started = Instant::now();
    let cis = sn
        .read_table(VMS, &fields, None)
        .await
        .expect("complete read");
    assert_matches_store(&cis, &sims, VMS, &fields);
    assert!(fault_total(&sims, "rate_limit") >= 1);
    assert_eq!(fault_total(&sims, "error"), 2);
    assert_eq!(fault_total(&sims, "truncate"), 1);
    // The 429s asked for a 1 s pause, and got it.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(status_total(&sims, 429), fault_total(&sims, "rate_limit"));
}

#[tokio::test]
async fn a_page_that_always_fails_fails_the_read() {
    let sims = sims().await;
    let mut broken = rule(FaultKind::Error, "/api/now/table/");
    broken.status = Some(503);
    broken.query = Some("sysparm_offset=100".into());
    sims.set_faults(Api::ServiceNow, FaultConfig::default().with(broken));
    let sn = basic_client(&sims);
    let err = sn
        .read_table(VMS, &strings(&["name"]), None)
        .await
        .expect_err("incomplete read");
    assert_eq!(err.status, Some(503));
    assert!(err.url.contains("sysparm_offset=100"), "{err}");
    assert!(err.message.contains("Simulated fault"), "{err}");
    assert_eq!(fault_total(&sims, "error"), 4, "tried max_attempts times");
}

#[tokio::test]
async fn a_table_changing_mid_read_is_read_again_by_key() {
    let sims = sims().await;
    let mut slow = rule(FaultKind::Latency, "/api/now/table/");
    slow.query = Some("sysparm_offset=100".into());
    slow.latency_ms = 400;
    sims.set_faults(Api::ServiceNow, FaultConfig::default().with(slow));
    let sn = basic_client(&sims);
    let first = store_rows(&sims, VMS).into_keys().next().expect("a VM");
    let reader = {
        let sn = sn.clone();
        tokio::spawn(async move { sn.read_table(VMS, &strings(&["name"]), None).await })
    };
    // The first page is long read; deleting its first row shifts every later offset page.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(sims.servicenow().delete_row(VMS, &first));
    let cis = reader.await.expect("joined").expect("read");
    assert_matches_store(&cis, &sims, VMS, &strings(&["name"]));
    assert!(cis.iter().all(|c| c.sys_id != first));
    let pages = sims.servicenow().count(VMS).div_ceil(50) as u64;
    assert!(
        route_total(&sims, TABLE_ROUTE) > pages + 1,
        "a second pass ran"
    );
}

#[tokio::test]
async fn writes_round_trip_through_the_store_with_one_attempt_each() {
    let sims = sims().await;
    let sn = basic_client(&sims);
    let before = sims.servicenow().count(VMS);
    let created = sn
        .create(
            VMS,
            &pairs(&[
                ("name", "vm-new"),
                ("cpus", "2"),
                ("discovery_source", "CloudForms"),
            ]),
        )
        .await
        .expect("create");
    assert_eq!(created.sys_id.len(), 32);
    assert_eq!(created.get("name"), "vm-new");
    assert_eq!(created.get("sys_mod_count"), "0");
    let stored = sims.servicenow().get(VMS, &created.sys_id).expect("stored");
    assert_eq!(text(&stored, "cpus"), "2");
    assert_eq!(text(&stored, "discovery_source"), "CloudForms");

    let updated = sn
        .update(
            VMS,
            &created.sys_id,
            &pairs(&[("cpus", "8"), ("state", "off")]),
        )
        .await
        .expect("update");
    assert_eq!((updated.get("cpus"), updated.get("state")), ("8", "off"));
    assert_eq!(updated.get("sys_mod_count"), "1");
    let read = sn
        .get(VMS, &created.sys_id, &strings(&["cpus", "name"]))
        .await
        .expect("get")
        .expect("found");
    assert_eq!((read.get("cpus"), read.get("name")), ("8", "vm-new"));

    sn.delete(VMS, &created.sys_id).await.expect("delete");
    assert!(sims.servicenow().get(VMS, &created.sys_id).is_none());
    assert_eq!(sims.servicenow().count(VMS), before);
    sn.delete(VMS, &created.sys_id)
        .await
        .expect("already gone counts as deleted");
    assert_eq!(sn.get(VMS, &created.sys_id, &[]).await.expect("get"), None);
    let missing = sn
        .update(VMS, &created.sys_id, &pairs(&[("cpus", "1")]))
        .await
        .expect_err("no such record");
    assert_eq!(missing.status, Some(404));
    assert!(missing.message.contains("No Record found"), "{missing}");

    // Writes are not retried: a 503 comes back after one request, and nothing was created.
    let mut unavailable = rule(FaultKind::Error, "/api/now/table/");
    unavailable.status = Some(503);
    unavailable.method = Some("POST".into());
    sims.set_faults(Api::ServiceNow, FaultConfig::default().with(unavailable));
    let sent = sn.requests_sent();
    let err = sn
        .create(VMS, &pairs(&[("name", "vm-never")]))
        .await
        .expect_err("503");
    assert_eq!(err.status, Some(503));
    assert_eq!(sn.requests_sent(), sent + 1);
    assert_eq!(sims.servicenow().count(VMS), before);
}

#[tokio::test]
async fn find_matches_values_with_carets_literally() {
    let sims = sims().await;
    let store = store_rows(&sims, VMS);
    let mut ids = store.keys();
    let (caret, decoy) = (ids.next().expect("a VM"), ids.next().expect("a VM"));
    let set = |id: &str, name: &str| {
        let fields = json!({"name": name, "ip_address": "10.9.9.9"});
        let Value::Object(fields) = fields else {
            unreachable!()
        };
        assert!(sims.servicenow().update_row(VMS, id, fields));
    };
    set(caret, "web^ORname=db");
    // Unescaped, `name=web^ORname=db` would find these two instead.
    set(decoy, "web");
    set(ids.next().expect("a VM"), "db");
    let sn = basic_client(&sims);
    let found = sn
        .find(
            VMS,
            &pairs(&[("name", "web^ORname=db"), ("ip_address", "10.9.9.9")]),
            &strings(&["name"]),
        )
        .await
        .expect("find");
    let ids: Vec<&str> = found.iter().map(|c| c.sys_id.as_str()).collect();
    assert_eq!(ids, [caret.as_str()]);
    assert_eq!(found[0].get("name"), "web^ORname=db");
    let none = sn
        .find(VMS, &pairs(&[("name", "web^ORname=nothing")]), &[])
        .await
        .expect("find");
    assert!(none.is_empty());
}

#[tokio::test]
async fn read_where_in_chunks_long_value_lists() {
    let sims = sims().await;
    let store = store_rows(&sims, VMS);
    let wanted: Vec<String> = store.keys().take(250).cloned().collect();
    let mut values = wanted.clone();
    values.push("0000000000000000000000000000dead".into());
    values.push(wanted[0].clone());
    values.push("  ".into());
    // Pages larger than a chunk, so that requests count chunks.
    let mut cfg = config(sims.servicenow_url(), basic(&sims));
    cfg.page_size = 1000;
    let sn = client(cfg);
    let cis = sn
        .read_where_in(VMS, "sys_id", &values, &strings(&["name"]))
        .await
        .expect("read");
    let got: Vec<&str> = cis.iter().map(|c| c.sys_id.as_str()).collect();
    assert_eq!(got, wanted.iter().map(String::as_str).collect::<Vec<_>>());
    for ci in &cis {
        assert_eq!(ci.get("name"), text(&store[&ci.sys_id], "name"));
    }
    // 251 distinct values: three IN queries of at most 100.
    assert_eq!(route_total(&sims, TABLE_ROUTE), 3);

    // Values with a comma (which IN would split) or a caret still match exactly.
    let odd = json!({"sys_id": "00000000000000000000000000000abc", "email": "o,neil^x@example.com", "user_name": "oneil"});
    let Value::Object(odd) = odd else {
        unreachable!()
    };
    sims.servicenow().seed("sys_user", vec![odd]);
    let users = store_rows(&sims, "sys_user");
    let mut emails: Vec<String> = users
        .values()
        .map(|u| text(u, "email"))
        .filter(|e| !e.is_empty())
        .take(5)
        .collect();
    emails.push("o,neil^x@example.com".into());
    emails.sort();
    emails.dedup();
    let found = sn
        .read_where_in(
            "sys_user",
            "email",
            &emails,
            &strings(&["email", "user_name"]),
        )
        .await
        .expect("read");
    let mut got: Vec<String> = found.iter().map(|c| c.get("email").to_owned()).collect();
    got.sort();
    assert_eq!(got, emails);
}

#[tokio::test]
async fn batches_resend_unserviced_items_until_all_are_done() {
    let sims = sims().await;
    sims.servicenow().set_batch_max_items(Some(7));
    let existing: Vec<String> = store_rows(&sims, VMS).into_keys().take(15).collect();
    let mut requests = Vec::new();
    for i in 0..10 {
        requests.push(BatchRequest::Create {
            table: VMS.into(),
            fields: pairs(&[("name", &format!("batch-vm-{i}")), ("cpus", "3")]),
        });
    }
    for id in &existing[..10] {
        requests.push(BatchRequest::Update {
            table: VMS.into(),
            sys_id: id.clone(),
            fields: pairs(&[("state", "paused")]),
        });
    }
    for id in &existing[10..14] {
        requests.push(BatchRequest::Delete {
            table: VMS.into(),
            sys_id: id.clone(),
        });
    }
    requests.push(BatchRequest::Delete {
        table: VMS.into(),
        sys_id: "0000000000000000000000000000gone".into(),
    });
    requests.push(BatchRequest::Update {
        table: VMS.into(),
        sys_id: "0000000000000000000000000000gone".into(),
        fields: pairs(&[("state", "off")]),
    });
    let before = sims.servicenow().count(VMS);
    let sn = basic_client(&sims);
    let results = sn.batch(&requests).await.expect("batch");
    assert_eq!(results.len(), 26);
    // 26 items, 7 per batch: 4 round trips.
    assert_eq!(route_total(&sims, BATCH_ROUTE), 4);
    for (i, result) in results[..10].iter().enumerate() {
        let ci = result
            .as_ref()
            .expect("created")
            .as_ref()
            .expect("a record");
        assert_eq!(ci.get("name"), format!("batch-vm-{i}"));
        let stored = sims.servicenow().get(VMS, &ci.sys_id).expect("stored");
        assert_eq!(text(&stored, "cpus"), "3");
    }
    for (result, id) in results[10..20].iter().zip(&existing) {
        let ci = result
            .as_ref()
            .expect("updated")
            .as_ref()
            .expect("a record");
        assert_eq!(&ci.sys_id, id);
        assert_eq!(ci.get("state"), "paused");
        assert_eq!(
            text(&sims.servicenow().get(VMS, id).expect("row"), "state"),
            "paused"
        );
    }
    for (result, id) in results[20..24].iter().zip(&existing[10..]) {
        assert_eq!(result, &Ok(None));
        assert!(sims.servicenow().get(VMS, id).is_none());
    }
    assert_eq!(results[24], Ok(None), "already gone counts as deleted");
    let err = results[25].as_ref().expect_err("no such record");
    assert_eq!(err.status, Some(404));
    assert!(err.to_string().starts_with("PATCH "), "{err}");
    assert_eq!(sims.servicenow().count(VMS), before + 10 - 4);

    // An instance that services nothing is not asked forever: three fruitless rounds.
    sims.servicenow().set_batch_max_items(Some(0));
    sims.reset_stats(Api::ServiceNow);
    let stuck = sn.batch(&requests[..3]).await.expect("batch");
    assert_eq!(route_total(&sims, BATCH_ROUTE), 3);
    assert_eq!(stuck.len(), 3);
    for result in &stuck {
        let err = result.as_ref().expect_err("unserviced");
        assert!(err.message.contains("unserviced"), "{err}");
    }
    assert_eq!(sims.servicenow().count(VMS), before + 10 - 4);
    assert_eq!(sn.batch(&[]).await.expect("nothing to do"), Vec::new());
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let silent = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let mut cfg = config(
        format!("http://{addr}"),
        SnAuth::Basic {
            user: "admin".into(),
            password: Secret::new("admin"),
        },
    );
    cfg.http.timeout = Duration::from_millis(300);
    cfg.retry.max_attempts = 2;
    let sn = client(cfg);
    let started = Instant::now();
    let err = sn
        .read_table(VMS, &strings(&["name"]), None)
        .await
        .expect_err("no answer");
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert!(err
        .url
        .starts_with(&format!("http://{addr}/api/now/table/")));
    assert_eq!(sn.requests_sent(), 2);
    assert!(err.message.contains("timed out"), "{err}");
    assert!(
        !err.message.contains("127.0.0.1"),
        "the URL is named once: {err}"
    );
    let err = sn
        .create(VMS, &pairs(&[("name", "x")]))
        .await
        .expect_err("no answer");
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    silent.abort();
}

/// `count` single-record reads, `in_flight` at a time, all through one client.
async fn reads(sn: &ServiceNow, sys_ids: &[String], count: usize, in_flight: usize) -> usize {
    let mut tasks = tokio::task::JoinSet::new();
    let mut ok = 0;
    for i in 0..count {
        if tasks.len() >= in_flight {
            ok += usize::from(tasks.join_next().await.unwrap().unwrap());
        }
        let (sn, id) = (sn.clone(), sys_ids[i % sys_ids.len()].clone());
        tasks.spawn(async move { matches!(sn.get(VMS, &id, &[]).await, Ok(Some(_))) });
    }
    while let Some(done) = tasks.join_next().await {
        ok += usize::from(done.unwrap());
    }
    ok
}

fn per_second_rule(limit: u64) -> FaultConfig {
    let mut rule = FaultRule::new(FaultKind::RateLimit);
    rule.limit = Some(limit);
    rule.window_secs = 1;
    rule.retry_after_secs = Some(1);
    FaultConfig::default().with(rule)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_paced_under_the_rule_meets_no_rate_limit() {
    let sims = sims().await;
    let ids: Vec<String> = sims
        .servicenow()
        .rows(VMS)
        .iter()
        .filter_map(|r| r["sys_id"].as_str().map(str::to_owned))
        .take(20)
        .collect();
    sims.set_faults(Api::ServiceNow, per_second_rule(30));
    let mut cfg = config(sims.servicenow_url(), basic(&sims));
    cfg.max_rps = Some(25.0);
    let sn = client(cfg);
    assert_eq!(reads(&sn, &ids, 60, 8).await, 60);
    let stats = sims.stats(Api::ServiceNow);
    assert_eq!(stats["by_status"].get("429"), None, "{stats}");
    assert_eq!(stats["total"], 60, "each read sent once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaced_client_slows_down_after_429s_and_every_read_succeeds() {
    let sims = sims().await;
    let ids: Vec<String> = sims
        .servicenow()
        .rows(VMS)
        .iter()
        .filter_map(|r| r["sys_id"].as_str().map(str::to_owned))
        .take(20)
        .collect();
    sims.set_faults(Api::ServiceNow, per_second_rule(20));
    let mut cfg = config(sims.servicenow_url(), basic(&sims));
    cfg.retry.max_rate_limited_attempts = 20;
    let sn = client(cfg);
    assert_eq!(reads(&sn, &ids, 100, 8).await, 100);
    let refused = sims.stats(Api::ServiceNow)["by_status"]["429"]
        .as_u64()
        .unwrap_or(0);
    // Unpaced, every window would end in about a round of 429s (8 in flight) for five
    // windows; the pace learnt from the first ones leaves far fewer.
    assert!(refused > 0 && refused < 20, "{refused} answered 429");
    let pace = sn.pace();
    assert!(pace.is_some_and(|r| r < 30.0), "{pace:?}");
}
