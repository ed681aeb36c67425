//! The other collections a reconciliation may look at (`hosts`, `providers`,
//! `clusters`, `data_stores`, `users`, `groups`, `tags`, and each provider's
//! `folders` subcollection): plain records built
//! once from the estate, with the same paging, filtering and sorting as
//! `/api/vms` over their columns. Keys starting `v_` are virtual attributes
//! (`v_owning_datacenter`, `v_parent_datacenter`): rendered only when `attributes=` names
//! them, as ManageIQ renders virtual attributes. Relations (`ext_management_system`, a
//! host's `ems_cluster`) are served one hop deep through dotted `attributes=` only.

use super::catalog::TENANT_ID;
use super::error::MiqError;
use super::field::Field;
use super::filter::Filter;
use super::query::CollectionQuery;
use super::render::CollectionBody;
use crate::generator::Estate;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value};
use std::cmp::Ordering;

pub struct FlatCollection {
    pub name: &'static str,
    pub klass: &'static str,
    /// Where it is served under `/api/`: `name`, or `providers/:id/folders` for a subcollection.
    path: String,
    /// Collection actions (`query`); a read-only subcollection has none.
    actions: &'static [&'static str],
    /// Keys holding a reflection rendered whole (`miq_request_tasks`): like virtual
    /// attributes, only when `attributes=` names them.
    reflections: &'static [&'static str],
    /// Records ordered by id, without `href` (it depends on the request's host).
    items: Vec<Map<String, Value>>,
    ids: Vec<u64>,
    keys: Vec<String>,
}

impl FlatCollection {
    fn new(name: &'static str, klass: &'static str, items: Vec<Map<String, Value>>) -> Self {
        let ids = items
            .iter()
            .map(|m| m.get("id").and_then(Value::as_u64).unwrap_or(0))
            .collect();
        let keys = items
            .first()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        FlatCollection {
            name,
            klass,
            path: name.to_owned(),
            actions: &["query"],
            reflections: &[],
            items,
            ids,
            keys,
        }
    }

