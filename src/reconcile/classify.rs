//! Classifications (`[classify]`): CloudForms tags (`/managed/<category>/<entry>`) kept as
//! the CI's `cmdb_key_value` rows (`key` = category, `value` = entry), reconciled like
//! relationships. A tag the record has and the CMDB lacks is created (for a CI this plan
//! creates, against the create); a row of a kept category, with the mapping's `tag`, whose
//! tag the record no longer has is deleted. Left alone: rows of other categories or another
//! `tag` (other sources' classifications), and the rows of CIs that are not the job's
//! (foreign, frozen) or that no record was matched to. Deletes are withheld with the
//! retirements when the source read cannot be trusted.
//!
//! Pure: the rows come from the adapters.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::desired::Desired;
use super::identity::Identification;
use super::mapping::Classify;
use super::plan::{Create, KvChange, RelAction, RelEnd};
use super::record::{Ci, Val};

/// The `cmdb_key_value` rows the CMDB holds with the mapping's `tag` (the adapters read only
/// those): `configuration_item`, `key`, `value`, and the version fields.
#[derive(Debug, Clone, Default)]
pub struct KvInput {
    pub rows: Vec<Ci>,
}

/// A row's CI: an existing CI (sys_id) or a create (the record's id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    Ci(String),
    New(String),
}

/// Plans the classification rows; `owned` says, by CI, which are the job's to write.
pub(super) fn plan(
    classify: &Classify,
    desired: &[Desired],
    ident: &Identification,
    cis: &[Ci],
    owned: &[bool],
    creates: &[Create],
    input: &KvInput,
) -> Vec<KvChange> {
    let created: BTreeSet<&str> = creates.iter().map(|c| c.source_id.as_str()).collect();
    let names: HashMap<&str, &str> = cis.iter().map(|c| (c.sys_id.as_str(), c.name())).collect();
    // (owner, key, value) -> the CI's name.
    let mut wanted: BTreeMap<(Owner, String, String), String> = BTreeMap::new();
    let mut judged: BTreeSet<&str> = BTreeSet::new();
    for (vm, d) in desired.iter().enumerate() {
        let owner = match (ident.quarantined[vm], ident.matched[vm]) {
            (true, _) => continue,
            (false, Some((ci, _))) if !owned[ci] => continue,
            (false, Some((ci, _))) => {
                judged.insert(cis[ci].sys_id.as_str());
                Owner::Ci(cis[ci].sys_id.clone())
            }
            (false, None) if created.contains(d.id.as_ref()) => Owner::New(d.id.to_string()),
            (false, None) => continue,
        };
        // The tags `classify` keeps, picked when the record was evaluated.
        for (key, value) in d.tags.iter() {
            wanted.insert((owner.clone(), key.clone(), value.clone()), d.name.clone());
        }
    }
    let end = |sys_id: &str| RelEnd {
        sys_id: sys_id.to_owned(),
        source_id: None,
        name: names
            .get(sys_id)
            .map(|n| (*n).to_owned())
            .unwrap_or_default(),
    };
    let mut present = BTreeSet::new();
    let mut deletes = Vec::new();
    for row in &input.rows {
        let (ci, key, value) = (
            row.get("configuration_item"),
            row.get("key").trim(),
            row.get("value").trim(),
        );
        if row.get("tag").trim() != classify.tag || !classify.keeps(key) {
            continue;
        }
        let k = (Owner::Ci(ci.to_owned()), key.to_owned(), value.to_owned());
        if wanted.contains_key(&k) {
            present.insert(k);
            continue;
        }
        if !judged.contains(ci) {
            continue;
        }
        deletes.push(KvChange {
            action: RelAction::Delete,
            ci: end(ci),
            key: key.to_owned(),
            value: value.to_owned(),
            tag: classify.tag.clone(),
            sys_id: Some(row.sys_id.clone()),
            sys_mod_count: row.get("sys_mod_count").to_owned(),
            sys_updated_on: row.get("sys_updated_on").to_owned(),
            reason: format!("the record is no longer tagged {key}/{value} in CloudForms"),
        });
    }
    let mut changes: Vec<KvChange> = wanted
        .into_iter()
        .filter(|(k, _)| !present.contains(k))
        .map(|((owner, key, value), name)| KvChange {
            action: RelAction::Create,
            ci: match owner {
                Owner::Ci(id) => end(&id),
                Owner::New(source_id) => RelEnd {
                    sys_id: String::new(),
                    source_id: Some(source_id),
                    name,
                },
            },
            reason: format!(
                "the record is tagged {key}/{value} in CloudForms and the CMDB does not say so"
            ),
            key,
            value,
            tag: classify.tag.clone(),
            sys_id: None,
            sys_mod_count: String::new(),
            sys_updated_on: String::new(),
        })
        .collect();
    changes.extend(deletes);
    changes
}

/// The record's `/managed/<category>/<entry>` tags as (category, entry), sorted, once each.
pub(super) fn managed_tags(tags: Option<&Val>) -> BTreeSet<(String, String)> {
    let Some(Val::Array(tags)) = tags else {
        return BTreeSet::new();
    };
    tags.iter()
        .filter_map(|tag| match tag {
            Val::String(s) => Some(&**s),
            Val::Object(o) => o.get("name").and_then(Val::as_str),
            _ => None,
        })
        .filter_map(|name| {
            let mut parts = name.trim().trim_start_matches('/').splitn(3, '/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("managed"), Some(cat), Some(entry))
                    if !cat.is_empty() && !entry.is_empty() =>
                {
                    Some((cat.to_owned(), entry.to_owned()))
                }
                _ => None,
            }
        })
        .collect()
}
