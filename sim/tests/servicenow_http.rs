//! The ServiceNow simulator over real HTTP on 127.0.0.1: authentication, the Table API's
//! statuses, headers and envelopes, OAuth, and state persistence.

use cmdb_sim::servicenow::{ServiceNow, SnowConfig};
use reqwest::{Client, StatusCode};
use serde_json::{json, Map, Value};

const VMS: &str = "cmdb_ci_vmware_instance";

/// Serves `snow` on an ephemeral port; returns its base URL.
async fn serve(snow: &ServiceNow) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = snow.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(o) => o,
        other => panic!("not an object: {other}"),
    }
}

/// An instance with a user, and three VMs owned by that user.
fn instance() -> (ServiceNow, String) {
    let snow = ServiceNow::new(SnowConfig::default());
    let user = "5137153cc611227c000bbd1bd8cd2007";
    snow.seed(
        "sys_user",
        vec![object(json!({
            "sys_id": user, "user_name": "ann", "name": "Ann Lee", "email": "ann@example.com",
        }))],
    );
    snow.seed(
        VMS,
        (1..=3)
            .map(|i| object(json!({"name": format!("vm{i}"), "cpus": i * 2, "owned_by": user, "install_status": 1})))
            .collect(),
    );
    (snow, user.to_owned())
}

fn client() -> Client {
    Client::new()
}

#[tokio::test]
async fn calls_without_valid_credentials_are_refused() {
    let (snow, _) = instance();
    let base = serve(&snow).await;
    for request in [
        client().get(format!("{base}/api/now/table/{VMS}")),
        client()
            .get(format!("{base}/api/now/table/{VMS}"))
            .basic_auth("admin", Some("wrong")),
        client()
            .get(format!("{base}/api/now/table/{VMS}"))
            .bearer_auth("made-up"),
    ] {
        let response = request.send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            body,
            json!({
                "error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"},
                "status": "failure",
            })
        );
    }
}

#[tokio::test]
async fn lists_page_with_counts_and_absolute_links() {
    let (snow, user) = instance();
    let base = serve(&snow).await;
    let response = client()
        .get(format!("{base}/api/now/v2/table/{VMS}"))
        .basic_auth("admin", Some("admin"))
        .query(&[
            ("sysparm_query", "cpus>=2^ORDERBYDESCcpus"),
            (
                "sysparm_fields",
                "name,cpus,owned_by,owned_by.email,install_status,bogus",
            ),
            ("sysparm_limit", "2"),
            ("sysparm_offset", "0"),
            ("sysparm_display_value", "True"),
            ("sysparm_exclude_reference_link", "TRUE"),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-total-count"], "3");
    let link = response.headers()["link"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        link.starts_with(&format!("<{base}/api/now/v2/table/{VMS}?")),
        "{link}"
    );
    assert!(link.contains("sysparm_offset=2>;rel=\"next\""), "{link}");
    assert!(link.ends_with("sysparm_offset=2>;rel=\"last\""), "{link}");
    assert!(!link.contains("rel=\"prev\""), "{link}");
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({"result": [
            {"name": "vm3", "cpus": "6", "owned_by": "Ann Lee", "owned_by.email": "ann@example.com", "install_status": "Installed"},
            {"name": "vm2", "cpus": "4", "owned_by": "Ann Lee", "owned_by.email": "ann@example.com", "install_status": "Installed"},
        ]})
    );

    // pysnow's defaults (`False`), a plain field filter, and a suppressed Link header.
    let response = client()
        .get(format!("{base}/api/now/table/{VMS}"))
        .basic_auth("admin", Some("admin"))
        .query(&[
            ("name", "vm1"),
            ("sysparm_display_value", "False"),
            ("sysparm_exclude_reference_link", "False"),
            ("sysparm_suppress_pagination_header", "true"),
            ("sysparm_fields", "owned_by,sys_mod_count"),
        ])
        .send()
        .await
        .expect("sent");
    assert!(response.headers().get("link").is_none());
    assert_eq!(response.headers()["x-total-count"], "1");
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body["result"],
        json!([{
            "owned_by": {"link": format!("{base}/api/now/table/sys_user/{user}"), "value": user},
            "sys_mod_count": "0",
        }])
    );

    // No count asked, and an empty table.
    let response = client()
        .get(format!(
            "{base}/api/now/table/cmdb_rel_ci?sysparm_no_count=true"
        ))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("x-total-count").is_none());
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"result": []})
    );
}

