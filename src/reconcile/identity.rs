//! Identification: which CI is each VM? Ordered rules, tried stage by stage over the whole
//! estate; ambiguity and conflict are data (quarantine), never a guess.
//!
//! Stage by stage means rule 1 is applied to every VM before rule 2 is tried for the VMs left
//! over, and a CI claimed by a stronger rule is no longer available to a weaker one: a
//! same-named VM can never steal a CI that another VM owns by its UUID.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::mapping::IdentityRule;
use super::plan::{Issue, IssueKind};
use super::record::Ci;

/// What identification needs of one VM: its id, display name and desired identity values.
pub struct Candidate<'a> {
    pub source_id: &'a str,
    pub name: &'a str,
    /// Desired CI field -> value, for the identity fields (absent or empty = unknown).
    pub values: &'a BTreeMap<String, String>,
}

/// The outcome of identification.
#[derive(Debug, Default)]
pub struct Identification {
    /// VM index -> (CI index, rule description).
    pub matched: BTreeMap<usize, (usize, String)>,
    /// VMs held back from any write.
    pub quarantined: BTreeSet<usize>,
    /// CIs that must be left alone (involved in an ambiguity, conflict or duplicate): never
    /// retired, since one of the quarantined VMs may well be theirs.
    pub held: BTreeSet<usize>,
    pub issues: Vec<Issue>,
}

/// A normalised identity key: values trimmed and lower-cased, joined by a separator that
/// cannot appear in them. `None` when any value is missing (the rule cannot apply).
fn key(rule: &IdentityRule, get: impl Fn(&str) -> Option<String>) -> Option<String> {
    let mut key = String::new();
    for (i, field) in rule.fields.iter().enumerate() {
        let value = get(field)?;
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        if i > 0 {
            key.push('\u{1f}');
        }
        key.push_str(&value.to_lowercase());
    }
    Some(key)
}

/// The candidate's key for a rule.
pub fn candidate_key(rule: &IdentityRule, candidate: &Candidate) -> Option<String> {
    key(rule, |f| candidate.values.get(f).cloned())
}

fn ci_key(rule: &IdentityRule, ci: &Ci) -> Option<String> {
    key(rule, |f| Some(ci.get(f).to_owned()))
}

fn describe_key(rule: &IdentityRule, candidate: &Candidate) -> String {
    rule.fields
        .iter()
        .map(|f| {
            format!(
                "{f}={}",
                candidate.values.get(f).map(String::as_str).unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Matches VMs to CIs with the rules in order.
pub fn identify(rules: &[IdentityRule], candidates: &[Candidate], cis: &[Ci]) -> Identification {
    let mut out = Identification::default();

    // Strong keys must be unique among the VMs: clones sharing a UUID cannot both be the CI
    // that carries it. All of them are quarantined and the CIs holding that key are held.
    for rule in rules.iter().filter(|r| !r.weak) {
        let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, c) in candidates.iter().enumerate() {
            if let Some(k) = candidate_key(rule, c) {
                by_key.entry(k).or_default().push(i);
            }
        }
        let mut duplicates: Vec<(String, Vec<usize>)> = by_key
            .into_iter()
            .filter(|(_, vms)| vms.len() > 1)
            .collect();
        duplicates.sort();
        for (k, vms) in duplicates {
            let cis_with_key: Vec<usize> = (0..cis.len())
                .filter(|&ci| ci_key(rule, &cis[ci]).as_deref() == Some(k.as_str()))
                .collect();
            out.held.extend(&cis_with_key);
            out.quarantined.extend(&vms);
            out.issues.push(Issue {
                kind: IssueKind::DuplicateSource,
                source_ids: vms.iter().map(|&i| candidates[i].source_id.to_owned()).collect(),
                sys_ids: cis_with_key.iter().map(|&ci| cis[ci].sys_id.clone()).collect(),
                name: candidates[vms[0]].name.to_owned(),
                field: Some(rule.describe()),
                message: format!(
                    "{} VMs share {} (e.g. clones sharing a UUID); none is written until they differ",
                    vms.len(),
                    describe_key(rule, &candidates[vms[0]])
                ),
            });
        }
    }

    let mut available: Vec<bool> = vec![true; cis.len()];
    for rule in rules {
        let mut index: HashMap<String, Vec<usize>> = HashMap::new();
        for (ci_index, ci) in cis.iter().enumerate() {
            if available[ci_index] {
                if let Some(k) = ci_key(rule, ci) {
                    index.entry(k).or_default().push(ci_index);
                }
            }
        }
        // CI index -> VMs proposing it under this rule.
        let mut proposals: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (vm, candidate) in candidates.iter().enumerate() {
            if out.matched.contains_key(&vm) || out.quarantined.contains(&vm) {
                continue;
            }
            let Some(k) = candidate_key(rule, candidate) else {
                continue;
            };
            match index.get(&k).map(Vec::as_slice) {
                None | Some([]) => {}
                Some([ci]) => proposals.entry(*ci).or_default().push(vm),
                Some(many) => {
                    out.quarantined.insert(vm);
                    out.held.extend(many);
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
                            describe_key(rule, candidate)
                        ),
                    });
                }
            }
        }
        for (ci, vms) in proposals {
            available[ci] = false;
            if let [vm] = vms.as_slice() {
                out.matched.insert(*vm, (ci, rule.describe()));
                continue;
            }
            out.held.insert(ci);
            out.quarantined.extend(&vms);
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
