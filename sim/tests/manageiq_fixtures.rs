//! The ManageIQ simulator's responses held against recorded responses of real
//! servers (`tests/fixtures/manageiq/`): same keys, same key order, same
//! JSON types (ids may be strings where old recordings have integers).

mod common;

use common::{fixture, json_type, keys, miq_get, start};
use serde_json::Value;

#[tokio::test]
async fn vm_record_matches_the_recorded_one() {
    let sims = start(3_000).await;
    let recorded = &fixture("get_vms.json")["resources"][0];
    // The recorded VM: VMware, powered on, no owner, no description, never
    // retired, no previous state or performance capture. Pick one like it.
    let e = sims.estate();
    let vm = e
        .vms
        .iter()
        .find(|v| {
            v.vendor == cmdb_sim::generator::Vendor::Vmware
                && v.power_state == cmdb_sim::generator::PowerState::On
                && v.ems.is_some()
                && v.owner.is_none()
                && v.description.is_none()
                && v.previous_state.is_none()
                && v.last_perf_capture_on.is_none()
                && v.retires_on.is_none()
                && v.retired.is_none()
        })
        .expect("the estate has a VM shaped like the recorded one");

    // The same record through the collection and on its own.
    let (status, page) = miq_get(
        &sims,
        &format!("/api/vms?expand=resources&filter[]=id={}", vm.id),
    )
    .await;
    assert_eq!(status, 200);
    let (status, single) = miq_get(&sims, &format!("/api/vms/{}", vm.id)).await;
    assert_eq!(status, 200);
    for ours in [&page["resources"][0], &single] {
        assert_eq!(keys(ours), keys(recorded), "keys and their order");
        for (k, v) in recorded.as_object().into_iter().flatten() {
            assert_eq!(json_type(k, &ours[k]), json_type(k, v), "type of `{k}`");
        }
        let actions = |r: &Value| -> Vec<(String, String)> {
            r["actions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| (a["name"].to_string(), a["method"].to_string()))
                .collect()
        };
        assert_eq!(actions(ours), actions(recorded));
        assert!(ours["id"].is_string(), "CFME 5.9+ ids are strings");
        assert_eq!(
            ours["href"],
            format!("{}/api/vms/{}", sims.manageiq_url(), vm.id)
        );
    }
}

#[tokio::test]
async fn filtered_empty_page_matches_the_recorded_envelope() {
    let sims = start(100).await;
    let recorded = fixture("filter_vms_id_9999_not_found.json");
    let query = "/api/vms?expand=resources&filter[]=id=9999&limit=1&offset=0";
    let (status, ours) = miq_get(&sims, query).await;
    assert_eq!(status, 200);
    assert_eq!(keys(&ours), keys(&recorded));
    assert_eq!(ours["name"], "vms");
    assert_eq!(ours["count"], 100, "count ignores filters");
    for k in ["subcount", "subquery_count", "pages"] {
        assert_eq!(ours[k], recorded[k], "{k}");
    }
    assert_eq!(ours["resources"], Value::Array(Vec::new()));
    let names = |v: &Value| -> Vec<Value> {
        v["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| a["name"].clone())
            .collect()
    };
    assert_eq!(names(&ours), names(&recorded));
    assert_eq!(keys(&ours["links"]), keys(&recorded["links"]));
    for (name, href) in recorded["links"].as_object().into_iter().flatten() {
        let expected = href
            .as_str()
            .unwrap_or_default()
            .replace("https://example.com", &sims.manageiq_url());
        assert_eq!(ours["links"][name], expected.as_str(), "links.{name}");
    }
}

#[tokio::test]
async fn error_envelopes_match_the_recorded_ones() {
    let sims = start(50).await;
    let recorded = fixture("error_vms_9999_not_found.json");
    let (status, ours) = miq_get(&sims, "/api/vms/9999").await;
    assert_eq!(status, 404);
    assert_eq!(keys(&ours), keys(&recorded));
    assert_eq!(keys(&ours["error"]), keys(&recorded["error"]));
    assert_eq!(ours["error"]["kind"], recorded["error"]["kind"]);
    assert_eq!(ours["error"]["klass"], recorded["error"]["klass"]);
    let message = ours["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Couldn't find Vm with 'id'=9999 [WHERE"),
        "{message}"
    );

    let (status, ours) = miq_get(&sims, "/api/no_such_collection/1").await;
    assert_eq!(status, 404);
    assert_eq!(ours, fixture("error_routing.json"));

    let (status, ours) = miq_get(&sims, "/api/vms?expand=resources&attributes=name,bogus").await;
    assert_eq!(status, 400);
    assert_eq!(keys(&ours["error"]), keys(&recorded["error"]));
    assert_eq!(ours["error"]["kind"], "bad_request");
    assert_eq!(
        ours["error"]["message"],
        "Invalid attributes specified: bogus"
    );
}

#[tokio::test]
async fn entry_point_has_the_recorded_shape() {
    let sims = start(20).await;
    let recorded = fixture("entrypoint.json");
    let (status, ours) = miq_get(&sims, "/api").await;
    assert_eq!(status, 200);
    assert_eq!(keys(&ours), keys(&recorded));
    for section in ["identity", "server_info", "product_info", "settings"] {
        assert_eq!(keys(&ours[section]), keys(&recorded[section]), "{section}");
    }
    assert_eq!(
        keys(&ours["identity"]["miq_groups"][0]),
        keys(&recorded["identity"]["miq_groups"][0])
    );
    let recorded_names: Vec<&str> = recorded["collections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for c in ours["collections"].as_array().into_iter().flatten() {
        assert_eq!(keys(c), ["name", "href", "description"]);
        let name = c["name"].as_str().unwrap_or_default();
        assert!(
            recorded_names.contains(&name),
            "{name} is a real collection"
        );
        assert_eq!(c["href"], format!("{}/api/{name}", sims.manageiq_url()));
    }
    assert!(ours["version"].is_string());
    assert_eq!(keys(&ours["versions"][0]), ["name", "href"]);
}

#[tokio::test]
async fn options_lists_real_attribute_names() {
    let sims = start(20).await;
    let recorded = fixture("options_vms.json");
    let url = format!("{}/api/vms", sims.manageiq_url());
    let resp = common::client()
        .request(reqwest::Method::OPTIONS, &url)
        .basic_auth("admin", Some("smartvm"))
        .send()
        .await
        .expect("OPTIONS /api/vms");
    assert_eq!(resp.status().as_u16(), 200);
    let ours: Value = resp.json().await.expect("JSON body");
    assert_eq!(keys(&ours), keys(&recorded));
    // Every physical column of the real table, none invented.
    assert_eq!(ours["attributes"], recorded["attributes"]);
    let within = |k: &str, allowed_extra: &[&str]| {
        let real: Vec<&Value> = recorded[k].as_array().into_iter().flatten().collect();
        for name in ours[k].as_array().into_iter().flatten() {
            let s = name.as_str().unwrap_or_default();
            assert!(
                real.contains(&name) || allowed_extra.contains(&s),
                "{k}: {s}"
            );
        }
    };
    // `normalized_state` is newer than this recording (see the reference document).
    within("virtual_attributes", &["normalized_state"]);
    within("relationships", &[]);
    within("subcollections", &[]);
}

#[tokio::test]
async fn tags_subcollection_matches_the_recorded_shape() {
    let sims = start(50).await;
    let recorded = fixture("get_test1_vm_tags.json");
    let vm = sims
        .estate()
        .vms
        .iter()
        .find(|v| v.tags.len() >= 2)
        .expect("a VM with tags");
    let (status, ours) = miq_get(&sims, &format!("/api/vms/{}/tags?expand=resources", vm.id)).await;
    assert_eq!(status, 200);
    assert_eq!(keys(&ours), keys(&recorded));
    let tag = &ours["resources"][0];
    assert_eq!(keys(tag), keys(&recorded["resources"][0]));
    for (k, v) in recorded["resources"][0].as_object().into_iter().flatten() {
        assert_eq!(json_type(k, &tag[k]), json_type(k, v), "type of `{k}`");
    }
    assert!(tag["name"]
        .as_str()
        .unwrap_or_default()
        .starts_with("/managed/"));
}
