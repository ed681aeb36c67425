//! The library entry point: both simulators on 127.0.0.1, ServiceNow over
//! HTTP and HTTPS, the seeded CMDB, the dump route and the state file.

mod common;

use cmdb_sim::{SimOptions, Sims};
use common::{client, options, start};
use serde_json::Value;

#[tokio::test]
async fn servicenow_answers_on_https_with_the_written_certificate() {
    let dir = std::env::temp_dir().join(format!("cmdb-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pem_path = dir.join("ca.pem");
    let sims = Sims::start(SimOptions {
        snow_https: true,
        ca_pem_out: Some(pem_path.clone()),
        ..options(30)
    })
    .await
    .expect("start");
    assert!(sims.servicenow_url().starts_with("https://127.0.0.1:"));
    assert!(sims.servicenow_http_url().starts_with("http://127.0.0.1:"));
    assert!(sims.manageiq_url().starts_with("http://127.0.0.1:"));
    let pem = std::fs::read(&pem_path).expect("certificate written");
    assert_eq!(
        Some(String::from_utf8_lossy(&pem).into_owned()),
        sims.ca_pem()
    );
    let tls_client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("PEM"))
        .build()
        .expect("client");
    let resp = tls_client
        .get(format!(
            "{}/api/now/table/cmdb_ci_vmware_instance?sysparm_limit=5",
            sims.servicenow_url()
        ))
        .basic_auth("admin", Some("admin"))
        .header("Accept", "application/json")
        .send()
        .await
        .expect("GET over TLS");
    assert_eq!(resp.status().as_u16(), 200);
    let total: usize = resp.headers()["x-total-count"]
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("X-Total-Count");
    assert_eq!(total, sims.estate().expected.vmware_cis);
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["result"].as_array().map(Vec::len), Some(5));
    let info = sims.connection_info();
    assert_eq!(
        info["servicenow"]["ca_pem"],
        pem_path.display().to_string().as_str()
    );
    sims.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_cmdb_is_seeded_and_dumped() {
    let sims = start(300).await;
    let e = sims.estate();
    let sn = sims.servicenow();
    assert_eq!(sn.count("cmdb_ci_vmware_instance"), e.expected.vmware_cis);
    // A table is read with the tables extending it: VMware instances are VM instances too.
    assert_eq!(
        sn.count("cmdb_ci_vm_instance"),
        e.expected.vm_instance_cis + e.expected.vmware_cis
    );
    for table in [
        "sys_user",
        "sys_user_group",
        "cmn_location",
        "cmdb_ci_esx_server",
        "cmdb_rel_type",
    ] {
        assert!(sn.count(table) > 0, "{table} seeded");
    }
    let rel_types: Vec<String> = sn
        .rows("cmdb_rel_type")
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    for name in [
        "Registered on::Has registered",
        "Members::Member of",
        "Contains::Contained by",
        "Provides storage for::Stored on",
        "Virtualized by::Virtualizes",
        "Runs on::Runs",
        "Hosted on::Hosts",
    ] {
        assert!(rel_types.iter().any(|n| n == name), "{name}");
    }
    let dump: Value = client()
        .get(format!("{}/_sim/dump", sims.servicenow_http_url()))
        .send()
        .await
        .expect("GET /_sim/dump")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        dump["cmdb_ci_vmware_instance"].as_array().map(Vec::len),
        Some(e.expected.vmware_cis)
    );
    // The dump keeps each row once, in the table of its class.
    assert_eq!(
        dump["cmdb_ci_vm_instance"].as_array().map(Vec::len),
        Some(e.expected.vm_instance_cis)
    );
    assert_eq!(
        sn.get("sys_user", "6816f79cc0a8016401c5a33be04be441")
            .and_then(|admin| admin["user_name"].as_str().map(str::to_owned))
            .as_deref(),
        Some("admin"),
        "the generated admin is the instance's own"
    );
    assert_eq!(
        sims.stats(cmdb_sim::Api::ServiceNow)["total"],
        0,
        "admin routes are not counted"
    );
}

#[tokio::test]
async fn a_state_file_survives_a_restart_instead_of_a_reseed() {
    let dir = std::env::temp_dir().join(format!("cmdb-sim-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let state = dir.join("snow.json");
    let _ = std::fs::remove_file(&state);
    let opts = SimOptions {
        state_file: Some(state.clone()),
        ..options(40)
    };
    let sims = Sims::start(opts.clone()).await.expect("first start");
    let row = sims.servicenow().rows("cmdb_ci_vmware_instance")[0].clone();
    let sys_id = row["sys_id"].as_str().unwrap_or_default().to_owned();
    let resp = client()
        .patch(format!(
            "{}/api/now/table/cmdb_ci_vmware_instance/{sys_id}",
            sims.servicenow_http_url()
        ))
        .basic_auth("admin", Some("admin"))
        .header("Accept", "application/json")
        .json(&serde_json::json!({"cpus": "96"}))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(resp.status().as_u16(), 200);
    sims.save_state().expect("state saved");
    sims.stop().await;

    let sims = Sims::start(opts).await.expect("second start");
    let again = sims
        .servicenow()
        .get("cmdb_ci_vmware_instance", &sys_id)
        .expect("row restored");
    assert_eq!(
        again["cpus"], "96",
        "the edit survived, the seed did not overwrite it"
    );
    sims.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn bad_options_are_refused() {
    let err = Sims::start(SimOptions {
        drift: 1.5,
        ..options(10)
    })
    .await
    .err()
    .map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("drift `1.5` is not within 0..=1"));
}