    /// A collection served at `/api/{path}` (a subcollection when `path` has more than one
    /// segment), with its own actions and reflections.
    pub fn with(
        name: &'static str,
        klass: &'static str,
        path: String,
        actions: &'static [&'static str],
        reflections: &'static [&'static str],
        items: Vec<Map<String, Value>>,
    ) -> Self {
        let mut c = FlatCollection::new(name, klass, items);
        c.path = path;
        c.actions = actions;
        c.reflections = reflections;
        c
    }

    /// The column names to use when there is no record to take them from (an empty
    /// collection still knows its attributes, for `attributes=`, `filter[]` and `sort_by`).
    pub fn keyed(mut self, keys: &[&str]) -> Self {
        if self.keys.is_empty() {
            self.keys = keys.iter().map(|k| (*k).to_owned()).collect();
        }
        self
    }

    /// Keys rendered only when `attributes=` names them.
    fn is_virtual(&self, key: &str) -> bool {
        key.starts_with("v_") || self.reflections.contains(&key)
    }

    pub fn find(&self, id: u64) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    fn known(&self, key: &str) -> bool {
        match key.split_once('.') {
            // `ext_management_system.uid_ems`: a one-hop relation, as ManageIQ's
            // `attributes=` takes them (integrations.md A.4: "one-hop dot attributes").
            Some((head, tail)) => {
                is_relation(head)
                    && self.items.first().is_some_and(|item| {
                        item.get(head)
                            .and_then(Value::as_object)
                            .is_some_and(|o| o.contains_key(tail))
                    })
            }
            None => self.keys.iter().any(|k| k == key),
        }
    }

    /// One page of the collection.
    pub fn page<'a>(
        &'a self,
        q: &CollectionQuery,
        url: &str,
        base: &'a str,
    ) -> Result<CollectionBody<'a, FlatPage<'a>>, MiqError> {
        let selection = self.selection(q)?;
        // One association away (`ext_management_system.type='...'`), as ManageIQ filters.
        let filter = Filter::parse(&q.filters, |assoc, attr| {
            let key = match assoc {
                Some(head) => format!("{head}.{attr}"),
                None => attr.to_owned(),
            };
            self.known(&key).then_some(key)
        })?;
        let mut sort = Vec::new();
        for (i, name) in q.sort_by.iter().enumerate() {
            if !self.known(name) {
                return Err(MiqError::bad_request(format!(
                    "{name} is not a valid attribute for {}",
                    self.klass
                )));
            }
            let desc = q
                .sort_order
                .get(i)
                .is_some_and(|o| o.eq_ignore_ascii_case("desc"));
            sort.push((name.as_str(), desc));
        }
        let paging = q.paging()?;
        let mut selected: Vec<usize> = (0..self.items.len())
            .filter(|&i| {
                let item = &self.items[i];
                filter.matches(|k| {
                    let value = match k.split_once('.') {
                        Some((head, tail)) => item.get(head).and_then(|o| o.get(tail)),
                        None => item.get(k),
                    };
                    value.map_or(Field::Null, |v| Field::from_value(k, v))
                })
            })
            .collect();
        if !sort.is_empty() {
            selected.sort_by(|&a, &b| {
                for &(key, desc) in &sort {
                    let field = |i: usize| {
                        self.items[i]
                            .get(key)
                            .map_or(Field::Null, |v| Field::from_value(key, v))
                    };
                    let (fa, fb) = (field(a), field(b));
                    let o = match (fa.is_null(), fb.is_null()) {
                        (true, true) => Ordering::Equal,
                        (true, false) => Ordering::Greater,
                        (false, true) => Ordering::Less,
                        (false, false) => fa.sort_cmp(&fb, q.sort_ignore_case),
                    };
                    let o = if desc { o.reverse() } else { o };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                self.ids[a].cmp(&self.ids[b])
            });
        }
        let subquery_count = (!filter.is_empty()).then_some(selected.len() as u64);
        let paging_count = subquery_count.unwrap_or(self.items.len() as u64);
        let range = paging.range(selected.len());
        let page: Vec<usize> = selected[range].to_vec();
        Ok(CollectionBody {
            name: self.name,
            count: self.items.len() as u64,
            subcount: page.len() as u64,
            subquery_count,
            pages: paging.pages(paging_count),
            resources: (!q.hides("resources")).then(|| FlatPage {
                collection: self,
                page,
                selection,
                expand: q.expands("resources"),
                base,
            }),
            actions: self.actions,
            collection_href: format!("{base}/api/{}", self.path),
            links: paging.links(url, paging_count),
        })
    }

    /// `attributes=`: `None` for all columns; `id` always included.
    pub fn selection(&self, q: &CollectionQuery) -> Result<Option<Vec<String>>, MiqError> {
        if q.attributes.is_empty() {
            return Ok(None);
        }
        let invalid: Vec<&str> = q
            .attributes
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "href" && !self.known(a))
            .collect();
        if !invalid.is_empty() {
            return Err(MiqError::bad_request(format!(
                "Invalid attributes specified: {}",
                invalid.join(",")
            )));
        }
        let mut keys: Vec<String> = q
            .attributes
            .iter()
            .filter(|a| *a != "href")
            .cloned()
            .collect();
        // Only virtual attributes, reflections or relations named: ManageIQ renders every
        // physical column besides them (renderer.rb `validate_attr_selection`).
        let named: Vec<&String> = keys.iter().filter(|k| *k != "id").collect();
        let only_virtual =
            !named.is_empty() && named.iter().all(|k| k.contains('.') || self.is_virtual(k));
        if only_virtual {
            let physical = self
                .keys
                .iter()
                .filter(|k| !self.is_virtual(k) && !is_relation(k) && !keys.contains(k));
            keys.splice(0..0, physical.cloned().collect::<Vec<_>>());
        }
        if !keys.iter().any(|k| k == "id") {
            keys.push("id".into());
        }
        Ok(Some(keys))
    }

    pub fn view<'a>(
        &'a self,
        index: usize,
        selection: &'a Option<Vec<String>>,
        base: &'a str,
    ) -> FlatView<'a> {
        FlatView {
            collection: self,
            item: &self.items[index],
            selection,
            base,
        }
    }
}

pub struct FlatPage<'a> {
    collection: &'a FlatCollection,
    page: Vec<usize>,
    selection: Option<Vec<String>>,
    expand: bool,
    base: &'a str,
}

impl Serialize for FlatPage<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.page.iter().map(|&i| {
            if self.expand {
                EitherView::Full(self.collection.view(i, &self.selection, self.base))
            } else {
                EitherView::Href(format!(
                    "{}/api/{}/{}",
                    self.base, self.collection.path, self.collection.ids[i]
                ))
            }
        }))
    }
}

