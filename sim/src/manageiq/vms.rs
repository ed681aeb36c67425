//! `/api/vms` and `/api/templates`: attribute selection (`attributes=`,
//! `expand=`), filtering, sorting, paging and rendering of VM records in the
//! real server's key order, streamed straight into the response buffer.

use super::catalog::{self, Attr, KeyGetter, RelKind, Relation};
use super::error::MiqError;
use super::field::Field;
use super::filter::Filter;
use super::query::CollectionQuery;
use super::render::CollectionBody;
use crate::generator::{Estate, Vm};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

/// Which VM-like collection: both share the `vms` table and its catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vms,
    Templates,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Vms => "vms",
            Kind::Templates => "templates",
        }
    }

    /// The model named in error messages.
    pub fn klass(self) -> &'static str {
        match self {
            Kind::Vms => "Vm",
            Kind::Templates => "MiqTemplate",
        }
    }

    pub fn items(self, estate: &Estate) -> &[Vm] {
        match self {
            Kind::Vms => &estate.vms,
            Kind::Templates => &estate.templates,
        }
    }

    fn resource_actions(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Vms => catalog::VM_RESOURCE_ACTIONS,
            Kind::Templates => catalog::TEMPLATE_RESOURCE_ACTIONS,
        }
    }

    pub fn collection_actions(self) -> &'static [&'static str] {
        match self {
            Kind::Vms => catalog::VM_COLLECTION_ACTIONS,
            Kind::Templates => catalog::TEMPLATE_COLLECTION_ACTIONS,
        }
    }

    /// The ActiveRecord message of a failed lookup, as the real server words it.
    pub fn not_found(self, id: &str) -> MiqError {
        let message = match self {
            Kind::Vms => format!(
                "Couldn't find Vm with 'id'={id} [WHERE \"vms\".\"type\" IN ('Vm', \
                 'ManageIQ::Providers::InfraManager::Vm', \
                 'ManageIQ::Providers::Vmware::InfraManager::Vm', \
                 'ManageIQ::Providers::Redhat::InfraManager::Vm') AND \"vms\".\"template\" = $1]"
            ),
            Kind::Templates => format!(
                "Couldn't find MiqTemplate with 'id'={id} [WHERE \"vms\".\"template\" = $1]"
            ),
        };
        MiqError::record_not_found(message)
    }
}