#[tokio::test]
async fn records_are_created_read_updated_and_deleted() {
    let (snow, _) = instance();
    let base = serve(&snow).await;
    let auth = |r: reqwest::RequestBuilder| r.basic_auth("admin", Some("admin"));

    let created = auth(client().post(format!("{base}/api/now/table/{VMS}")))
        .json(&json!({"name": "web-01", "cpus": 4, "template": false, "memory": null}))
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let record: Value = created.json().await.expect("json");
    let record = &record["result"];
    let sys_id = record["sys_id"].as_str().expect("sys_id").to_owned();
    assert_eq!(location, format!("{base}/api/now/table/{VMS}/{sys_id}"));
    assert!(
        sys_id.len() == 32
            && sys_id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(record["cpus"], "4");
    assert_eq!(record["template"], "false");
    assert_eq!(record["memory"], "");
    assert_eq!(record["sys_mod_count"], "0");
    assert_eq!(record["sys_created_by"], "admin");
    let created_on = record["sys_created_on"].as_str().expect("datetime");
    assert!(
        chrono::NaiveDateTime::parse_from_str(created_on, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{created_on}"
    );

    let read: Value = auth(client().get(&location))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(read["result"]["name"], "web-01");

    let patched = auth(client().patch(&location))
        .json(&json!({"cpus": 8, "sys_mod_count": "99"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(patched.status(), StatusCode::OK);
    let patched: Value = patched.json().await.expect("json");
    assert_eq!(patched["result"]["cpus"], "8");
    assert_eq!(patched["result"]["sys_mod_count"], "1");

    // PUT is a partial update too.
    let put: Value = auth(client().put(format!("{base}/api/now/v2/table/{VMS}/{sys_id}")))
        .json(&json!({"state": "off"}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(put["result"]["state"], "off");
    assert_eq!(put["result"]["cpus"], "8");
    assert_eq!(put["result"]["sys_mod_count"], "2");

    let bad = auth(client().patch(&location))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.json::<Value>().await.expect("json")["status"],
        "failure"
    );

    let deleted = auth(client().delete(&location)).send().await.expect("sent");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(deleted.bytes().await.expect("body").is_empty());

    for gone in [
        auth(client().get(&location)),
        auth(client().delete(&location)),
        auth(client().patch(&location)).json(&json!({})),
    ] {
        let response = gone.send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.json::<Value>().await.expect("json"),
            json!({
                "error": {
                    "message": "No Record found",
                    "detail": "Record doesn't exist or ACL restricts the record retrieval",
                },
                "status": "failure",
            })
        );
    }
    assert_eq!(snow.count(VMS), 3);
}

#[tokio::test]
async fn oauth_password_grant_then_bearer() {
    let (snow, _) = instance();
    let base = serve(&snow).await;
    let form = [
        ("grant_type", "password"),
        ("client_id", "cmdb-reconcile"),
        ("client_secret", "secret"),
        ("username", "admin"),
        ("password", "admin"),
    ];
    let response = client()
        .post(format!("{base}/oauth_token.do"))
        .form(&form)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let token: Value = response.json().await.expect("json");
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["scope"], "useraccount");
    assert_eq!(token["expires_in"], 1799);
    assert!(token["refresh_token"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    let access = token["access_token"].as_str().expect("token");

    let listed = client()
        .get(format!("{base}/api/now/table/{VMS}?sysparm_fields=name"))
        .bearer_auth(access)
        .send()
        .await
        .expect("sent");
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(
        listed.json::<Value>().await.expect("json")["result"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );

    let mut wrong = form;
    wrong[4] = ("password", "nope");
    let refused = client()
        .post(format!("{base}/oauth_token.do"))
        .form(&wrong)
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.json::<Value>().await.expect("json"),
        json!({"error": "server_error", "error_description": "access_denied"})
    );
}

#[tokio::test]
async fn attachments_list_is_empty_with_a_count() {
    let (snow, _) = instance();
    let base = serve(&snow).await;
    let response = client()
        .get(format!(
            "{base}/api/now/attachment?table_name={VMS}&table_sys_id=x"
        ))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-total-count"], "0");
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"result": []})
    );
}

#[test]
fn state_survives_a_restart_and_hand_edits_bump_the_record() {
    let path = std::env::temp_dir().join(format!("cmdb-sim-state-{}.json", uuid::Uuid::new_v4()));
    let cfg = SnowConfig {
        state_file: Some(path.clone()),
        ..SnowConfig::default()
    };
    let (snow, _) = instance();
    let first = snow.rows(VMS)[0]["sys_id"]
        .as_str()
        .expect("sys_id")
        .to_owned();
    assert!(snow.update_row(VMS, &first, object(json!({"name": "renamed"}))));
    assert!(!snow.update_row(VMS, "missing", object(json!({"name": "x"}))));
    let edited = snow.get(VMS, &first).expect("row");
    assert_eq!(edited["sys_mod_count"], "1");
    assert_eq!(edited["sys_updated_by"], "admin");

    let saved = ServiceNow::new(cfg.clone());
    for table in snow.tables() {
        saved.seed(&table, snow.rows(&table));
    }
    saved.save_state().expect("saved");
    let restored = ServiceNow::try_new(cfg).expect("loaded");
    assert_eq!(restored.dump(), snow.dump());
    assert_eq!(restored.get(VMS, &first).expect("row")["name"], "renamed");
    assert!(restored.delete_row(VMS, &first));
    assert_eq!(restored.count(VMS), 2);

    std::fs::write(&path, "not json").expect("written");
    let cfg = SnowConfig {
        state_file: Some(path.clone()),
        ..SnowConfig::default()
    };
    assert!(ServiceNow::try_new(cfg.clone()).is_err());
    // Empty: only what every instance is installed with.
    let empty = ServiceNow::new(cfg);
    assert_eq!(empty.count(VMS), 0);
    assert_eq!(empty.dump(), ServiceNow::new(SnowConfig::default()).dump());
    std::fs::remove_file(&path).expect("removed");
}
