//! The ServiceNow simulator at CMDB scale: 100,000 CIs, pages of 1000 rows of selected fields,
//! read the way PySNC and the reconciler read them (ordered by sys_id, offset or key paging).
//! The time bound is loose enough for a debug build on a busy machine; run with `--release
//! --nocapture` to see the real figures.

use std::time::{Duration, Instant};

use cmdb_sim::servicenow::{ServiceNow, SnowConfig};
use serde_json::{json, Map, Value};

const VMS: &str = "cmdb_ci_vmware_instance";
const CIS: usize = 100_000;
const FIELDS: &str = "sys_id,name,object_id,correlation_id,vcenter_uuid,cpus,memory,state,ip_address,owned_by,install_status,sys_updated_on";

fn seed(snow: &ServiceNow) {
    snow.seed(
        "sys_user",
        (0..50)
            .map(|i| match json!({"sys_id": format!("{i:032x}"), "name": format!("User {i}"), "email": format!("u{i}@example.com")}) {
                Value::Object(o) => o,
                _ => Map::new(),
            })
            .collect(),
    );
    // In chunks, so that the seed's transient JSON does not dwarf the store in the RSS figure.
    for chunk in (0..CIS).collect::<Vec<_>>().chunks(5_000) {
        seed_vms(snow, chunk);
    }
}

fn seed_vms(snow: &ServiceNow, indexes: &[usize]) {
    let rows = indexes
        .iter()
        .map(|&i| {
            let row = json!({
                "name": format!("vm-{i:06}"),
                "object_id": format!("vm-{}", 1000 + i),
                "correlation_id": format!("4210{i:028x}"),
                "vcenter_uuid": "6a1f9d2e-0000-4000-8000-00000000000a",
                "vcenter_ref": format!("vm-{}", 1000 + i),
                "cpus": (i % 16 + 1).to_string(),
                "memory": ((i % 8 + 1) * 2048).to_string(),
                "disks": "2",
                "disks_size": "120",
                "nics": "1",
                "state": if i % 10 == 0 { "off" } else { "on" },
                "template": "false",
                "ip_address": format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
                "guest_os_fullname": "Red Hat Enterprise Linux 9 (64-bit)",
                "owned_by": format!("{:032x}", i % 50),
                "install_status": "1",
                "operational_status": "1",
                "discovery_source": "CloudForms",
                "used_for": "Production",
                "short_description": "",
            });
            match row {
                Value::Object(o) => o,
                _ => Map::new(),
            }
        })
        .collect();
    snow.seed(VMS, rows);
}

async fn get(
    client: &reqwest::Client,
    url: &str,
    query: &[(&str, &str)],
) -> (Duration, usize, Value) {
    let started = Instant::now();
    let response = client
        .get(url)
        .basic_auth("admin", Some("admin"))
        .query(query)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let total = response.headers()["x-total-count"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a count");
    let body: Value = response.json().await.expect("json");
    (started.elapsed(), total, body)
}

#[tokio::test]
async fn pages_of_a_hundred_thousand_cis_are_quick() {
    let snow = ServiceNow::new(SnowConfig::default());
    let started = Instant::now();
    seed(&snow);
    eprintln!("seeded {CIS} CIs in {:?}", started.elapsed());
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(rss) = status.lines().find(|l| l.starts_with("VmRSS")) {
            eprintln!("resident memory after seeding: {rss}");
        }
    }
    assert_eq!(snow.count(VMS), CIS);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/api/now/table/{VMS}",
        listener.local_addr().expect("addr")
    );
    let router = snow.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();

    // PySNC's read: offset paging ordered by sys_id, display values for every field.
    let (elapsed, total, body) = get(
        &client,
        &url,
        &[
            ("sysparm_query", "ORDERBYsys_id"),
            ("sysparm_fields", FIELDS),
            ("sysparm_display_value", "all"),
            ("sysparm_exclude_reference_link", "true"),
            ("sysparm_limit", "1000"),
            ("sysparm_offset", "50000"),
            ("sysparm_suppress_pagination_header", "true"),
        ],
    )
    .await;
    eprintln!("offset page of 1000 (display_value=all): {elapsed:?}");
    assert_eq!(total, CIS);
    let rows = body["result"].as_array().expect("rows");
    assert_eq!(rows.len(), 1000);
    assert!(rows[0]["owned_by"]["display_value"]
        .as_str()
        .is_some_and(|d| d.starts_with("User ")));
    let ids: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["sys_id"]["value"].as_str())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "sys_id order");

    // The reconciler's read: key paging over a scoped, filtered table, raw values.
    let last = ids[ids.len() - 1];
    let query =
        format!("discovery_source=CloudForms^install_status!=7^sys_id>{last}^ORDERBYsys_id");
    let (elapsed, total, body) = get(
        &client,
        &url,
        &[
            ("sysparm_query", query.as_str()),
            ("sysparm_fields", FIELDS),
            ("sysparm_exclude_reference_link", "true"),
            ("sysparm_limit", "1000"),
        ],
    )
    .await;
    eprintln!("filtered key page of 1000: {elapsed:?}");
    assert_eq!(total, CIS - 51_000);
    let rows = body["result"].as_array().expect("rows");
    assert_eq!(rows.len(), 1000);
    assert!(rows
        .iter()
        .all(|r| r["sys_id"].as_str().is_some_and(|id| id > last)));

    // Ordered by a non-key field: a full sort.
    let (elapsed, total, body) = get(
        &client,
        &url,
        &[
            ("sysparm_query", "state=off^ORDERBYDESCcpus^ORDERBYname"),
            ("sysparm_fields", "name,cpus"),
            ("sysparm_limit", "1000"),
        ],
    )
    .await;
    eprintln!("filtered page of 1000 sorted by cpus, name: {elapsed:?}");
    assert_eq!(total, CIS / 10);
    // Every tenth VM is off, with cpus `i % 16 + 1`; the first by cpus desc, then name.
    let first = (0..CIS)
        .step_by(10)
        .max_by_key(|i| (i % 16, std::cmp::Reverse(*i)))
        .expect("some");
    assert_eq!(
        body["result"][0],
        json!({"name": format!("vm-{first:06}"), "cpus": (first % 16 + 1).to_string()})
    );

    // A generous bound: the point is "milliseconds", not a benchmark; a debug build is slower.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}