/// One entry of the virtual part of a record, in request order.
enum VirtualOut {
    Attr(&'static Attr),
    /// A relation asked for whole (`attributes=hardware`).
    Whole(&'static Relation),
    /// Some keys of a relation (`hardware.memory_mb,hardware.cpu_sockets`).
    Keys(&'static Relation, Vec<String>),
}

/// What to render of each record, decided once per request.
pub struct Plan {
    /// `None`: every physical column (no `attributes=`, or only virtual ones).
    physical: Option<Vec<&'static Attr>>,
    virtuals: Vec<VirtualOut>,
    expand_tags: bool,
    expand_custom_attributes: bool,
    actions: bool,
}

impl Plan {
    /// Validates `attributes=` and `expand=` like `validate_attr_selection`.
    pub fn new(q: &CollectionQuery) -> Result<Plan, MiqError> {
        let expand_tags = q.expands("tags");
        let expand_custom_attributes = q.expands("custom_attributes");
        for sub in ["tags", "custom_attributes"] {
            if q.expands(sub) && q.attributes.iter().any(|a| a == sub) {
                return Err(MiqError::bad_request(format!(
                    "Cannot expand subcollection {sub} by name and virtual attribute"
                )));
            }
        }
        let mut plan = Plan {
            physical: None,
            virtuals: Vec::new(),
            expand_tags,
            expand_custom_attributes,
            actions: true,
        };
        if q.attributes.is_empty() {
            return Ok(plan);
        }
        let mut selection: Vec<&str> = Vec::new();
        for a in q
            .attributes
            .iter()
            .map(String::as_str)
            .chain(["href", "id"])
        {
            if !selection.contains(&a) {
                selection.push(a);
            }
        }
        let id = catalog::physical("id").ok_or_else(|| MiqError::bad_request("id"))?;
        if selection.iter().all(|a| matches!(*a, "href" | "id")) {
            plan.physical = Some(vec![id]);
            plan.actions = false;
            return Ok(plan);
        }
        let mut physical = Vec::new();
        let mut invalid = Vec::new();
        let mut actions_requested = false;
        for a in selection {
            if a == "href" {
                continue;
            }
            if a == "actions" {
                actions_requested = true;
            } else if let Some(attr) = catalog::physical(a) {
                physical.push(attr);
            } else if let Some(attr) = catalog::virtual_attr(a) {
                plan.virtuals.push(VirtualOut::Attr(attr));
            } else if let Some(rel) = catalog::relation(a) {
                plan.add_relation(rel, None);
            } else if let Some((head, rest)) = a.split_once('.') {
                // Valid when the head is a relation or virtual attribute;
                // keys the relation does not have render nothing.
                match catalog::relation(head) {
                    Some(rel) => plan.add_relation(rel, Some(rest)),
                    None if catalog::virtual_attr(head).is_some() => {}
                    None => invalid.push(a),
                }
            } else {
                invalid.push(a);
            }
        }
        if !invalid.is_empty() {
            return Err(MiqError::bad_request(format!(
                "Invalid attributes specified: {}",
                invalid.join(",")
            )));
        }
        let only_ids = physical.iter().all(|a| a.name == "id");
        plan.actions = actions_requested || only_ids;
        plan.physical = (!only_ids).then_some(physical);
        Ok(plan)
    }

    fn add_relation(&mut self, rel: &'static Relation, key: Option<&str>) {
        let existing = self.virtuals.iter_mut().find(|v| match v {
            VirtualOut::Whole(r) | VirtualOut::Keys(r, _) => r.name == rel.name,
            VirtualOut::Attr(_) => false,
        });
        match (existing, key) {
            (Some(slot), None) => *slot = VirtualOut::Whole(rel),
            (Some(VirtualOut::Keys(_, keys)), Some(k)) => {
                if !keys.iter().any(|x| x == k) {
                    keys.push(k.to_owned());
                }
            }
            (Some(_), Some(_)) => {}
            (None, None) => self.virtuals.push(VirtualOut::Whole(rel)),
            (None, Some(k)) => self
                .virtuals
                .push(VirtualOut::Keys(rel, vec![k.to_owned()])),
        }
    }
}

/// An attribute a filter or sort reads.
#[derive(Clone)]
pub enum VmAttr {
    Plain(&'static Attr),
    Related(KeyGetter, fn(&Vm) -> bool, String),
    TagNames,
}

impl VmAttr {
    fn get<'a>(&self, vm: &'a Vm, e: &'a Estate) -> Field<'a> {
        match self {
            VmAttr::Plain(a) => (a.get)(vm, e),
            VmAttr::Related(get, present, key) => {
                if present(vm) {
                    get(vm, e, key)
                } else {
                    Field::Null
                }
            }
            VmAttr::TagNames => Field::Owned(serde_json::Value::Array(
                vm.tags
                    .iter()
                    .map(|&t| e.tags[t as usize].name.clone().into())
                    .collect(),
            )),
        }
    }
}

fn resolve_filter(assoc: Option<&str>, attr: &str) -> Option<VmAttr> {
    match assoc {
        None => catalog::physical(attr)
            .or_else(|| catalog::virtual_attr(attr))
            .map(VmAttr::Plain),
        Some(rel) => match &catalog::relation(rel)?.kind {
            RelKind::One { keys, get, present } => keys
                .contains(&attr)
                .then(|| VmAttr::Related(*get, *present, attr.to_owned())),
            RelKind::Many(_) if rel == "tags" && attr == "name" => Some(VmAttr::TagNames),
            RelKind::Many(_) => None,
        },
    }
}

struct SortKey {
    attr: VmAttr,
    descending: bool,
}

fn sort_keys(kind: Kind, q: &CollectionQuery) -> Result<Vec<SortKey>, MiqError> {
    q.sort_by
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let descending = q
                .sort_order
                .get(i)
                .is_some_and(|o| o.eq_ignore_ascii_case("desc"));
            let attr = if let Some(a) = catalog::physical(name) {
                a
            } else if let Some(a) = catalog::virtual_attr(name) {
                if !catalog::sortable_virtual(name) {
                    return Err(MiqError::bad_request(format!(
                        "{} cannot be sorted by {name}",
                        kind.klass()
                    )));
                }
                a
            } else {
                return Err(MiqError::bad_request(format!(
                    "{name} is not a valid attribute for {}",
                    kind.klass()
                )));
            };
            Ok(SortKey {
                attr: VmAttr::Plain(attr),
                descending,
            })
        })
        .collect()
}

/// Everything a list request resolved to, before touching the records.
pub struct ListRequest {
    pub plan: Plan,
    filter: Filter<VmAttr>,
    by_tag: Vec<String>,
    sort: Vec<SortKey>,
    ignore_case: bool,
}

impl ListRequest {
    pub fn new(kind: Kind, q: &CollectionQuery) -> Result<ListRequest, MiqError> {
        Ok(ListRequest {
            plan: Plan::new(q)?,
            filter: Filter::parse(&q.filters, resolve_filter)?,
            // `by_tag=/environment/prod,/department/it`: all of them, under /managed.
            by_tag: q
                .by_tag
                .as_deref()
                .map(|t| {
                    t.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(|t| format!("/managed/{}", t.trim_start_matches('/')))
                        .collect()
                })
                .unwrap_or_default(),
            sort: sort_keys(kind, q)?,
            ignore_case: q.sort_ignore_case,
        })
    }

    /// Whether `subquery_count` is reported: only for `filter[]` (not `by_tag`).
    pub fn filtered(&self) -> bool {
        !self.filter.is_empty()
    }

    /// Indexes of the matching records in response order.
    pub fn select(&self, vms: &[Vm], e: &Estate) -> Vec<u32> {
        let tag_ids: Option<Vec<u32>> = (!self.by_tag.is_empty()).then(|| {
            self.by_tag
                .iter()
                .map(|name| {
                    e.tags
                        .iter()
                        .position(|t| &t.name == name)
                        .map_or(u32::MAX, |p| p as u32)
                })
                .collect()
        });
        let mut selected: Vec<u32> = (0..vms.len() as u32)
            .filter(|&i| {
                let vm = &vms[i as usize];
                tag_ids
                    .as_ref()
                    .is_none_or(|wanted| wanted.iter().all(|t| vm.tags.contains(t)))
                    && self.filter.matches(|a| a.get(vm, e))
            })
            .collect();
        self.sort(&mut selected, vms, e);
        selected
    }

    fn sort(&self, selected: &mut [u32], vms: &[Vm], e: &Estate) {
        let by_id_only = self.sort.len() == 1
            && matches!(&self.sort[0].attr, VmAttr::Plain(a) if a.name == "id");
        if self.sort.is_empty() || by_id_only {
            // Records are stored in id order, which is also the unsorted order.
            if by_id_only && self.sort[0].descending {
                selected.reverse();
            }
            return;
        }
        // Keys extracted once: the comparator runs n log n times.
        let keys: Vec<Vec<Field<'_>>> = selected
            .iter()
            .map(|&i| {
                let vm = &vms[i as usize];
                self.sort.iter().map(|k| k.attr.get(vm, e)).collect()
            })
            .collect();
        let mut order: Vec<usize> = (0..selected.len()).collect();
        order.sort_by(|&a, &b| {
            for (n, key) in self.sort.iter().enumerate() {
                let (fa, fb) = (&keys[a][n], &keys[b][n]);
                // PostgreSQL: NULLS LAST ascending, NULLS FIRST descending.
                let ordering = match (fa.is_null(), fb.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    (false, false) => fa.sort_cmp(fb, self.ignore_case),
                };
                let ordering = if key.descending {
                    ordering.reverse()
                } else {
                    ordering
                };
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
            vms[selected[a] as usize]
                .id
                .cmp(&vms[selected[b] as usize].id)
        });
        let sorted: Vec<u32> = order.into_iter().map(|o| selected[o]).collect();
        selected.copy_from_slice(&sorted);
    }
}

/// Recently computed selections. The estate never changes, so paging through
/// a filtered or sorted listing filters and sorts 100,000 records once, not
/// once per page.
#[derive(Default)]
pub struct SelectionCache {
    entries: Mutex<VecDeque<(String, Arc<Vec<u32>>)>>,
}

const CACHED_SELECTIONS: usize = 16;

impl SelectionCache {
    fn get_or_compute(&self, key: String, compute: impl FnOnce() -> Vec<u32>) -> Arc<Vec<u32>> {
        let lock = || self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, hit)) = lock().iter().find(|(k, _)| *k == key) {
            return hit.clone();
        }
        // Computed unlocked: concurrent readers of other listings are not held up.
        let selection = Arc::new(compute());
        let mut entries = lock();
        if entries.len() == CACHED_SELECTIONS {
            entries.pop_front();
        }
        entries.push_back((key, selection.clone()));
        selection
    }
}

/// What decides a selection: everything but paging and rendering.
fn selection_key(kind: Kind, q: &CollectionQuery) -> String {
    format!(
        "{}|{:?}|{:?}|{:?}|{:?}|{}",
        kind.name(),
        q.filters,
        q.by_tag,
        q.sort_by,
        q.sort_order,
        q.sort_ignore_case
    )
}

/// One VM rendered according to a [`Plan`].
pub struct VmView<'a> {
    pub kind: Kind,
    pub vm: &'a Vm,
    pub estate: &'a Estate,
    pub plan: &'a Plan,
    pub base: &'a str,
}

