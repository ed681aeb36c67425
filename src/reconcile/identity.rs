//! Identification: which CI is each VM? Ordered rules, tried stage by stage over the whole
//! estate; ambiguity and conflict are data (quarantine), never a guess.
//!
//! Stage by stage means rule 1 is applied to every VM before rule 2 is tried for the VMs left
//! over, and a CI claimed by a stronger rule is no longer available to a weaker one: a
//! same-named VM can never steal a CI that another VM owns by its UUID.
//!
//! Keys are computed once per rule and item (VM or CI) and indexed by hash, so identifying
//! 100,000 VMs against 100,000 CIs is a few linear passes.

use std::collections::BTreeSet;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::diff::nfc;
use super::mapping::IdentityRule;
use super::plan::{Issue, IssueKind};
use super::record::Ci;

/// Joins the values of a multi-field key; cannot occur in trimmed field values.
const SEP: char = '\u{1f}';

/// What identification needs of one VM: its id, display name and one key per rule.
pub struct Candidate<'a> {
    pub source_id: &'a str,
    pub name: &'a str,
    /// The normalised key of each rule (by index), `None` where a value is missing.
    pub keys: Vec<Option<String>>,
}

/// The outcome of identification.
#[derive(Debug)]
pub struct Identification {
    /// By VM index: the matched CI's index and the index of the rule that matched.
    pub matched: Vec<Option<(usize, usize)>>,
    /// By VM index: held back from any write.
    pub quarantined: Vec<bool>,
    /// CIs that must be left alone (involved in an ambiguity, conflict or duplicate): never
    /// retired, since one of the quarantined VMs may well be theirs.
    pub held: BTreeSet<usize>,
    pub issues: Vec<Issue>,
}

/// A normalised identity key: values trimmed, in Unicode NFC (as `diff::same` compares them)
/// and lower-cased (UUIDs come in both cases), joined by a separator. `None` when any value is
/// missing: the rule cannot apply.
pub fn key<'v>(rule: &IdentityRule, get: impl Fn(&str) -> Option<&'v str>) -> Option<String> {
    let mut key = String::new();
    for (i, field) in rule.fields.iter().enumerate() {
        let value = get(field)?.trim();
        if value.is_empty() {
            return None;
        }
        if i > 0 {
            key.push(SEP);
        }
        if value.is_ascii() {
            let start = key.len();
            key.push_str(value);
            key[start..].make_ascii_lowercase();
        } else {
            key.extend(nfc(value).chars().flat_map(char::to_lowercase));
        }
    }
    Some(key)
}

