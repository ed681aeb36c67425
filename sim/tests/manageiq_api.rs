//! Behaviour of the ManageIQ simulator a client depends on: paging and links,
//! attribute selection, filters, tags, sorting, templates and authentication.

mod common;

use common::{client, keys, miq_get, start};
use serde_json::Value;
use std::collections::HashSet;

fn ids(page: &Value) -> Vec<String> {
    page["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect()
}

/// Follows `links.next` from `first`; returns every id and the number of pages.
async fn follow_next(sims: &cmdb_sim::Sims, first: &str) -> (Vec<String>, usize) {
    let mut url = format!("{}{first}", sims.manageiq_url());
    let (mut all, mut pages) = (Vec::new(), 0);
    loop {
        let page: Value = client()
            .get(&url)
            .basic_auth("admin", Some("smartvm"))
            .send()
            .await
            .expect("GET page")
            .json()
            .await
            .expect("JSON page");
        pages += 1;
        all.extend(ids(&page));
        match page["links"]["next"].as_str() {
            Some(next) => url = next.to_owned(),
            None => return (all, pages),
        }
    }
}

#[tokio::test]
async fn paging_by_next_links_returns_every_vm_once() {
    let sims = start(2_345).await;
    let (all, pages) = follow_next(
        &sims,
        "/api/vms?expand=resources&attributes=name&limit=500&sort_by=id",
    )
    .await;
    assert_eq!(pages, 5);
    assert_eq!(all.len(), 2_345);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 2_345);
    let expected: Vec<String> = sims.estate().vms.iter().map(|v| v.id.to_string()).collect();
    assert_eq!(all, expected, "sorted by id");
}

#[tokio::test]
async fn limit_is_capped_and_links_echo_the_request() {
    let sims = start(2_500).await;
    let (status, page) = miq_get(&sims, "/api/vms?limit=5000&offset=1000").await;
    assert_eq!(status, 200);
    assert_eq!(page["subcount"], 1000);
    assert_eq!(page["pages"], 3);
    assert_eq!(
        keys(&page),
        [
            "name",
            "count",
            "subcount",
            "pages",
            "resources",
            "actions",
            "links"
        ]
    );
    // Without expand=resources only hrefs come back.
    assert_eq!(keys(&page["resources"][0]), ["href"]);
    let base = sims.manageiq_url();
    let links = &page["links"];
    assert_eq!(keys(links), ["self", "next", "previous", "first", "last"]);
    assert_eq!(
        links["self"],
        format!("{base}/api/vms?limit=5000&offset=1000")
    );
    assert_eq!(
        links["next"],
        format!("{base}/api/vms?limit=5000&offset=2000")
    );
    assert_eq!(
        links["previous"],
        format!("{base}/api/vms?limit=5000&offset=0")
    );
    assert_eq!(
        links["last"],
        format!("{base}/api/vms?limit=5000&offset=2000")
    );

    // No paging parameters: offset appended, 1000 per page.
    let (_, page) = miq_get(&sims, "/api/vms?expand=resources&attributes=name").await;
    assert_eq!(page["subcount"], 1000);
    assert_eq!(
        page["links"]["next"],
        format!("{base}/api/vms?expand=resources&attributes=name&offset=1000")
    );

    let (status, err) = miq_get(&sims, "/api/vms?offset=10&limit=0").await;
    assert_eq!(status, 400);
    assert_eq!(
        err["error"]["message"],
        "Limit must be greater than zero if offset is specified"
    );
}

