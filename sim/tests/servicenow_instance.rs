//! The ServiceNow simulator behaves like an instance (issue 10), over real HTTP: tables follow
//! a dictionary served as `sys_db_object` / `sys_dictionary` / `sys_choice`; reads return every
//! column, writes drop unknown ones and cut strings; unknown tables are "Invalid table";
//! invalid queries follow `glide.invalid_query.returns_no_rows`; inserts get the platform's
//! defaults; tables are read with their subclasses' rows; date-times display in the user's
//! time zone; and the CMDB Instance, Attachment and tiny URL APIs.

use cmdb_sim::servicenow::{ServiceNow, SnowConfig};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{json, Map, Value};

const VMS: &str = "cmdb_ci_vmware_instance";
const ADMIN: &str = "6816f79cc0a8016401c5a33be04be441";

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

/// An instance with two VMware VMs, one other VM, and one ESX host.
async fn instance() -> (ServiceNow, String) {
    let snow = ServiceNow::new(SnowConfig::default());
    snow.seed(
        VMS,
        vec![
            object(json!({"name": "web-01", "cpus": "2", "object_id": "vm-1", "discovery_source": "ServiceNow"})),
            object(json!({"name": "web-02", "cpus": "4", "object_id": "vm-2", "discovery_source": "ServiceNow"})),
        ],
    );
    snow.seed(
        "cmdb_ci_vm_instance",
        vec![object(json!({"name": "rhv-01", "cpus": "1"}))],
    );
    snow.seed(
        "cmdb_ci_esx_server",
        vec![object(json!({"name": "esx-01", "ram": "65536"}))],
    );
    let base = serve(&snow).await;
    (snow, base)
}

fn auth(r: RequestBuilder) -> RequestBuilder {
    r.basic_auth("admin", Some("admin"))
        .header("Accept", "application/json")
}

