//! The infrastructure the VMs run on, as ManageIQ serves it and as the generated CMDB holds
//! it: provider instance UUIDs, datacenters as provider folders, the VMware identifiers of
//! clusters, hosts and datastores, the VM relations the mapping's dotted paths read, and a
//! vMotion between two runs (`POST /_sim/manageiq/vmotion`).

mod common;

use common::{client, miq_get, start};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

fn resources(body: &Value) -> Vec<Value> {
    body["resources"].as_array().cloned().unwrap_or_default()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

const VMWARE_EMS: &str = "ManageIQ::Providers::Vmware::InfraManager";

#[tokio::test]
async fn vmware_providers_carry_the_vcenter_instance_uuid_apart_from_their_guid() {
    let sims = start(50).await;
    let (status, body) = miq_get(
        &sims,
        "/api/providers?expand=resources&attributes=name,type,guid,uid_ems",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let providers = resources(&body);
    let vmware: Vec<&Value> = providers
        .iter()
        .filter(|p| s(p, "type") == VMWARE_EMS)
        .collect();
    assert!(vmware.len() >= 2);
    for p in &vmware {
        let uid = s(p, "uid_ems");
        assert!(uuid::Uuid::parse_str(uid).is_ok(), "{p}");
        assert_ne!(
            uid,
            s(p, "guid"),
            "the instance UUID is not ManageIQ's guid"
        );
    }
    // RHV providers have no instance UUID: NULL, left out of the record.
    for p in providers.iter().filter(|p| s(p, "type") != VMWARE_EMS) {
        assert!(p.get("uid_ems").is_none(), "{p}");
    }
}

#[tokio::test]
async fn datacenters_are_folders_of_their_provider() {
    let sims = start(50).await;
    let (_, body) = miq_get(&sims, "/api/providers?expand=resources&attributes=id,type").await;
    let mut datacenters = 0;
    for p in resources(&body) {
        let id = s(&p, "id");
        let (status, folders) = miq_get(
            &sims,
            &format!("/api/providers/{id}/folders?expand=resources&attributes=name,type,ems_ref,uid_ems,ems_id,hidden"),
        )
        .await;
        assert_eq!(status, 200, "{folders}");
        assert_eq!(folders["name"], "folders");
        for f in resources(&folders) {
            assert_eq!(s(&f, "ems_id"), id);
            if s(&p, "type") == VMWARE_EMS {
                assert_eq!(s(&f, "ems_ref"), s(&f, "uid_ems"), "a MoRef: {f}");
            }
            assert!(
                s(&f, "href").ends_with(&format!("/api/providers/{id}/folders/{}", s(&f, "id"))),
                "{f}"
            );
            if !s(&f, "type").ends_with("::Datacenter") {
                assert_eq!(f["hidden"], true, "only datacenters are visible: {f}");
                continue;
            }
            datacenters += 1;
            assert_eq!(f["hidden"], false);
            if s(&p, "type") == VMWARE_EMS {
                assert_eq!(
                    s(&f, "type"),
                    "ManageIQ::Providers::Vmware::InfraManager::Datacenter"
                );
                assert!(s(&f, "ems_ref").starts_with("datacenter-"), "{f}");
            }
            // One record, as the list renders it.
            let (status, one) = miq_get(
                &sims,
                &format!(
                    "/api/providers/{id}/folders/{}?attributes=name,ems_ref",
                    s(&f, "id")
                ),
            )
            .await;
            assert_eq!(status, 200);
            assert_eq!(one["name"], f["name"]);
            assert_eq!(one["ems_ref"], f["ems_ref"]);
        }
    }
    assert_eq!(datacenters, sims.estate().datacenters.len());

    // Filtering on the type finds the datacenters only.
    let vc = &sims.estate().providers[0];
    let (_, only) = miq_get(
        &sims,
        &format!(
            "/api/providers/{}/folders?expand=resources&attributes=name&filter[]=type={VMWARE_EMS}::Datacenter",
            vc.id
        ),
    )
    .await;
    let names: HashSet<String> = resources(&only)
        .iter()
        .map(|f| s(f, "name").to_owned())
        .collect();
    let expected: HashSet<String> = sims
        .estate()
        .datacenters
        .iter()
        .filter(|d| d.ems == 0)
        .map(|d| d.name.clone())
        .collect();
    assert_eq!(names, expected);

    // There is no top-level collection, as on a real appliance; an unknown provider is a 404.
    assert_eq!(miq_get(&sims, "/api/folders").await.0, 404);
    assert_eq!(miq_get(&sims, "/api/providers/1/folders").await.0, 404);
}

#[tokio::test]
async fn clusters_hosts_and_datastores_carry_provider_and_vmware_identifiers() {
    let sims = start(50).await;
    let e = sims.estate();
    let provider_ids: HashSet<String> = e.providers.iter().map(|p| p.id.to_string()).collect();
    let vmware_ids: HashSet<String> = e
        .providers
        .iter()
        .filter(|p| p.vendor == cmdb_sim::generator::Vendor::Vmware)
        .map(|p| p.id.to_string())
        .collect();
    let datacenter_names: HashSet<&str> = e.datacenters.iter().map(|d| d.name.as_str()).collect();

    let (_, clusters) = miq_get(
        &sims,
        "/api/clusters?expand=resources&attributes=name,ems_id,ems_ref,uid_ems,v_parent_datacenter",
    )
    .await;
    let clusters = resources(&clusters);
    assert_eq!(clusters.len(), e.clusters.len());
    let cluster_ids: HashSet<String> = clusters.iter().map(|c| s(c, "id").to_owned()).collect();
    for c in &clusters {
        assert!(provider_ids.contains(s(c, "ems_id")), "{c}");
        assert!(
            datacenter_names.contains(s(c, "v_parent_datacenter")),
            "{c}"
        );
        if vmware_ids.contains(s(c, "ems_id")) {
            assert!(s(c, "ems_ref").starts_with("domain-c"), "{c}");
            assert_eq!(s(c, "ems_ref"), s(c, "uid_ems"));
        }
    }
    // Virtual attributes are rendered only when asked for.
    let (_, full) = miq_get(&sims, "/api/clusters?expand=resources").await;
    assert!(resources(&full)[0].get("v_parent_datacenter").is_none());

    let (_, hosts) = miq_get(
        &sims,
        "/api/hosts?expand=resources&attributes=name,ems_id,ems_ref,uid_ems,ems_cluster_id,v_owning_cluster,v_owning_datacenter",
    )
    .await;
    for h in resources(&hosts) {
        assert!(provider_ids.contains(s(&h, "ems_id")), "{h}");
        assert!(cluster_ids.contains(s(&h, "ems_cluster_id")), "{h}");
        assert!(
            datacenter_names.contains(s(&h, "v_owning_datacenter")),
            "{h}"
        );
        assert!(!s(&h, "v_owning_cluster").is_empty());
        if vmware_ids.contains(s(&h, "ems_id")) {
            assert!(s(&h, "ems_ref").starts_with("host-"), "{h}");
            assert_eq!(
                s(&h, "uid_ems"),
                s(&h, "name"),
                "a host's uid_ems is its name"
            );
        }
    }

    let (_, stores) = miq_get(
        &sims,
        "/api/data_stores?expand=resources&attributes=name,ems_id,ems_ref",
    )
    .await;
    let stores = resources(&stores);
    assert_eq!(stores.len(), e.storages.len());
    let mut keys = HashSet::new();
    for d in &stores {
        assert!(provider_ids.contains(s(d, "ems_id")), "{d}");
        assert!(
            keys.insert((s(d, "ems_ref").to_owned(), s(d, "ems_id").to_owned())),
            "MoRef and provider key a datastore: {d}"
        );
    }
}

#[tokio::test]
async fn vm_relations_serve_the_placement_paths_of_the_mapping() {
    let sims = start(100).await;
    let e = sims.estate();
    let (status, body) = miq_get(
        &sims,
        "/api/vms?expand=resources&filter[]=vendor=vmware&attributes=host.ems_ref,host.name,ems_cluster.ems_ref,storage.ems_ref,storage.ems_id,ext_management_system.uid_ems,v_owning_datacenter",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let by_id: HashMap<String, &cmdb_sim::generator::Vm> =
        e.vms.iter().map(|v| (v.id.to_string(), v)).collect();
    let mut placed = 0;
    for r in resources(&body) {
        let vm = by_id[s(&r, "id")];
        let Some(host) = vm.host.map(|h| &e.hosts[h]) else {
            assert!(r.get("host").is_none_or(Value::is_null), "{r}");
            continue;
        };
        placed += 1;
        assert_eq!(s(&r["host"], "ems_ref"), host.ems_ref);
        assert_eq!(s(&r["host"], "name"), host.name);
        let cluster = &e.clusters[vm.cluster.expect("a placed VM has a cluster")];
        assert_eq!(s(&r["ems_cluster"], "ems_ref"), cluster.ems_ref);
        let storage = &e.storages[vm.storage.expect("a placed VM has a datastore")];
        assert_eq!(s(&r["storage"], "ems_ref"), storage.ems_ref);
        let provider = &e.providers[vm.ems.expect("a placed VM has a provider")];
        assert_eq!(s(&r["storage"], "ems_id"), provider.id.to_string());
        assert_eq!(
            r["ext_management_system"]["uid_ems"].as_str(),
            provider.uid_ems.as_deref()
        );
        assert_eq!(
            s(&r, "v_owning_datacenter"),
            e.datacenters[cluster.datacenter].name
        );
    }
    assert!(placed > 20, "{placed}");
}

#[tokio::test]
async fn the_cmdb_keys_vmware_cis_and_esx_servers_by_the_vcenter_instance_uuid() {
    let sims = start(100).await;
    let e = sims.estate();
    let instance: HashSet<&str> = e
        .providers
        .iter()
        .filter_map(|p| p.uid_ems.as_deref())
        .collect();
    let guids: HashSet<&str> = e.providers.iter().map(|p| p.guid.as_str()).collect();

    let esx = sims.servicenow().rows("cmdb_ci_esx_server");
    assert!(!esx.is_empty());
    let morefs: HashMap<(String, String), String> = e
        .hosts
        .iter()
        .filter_map(|h| {
            let uuid = e.providers[h.ems].uid_ems.clone()?;
            Some(((h.ems_ref.clone(), uuid), h.name.clone()))
        })
        .collect();
    for row in &esx {
        let key = (
            row["morid"].as_str().unwrap_or_default().to_owned(),
            row["vcenter_uuid"].as_str().unwrap_or_default().to_owned(),
        );
        assert_eq!(
            morefs.get(&key),
            row["name"].as_str().map(str::to_owned).as_ref(),
            "{row:?}"
        );
        assert!(
            row.get("object_id").is_none(),
            "ESX servers have `morid`: {row:?}"
        );
    }

    let mut keyed = 0;
    for ci in sims.servicenow().rows("cmdb_ci_vmware_instance") {
        let uuid = ci["vcenter_uuid"].as_str().unwrap_or_default();
        assert!(
            !guids.contains(uuid),
            "ManageIQ's guid is not the vCenter's: {ci:?}"
        );
        if !uuid.is_empty() {
            assert!(instance.contains(uuid), "{ci:?}");
            keyed += 1;
        }
    }
    assert!(keyed > 20);
}

async fn vmotion(sims: &cmdb_sim::Sims, body: Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/_sim/manageiq/vmotion", sims.manageiq_url()))
        .json(&body)
        .send()
        .await
        .expect("POST vmotion");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_vmotion_moves_a_vm_to_another_host_and_datastore_as_served() {
    let sims = start(100).await;
    let e = sims.estate();
    // A VMware VM on a host, and a host of the same vCenter in another cluster.
    let (vm, target) = e
        .vms
        .iter()
        .filter(|v| v.vendor == cmdb_sim::generator::Vendor::Vmware && v.host.is_some())
        .find_map(|v| {
            let cluster = v.cluster?;
            let h = e
                .hosts
                .iter()
                .position(|h| Some(h.ems) == v.ems && h.cluster != cluster)?;
            Some((v, h))
        })
        .expect("a VM and a host to move it to");
    let host = &e.hosts[target];
    let cluster = &e.clusters[host.cluster];
    let path = format!(
        "/api/vms/{}?attributes=host_id,ems_cluster_id,storage_id,host.ems_ref,ems_cluster.ems_ref,storage.ems_ref,v_owning_datacenter,disks",
        vm.id
    );
    let (_, before) = miq_get(&sims, &path).await;
    assert_eq!(
        s(&before, "host_id"),
        e.hosts[vm.host.unwrap()].id.to_string()
    );

    let (status, placed) = vmotion(&sims, json!({"vm": vm.id, "host": host.id.to_string()})).await;
    assert_eq!(status, 200, "{placed}");
    assert_eq!(placed["host"], host.id);
    assert_eq!(placed["ems_cluster"], cluster.id);
    let storage = e
        .storages
        .iter()
        .find(|s| s.id == placed["storage"].as_u64().unwrap_or_default())
        .expect("a datastore");
    assert_eq!(
        e.clusters[storage.cluster].id, cluster.id,
        "a datastore of the new cluster"
    );

    let (_, after) = miq_get(&sims, &path).await;
    assert_eq!(s(&after, "host_id"), host.id.to_string());
    assert_eq!(s(&after, "ems_cluster_id"), cluster.id.to_string());
    assert_eq!(s(&after, "storage_id"), storage.id.to_string());
    assert_eq!(s(&after["host"], "ems_ref"), host.ems_ref);
    assert_eq!(s(&after["ems_cluster"], "ems_ref"), cluster.ems_ref);
    assert_eq!(s(&after["storage"], "ems_ref"), storage.ems_ref);
    assert_eq!(
        s(&after, "v_owning_datacenter"),
        e.datacenters[cluster.datacenter].name
    );
    for d in after["disks"].as_array().into_iter().flatten() {
        assert!(
            s(d, "filename").starts_with(&format!("[{}] ", storage.name)),
            "{d}"
        );
        assert_eq!(s(d, "storage_id"), storage.id.to_string());
    }
    // Listings and filters see the move too.
    let (_, found) = miq_get(
        &sims,
        &format!(
            "/api/vms?expand=resources&attributes=name&filter[]=host_id={}",
            host.id
        ),
    )
    .await;
    assert!(resources(&found)
        .iter()
        .any(|r| s(r, "id") == vm.id.to_string()));
    assert_eq!(
        sims.manageiq()
            .estate()
            .vms
            .iter()
            .find(|v| v.id == vm.id)
            .and_then(|v| v.host),
        Some(target)
    );

    // A storage vMotion alone: same host, named datastore.
    let other = e
        .storages
        .iter()
        .find(|s| s.cluster == host.cluster && s.id != storage.id)
        .expect("clusters have two datastores or more");
    let (status, placed) = vmotion(
        &sims,
        json!({"vm": vm.id, "host": host.id, "storage": other.id}),
    )
    .await;
    assert_eq!(status, 200, "{placed}");
    let (_, after) = miq_get(&sims, &path).await;
    assert_eq!(s(&after, "storage_id"), other.id.to_string());
    assert_eq!(s(&after, "host_id"), host.id.to_string());
}

#[tokio::test]
async fn a_vmotion_is_refused_with_the_reason() {
    let sims = start(100).await;
    let e = sims.estate();
    let vm = e
        .vms
        .iter()
        .find(|v| v.ems == Some(0))
        .expect("a VM of the first vCenter");
    let foreign = e
        .hosts
        .iter()
        .find(|h| h.ems != 0)
        .expect("a host elsewhere");
    let archived = e
        .vms
        .iter()
        .find(|v| v.ems.is_none())
        .expect("an archived VM");
    for (body, says) in [
        (json!({"vm": vm.id, "host": foreign.id}), "not in VM"),
        (json!({"vm": 1, "host": foreign.id}), "no VM"),
        (json!({"vm": vm.id, "host": 1}), "no host"),
        (
            json!({"vm": archived.id, "host": foreign.id}),
            "no provider",
        ),
        (json!({"vm": vm.id}), "required"),
        (
            json!({"vm": vm.id, "host": foreign.id, "storage": "x"}),
            "storage",
        ),
    ] {
        let (status, answer) = vmotion(&sims, body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(s(&answer, "error").contains(says), "{body}: {answer}");
    }
    // Nothing moved.
    let (_, now) = miq_get(&sims, &format!("/api/vms/{}?attributes=host_id", vm.id)).await;
    assert_eq!(
        now.get("host_id").and_then(Value::as_str),
        vm.host.map(|h| e.hosts[h].id.to_string()).as_deref()
    );
}

#[tokio::test]
async fn infrastructure_records_serve_their_vcenter_through_a_one_hop_attribute() {
    let sims = start(50).await;
    let (_, providers) = miq_get(
        &sims,
        "/api/providers?expand=resources&attributes=id,uid_ems",
    )
    .await;
    let uid_of: HashMap<String, String> = resources(&providers)
        .iter()
        .map(|p| (s(p, "id").to_owned(), s(p, "uid_ems").to_owned()))
        .collect();
    for collection in ["hosts", "clusters", "data_stores"] {
        let (status, body) = miq_get(
            &sims,
            &format!("/api/{collection}?expand=resources&attributes=name,ems_id,ext_management_system.uid_ems"),
        )
        .await;
        assert_eq!(status, 200, "{collection}: {body}");
        let records = resources(&body);
        assert!(!records.is_empty(), "{collection}");
        for r in &records {
            let ems = &r["ext_management_system"];
            assert_eq!(
                ems.as_object().map(|o| o.len()),
                Some(usize::from(!uid_of[s(r, "ems_id")].is_empty())),
                "only the asked attribute: {r}"
            );
            assert_eq!(
                s(ems, "uid_ems"),
                uid_of[s(r, "ems_id")],
                "{collection}: {r}"
            );
        }
    }
    // Never in a full record, as a relation is not a column.
    let (_, full) = miq_get(&sims, "/api/hosts?expand=resources&limit=1").await;
    assert!(resources(&full)[0].get("ext_management_system").is_none());
    // An attribute the relation lacks is refused like any unknown attribute.
    let (status, _) = miq_get(
        &sims,
        "/api/hosts?expand=resources&attributes=ext_management_system.nope",
    )
    .await;
    assert_eq!(status, 400);
}