impl Serialize for VmView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (vm, e, plan) = (self.vm, self.estate, self.plan);
        let href = format!("{}/api/{}/{}", self.base, self.kind.name(), vm.id);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("href", &href)?;
        // Physical columns: NULL ones are left out, like normalize_hash does.
        let columns: &[&'static Attr] = match &plan.physical {
            Some(list) => list,
            None => &ALL_PHYSICAL,
        };
        for attr in columns {
            let value = (attr.get)(vm, e);
            if !value.is_null() {
                m.serialize_entry(attr.name, &value)?;
            }
        }
        // Virtual attributes are rendered even when NULL; a relation that is
        // absent renders null whole, and nothing at all for dotted keys.
        for out in &plan.virtuals {
            match out {
                VirtualOut::Attr(attr) => m.serialize_entry(attr.name, &(attr.get)(vm, e))?,
                VirtualOut::Whole(rel) => match &rel.kind {
                    RelKind::One { keys, get, present } => {
                        if present(vm) {
                            m.serialize_entry(
                                rel.name,
                                &Related {
                                    vm,
                                    estate: e,
                                    get: *get,
                                    keys: keys.iter().copied(),
                                    skip_null: true,
                                },
                            )?;
                        } else {
                            m.serialize_entry(rel.name, &())?;
                        }
                    }
                    RelKind::Many(list) => m.serialize_entry(rel.name, &list(vm, e, self.base))?,
                },
                VirtualOut::Keys(rel, wanted) => {
                    if let RelKind::One { keys, get, present } = &rel.kind {
                        if present(vm) {
                            let known = wanted
                                .iter()
                                .map(String::as_str)
                                .filter(|k| keys.contains(k));
                            m.serialize_entry(
                                rel.name,
                                &Related {
                                    vm,
                                    estate: e,
                                    get: *get,
                                    keys: known,
                                    skip_null: false,
                                },
                            )?;
                        }
                    }
                }
            }
        }
        if plan.expand_tags {
            m.serialize_entry(
                "tags",
                &catalog::managed_tags(vm, e, self.base, self.kind.name()),
            )?;
        }
        if plan.expand_custom_attributes {
            let list: Vec<serde_json::Value> = vm
                .custom_attributes
                .iter()
                .map(|ca| catalog::custom_attribute_json(vm, ca, self.base, self.kind.name()))
                .collect();
            m.serialize_entry("custom_attributes", &list)?;
        }
        if plan.actions {
            m.serialize_entry(
                "actions",
                &Actions {
                    href: &href,
                    list: self.kind.resource_actions(),
                },
            )?;
        }
        m.end()
    }
}