async fn get(url: &str) -> (StatusCode, Value) {
    let response = auth(Client::new().get(url)).send().await.expect("sent");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let response = auth(request).send().await.expect("sent");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn rows(body: &Value) -> &Vec<Value> {
    body["result"].as_array().expect("a list")
}

#[tokio::test]
async fn reads_return_every_column_and_writes_ignore_unknown_ones() {
    let (_snow, base) = instance().await;
    let (status, created) = send(
        Client::new()
            .post(format!("{base}/api/now/table/{VMS}"))
            .json(&json!({"name": "db-01", "u_not_a_column": "x", "cpus": 8})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let record = &created["result"];
    assert!(record.get("u_not_a_column").is_none(), "{record}");
    // Columns of the class and of every parent, empty when unset.
    for (column, value) in [
        ("serial_number", ""),
        ("object_id", ""),
        ("vcenter_uuid", ""),
        ("cpus", "8"),
        ("sys_class_name", VMS),
        ("install_status", "1"),
        ("operational_status", "1"),
        ("template", "false"),
    ] {
        assert_eq!(record[column], value, "{column} in {record}");
    }
    let sys_id = record["sys_id"].as_str().expect("sys_id");
    let (_, patched) = send(
        Client::new()
            .patch(format!("{base}/api/now/table/{VMS}/{sys_id}"))
            .json(&json!({"u_still_not": "y", "name": "db-01"})),
    )
    .await;
    assert_eq!(
        patched["result"]["sys_mod_count"], "0",
        "nothing real changed"
    );
    assert!(patched["result"].get("u_still_not").is_none());
}

#[tokio::test]
async fn strings_are_cut_at_their_max_length() {
    let (_snow, base) = instance().await;
    let long = "n".repeat(300);
    let (_, created) = send(
        Client::new()
            .post(format!("{base}/api/now/table/u_cmdb_reconcile_lease"))
            .json(&json!({"u_name": long, "u_holder": long})),
    )
    .await;
    assert_eq!(created["result"]["u_name"], "n".repeat(40));
    assert_eq!(created["result"]["u_holder"], "n".repeat(100));
    let (_, vm) = send(
        Client::new()
            .post(format!("{base}/api/now/table/{VMS}"))
            .json(&json!({"name": long})),
    )
    .await;
    assert_eq!(vm["result"]["name"], "n".repeat(255));
}

#[tokio::test]
async fn unknown_tables_are_invalid_for_every_method() {
    let (_snow, base) = instance().await;
    let invalid =
        json!({"error": {"message": "Invalid table u_nope", "detail": null}, "status": "failure"});
    let url = format!("{base}/api/now/table/u_nope");
    let one = format!("{url}/{ADMIN}");
    for request in [
        Client::new().get(&url),
        Client::new().get(&one),
        Client::new().post(&url).json(&json!({"a": 1})),
        Client::new().patch(&one).json(&json!({"a": 1})),
        Client::new().delete(&one),
    ] {
        assert_eq!(
            send(request).await,
            (StatusCode::BAD_REQUEST, invalid.clone())
        );
    }
    let (_, batch) = send(Client::new().post(format!("{base}/api/now/v1/batch")).json(&json!({
        "batch_request_id": "1",
        "rest_requests": [{"id": "a", "method": "GET", "url": "/api/now/table/u_nope", "headers": []}],
    })))
    .await;
    assert_eq!(batch["serviced_requests"][0]["status_code"], 400);
}

#[tokio::test]
async fn queries_on_unpopulated_and_unknown_columns() {
    let (snow, base) = instance().await;
    // A column the table has but no row carries: evaluated, so nothing matches.
    let (status, body) = get(&format!(
        "{base}/api/now/table/{VMS}?sysparm_query=serial_number=ABC123"
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rows(&body).len(), 0);
    let (_, empty) = get(&format!(
        "{base}/api/now/table/{VMS}?sysparm_query=serial_numberISEMPTY"
    ))
    .await;
    assert_eq!(rows(&empty).len(), 2);
    // An unknown column: ignored by default (glide.invalid_query.returns_no_rows=false)...
    let unknown = format!("{base}/api/now/table/{VMS}?sysparm_query=u_nope=1^cpus=2");
    let (_, ignored) = get(&unknown).await;
    assert_eq!(rows(&ignored).len(), 1);
    // ...and with the property set, no rows at all.
    snow.set_invalid_query_returns_no_rows(true);
    let (status, none) = get(&unknown).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rows(&none).len(), 0);
    let (_, valid) = get(&format!("{base}/api/now/table/{VMS}?sysparm_query=cpus=2")).await;
    assert_eq!(rows(&valid).len(), 1);
    let strict = ServiceNow::new(SnowConfig {
        invalid_query_returns_no_rows: true,
        ..SnowConfig::default()
    });
    strict.seed(VMS, vec![object(json!({"name": "x"}))]);
    let strict_base = serve(&strict).await;
    let (_, none) = get(&format!(
        "{strict_base}/api/now/table/{VMS}?name=x&u_nope=1"
    ))
    .await;
    assert_eq!(rows(&none).len(), 0, "plain parameters are conditions too");
}

#[tokio::test]
async fn inserts_get_the_platforms_defaults() {
    let (_snow, base) = instance().await;
    // An empty body creates a record of defaults.
    let response = auth(Client::new().post(format!("{base}/api/now/table/incident")))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::CREATED);
    let first: Value = response.json().await.expect("json");
    let first = &first["result"];
    for (column, value) in [
        ("number", "INC0010001"),
        ("state", "1"),
        ("active", "true"),
        ("impact", "3"),
        ("urgency", "3"),
        ("priority", "5"),
        ("sys_created_by", "admin"),
        ("sys_class_name", "incident"),
    ] {
        assert_eq!(first[column], value, "{column} in {first}");
    }
    assert_eq!(first["opened_by"]["value"], ADMIN, "the acting user");
    assert_eq!(first["opened_at"], first["sys_created_on"]);
    let (_, second) = send(
        Client::new()
            .post(format!("{base}/api/now/table/incident"))
            .json(&json!({"short_description": "disk full", "impact": "1", "urgency": "1"})),
    )
    .await;
    assert_eq!(second["result"]["number"], "INC0010002");
    assert_eq!(second["result"]["priority"], "1", "the priority lookup");
    let sys_id = second["result"]["sys_id"].as_str().expect("sys_id");
    let (_, closed) = send(
        Client::new()
            .patch(format!("{base}/api/now/table/incident/{sys_id}"))
            .json(&json!({"state": "7", "urgency": "3"})),
    )
    .await;
    assert_eq!(closed["result"]["active"], "false");
    assert_eq!(closed["result"]["priority"], "3");
    for (table, number, state) in [
        ("change_request", "CHG0010001", "-5"),
        ("sc_request", "REQ0010001", "1"),
        ("sc_req_item", "RITM0010001", "1"),
        ("sc_task", "SCTASK0010001", "1"),
    ] {
        let (status, body) = send(
            Client::new()
                .post(format!("{base}/api/now/table/{table}"))
                .json(&json!({})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(body["result"]["number"], number);
        assert_eq!(body["result"]["state"], state, "{table}");
    }
    // A display value of a reference default: the admin user.
    let (_, labelled) = get(&format!(
        "{base}/api/now/table/incident/{sys_id}?sysparm_display_value=true&sysparm_fields=opened_by,priority,state"
    ))
    .await;
    assert_eq!(
        labelled["result"],
        json!({"opened_by": {"display_value": "System Administrator", "link": format!("{base}/api/now/table/sys_user/{ADMIN}")}, "priority": "3 - Moderate", "state": "Closed"})
    );
}

#[tokio::test]
async fn parent_tables_list_and_write_their_subclasses_rows() {
    let (snow, base) = instance().await;
    let (_, cis) = get(&format!(
        "{base}/api/now/table/cmdb_ci?sysparm_fields=name,sys_class_name,cpus&sysparm_query=ORDERBYname"
    ))
    .await;
    assert_eq!(
        cis["result"],
        json!([
            {"name": "esx-01", "sys_class_name": "cmdb_ci_esx_server"},
            {"name": "rhv-01", "sys_class_name": "cmdb_ci_vm_instance"},
            {"name": "web-01", "sys_class_name": VMS},
            {"name": "web-02", "sys_class_name": VMS},
        ]),
        "`cpus` is not a cmdb_ci column"
    );
    let (_, vms) = get(&format!(
        "{base}/api/now/table/cmdb_ci_vm_instance?sysparm_fields=name,cpus&sysparm_query=cpus>1"
    ))
    .await;
    assert_eq!(rows(&vms).len(), 2);
    // A query on cmdb_ci finds a VMware instance by a cmdb_ci column.
    let (_, found) = get(&format!(
        "{base}/api/now/table/cmdb_ci?sysparm_query=sys_class_name={VMS}^name=web-02"
    ))
    .await;
    assert_eq!(rows(&found).len(), 1);
    let sys_id = found["result"][0]["sys_id"]
        .as_str()
        .expect("sys_id")
        .to_owned();
    let (status, read) = get(&format!("{base}/api/now/table/task/{sys_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not a task: {read}");
    let (status, patched) = send(
        Client::new()
            .patch(format!("{base}/api/now/table/cmdb_ci/{sys_id}"))
            .json(&json!({"serial_number": "SN-2", "cpus": "64"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched["result"]["serial_number"], "SN-2");
    let stored = snow.get(VMS, &sys_id).expect("row");
    assert_eq!(
        (stored["serial_number"].as_str(), stored["cpus"].as_str()),
        (Some("SN-2"), Some("4"))
    );
    let response = auth(Client::new().delete(format!("{base}/api/now/table/cmdb_ci/{sys_id}")))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(snow.get(VMS, &sys_id).is_none());
}

#[tokio::test]
async fn the_dictionary_is_served_like_an_instances() {
    let (_snow, base) = instance().await;
    let (_, entries) = get(&format!(
        "{base}/api/now/table/sys_dictionary?sysparm_query=name=u_cmdb_reconcile_lease^elementSTARTSWITHu_^ORDERBYelement&sysparm_fields=element,internal_type,max_length"
    ))
    .await;
    assert_eq!(
        entries["result"],
        json!([
            {"element": "u_expires", "internal_type": "string", "max_length": "40"},
            {"element": "u_holder", "internal_type": "string", "max_length": "100"},
            {"element": "u_host", "internal_type": "string", "max_length": "100"},
            {"element": "u_name", "internal_type": "string", "max_length": "40"},
        ])
    );
    let (_, owned_by) = get(&format!(
        "{base}/api/now/table/sys_dictionary?sysparm_query=name=cmdb_ci^element=owned_by&sysparm_fields=internal_type,reference"
    ))
    .await;
    assert_eq!(
        owned_by["result"],
        json!([{"internal_type": "reference", "reference": "sys_user"}])
    );
    let (_, object) = get(&format!(
        "{base}/api/now/table/sys_db_object?sysparm_query=name={VMS}&sysparm_fields=name,super_class.name,super_class&sysparm_display_value=all&sysparm_exclude_reference_link=true"
    ))
    .await;
    let row = &object["result"][0];
    assert_eq!(row["super_class.name"]["value"], "cmdb_ci_vm_instance");
    assert_eq!(
        row["super_class"]["display_value"],
        "Virtual Machine Instance"
    );
    let (_, choices) = get(&format!(
        "{base}/api/now/table/sys_choice?sysparm_query=name=incident^element=state^ORDERBYsequence&sysparm_fields=value,label"
    ))
    .await;
    assert_eq!(choices["result"][0], json!({"value": "1", "label": "New"}));
    assert_eq!(rows(&choices).len(), 6);
    let (_, admin) = get(&format!(
        "{base}/api/now/table/sys_user/{ADMIN}?sysparm_fields=user_name"
    ))
    .await;
    assert_eq!(admin["result"], json!({"user_name": "admin"}));
}

#[tokio::test]
async fn date_times_display_in_the_users_time_zone() {
    let (snow, base) = instance().await;
    let vm = snow.rows(VMS)[0]["sys_id"]
        .as_str()
        .expect("sys_id")
        .to_owned();
    snow.update_row(
        VMS,
        &vm,
        object(json!({"last_discovered": "2025-01-15 12:00:00"})),
    );
    let url = format!(
        "{base}/api/now/table/{VMS}/{vm}?sysparm_fields=last_discovered&sysparm_display_value=all"
    );
    // No time zone on the user nor the system: America/Los_Angeles.
    let (_, pacific) = get(&url).await;
    assert_eq!(
        pacific["result"]["last_discovered"],
        json!({"display_value": "2025-01-15 04:00:00", "value": "2025-01-15 12:00:00"})
    );
    snow.update_row(
        "sys_user",
        ADMIN,
        object(json!({"time_zone": "Europe/Paris"})),
    );
    let (_, paris) = get(&url).await;
    assert_eq!(
        paris["result"]["last_discovered"]["display_value"],
        "2025-01-15 13:00:00"
    );
    let utc_system = ServiceNow::new(SnowConfig {
        system_time_zone: Some(chrono_tz::UTC),
        ..SnowConfig::default()
    });
    utc_system.seed(
        VMS,
        vec![object(
            json!({"sys_id": vm, "last_discovered": "2025-01-15 12:00:00"}),
        )],
    );
    let utc_base = serve(&utc_system).await;
    let (_, utc) = get(&url.replace(&base, &utc_base)).await;
    assert_eq!(
        utc["result"]["last_discovered"]["display_value"],
        "2025-01-15 12:00:00"
    );
}

#[tokio::test]
async fn attachments_are_uploaded_listed_downloaded_and_deleted() {
    let (snow, base) = instance().await;
    let vm = snow.rows(VMS)[0]["sys_id"]
        .as_str()
        .expect("sys_id")
        .to_owned();
    let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let upload = |table: &str, sys_id: &str| {
        auth(Client::new().post(format!(
            "{base}/api/now/attachment/file?table_name={table}&table_sys_id={sys_id}&file_name=report.bin"
        )))
        .header("Content-Type", "application/octet-stream")
        .body(content.clone())
    };
    let response = upload(VMS, &vm).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let meta: Value = response.json().await.expect("json");
    let meta = &meta["result"];
    let sys_id = meta["sys_id"].as_str().expect("sys_id").to_owned();
    assert_eq!(location, format!("{base}/api/now/attachment/{sys_id}"));
    for (field, value) in [
        ("file_name", "report.bin"),
        ("table_name", VMS),
        ("table_sys_id", vm.as_str()),
        ("content_type", "application/octet-stream"),
        ("size_bytes", "10000"),
        ("sys_created_by", "admin"),
    ] {
        assert_eq!(meta[field], value, "{field}");
    }
    assert_eq!(
        meta["download_link"],
        format!("{base}/api/now/attachment/{sys_id}/file")
    );

    let response = auth(Client::new().get(format!(
        "{base}/api/now/attachment?sysparm_query=table_sys_id={vm}"
    )))
    .send()
    .await
    .expect("sent");
    assert_eq!(response.headers()["x-total-count"], "1");
    let listed: Value = response.json().await.expect("json");
    assert_eq!(listed["result"][0]["sys_id"], sys_id.as_str());
    let (_, by_params) = get(&format!(
        "{base}/api/now/attachment?table_name={VMS}&table_sys_id={vm}"
    ))
    .await;
    assert_eq!(rows(&by_params).len(), 1);

    let file = auth(Client::new().get(format!("{base}/api/now/attachment/{sys_id}/file")))
        .send()
        .await
        .expect("sent");
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(file.headers()["content-type"], "application/octet-stream");
    assert!(file.headers().contains_key("x-attachment-metadata"));
    assert_eq!(file.bytes().await.expect("bytes").to_vec(), content);

    // Refusals: no such record, no such table, no type, missing parameters.
    let (status, _) = send(
        Client::new()
            .post(format!(
                "{base}/api/now/attachment/file?table_name={VMS}&table_sys_id={ADMIN}&file_name=x"
            ))
            .header("Content-Type", "text/plain")
            .body("x"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        upload("u_nope", &vm).send().await.expect("sent").status(),
        StatusCode::BAD_REQUEST
    );
    let (status, _) = send(
        Client::new()
            .post(format!("{base}/api/now/attachment/file?table_name={VMS}"))
            .body("x"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let deleted = auth(Client::new().delete(format!("{base}/api/now/attachment/{sys_id}")))
        .send()
        .await
        .expect("sent");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let (status, _) = get(&format!("{base}/api/now/attachment/{sys_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        snow.count("sys_attachment_doc"),
        0,
        "the chunks went with it"
    );
}

#[tokio::test]
async fn the_cmdb_instance_api_reads_creates_updates_and_relates() {
    let (snow, base) = instance().await;
    let esx = snow.rows("cmdb_ci_esx_server")[0]["sys_id"]
        .as_str()
        .expect("sys_id")
        .to_owned();
    let registered_on = snow
        .rows("cmdb_rel_type")
        .into_iter()
        .find(|t| t["name"] == "Registered on::Has registered")
        .and_then(|t| t["sys_id"].as_str().map(str::to_owned))
        .expect("a standard type");
    let api = format!("{base}/api/now/cmdb/instance");

    let (status, list) = get(&format!(
        "{api}/cmdb_ci_vm_instance?sysparm_query=ORDERBYname"
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = rows(&list)
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["rhv-01", "web-01", "web-02"]);
    assert!(rows(&list)
        .iter()
        .all(|r| r.as_object().is_some_and(|o| o.len() == 2)));

    // `source` must be a discovery_source choice.
    let body = json!({"attributes": {"name": "app-01", "cpus": "2"}, "source": "Nobody",
                      "outbound_relations": [{"target": esx, "type": registered_on}]});
    let (status, refused) = send(Client::new().post(format!("{api}/{VMS}")).json(&body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["status"], "failure");
    let mut body = body;
    body["source"] = json!("ServiceNow");
    let (status, created) = send(Client::new().post(format!("{api}/{VMS}")).json(&body)).await;
    assert_eq!(status, StatusCode::OK);
    let ci = &created["result"];
    let sys_id = ci["attributes"]["sys_id"]
        .as_str()
        .expect("sys_id")
        .to_owned();
    assert_eq!(ci["attributes"]["discovery_source"], "ServiceNow");
    assert_eq!(ci["attributes"]["sys_class_name"], VMS);
    assert!(!ci["attributes"]["first_discovered"]
        .as_str()
        .unwrap_or("")
        .is_empty());
    let outbound = &ci["outbound_relations"][0];
    assert_eq!(
        outbound["type"]["display_value"],
        "Registered on::Has registered"
    );
    assert_eq!(
        outbound["type"]["link"],
        format!("{base}/api/now/table/cmdb_rel_type/{registered_on}")
    );
    assert_eq!(
        outbound["target"],
        json!({"display_value": "esx-01", "link": format!("{api}/cmdb_ci/{esx}"), "value": esx})
    );
    assert_eq!(ci["inbound_relations"], json!([]));

    // The host sees the relation from the other side.
    let (_, host) = get(&format!("{api}/cmdb_ci_esx_server/{esx}")).await;
    assert_eq!(
        host["result"]["inbound_relations"][0]["target"]["value"],
        sys_id.as_str()
    );
    assert_eq!(snow.count("cmdb_rel_ci"), 1);

    let (status, updated) = send(
        Client::new()
            .patch(format!("{api}/{VMS}/{sys_id}"))
            .json(&json!({"attributes": {"cpus": "6", "u_nope": "x"}, "source": "ServiceNow"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["result"]["attributes"]["cpus"], "6");
    assert!(updated["result"]["attributes"].get("u_nope").is_none());

    let contains = snow
        .rows("cmdb_rel_type")
        .into_iter()
        .find(|t| t["name"] == "Contains::Contained by")
        .and_then(|t| t["sys_id"].as_str().map(str::to_owned))
        .expect("a standard type");
    let (status, related) = send(
        Client::new()
            .post(format!("{api}/{VMS}/{sys_id}/relation"))
            .json(&json!({"source": "ServiceNow", "inbound_relations": [{"target": esx, "type": contains}]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let inbound = &related["result"]["inbound_relations"];
    assert_eq!(inbound.as_array().map(Vec::len), Some(1));
    let rel = inbound[0]["sys_id"].as_str().expect("rel").to_owned();
    let response = auth(Client::new().delete(format!("{api}/{VMS}/{sys_id}/relation/{rel}")))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(snow.count("cmdb_rel_ci"), 1);
    let (status, _) =
        send(Client::new().delete(format!("{api}/{VMS}/{sys_id}/relation/{rel}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = get(&format!("{api}/incident")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not a CMDB class");
    let (status, invalid) = get(&format!("{api}/u_nope")).await;
    assert_eq!(
        (status, invalid["error"]["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Invalid table u_nope"))
    );
    let (status, _) = get(&format!("{api}/{VMS}/{ADMIN}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_tiny_url_stands_for_its_query() {
    let (_snow, base) = instance().await;
    let long = format!(
        "{VMS}_list.do?sysparm_query=nameSTARTSWITHweb^{}^ORDERBYname&sysparm_fields=name",
        (0..200)
            .map(|i| format!("name!=x{i}"))
            .collect::<Vec<_>>()
            .join("^")
    );
    let (status, tiny) = send(
        Client::new()
            .post(format!("{base}/api/now/tinyurl"))
            .json(&json!({"url": long})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let short = tiny["result"].as_str().expect("a URL").to_owned();
    let id = short
        .strip_prefix(&format!("{VMS}_list.do?sysparm_tiny="))
        .expect("page?sysparm_tiny=id")
        .to_owned();
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    let (_, again) = send(
        Client::new()
            .post(format!("{base}/api/now/tinyurl"))
            .json(&json!({"url": long})),
    )
    .await;
    assert_eq!(again["result"], short.as_str(), "one id per query");
    let (_, listed) = get(&format!("{base}/api/now/table/{VMS}?sysparm_tiny={id}")).await;
    assert_eq!(
        listed["result"],
        json!([{"name": "web-01"}, {"name": "web-02"}])
    );
    let (_, kept) = get(&format!(
        "{base}/api/now/table/sys_tiny_url?tiny_url={id}&sysparm_fields=data"
    ))
    .await;
    assert!(kept["result"][0]["data"]
        .as_str()
        .is_some_and(|d| d.starts_with("sysparm_query=nameSTARTSWITHweb")));
}

/// Every column the job writes exists, so that dropping unknown columns never silently eats
/// a field it depends on: the shipped mappings' fields (create, update, retire), the run
/// ticket's (src/ticket.rs) and the lease's (README "Lease").
#[tokio::test]
async fn every_column_the_job_writes_exists() {
    let (_snow, base) = instance().await;
    let mappings = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings");
    let mut checked = 0;
    for entry in std::fs::read_dir(&mappings).expect("mappings/") {
        let path = entry.expect("entry").path();
        // Mapping files only: `mappings/catalog/` holds catalog links, which write nothing.
        if !path.is_file() || path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a mapping");
        let mapping: toml::Table = toml::from_str(&text).expect("TOML");
        let target = &mapping["target"];
        let table = target["table"].as_str().expect("target.table");
        let mut fields: Vec<String> = mapping["fields"]
            .as_table()
            .expect("[fields]")
            .keys()
            .cloned()
            .collect();
        for section in [
            target.get("on_create"),
            mapping.get("retire").and_then(|r| r.get("set")),
        ] {
            fields.extend(
                section
                    .and_then(|s| s.as_table())
                    .into_iter()
                    .flat_map(|t| t.keys().cloned()),
            );
        }
        let body: Map<String, Value> = fields.iter().map(|f| (f.clone(), json!("1"))).collect();
        let (status, created) = send(
            Client::new()
                .post(format!(
                    "{base}/api/now/table/{table}?sysparm_exclude_reference_link=true"
                ))
                .json(&body),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{}", path.display());
        // Journal fields (`mode = "append"`, `work_notes`) read back empty, as on an
        // instance: their entry is a `sys_journal_field` row.
        let journal: Vec<&String> = mapping["fields"]
            .as_table()
            .expect("[fields]")
            .iter()
            .filter(|(_, spec)| spec.get("mode").and_then(|m| m.as_str()) == Some("append"))
            .map(|(name, _)| name)
            .collect();
        for field in &fields {
            let want = if journal.contains(&field) { "" } else { "1" };
            assert_eq!(
                created["result"][field],
                want,
                "{}: `{table}.{field}`",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 2, "the shipped mappings");
    let ticket = json!({"short_description": "s", "description": "d", "state": "2", "impact": "3",
        "urgency": "3", "correlation_id": "c", "category": "software", "close_code": "Solution provided",
        "close_notes": "n", "work_notes": "w"});
    let (_, created) = send(
        Client::new()
            .post(format!("{base}/api/now/table/incident"))
            .json(&ticket),
    )
    .await;
    for (field, value) in ticket.as_object().expect("object") {
        if field == "work_notes" {
            continue;
        }
        assert_eq!(&created["result"][field], value, "incident.{field}");
    }
    // A journal field reads "": the note is an entry of sys_journal_field.
    assert_eq!(created["result"]["work_notes"], "");
    let sys_id = created["result"]["sys_id"].as_str().expect("sys_id");
    let (status, entries) = get(&format!(
        "{base}/api/now/table/sys_journal_field?sysparm_query=element_id={sys_id}^element=work_notes"
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{entries}");
    let entries = entries["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (entries[0]["name"].as_str(), entries[0]["value"].as_str()),
        (Some("incident"), Some("w"))
    );
}

#[tokio::test]
async fn a_change_request_follows_the_state_model_and_its_approvals() {
    let (snow, base) = instance().await;
    let table = format!("{base}/api/now/table/change_request");
    let (status, created) = send(
        Client::new()
            .post(&table)
            .json(&json!({"short_description": "reconcile", "type": "normal"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let change = &created["result"];
    assert_eq!(change["state"], "-5", "{change}");
    assert_eq!(change["approval"], "not requested");
    assert!(change["number"]
        .as_str()
        .expect("number")
        .starts_with("CHG"));
    let sys_id = change["sys_id"].as_str().expect("sys_id").to_owned();
    let one = format!("{table}/{sys_id}");
    let patch = |state: &str| send(Client::new().patch(&one).json(&json!({ "state": state })));

    // A change starts New; no skipping to Scheduled; approvals gate Assess -> Authorize.
    let (status, _) = send(Client::new().post(&table).json(&json!({"state": "-2"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, refused) = patch("-2").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(refused["error"]["message"], "Operation Failed");
    let (status, assessed) = patch("-4").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(assessed["result"]["approval"], "requested");
    let (status, _) = patch("-3").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not approved yet");

    // The approvers decide (the simulator's stand-in for them), then the change is worked.
    assert!(snow.decide_change(&sys_id, true));
    assert!(!snow.decide_change(&sys_id, true), "no longer waiting");
    let row = snow.get("change_request", &sys_id).expect("row");
    assert_eq!(row["state"], "-2");
    assert_eq!(row["approval"], "approved");
    for state in ["-1", "0", "3"] {
        let (status, body) = patch(state).await;
        assert_eq!(status, StatusCode::OK, "{state}: {body}");
    }
    let row = snow.get("change_request", &sys_id).expect("row");
    assert_eq!(row["active"], "false", "Closed ends the change");
    let (status, _) = patch("4").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a closed change stays closed"
    );

    // A rejection sends the change back to New; cancelling is always open.
    let (_, second) = send(Client::new().post(&table).json(&json!({}))).await;
    let second = second["result"]["sys_id"]
        .as_str()
        .expect("sys_id")
        .to_owned();
    let (status, _) = send(
        Client::new()
            .patch(format!("{table}/{second}"))
            .json(&json!({"state": "-4"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(snow.decide_change(&second, false));
    let row = snow.get("change_request", &second).expect("row");
    assert_eq!(
        (row["state"].as_str(), row["approval"].as_str()),
        (Some("-5"), Some("rejected"))
    );
    let (status, _) = send(
        Client::new()
            .patch(format!("{table}/{second}"))
            .json(&json!({"state": "4"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