/// `object_id=vm-53, vcenter_uuid=abc` for messages.
fn describe_key(rule: &IdentityRule, key: &str) -> String {
    rule.fields
        .iter()
        .zip(key.split(SEP))
        .map(|(f, v)| format!("{f}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The items sharing a key. Nearly every key has one: no allocation for those.
#[derive(Debug)]
enum Hits {
    One(usize),
    Many(Vec<usize>),
}

impl Hits {
    fn push(&mut self, item: usize) {
        match self {
            Self::One(first) => *self = Self::Many(vec![*first, item]),
            Self::Many(items) => items.push(item),
        }
    }

    fn as_slice(&self) -> &[usize] {
        match self {
            Self::One(item) => std::slice::from_ref(item),
            Self::Many(items) => items,
        }
    }
}

fn add<K: std::hash::Hash + Eq>(index: &mut FxHashMap<K, Hits>, key: K, item: usize) {
    index
        .entry(key)
        .and_modify(|hits| hits.push(item))
        .or_insert(Hits::One(item));
}

/// Index of one rule's CI keys: key -> CIs carrying it.
fn ci_index(rule: &IdentityRule, cis: &[Ci]) -> FxHashMap<String, Hits> {
    let mut index = FxHashMap::with_capacity_and_hasher(cis.len(), Default::default());
    for (i, ci) in cis.iter().enumerate() {
        if let Some(k) = key(rule, |f| Some(ci.get(f))) {
            add(&mut index, k, i);
        }
    }
    index
}

/// Matches VMs to CIs with the rules in order.
pub fn identify(rules: &[IdentityRule], candidates: &[Candidate], cis: &[Ci]) -> Identification {
    let mut out = Identification {
        matched: vec![None; candidates.len()],
        quarantined: vec![false; candidates.len()],
        held: BTreeSet::new(),
        issues: Vec::new(),
    };
    // One index per rule, built side by side.
    let indexes: Vec<FxHashMap<String, Hits>> =
        rules.par_iter().map(|rule| ci_index(rule, cis)).collect();

    // Strong keys must be unique among the VMs: clones sharing a UUID cannot both be the CI
    // that carries it. All of them are quarantined and the CIs holding that key are held.
    for (r, rule) in rules.iter().enumerate().filter(|(_, r)| !r.weak) {
        let mut by_key: FxHashMap<&str, Hits> =
            FxHashMap::with_capacity_and_hasher(candidates.len(), Default::default());
        for (vm, c) in candidates.iter().enumerate() {
            if let Some(k) = c.keys[r].as_deref() {
                add(&mut by_key, k, vm);
            }
        }
        let mut duplicates: Vec<(&str, Vec<usize>)> = by_key
            .into_iter()
            .filter_map(|(k, hits)| match hits {
                Hits::Many(vms) => Some((k, vms)),
                Hits::One(_) => None,
            })
            .collect();
        duplicates.sort();
        for (k, vms) in duplicates {
            let holding = indexes[r].get(k).map(Hits::as_slice).unwrap_or_default();
            out.held.extend(holding);
            for &vm in &vms {
                out.quarantined[vm] = true;
            }
            out.issues.push(Issue {
                kind: IssueKind::DuplicateSource,
                source_ids: vms.iter().map(|&vm| candidates[vm].source_id.to_owned()).collect(),
                sys_ids: holding.iter().map(|&ci| cis[ci].sys_id.clone()).collect(),
                name: candidates[vms[0]].name.to_owned(),
                field: Some(rule.describe()),
                message: format!(
                    "{} VMs share {} (e.g. clones sharing a UUID); none is written until they differ",
                    vms.len(),
                    describe_key(rule, k)
                ),
            });
        }
    }

    let mut available: Vec<bool> = vec![true; cis.len()];
    for (r, rule) in rules.iter().enumerate() {
        // By CI index: the VMs proposing it under this rule.
        let mut proposals: Vec<Option<Hits>> = (0..cis.len()).map(|_| None).collect();
        for (vm, candidate) in candidates.iter().enumerate() {
            if out.matched[vm].is_some() || out.quarantined[vm] {
                continue;
            }
            let Some(k) = candidate.keys[r].as_deref() else {
                continue;
            };
            let all = indexes[r].get(k).map(Hits::as_slice).unwrap_or_default();
            let mut found = all.iter().copied().filter(|&ci| available[ci]);
            match (found.next(), found.next()) {
                (None, _) => {}
                (Some(ci), None) => match &mut proposals[ci] {
                    Some(hits) => hits.push(vm),
                    slot => *slot = Some(Hits::One(vm)),
                },
                _ => {
                    let many: Vec<usize> =
                        all.iter().copied().filter(|&ci| available[ci]).collect();
                    out.quarantined[vm] = true;
                    out.held.extend(&many);
                    out.issues.push(Issue {
                        kind: IssueKind::Ambiguous,
                        source_ids: vec![candidate.source_id.to_owned()],
                        sys_ids: many.iter().map(|&ci| cis[ci].sys_id.clone()).collect(),
                        name: candidate.name.to_owned(),
                        field: Some(rule.describe()),
                        message: format!(
                            "rule `{}` matches {} CIs ({}); the VM is not written until the CMDB holds one",
                            rule.describe(),
                            many.len(),
                            describe_key(rule, k)
                        ),
                    });
                }
            }
        }
        for (ci, hits) in proposals.iter().enumerate() {
            let Some(hits) = hits else { continue };
            let vms = hits.as_slice();
            available[ci] = false;
            if let [vm] = vms {
                out.matched[*vm] = Some((ci, r));
                continue;
            }
            out.held.insert(ci);
            for &vm in vms {
                out.quarantined[vm] = true;
            }
            out.issues.push(Issue {
                kind: IssueKind::Conflict,
                source_ids: vms
                    .iter()
                    .map(|&vm| candidates[vm].source_id.to_owned())
                    .collect(),
                sys_ids: vec![cis[ci].sys_id.clone()],
                name: cis[ci].name().to_owned(),
                field: Some(rule.describe()),
                message: format!(
                    "{} VMs match one CI by rule `{}`; neither the CI nor the VMs are written",
                    vms.len(),
                    rule.describe()
                ),
            });
        }
    }
    out
}