enum EitherView<'a> {
    Full(FlatView<'a>),
    Href(String),
}

impl Serialize for EitherView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EitherView::Full(v) => v.serialize(s),
            EitherView::Href(h) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("href", h)?;
                m.end()
            }
        }
    }
}

pub struct FlatView<'a> {
    collection: &'a FlatCollection,
    item: &'a Map<String, Value>,
    selection: &'a Option<Vec<String>>,
    base: &'a str,
}

impl Serialize for FlatView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let id = self.item.get("id").and_then(Value::as_u64).unwrap_or(0);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(
            "href",
            &format!("{}/api/{}/{id}", self.base, self.collection.path),
        )?;
        match self.selection {
            None => {
                for (k, v) in self.item {
                    if !v.is_null() && !self.collection.is_virtual(k) && !is_relation(k) {
                        m.serialize_entry(k, &Field::from_value(k, v))?;
                    }
                }
            }
            Some(keys) => {
                let mut related: Vec<(&str, Vec<&str>)> = Vec::new();
                for k in keys {
                    if let Some((head, tail)) = k.split_once('.') {
                        match related.iter_mut().find(|(h, _)| *h == head) {
                            Some((_, tails)) => tails.push(tail),
                            None => related.push((head, vec![tail])),
                        }
                    } else if let Some(v) = self.item.get(k).filter(|v| !v.is_null()) {
                        m.serialize_entry(k, &Field::from_value(k, v))?;
                    }
                }
                // A relation's asked attributes, as one nested object.
                for (head, tails) in related {
                    let Some(object) = self.item.get(head).and_then(Value::as_object) else {
                        continue;
                    };
                    let picked: Map<String, Value> = tails
                        .iter()
                        .filter_map(|t| {
                            let v = object.get(*t).filter(|v| !v.is_null())?;
                            Some(((*t).to_owned(), v.clone()))
                        })
                        .collect();
                    m.serialize_entry(head, &picked)?;
                }
            }
        }
        m.end()
    }
}

/// Relations a flat record carries as a nested object: served only through dotted
/// `attributes=` (`ext_management_system.uid_ems`), never in the full record.
fn is_relation(key: &str) -> bool {
    matches!(key, "ext_management_system" | "ems_cluster")
}

/// A host's cluster as a relation (`ems_cluster.ems_ref`), with the cluster's columns.
fn cluster_relation(c: &crate::generator::Cluster) -> Value {
    json!({"id": c.id, "name": c.name, "uid_ems": c.uid_ems, "ems_ref": c.ems_ref, "created_on": c.created_on})
}

/// The provider as a relation of a record it manages.
fn ems_relation(p: &crate::generator::Provider) -> Value {
    json!({"id": p.id, "name": p.name, "guid": p.guid, "uid_ems": p.uid_ems, "type": p.vendor.ems_type()})
}