static ALL_PHYSICAL: std::sync::LazyLock<Vec<&'static Attr>> =
    std::sync::LazyLock::new(|| catalog::PHYSICAL.iter().collect());

struct Related<'a, I> {
    vm: &'a Vm,
    estate: &'a Estate,
    get: KeyGetter,
    keys: I,
    skip_null: bool,
}

impl<'a, I: Iterator<Item = &'a str> + Clone> Serialize for Related<'a, I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for key in self.keys.clone() {
            let value = (self.get)(self.vm, self.estate, key);
            if !(self.skip_null && value.is_null()) {
                m.serialize_entry(key, &value)?;
            }
        }
        m.end()
    }
}

/// `[{"name","method","href"}]` without building JSON values.
pub struct Actions<'a> {
    pub href: &'a str,
    pub list: &'a [(&'a str, &'a str)],
}

impl Serialize for Actions<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.list.len()))?;
        for (name, method) in self.list {
            seq.serialize_element(&Action {
                name,
                method,
                href: self.href,
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct Action<'a> {
    name: &'a str,
    method: &'a str,
    href: &'a str,
}

/// The page of a list request, ready to serialize.
pub fn page_body<'a>(
    kind: Kind,
    estate: &'a Estate,
    cache: &SelectionCache,
    q: &CollectionQuery,
    req: &'a ListRequest,
    url: &str,
    base: &'a str,
) -> Result<CollectionBody<'a, VmPage<'a>>, MiqError> {
    let paging = q.paging()?;
    let items = kind.items(estate);
    let selected = cache.get_or_compute(selection_key(kind, q), || req.select(items, estate));
    let range = paging.range(selected.len());
    let page: Vec<u32> = selected[range].to_vec();
    let subquery_count = req.filtered().then_some(selected.len() as u64);
    let paging_count = subquery_count.unwrap_or(items.len() as u64);
    let resources = (!q.hides("resources")).then(|| VmPage {
        kind,
        estate,
        plan: &req.plan,
        base,
        page,
        expand: q.expands("resources"),
    });
    Ok(CollectionBody {
        name: kind.name(),
        count: items.len() as u64,
        subcount: paging.range(selected.len()).len() as u64,
        subquery_count,
        pages: paging.pages(paging_count),
        resources,
        actions: kind.collection_actions(),
        collection_href: format!("{base}/api/{}", kind.name()),
        links: paging.links(url, paging_count),
    })
}

/// The `resources` of one page: full records with `expand=resources`, else hrefs.
pub struct VmPage<'a> {
    kind: Kind,
    estate: &'a Estate,
    plan: &'a Plan,
    base: &'a str,
    page: Vec<u32>,
    expand: bool,
}

impl Serialize for VmPage<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let items = self.kind.items(self.estate);
        let mut seq = s.serialize_seq(Some(self.page.len()))?;
        for &i in &self.page {
            let vm = &items[i as usize];
            if self.expand {
                seq.serialize_element(&VmView {
                    kind: self.kind,
                    vm,
                    estate: self.estate,
                    plan: self.plan,
                    base: self.base,
                })?;
            } else {
                seq.serialize_element(&HrefOnly(format!(
                    "{}/api/{}/{}",
                    self.base,
                    self.kind.name(),
                    vm.id
                )))?;
            }
        }
        seq.end()
    }
}

struct HrefOnly(String);

impl Serialize for HrefOnly {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("href", &self.0)?;
        m.end()
    }
}
