//! The service catalog on both sides, over HTTP: ServiceNow's `order_now` creating a REQ and
//! a RITM whose variables read back both ways (`variables.<name>` and the
//! `sc_item_option_mtom` join), and ManageIQ's `service_catalogs` / `service_templates` with
//! the `order` action, whose service requests walk the state machine to finished, Ok adding
//! the VM to `/api/vms`, the failing template ending Error.

mod common;

use common::{client, miq_get, start};
use serde_json::{json, Value};

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

fn resources(body: &Value) -> Vec<Value> {
    body["resources"].as_array().cloned().unwrap_or_default()
}

/// A ServiceNow call as `admin`; (status, JSON body).
async fn snow(
    sims: &cmdb_sim::Sims,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}{path}", sims.servicenow_url());
    let mut req = client()
        .request(method.parse().expect("method"), &url)
        .basic_auth("admin", Some("admin"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A ManageIQ POST as `admin`; (status, JSON body).
async fn miq_post(sims: &cmdb_sim::Sims, path: &str, body: Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{}{path}", sims.manageiq_url()))
        .basic_auth("admin", Some("smartvm"))
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn cat_item(sims: &cmdb_sim::Sims, name: &str) -> String {
    let (status, body) = snow(
        sims,
        "GET",
        &format!("/api/now/table/sc_cat_item?sysparm_query=name={name}&sysparm_fields=sys_id"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rows = body["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "one item {name}: {body}");
    s(&rows[0], "sys_id").to_owned()
}

#[tokio::test]
async fn order_now_creates_a_req_and_a_ritm_whose_variables_read_both_ways() {
    let sims = start(100).await;
    let item = cat_item(&sims, "Linux VM").await;
    let (status, placed) = snow(
        &sims,
        "POST",
        &format!("/api/sn_sc/servicecatalog/items/{item}/order_now"),
        Some(json!({"sysparm_quantity": 1, "variables": {"vm_name": "web-ordered-01", "not_a_variable": "x"}})),
    )
    .await;
    assert_eq!(status, 200, "{placed}");
    let result = &placed["result"];
    assert_eq!(result["table"], "sc_request");
    assert!(s(result, "number").starts_with("REQ"), "{placed}");
    assert_eq!(result["number"], result["request_number"]);
    assert_eq!(result["sys_id"], result["request_id"]);
    let request = s(result, "sys_id").to_owned();

    // The RITM is found by its request (the answer names only the REQ).
    let (_, ritms) = snow(
        &sims,
        "GET",
        &format!(
            "/api/now/table/sc_req_item?sysparm_query=request={request}\
             &sysparm_exclude_reference_link=true&sysparm_fields=sys_id,number,cat_item,request,state,approval,stage,active,opened_by,requested_for,variables.vm_name,variables.justification,variables.nope"
        ),
        None,
    )
    .await;
    let ritms = ritms["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(ritms.len(), 1, "{ritms:?}");
    let ritm = &ritms[0];
    assert!(s(ritm, "number").starts_with("RITM"), "{ritm}");
    assert_eq!(ritm["cat_item"], item.as_str());
    assert_eq!(ritm["state"], "1");
    assert_eq!(ritm["approval"], "approved");
    assert_eq!(ritm["stage"], "fulfillment");
    assert_eq!(ritm["active"], "true");
    let admin = "6816f79cc0a8016401c5a33be04be441";
    assert_eq!(ritm["opened_by"], admin);
    assert_eq!(ritm["requested_for"], admin);
    // variables.<name>: the value sent, the default of one not sent, an unknown one ignored.
    assert_eq!(ritm["variables.vm_name"], "web-ordered-01");
    assert_eq!(ritm["variables.justification"], "");
    assert!(ritm.get("variables.nope").is_none(), "{ritm}");
    let ritm_id = s(ritm, "sys_id").to_owned();

    // ... and in a query, as the job finds work.
    let (_, found) = snow(
        &sims,
        "GET",
        "/api/now/table/sc_req_item?sysparm_query=variables.vm_name=web-ordered-01^approval=approved^active=true&sysparm_fields=sys_id",
        None,
    )
    .await;
    assert_eq!(found["result"], json!([{"sys_id": ritm_id}]));

    // The MTOM join lists every variable without knowing its name (B.2).
    let (status, join) = snow(
        &sims,
        "GET",
        &format!(
            "/api/now/table/sc_item_option_mtom?sysparm_query=request_item={ritm_id}\
             &sysparm_fields=sc_item_option.item_option_new.name,sc_item_option.value,sc_item_option.item_option_new.type"
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{join}");
    let mut pairs: Vec<(String, String, String)> = join["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                s(r, "sc_item_option.item_option_new.name").to_owned(),
                s(r, "sc_item_option.value").to_owned(),
                s(r, "sc_item_option.item_option_new.type").to_owned(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            ("justification".into(), String::new(), "6".into()),
            ("vm_name".into(), "web-ordered-01".into(), "16".into()),
        ]
    );

    // Variables are readable, not writable, through the Table API (PSSnow #43).
    let (status, _) = snow(
        &sims,
        "PATCH",
        &format!("/api/now/table/sc_req_item/{ritm_id}"),
        Some(json!({"variables.vm_name": "changed"})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, again) = snow(
        &sims,
        "GET",
        &format!("/api/now/table/sc_req_item/{ritm_id}?sysparm_fields=variables.vm_name"),
        None,
    )
    .await;
    assert_eq!(again["result"]["variables.vm_name"], "web-ordered-01");

    // The states and approvals the job reads from sys_choice.
    let (_, states) = snow(
        &sims,
        "GET",
        "/api/now/table/sys_choice?sysparm_query=name=sc_req_item^element=state^inactive=false&sysparm_fields=value,label",
        None,
    )
    .await;
    let states: Vec<(String, String)> = states["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| (s(c, "value").to_owned(), s(c, "label").to_owned()))
        .collect();
    for expected in [
        ("1", "Open"),
        ("2", "Work in Progress"),
        ("3", "Closed Complete"),
        ("4", "Closed Incomplete"),
    ] {
        assert!(
            states.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {states:?}"
        );
    }
    let (_, approvals) = snow(
        &sims,
        "GET",
        "/api/now/table/sys_choice?sysparm_query=name=sc_req_item^element=approval&sysparm_fields=value",
        None,
    )
    .await;
    assert!(approvals["result"]
        .as_array()
        .is_some_and(|a| a.iter().any(|c| c["value"] == "approved")));
}

#[tokio::test]
async fn order_now_refuses_as_the_api_does_and_pending_items_wait_for_approval() {
    let sims = start(50).await;
    let item = cat_item(&sims, "Linux VM").await;
    let order = |body: Value| {
        let item = item.clone();
        let sims = &sims;
        async move {
            snow(
                sims,
                "POST",
                &format!("/api/sn_sc/servicecatalog/items/{item}/order_now"),
                Some(body),
            )
            .await
        }
    };
    // A mandatory variable missing; an invalid quantity.
    let (status, body) = order(json!({"variables": {"justification": "x"}})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["message"], "Mandatory Variables are required");
    let (status, _) = order(json!({"sysparm_quantity": 0, "variables": {"vm_name": "a"}})).await;
    assert_eq!(status, 400);
    let (status, _) =
        order(json!({"sysparm_quantity": "two", "variables": {"vm_name": "a"}})).await;
    assert_eq!(status, 400);
    // Nothing was created by the refusals.
    assert_eq!(sims.servicenow().count("sc_req_item"), 0);
    // No such item.
    let (status, _) = snow(
        &sims,
        "POST",
        "/api/sn_sc/servicecatalog/items/0123456789abcdef0123456789abcdef/order_now",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 404);

    // An item whose approval is pending: the RITM waits until an approver's PATCH.
    let (status, created) = snow(
        &sims,
        "POST",
        "/api/now/table/sc_cat_item",
        Some(json!({"name": "Approved later", "u_sim_approval": "requested"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let later = s(&created["result"], "sys_id").to_owned();
    let (status, placed) = snow(
        &sims,
        "POST",
        &format!("/api/sn_sc/v1/servicecatalog/items/{later}/order_now"),
        Some(json!({"sysparm_quantity": "2"})),
    )
    .await;
    assert_eq!(status, 200, "{placed}");
    let request = s(&placed["result"], "request_id").to_owned();
    let (_, req) = snow(
        &sims,
        "GET",
        &format!("/api/now/table/sc_request/{request}"),
        None,
    )
    .await;
    assert_eq!(req["result"]["approval"], "requested");
    assert_eq!(req["result"]["request_state"], "requested");
    let (_, ritms) = snow(
        &sims,
        "GET",
        &format!("/api/now/table/sc_req_item?request={request}&sysparm_fields=sys_id,approval,quantity,stage"),
        None,
    )
    .await;
    let ritm = &ritms["result"][0];
    assert_eq!(ritm["approval"], "requested");
    assert_eq!(ritm["quantity"], "2");
    assert_eq!(ritm["stage"], "waiting_for_approval");
    let id = s(ritm, "sys_id");
    let (status, _) = snow(
        &sims,
        "PATCH",
        &format!("/api/now/table/sc_req_item/{id}"),
        Some(json!({"approval": "approved"})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, found) = snow(
        &sims,
        "GET",
        &format!("/api/now/table/sc_req_item?sysparm_query=approval=approved^sys_id={id}&sysparm_fields=sys_id"),
        None,
    )
    .await;
    assert_eq!(found["result"].as_array().map(Vec::len), Some(1));
}

/// The ids of the catalog and of the template named `name`.
async fn template(sims: &cmdb_sim::Sims, name: &str) -> (String, String) {
    let (status, body) = miq_get(
        sims,
        &format!("/api/service_templates?expand=resources&filter[]=name={name}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let list = resources(&body);
    assert_eq!(list.len(), 1, "{body}");
    (
        s(&list[0], "service_template_catalog_id").to_owned(),
        s(&list[0], "id").to_owned(),
    )
}

async fn advance_until_finished(sims: &cmdb_sim::Sims, id: &str) -> Value {
    for _ in 0..5 {
        let (_, r) = miq_get(
            sims,
            &format!("/api/service_requests/{id}?expand=request_tasks"),
        )
        .await;
        if r["request_state"] == "finished" {
            return r;
        }
        sims.manageiq().advance_requests();
    }
    panic!("request {id} did not finish");
}

#[tokio::test]
async fn a_manageiq_order_becomes_a_service_request_that_adds_its_vm() {
    let sims = start(100).await;
    let (status, catalogs) = miq_get(&sims, "/api/service_catalogs?expand=resources").await;
    assert_eq!(status, 200, "{catalogs}");
    assert_eq!(resources(&catalogs)[0]["name"], "Virtual Machines");
    let (catalog, linux) = template(&sims, "Linux VM").await;
    let (status, sub) = miq_get(
        &sims,
        &format!(
            "/api/service_catalogs/{catalog}/service_templates?expand=resources&attributes=name"
        ),
    )
    .await;
    assert_eq!(status, 200, "{sub}");
    let mut names: Vec<String> = resources(&sub)
        .iter()
        .map(|t| s(t, "name").to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["Failing VM", "Linux VM"]);

    let (status, ordered) = miq_post(
        &sims,
        &format!("/api/service_templates/{linux}"),
        json!({"action": "order", "vm_name": "svc-web-01", "dialog_ritm_number": "RITM0010001"}),
    )
    .await;
    assert_eq!(status, 200, "{ordered}");
    let id = s(&ordered, "id").to_owned();
    assert!(
        s(&ordered, "href").ends_with(&format!("/api/service_requests/{id}")),
        "{ordered}"
    );
    assert_eq!(ordered["type"], "ServiceTemplateProvisionRequest");
    assert_eq!(ordered["request_type"], "clone_to_service");
    assert_eq!(ordered["approval_state"], "pending_approval");
    assert_eq!(ordered["request_state"], "pending");
    assert_eq!(ordered["status"], "Ok");
    assert_eq!(
        ordered["message"],
        "Service_Template_Provisioning - Request Created"
    );
    assert_eq!(
        ordered["description"],
        "Provisioning Service [Linux VM] from [Linux VM]"
    );
    assert_eq!(ordered["source_type"], "ServiceTemplate");
    assert_eq!(ordered["source_id"], linux.as_str());
    assert_eq!(
        ordered["options"]["dialog"],
        json!({"dialog_vm_name": "svc-web-01", "dialog_ritm_number": "RITM0010001"})
    );

    let done = advance_until_finished(&sims, &id).await;
    assert_eq!(done["status"], "Ok", "{done}");
    assert_eq!(done["message"], "Request complete");
    let vm_id = done["request_tasks"]
        .as_array()
        .and_then(|ts| {
            ts.iter()
                .find(|t| t["type"] != "ServiceTemplateProvisionTask")
        })
        .map(|t| s(t, "destination_id").to_owned())
        .expect("a VM task with its VM");
    let (status, vm) = miq_get(&sims, &format!("/api/vms/{vm_id}")).await;
    assert_eq!(status, 200, "{vm}");
    assert_eq!(vm["name"], "svc-web-01");

    // The same order through the catalog's subresource, and in bulk.
    let (status, sub_order) = miq_post(
        &sims,
        &format!("/api/service_catalogs/{catalog}/service_templates/{linux}"),
        json!({"action": "order", "dialog_vm_name": "svc-web-02"}),
    )
    .await;
    assert_eq!(status, 200, "{sub_order}");
    assert_eq!(
        sub_order["options"]["dialog"]["dialog_vm_name"],
        "svc-web-02"
    );
    let (status, bulk) = miq_post(
        &sims,
        "/api/service_templates",
        json!({"action": "order", "resources": [
            {"href": format!("{}/api/service_templates/{linux}", sims.manageiq_url()), "vm_name": "svc-web-03"},
            {"href": format!("{}/api/service_templates/999999999", sims.manageiq_url()), "vm_name": "x"},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{bulk}");
    assert_eq!(
        bulk["results"][0]["options"]["dialog"]["dialog_vm_name"],
        "svc-web-03"
    );
    assert_eq!(bulk["results"][1]["success"], false);
    let (_, list) = miq_get(&sims, "/api/service_requests?filter[]=source_type=ServiceTemplate&expand=resources&attributes=options").await;
    let listed = resources(&list);
    let ordered_names: Vec<&str> = listed
        .iter()
        .filter_map(|r| r["options"]["dialog"]["dialog_vm_name"].as_str())
        .filter(|n| n.starts_with("svc-web-"))
        .collect();
    assert_eq!(ordered_names.len(), 3, "{list}");
}

#[tokio::test]
async fn a_failing_template_ends_finished_error_without_a_vm() {
    let sims = start(100).await;
    let (_, failing) = template(&sims, "Failing VM").await;
    let (status, ordered) = miq_post(
        &sims,
        &format!("/api/service_templates/{failing}"),
        json!({"action": "order", "dialog_vm_name": "doomed-01"}),
    )
    .await;
    assert_eq!(status, 200, "{ordered}");
    let done = advance_until_finished(&sims, s(&ordered, "id")).await;
    assert_eq!(done["status"], "Error", "{done}");
    assert_eq!(done["approval_state"], "approved");
    assert_eq!(done["message"], "Request completed with errors");
    assert!(sims
        .manageiq()
        .estate()
        .vms
        .iter()
        .all(|vm| vm.name != "doomed-01"));
    let vm_task = done["request_tasks"]
        .as_array()
        .and_then(|ts| {
            ts.iter()
                .find(|t| t["type"] != "ServiceTemplateProvisionTask")
        })
        .cloned()
        .expect("a VM task");
    assert_eq!(vm_task["status"], "Error");
    assert!(
        vm_task.get("destination_id").is_none_or(Value::is_null),
        "{vm_task}"
    );
}

#[tokio::test]
async fn manageiq_refuses_bad_orders_as_the_api_does() {
    let sims = start(50).await;
    let (catalog, linux) = template(&sims, "Linux VM").await;
    let (status, body) = miq_post(
        &sims,
        &format!("/api/service_templates/{linux}"),
        json!({"action": "order"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["message"],
        format!(
            "Failed to order Service Template id:{linux} name:'Linux VM' - VM Name is required"
        )
    );
    let (status, body) = miq_post(
        &sims,
        &format!("/api/service_templates/{linux}"),
        json!({"action": "explode"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = miq_post(
        &sims,
        "/api/service_templates/999999999",
        json!({"action": "order", "vm_name": "a"}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = miq_post(
        &sims,
        &format!("/api/service_catalogs/{catalog}1/service_templates/{linux}"),
        json!({"action": "order", "vm_name": "a"}),
    )
    .await;
    assert_eq!(status, 404);
    // No request was queued by any of them.
    let (_, list) = miq_get(&sims, "/api/service_requests").await;
    assert_eq!(
        list["count"],
        sims.estate()
            .requests
            .iter()
            .filter(|r| r.kind == cmdb_sim::generator::RequestKind::Service)
            .count()
    );
}

#[tokio::test]
async fn an_ordered_request_is_approved_or_denied_by_the_api_action() {
    let sims = start(50).await;
    let (_, linux) = template(&sims, "Linux VM").await;
    let order = |name: &'static str| {
        let sims = &sims;
        let linux = linux.clone();
        async move {
            let (status, r) = miq_post(
                sims,
                &format!("/api/service_templates/{linux}"),
                json!({"action": "order", "vm_name": name}),
            )
            .await;
            assert_eq!(status, 200, "{r}");
            s(&r, "id").to_owned()
        }
    };
    let first = order("svc-approved-01").await;
    let path = format!("/api/service_requests/{first}");
    let (status, body) = miq_post(&sims, &path, json!({"action": "approve"})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["message"],
        "Must specify a reason for approving a Service Request"
    );
    let (status, body) = miq_post(
        &sims,
        &path,
        json!({"action": "approve", "reason": "RITM0010001 approved in ServiceNow"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(
        body["message"],
        format!("Approving Service Request id: {first}")
    );
    let (_, r) = miq_get(&sims, &format!("{path}?expand=request_tasks")).await;
    assert_eq!(r["approval_state"], "approved");
    assert_eq!(r["request_state"], "pending");
    assert_eq!(r["request_tasks"].as_array().map(Vec::len), Some(2));

    let second = order("svc-denied-01").await;
    let (status, body) = miq_post(
        &sims,
        &format!("/api/requests/{second}"),
        json!({"action": "deny", "reason": "RITM rejected"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], format!("Denying Request id: {second}"));
    let (_, r) = miq_get(&sims, &format!("/api/service_requests/{second}")).await;
    assert_eq!(
        (&r["approval_state"], &r["request_state"], &r["status"]),
        (&json!("denied"), &json!("finished"), &json!("Denied"))
    );
    let (status, _) = miq_post(
        &sims,
        "/api/provision_requests/999999999",
        json!({"action": "approve", "reason": "x"}),
    )
    .await;
    assert_eq!(status, 404);
}