/// Builds every flat collection from the estate.
pub fn collections(e: &Estate) -> Vec<FlatCollection> {
    let obj = |v: Value| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let hosts = e
        .hosts
        .iter()
        .map(|h| {
            let p = &e.providers[h.ems];
            let c = &e.clusters[h.cluster];
            obj(json!({
                "id": h.id, "name": h.name, "hostname": h.name, "ipaddress": h.ipaddress,
                "vmm_vendor": p.vendor.as_str(), "vmm_version": h.vmm_version,
                "vmm_product": h.vmm_product, "vmm_buildnumber": h.vmm_buildnumber,
                "created_on": h.created_on, "updated_on": h.updated_on, "guid": h.guid,
                "ems_id": p.id, "user_assigned_os": null, "power_state": "on", "smart": 1,
                "settings": {}, "last_perf_capture_on": null, "uid_ems": h.uid_ems,
                "connection_state": "connected", "ssh_permit_root_login": null,
                "ems_ref_obj": h.ems_ref, "upgrade_status": null, "maintenance": false,
                "ems_ref": h.ems_ref, "ems_cluster_id": e.clusters[h.cluster].id,
                "type": p.vendor.host_type(), "hyperthreading": true,
                "v_owning_cluster": c.name, "v_owning_datacenter": e.datacenters[c.datacenter].name,
                "ext_management_system": ems_relation(p),
                // Host `belongs_to :ems_cluster` (integrations.md A.4: `ems_cluster_id`).
                "ems_cluster": cluster_relation(c),
            }))
        })
        .collect();
    let providers = e
        .providers
        .iter()
        .map(|p| {
            obj(json!({
                "id": p.id, "name": p.name, "created_on": p.created_on, "updated_on": p.updated_on,
                "guid": p.guid, "zone_id": p.zone_id, "type": p.vendor.ems_type(),
                "api_version": p.api_version, "uid_ems": p.uid_ems, "host_default_vnc_port_start": null,
                "last_refresh_error": null, "last_refresh_date": p.last_refresh_date,
                "provider_region": null, "tenant_id": TENANT_ID, "enabled": true,
                "hostname": p.hostname, "ipaddress": p.ipaddress,
            }))
        })
        .collect();
    let clusters = e
        .clusters
        .iter()
        .map(|c| {
            let p = &e.providers[c.ems];
            obj(json!({
                "id": c.id, "name": c.name, "ems_id": p.id, "created_on": c.created_on,
                "updated_on": c.created_on, "uid_ems": c.uid_ems, "ems_ref": c.ems_ref,
                "type": format!("{}::Cluster", p.vendor.ems_type()),
                "v_parent_datacenter": e.datacenters[c.datacenter].name,
                "ext_management_system": ems_relation(p),
            }))
        })
        .collect();
    let storages = e
        .storages
        .iter()
        .map(|s| {
            let p = &e.providers[e.clusters[s.cluster].ems];
            obj(json!({
                "id": s.id, "name": s.name, "store_type": s.store_type, "ems_id": p.id,
                "total_space": s.total_space, "free_space": s.free_space,
                "created_on": s.created_on, "updated_on": s.created_on,
                "multiplehostaccess": 1, "location": s.location, "ems_ref": s.ems_ref,
                "ext_management_system": ems_relation(p),
            }))
        })
        .collect();
    let users = e
        .users
        .iter()
        .map(|u| {
            obj(json!({
                "id": u.id, "name": u.name, "email": u.email, "created_on": u.created_on,
                "updated_on": u.created_on, "userid": u.userid, "settings": {},
                "lastlogon": null, "current_group_id": e.groups[u.group].id,
                "first_name": u.first_name, "last_name": u.last_name,
            }))
        })
        .collect();
    let groups = e
        .groups
        .iter()
        .map(|g| {
            obj(json!({
                "id": g.id, "description": g.description, "group_type": g.group_type,
                "sequence": g.sequence, "tenant_id": TENANT_ID,
            }))
        })
        .collect();
    let tags = e
        .tags
        .iter()
        .map(|t| obj(json!({"id": t.id, "name": t.name})))
        .collect();
    vec![
        FlatCollection::new("hosts", "Host", hosts),
        FlatCollection::new("providers", "ExtManagementSystem", providers),
        FlatCollection::new("clusters", "EmsCluster", clusters),
        FlatCollection::new("data_stores", "Storage", storages),
        FlatCollection::new("users", "User", users),
        FlatCollection::new("groups", "MiqGroup", groups),
        FlatCollection::new("tags", "Tag", tags),
    ]
}

/// Each provider's `folders` subcollection (`GET /api/providers/:id/folders`; ManageIQ has
/// no top-level `folders` collection), as `(provider id, subcollection)`.
pub fn folders(e: &Estate) -> Vec<(u64, FlatCollection)> {
    e.providers
        .iter()
        .enumerate()
        .map(|(p, provider)| {
            let items = e
                .folders
                .iter()
                .filter(|f| f.ems == p)
                .map(|f| {
                    let Value::Object(m) = json!({
                        "id": f.id, "name": f.name, "ems_id": provider.id,
                        "created_on": provider.created_on, "updated_on": provider.updated_on,
                        "uid_ems": f.uid_ems, "ems_ref": f.ems_ref, "hidden": f.hidden,
                        "type": f.type_name(provider.vendor),
                        "ext_management_system": ems_relation(provider),
                    }) else {
                        unreachable!("a JSON object literal")
                    };
                    m
                })
                .collect();
            let mut c = FlatCollection::new("folders", "EmsFolder", items);
            c.path = format!("providers/{}/folders", provider.id);
            c.actions = &[];
            (provider.id, c)
        })
        .collect()
}