#[tokio::test]
async fn last_link_points_past_the_end_on_exact_multiples() {
    let sims = start(2_000).await;
    let (_, page) = miq_get(&sims, "/api/vms?limit=1000&offset=0").await;
    assert_eq!(page["pages"], 2);
    let last = page["links"]["last"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(last.ends_with("offset=2000"), "{last}");
    let path = last.trim_start_matches(&sims.manageiq_url());
    let (_, past_end) = miq_get(&sims, path).await;
    assert_eq!(past_end["subcount"], 0);
    assert!(past_end["links"].get("next").is_none());
}

#[tokio::test]
async fn attributes_render_physical_virtual_and_nested_fields() {
    let sims = start(300).await;
    let q =
        "/api/vms?expand=resources&limit=50&attributes=name,ems_ref,ipaddresses,cpu_total_cores,\
             ram_size,hardware.memory_mb,hardware.guest_os_full_name,ext_management_system.name,\
             ext_management_system.guid,archived,evm_owner_email,hardware.no_such_key";
    let (status, page) = miq_get(&sims, q).await;
    assert_eq!(status, 200);
    let e = sims.estate();
    for r in page["resources"].as_array().into_iter().flatten() {
        let vm = e
            .vms
            .iter()
            .find(|v| r["id"] == v.id.to_string().as_str())
            .expect("known VM");
        let mut expected = vec![
            "href",
            "name",
            "ems_ref",
            "id",
            "ipaddresses",
            "cpu_total_cores",
            "ram_size",
            "hardware",
        ];
        if vm.ems.is_some() {
            expected.push("ext_management_system");
        }
        expected.extend(["archived", "evm_owner_email"]);
        assert_eq!(keys(r), expected);
        assert_eq!(r["hardware"]["memory_mb"], vm.hardware.memory_mb);
        assert_eq!(r["cpu_total_cores"], vm.hardware.cpu_total_cores());
        assert!(r["hardware"].get("no_such_key").is_none());
        if let Some(p) = vm.ems {
            assert_eq!(
                r["ext_management_system"]["guid"],
                e.providers[p].guid.as_str()
            );
        }
        let ips: Vec<&str> = r["ipaddresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            ips,
            vm.ipaddresses
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        );
        assert!(
            r.get("actions").is_none(),
            "no actions when physical attributes were chosen"
        );
    }

    // Only virtual attributes: every physical column comes back too, with actions.
    let (_, page) = miq_get(
        &sims,
        "/api/vms?expand=resources&limit=1&attributes=ipaddresses",
    )
    .await;
    let r = &page["resources"][0];
    assert!(
        r.get("vendor").is_some() && r.get("ipaddresses").is_some() && r.get("actions").is_some()
    );
}

#[tokio::test]
async fn tags_come_managed_with_expand_and_all_with_attributes() {
    let sims = start(400).await;
    let e = sims.estate();
    let vm = e
        .vms
        .iter()
        .find(|v| v.tags.iter().any(|&t| !e.tags[t as usize].is_managed()))
        .expect("a VM with a tag outside /managed");
    let (_, expanded) = miq_get(&sims, &format!("/api/vms/{}?expand=tags", vm.id)).await;
    let (_, attributes) = miq_get(&sims, &format!("/api/vms/{}?attributes=tags", vm.id)).await;
    let names = |v: &Value| -> Vec<String> {
        v["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(names(&expanded).iter().all(|n| n.starts_with("/managed/")));
    assert_eq!(names(&attributes).len(), vm.tags.len());
    assert!(names(&expanded).len() < names(&attributes).len());
    assert_eq!(keys(&expanded["tags"][0]), ["href", "id", "name"]);
    let (status, err) = miq_get(
        &sims,
        &format!("/api/vms/{}?expand=tags&attributes=tags", vm.id),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        err["error"]["message"],
        "Cannot expand subcollection tags by name and virtual attribute"
    );

    let (_, ca) = miq_get(
        &sims,
        "/api/vms?expand=resources,custom_attributes&attributes=name&limit=200",
    )
    .await;
    let with_ca = ca["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| {
            r["custom_attributes"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        })
        .expect("some VM has custom attributes");
    for k in ["name", "value", "section", "source"] {
        assert!(with_ca["custom_attributes"][0].get(k).is_some(), "{k}");
    }
}

#[tokio::test]
async fn filters_count_and_page_the_matching_subset() {
    let sims = start(1_500).await;
    let e = sims.estate();
    let vmware = e
        .vms
        .iter()
        .filter(|v| v.vendor.as_str() == "vmware")
        .count();
    let (_, page) = miq_get(&sims, "/api/vms?filter[]=vendor=vmware&limit=100&offset=0").await;
    assert_eq!(page["count"], 1_500);
    assert_eq!(page["subquery_count"], vmware);
    assert_eq!(page["pages"], vmware.div_ceil(100));

    let big = e
        .vms
        .iter()
        .filter(|v| v.hardware.memory_mb >= 8192 && v.vendor.as_str() == "vmware")
        .count();
    let (_, page) = miq_get(
        &sims,
        "/api/vms?filter[]=hardware.memory_mb>=8192&filter[]=vendor='vmware'&limit=1",
    )
    .await;
    assert_eq!(page["subquery_count"], big);

    // Key-set paging.
    let pivot = e.vms[700].id;
    let (_, page) = miq_get(
        &sims,
        &format!("/api/vms?filter[]=id>{pivot}&sort_by=id&limit=5"),
    )
    .await;
    assert_eq!(page["subquery_count"], 1_500 - 701);

    let name = &e.vms[3].name;
    let prefix = &name[..4];
    let (_, page) = miq_get(
        &sims,
        &format!("/api/vms?filter[]=name='{prefix}%25'&limit=1"),
    )
    .await;
    let expected = e.vms.iter().filter(|v| v.name.starts_with(prefix)).count();
    assert_eq!(page["subquery_count"], expected);

    let (_, page) = miq_get(
        &sims,
        "/api/vms?filter[]=retired=NULL&filter[]=or power_state=suspended&limit=1",
    )
    .await;
    let expected = e
        .vms
        .iter()
        .filter(|v| v.retired.is_none() || v.power_state.as_str() == "suspended")
        .count();
    assert_eq!(page["subquery_count"], expected);

    let (_, page) = miq_get(&sims, "/api/vms?by_tag=/environment/prod&limit=1").await;
    assert!(
        page.get("subquery_count").is_none(),
        "by_tag is not a filter[]"
    );
    let prod = e
        .vms
        .iter()
        .filter(|v| {
            v.tags
                .iter()
                .any(|&t| e.tags[t as usize].name == "/managed/environment/prod")
        })
        .count();
    let (_, page) = miq_get(
        &sims,
        &format!("/api/vms?by_tag=/environment/prod&limit={}", prod + 10),
    )
    .await;
    assert_eq!(page["subcount"], prod);

    let (status, err) = miq_get(&sims, "/api/vms?filter[]=nosuch=1").await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["message"], "attribute nosuch does not exist");
}

#[tokio::test]
async fn sorting_orders_and_validates() {
    let sims = start(200).await;
    let (_, page) = miq_get(
        &sims,
        "/api/vms?expand=resources&attributes=name&sort_by=name&sort_order=desc&limit=200",
    )
    .await;
    let names: Vec<&str> = page["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(names, sorted);
    let (status, err) = miq_get(&sims, "/api/vms?sort_by=bogus").await;
    assert_eq!(status, 400);
    assert_eq!(
        err["error"]["message"],
        "bogus is not a valid attribute for Vm"
    );
}

#[tokio::test]
async fn templates_live_apart_from_vms() {
    let sims = start(300).await;
    let e = sims.estate();
    let template = &e.templates[0];
    let (status, _) = miq_get(&sims, &format!("/api/vms/{}", template.id)).await;
    assert_eq!(status, 404);
    let (status, t) = miq_get(&sims, &format!("/api/templates/{}", template.id)).await;
    assert_eq!(status, 200);
    assert_eq!(t["template"], true);
    let (_, page) = miq_get(&sims, "/api/templates").await;
    assert_eq!(page["count"], e.templates.len());
    let (_, page) = miq_get(&sims, "/api/vms?filter[]=template=true").await;
    assert_eq!(page["subquery_count"], 0);
    // Archived and orphaned VMs are listed.
    let archived = e.expected.archived_vms[0];
    let (_, vm) = miq_get(
        &sims,
        &format!("/api/vms/{archived}?attributes=archived,orphaned"),
    )
    .await;
    assert_eq!(vm["archived"], true);
    let (_, hosts) = miq_get(&sims, "/api/hosts?expand=resources&limit=3").await;
    assert_eq!(hosts["count"], e.hosts.len());
    assert_eq!(
        hosts["resources"][0]["id"],
        e.hosts[0].id.to_string().as_str()
    );
}

#[tokio::test]
async fn token_authentication_slides_and_logs_out() {
    let mut opts = common::options(10);
    opts.miq_token_ttl = std::time::Duration::from_millis(400);
    let sims = cmdb_sim::Sims::start(opts).await.expect("simulators start");
    let base = sims.manageiq_url();
    let http = client();
    let auth: Value = http
        .get(format!("{base}/api/auth"))
        .basic_auth("admin", Some("smartvm"))
        .send()
        .await
        .expect("GET /api/auth")
        .json()
        .await
        .expect("JSON");
    assert_eq!(keys(&auth), ["auth_token", "token_ttl", "expires_on"]);
    let token = auth["auth_token"].as_str().unwrap_or_default().to_owned();
    let get = |t: String, group: Option<&'static str>| {
        let mut req = http
            .get(format!("{base}/api/vms?limit=1"))
            .header("X-Auth-Token", t);
        if let Some(g) = group {
            req = req.header("X-MIQ-Group", g);
        }
        async move { req.send().await.expect("GET").status().as_u16() }
    };
    // Each use renews the token: 4 x 200 ms outlives the 400 ms TTL.
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(get(token.clone(), None).await, 200);
    }
    assert_eq!(
        get(token.clone(), Some("EvmGroup-super_administrator")).await,
        200
    );
    assert_eq!(get(token.clone(), Some("EvmGroup-nobody")).await, 401);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(get(token.clone(), None).await, 401, "expired");

    let fresh: Value = http
        .get(format!("{base}/api/auth"))
        .basic_auth("admin", Some("smartvm"))
        .send()
        .await
        .expect("GET /api/auth")
        .json()
        .await
        .expect("JSON");
    let fresh = fresh["auth_token"].as_str().unwrap_or_default().to_owned();
    let resp = http
        .delete(format!("{base}/api/auth"))
        .header("X-Auth-Token", &fresh)
        .send()
        .await
        .expect("DELETE /api/auth");
    assert_eq!(resp.status().as_u16(), 204);
    let resp = http
        .get(format!("{base}/api/vms"))
        .header("X-Auth-Token", &fresh)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 401);
    assert!(
        resp.headers().get("www-authenticate").is_none(),
        "no Basic challenge"
    );
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(
        body["error"]["message"],
        format!("Invalid Authentication Token {fresh} specified")
    );
}
