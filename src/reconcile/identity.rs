//! Identification: which CI is each VM? Ordered rules, tried stage by stage over the whole
//! estate; ambiguity, conflict, contradiction and duplicates are data (quarantine), never a
//! guess.
//!
//! Stage by stage means rule 1 is applied to every VM before rule 2 is tried for the VMs left
//! over, and a CI claimed by a stronger rule is no longer available to a weaker one: a
//! same-named VM can never steal a CI that another VM owns by its UUID.
//!
//! A CI is never re-keyed on a guess. The fields of the strong rules together are a VM's
//! identity: a CI holding one of them with another value (both sides non-empty) *contradicts*
//! the VM and is no candidate for it under any rule. When all a strong rule finds contradicts,
//! the pair is reported (a moref reused after a vCenter rebuild would otherwise move one
//! machine's history to another); a weak rule's contradicting hits are simply not offered.
//! In-scope CIs that share a strong key and do not contradict each other are one machine
//! recorded twice: duplicate CIs, held before any rule is tried.
//!
//! Keys are computed once per rule and item (VM or CI) and indexed by hash, so identifying
//! 100,000 VMs against 100,000 CIs is a few linear passes. A weak rule's CI keys are indexed
//! at its stage, only where a VM left wants them; each stage finds its VMs' CIs in parallel
//! and records the findings in VM order.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use super::diff::{nfc, trim};
use super::mapping::{IdentityRule, OnContradiction};
use super::plan::{Issue, IssueKind};
use super::record::Ci;

/// Joins the values of a multi-field key; cannot occur in trimmed field values.
const SEP: char = '\u{1f}';

/// What identification needs of one VM: its id, display name and one key per rule.
pub struct Candidate<'a> {
    pub source_id: &'a str,
    pub name: &'a str,
    /// The normalised key of each rule (by index), `None` where a value is missing.
    pub keys: Keys,
    /// The VM's value of each [`strong_fields`] field (by index), trimmed; `None` when empty.
    pub strong: Vec<Option<&'a str>>,
}

/// What identification is told besides the rules, the VMs and the CIs.
pub struct Options<'a> {
    /// By CI index: whether the CI is in the mapping's scope (only those can be duplicates).
    pub in_scope: &'a [bool],
    pub on_contradiction: OnContradiction,
}

/// The outcome of identification.
#[derive(Debug)]
pub struct Identification {
    /// By VM index: the matched CI's index and the index of the rule that matched.
    pub matched: Vec<Option<(usize, usize)>>,
    /// By VM index: held back from any write.
    pub quarantined: Vec<bool>,
    /// By VM index: a rule's match was contradicted and the mapping says
    /// `on_contradiction = "new"`: the VM is planned as a new CI.
    pub new: Vec<bool>,
    /// CIs that must be left alone (involved in an ambiguity, conflict, contradiction or
    /// duplicate): never retired, since one of the quarantined VMs may well be theirs.
    pub held: BTreeSet<usize>,
    pub issues: Vec<Issue>,
}

/// The fields of the strong (not weak) rules, each once, in rule order: a VM's identity.
pub fn strong_fields(rules: &[IdentityRule]) -> Vec<&str> {
    let mut fields: Vec<&str> = Vec::new();
    for field in rules.iter().filter(|r| !r.weak).flat_map(|r| &r.fields) {
        if !fields.contains(&field.as_str()) {
            fields.push(field);
        }
    }
    fields
}

/// A normalised identity key: values trimmed, in Unicode NFC (as `diff::same` compares them)
/// and lower-cased (UUIDs come in both cases), joined by a separator. `None` when any value is
/// missing: the rule cannot apply.
pub fn key<'v>(rule: &IdentityRule, get: impl Fn(&str) -> Option<&'v str>) -> Option<String> {
    let mut key = String::new();
    key_into(rule, get, &mut key).then_some(key)
}

/// [`key`], appended to `out`; `false` (and `out` as it was) when the rule cannot apply.
fn key_into<'v>(
    rule: &IdentityRule,
    get: impl Fn(&str) -> Option<&'v str>,
    out: &mut String,
) -> bool {
    let at = out.len();
    for (i, field) in rule.fields.iter().enumerate() {
        let value = get(field).map(trim).unwrap_or_default();
        if value.is_empty() {
            out.truncate(at);
            return false;
        }
        if i > 0 {
            out.push(SEP);
        }
        if value.is_ascii() {
            let start = out.len();
            out.push_str(value);
            out[start..].make_ascii_lowercase();
        } else {
            out.extend(nfc(value).chars().flat_map(char::to_lowercase));
        }
    }
    true
}

/// One record's keys, by rule index, in one text buffer cut to size; the spans are inline
/// for the usual few rules: one allocation per record.
#[derive(Debug)]
pub struct Keys {
    text: Box<str>,
    spans: Spans,
}

/// Where each key sits in its text (`None` where its rule does not apply).
#[derive(Debug)]
enum Spans {
    Inline(u8, [Option<(u32, u32)>; INLINE_SPANS]),
    Heap(Box<[Option<(u32, u32)>]>),
}

const INLINE_SPANS: usize = 4;

thread_local! {
    /// The text of the record being keyed, reused from record to record on each thread.
    static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl Keys {
    /// One record's key for each rule.
    pub fn of_rules<'v>(rules: &[IdentityRule], get: impl Fn(&str) -> Option<&'v str>) -> Self {
        SCRATCH.with_borrow_mut(|text| {
            text.clear();
            let mut spans = rules.iter().map(|rule| {
                let start = text.len();
                key_into(rule, &get, text).then_some((start as u32, text.len() as u32))
            });
            let spans = if rules.len() <= INLINE_SPANS {
                let mut inline = [None; INLINE_SPANS];
                for slot in inline.iter_mut().take(rules.len()) {
                    *slot = spans.next().flatten();
                }
                Spans::Inline(rules.len() as u8, inline)
            } else {
                Spans::Heap(spans.collect())
            };
            Self {
                text: text.as_str().into(),
                spans,
            }
        })
    }

    /// Key `i`, `None` where its rule does not apply.
    pub fn get(&self, i: usize) -> Option<&str> {
        let span = match &self.spans {
            Spans::Inline(len, spans) => spans[..*len as usize].get(i),
            Spans::Heap(spans) => spans.get(i),
        };
        let (start, end) = span.copied().flatten()?;
        Some(&self.text[start as usize..end as usize])
    }
}

/// Every CI's key for one rule, in one text buffer by CI index: no allocation per key.
#[derive(Debug, Default)]
struct Column {
    text: String,
    spans: Vec<Option<(u32, u32)>>,
}

impl Column {
    fn of_cis(rule: &IdentityRule, cis: &[Ci]) -> Self {
        let mut keys = Self {
            text: String::with_capacity(cis.len() * 24),
            spans: Vec::with_capacity(cis.len()),
        };
        for ci in cis {
            let start = keys.text.len();
            let span = key_into(rule, |f| Some(ci.get(f)), &mut keys.text)
                .then_some((start as u32, keys.text.len() as u32));
            keys.spans.push(span);
        }
        keys
    }

    /// Key `i`, `None` where its rule does not apply.
    fn get(&self, i: usize) -> Option<&str> {
        let (start, end) = self.spans.get(i).copied().flatten()?;
        Some(&self.text[start as usize..end as usize])
    }

    /// The keys that apply, with their index.
    fn iter(&self) -> impl Iterator<Item = (usize, &str)> {
        (0..self.spans.len()).filter_map(|i| Some((i, self.get(i)?)))
    }
}

/// Two identity values compared as keys compare them: trimmed, without case.
fn same_value(a: &str, b: &str) -> bool {
    let (a, b) = (trim(a), trim(b));
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
    }
}

/// Whether two values of one identity field disagree: both present, and different.
fn disagree(a: &str, b: &str) -> bool {
    !trim(a).is_empty() && !trim(b).is_empty() && !same_value(a, b)
}

/// Whether the CI holds a strong identity field with another value than the VM's.
fn contradicts(strong: &[&str], candidate: &Candidate, ci: &Ci) -> bool {
    strong
        .iter()
        .zip(&candidate.strong)
        .any(|(field, vm)| vm.is_some_and(|vm| disagree(vm, ci.get(field))))
}

/// The fields on which the VM and the CI disagree, and in words: `correlation_id differs
/// (VM `uuid-a`, CI `uuid-b`)`.
fn describe_contradiction<'f>(
    strong: &[&'f str],
    candidate: &Candidate,
    ci: &Ci,
) -> (Vec<&'f str>, String) {
    let (mut fields, mut words) = (Vec::new(), Vec::new());
    for (field, vm) in strong.iter().zip(&candidate.strong) {
        if let Some(vm) = vm.filter(|vm| disagree(vm, ci.get(field))) {
            fields.push(*field);
            words.push(format!(
                "{field} differs (VM `{vm}`, CI `{}`)",
                ci.get(field).trim()
            ));
        }
    }
    (fields, words.join(" and "))
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
fn ci_index(keys: &Column) -> FxHashMap<&str, Hits> {
    let mut index = FxHashMap::with_capacity_and_hasher(keys.spans.len(), Default::default());
    for (i, k) in keys.iter() {
        add(&mut index, k, i);
    }
    index
}

/// A weak rule's index, for its stage: key -> CIs carrying it, for the keys of the VMs not
/// settled by the rules before it (all its stage looks up). A weak rule (a name) comes last,
/// when few VMs are left: no index of every CI's key is built for them. Weak rules take no
/// part in the duplicate checks, which need every CI's key.
fn left_index<'c>(
    r: usize,
    rule: &IdentityRule,
    candidates: &'c [Candidate],
    cis: &[Ci],
    out: &Identification,
) -> FxHashMap<&'c str, Hits> {
    let wanted: FxHashSet<&str> = candidates
        .iter()
        .enumerate()
        .filter(|&(vm, _)| out.matched[vm].is_none() && !out.quarantined[vm] && !out.new[vm])
        .filter_map(|(_, c)| c.keys.get(r))
        .collect();
    if wanted.is_empty() {
        return FxHashMap::default();
    }
    // Each CI's key, in parallel, kept where a VM left wants it (in CI order).
    let found: Vec<(&str, usize)> = cis
        .par_iter()
        .enumerate()
        .map_init(String::new, |key, (i, ci)| {
            key.clear();
            key_into(rule, |f| Some(ci.get(f)), key)
                .then(|| wanted.get(key.as_str()).map(|&k| (k, i)))
                .flatten()
        })
        .flatten()
        .collect();
    let mut index = FxHashMap::with_capacity_and_hasher(found.len(), Default::default());
    for (k, i) in found {
        add(&mut index, k, i);
    }
    index
}

/// A set of in-scope CIs that carry one identity: the CIs (ascending), the keys they share,
/// and the VMs that would have matched them.
struct DuplicateCis {
    cis: Vec<usize>,
    shared: BTreeSet<String>,
    rules: BTreeSet<String>,
    vms: Vec<usize>,
}

/// The duplicate CIs: in-scope CIs sharing the key of a strong rule, linked when they do not
/// contradict each other on another strong field (CIs that do are different machines, one
/// of them holding a stale key), and gathered across rules (union-find). Also returns, by CI
/// index, the set each CI belongs to (empty when there is none at all).
fn duplicate_cis(
    rules: &[IdentityRule],
    indexes: &[FxHashMap<&str, Hits>],
    cis: &[Ci],
    strong: &[&str],
    in_scope: &[bool],
) -> (Vec<DuplicateCis>, Vec<Option<usize>>) {
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut parent: Vec<usize> = Vec::new();
    // Each link: two CIs, and the rule and key they share.
    let mut links: Vec<(usize, usize, usize, &str)> = Vec::new();
    for r in (0..rules.len()).filter(|&r| !rules[r].weak) {
        for (k, hits) in &indexes[r] {
            let Hits::Many(all) = hits else { continue };
            let members: Vec<usize> = all.iter().copied().filter(|&ci| in_scope[ci]).collect();
            for (i, &a) in members.iter().enumerate() {
                for &b in &members[..i] {
                    let apart = strong
                        .iter()
                        .any(|f| disagree(cis[a].get(f), cis[b].get(f)));
                    if apart {
                        continue;
                    }
                    if parent.is_empty() {
                        parent = (0..cis.len()).collect();
                    }
                    // The smallest index is the root: the sets come out in CI order.
                    let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
                    parent[ra.max(rb)] = ra.min(rb);
                    links.push((a, b, r, k));
                }
            }
        }
    }
    if links.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let involved: BTreeSet<usize> = links.iter().flat_map(|&(a, b, _, _)| [a, b]).collect();
    let mut by_root: BTreeMap<usize, DuplicateCis> = BTreeMap::new();
    for ci in involved {
        let set = by_root
            .entry(root(&mut parent, ci))
            .or_insert_with(|| DuplicateCis {
                cis: Vec::new(),
                shared: BTreeSet::new(),
                rules: BTreeSet::new(),
                vms: Vec::new(),
            });
        set.cis.push(ci);
    }
    for (a, _, r, k) in links {
        if let Some(set) = by_root.get_mut(&root(&mut parent, a)) {
            set.shared.insert(describe_key(&rules[r], k));
            set.rules.insert(rules[r].describe());
        }
    }
    let sets: Vec<DuplicateCis> = by_root.into_values().collect();
    let mut set_of = vec![None; cis.len()];
    for (i, set) in sets.iter().enumerate() {
        for &ci in &set.cis {
            set_of[ci] = Some(i);
        }
    }
    (sets, set_of)
}

/// Matches VMs to CIs with the rules in order.
pub fn identify(
    rules: &[IdentityRule],
    candidates: &[Candidate],
    cis: &[Ci],
    options: &Options,
) -> Identification {
    let mut out = Identification {
        matched: vec![None; candidates.len()],
        quarantined: vec![false; candidates.len()],
        new: vec![false; candidates.len()],
        held: BTreeSet::new(),
        issues: Vec::new(),
    };
    let strong = strong_fields(rules);
    // One index per rule, built side by side, over keys kept in one buffer per rule.
    // A weak rule's CIs are keyed at its stage, for the VMs left (see `left_index`).
    let keys: Vec<Column> = rules
        .par_iter()
        .map(|rule| {
            if rule.weak {
                Column::default()
            } else {
                Column::of_cis(rule, cis)
            }
        })
        .collect();
    // The VMs' own strong keys are checked for clones.
    let indexes: Vec<FxHashMap<&str, Hits>> = keys.par_iter().map(ci_index).collect();
    let shared = shared_source_keys(rules, candidates);
    quarantine_duplicate_sources(rules, &indexes, shared, candidates, cis, &mut out);

    // One machine recorded twice in the CMDB: its CIs are held whatever the VMs say.
    let (mut duplicate_sets, duplicate_of) =
        duplicate_cis(rules, &indexes, cis, &strong, options.in_scope);
    for set in &duplicate_sets {
        out.held.extend(&set.cis);
    }

    let stage = Stage {
        strong: &strong,
        candidates,
        cis,
        duplicate_of: &duplicate_of,
        options,
    };
    let mut available: Vec<bool> = vec![true; cis.len()];
    for (r, rule) in rules.iter().enumerate() {
        let left;
        let index = if rule.weak {
            left = left_index(r, rule, candidates, cis, &out);
            &left
        } else {
            &indexes[r]
        };
        let proposals = stage.propose(r, rule, index, &available, &mut out, &mut duplicate_sets);
        stage.settle(r, rule, proposals, &mut available, &mut out);
    }
    for set in duplicate_sets {
        out.issues.push(duplicate_issue(set, candidates, cis));
    }
    out
}

/// By rule: the keys of a strong rule that several VMs carry, with those VMs (ascending),
/// in key order; nothing for a weak rule. One pass over the VMs per strong rule, side by side.
fn shared_source_keys<'c>(
    rules: &[IdentityRule],
    candidates: &'c [Candidate],
) -> Vec<Vec<(&'c str, Vec<usize>)>> {
    rules
        .par_iter()
        .enumerate()
        .map(|(r, rule)| {
            if rule.weak {
                return Vec::new();
            }
            // The first VM of each key; the rare key seen again goes to `many`.
            let mut first: FxHashMap<&str, usize> =
                FxHashMap::with_capacity_and_hasher(candidates.len(), Default::default());
            let mut many: FxHashMap<&str, Vec<usize>> = FxHashMap::default();
            for (vm, c) in candidates.iter().enumerate() {
                let Some(k) = c.keys.get(r) else { continue };
                if let Some(&earlier) = first.get(k) {
                    many.entry(k).or_insert_with(|| vec![earlier]).push(vm);
                } else {
                    first.insert(k, vm);
                }
            }
            let mut duplicates: Vec<(&str, Vec<usize>)> = many.into_iter().collect();
            duplicates.sort();
            duplicates
        })
        .collect()
}

/// Strong keys must be unique among the VMs: clones sharing a UUID cannot both be the CI
/// that carries it. All of them are quarantined and the CIs holding that key are held.
fn quarantine_duplicate_sources(
    rules: &[IdentityRule],
    indexes: &[FxHashMap<&str, Hits>],
    shared: Vec<Vec<(&str, Vec<usize>)>>,
    candidates: &[Candidate],
    cis: &[Ci],
    out: &mut Identification,
) {
    for ((r, rule), duplicates) in rules.iter().enumerate().zip(shared) {
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
}

/// What one rule's stage works with: everything but the per-rule state.
struct Stage<'a> {
    strong: &'a [&'a str],
    candidates: &'a [Candidate<'a>],
    cis: &'a [Ci],
    duplicate_of: &'a [Option<usize>],
    options: &'a Options<'a>,
}

/// What a VM's key finds among the available CIs under one rule.
enum Finding {
    /// Nothing (or, under a weak rule, only contradicting CIs, which are not offered).
    Nothing,
    /// Exactly one CI that does not contradict the VM.
    One(usize),
    /// Several non-contradicting CIs.
    Several(Vec<usize>),
    /// A duplicate CI set is among them: the VM would have to pick one of the set.
    Duplicates(Vec<usize>),
    /// Only CIs that contradict the VM's other strong identity fields.
    Contradicted(Vec<usize>),
}

impl Stage<'_> {
    /// Classifies the available CIs carrying the key: contradicting ones are never
    /// candidates; a duplicate set among them stops the VM.
    fn find(&self, candidate: &Candidate, all: &[usize], available: &[bool]) -> Finding {
        let mut fit: Vec<usize> = Vec::new();
        let mut contradicting: Vec<usize> = Vec::new();
        let mut duplicates: Vec<usize> = Vec::new();
        for &ci in all.iter().filter(|&&ci| available[ci]) {
            if contradicts(self.strong, candidate, &self.cis[ci]) {
                contradicting.push(ci);
            } else if let Some(Some(set)) = self.duplicate_of.get(ci) {
                if !duplicates.contains(set) {
                    duplicates.push(*set);
                }
            } else {
                fit.push(ci);
            }
        }
        if !duplicates.is_empty() {
            Finding::Duplicates(duplicates)
        } else if fit.len() > 1 {
            Finding::Several(fit)
        } else if let Some(&ci) = fit.first() {
            Finding::One(ci)
        } else if !contradicting.is_empty() {
            Finding::Contradicted(contradicting)
        } else {
            Finding::Nothing
        }
    }

    /// One rule over every VM not settled yet: the CI each proposes (by CI index), with
    /// ambiguities, duplicates and contradictions recorded on the way.
    fn propose(
        &self,
        r: usize,
        rule: &IdentityRule,
        index: &FxHashMap<&str, Hits>,
        available: &[bool],
        out: &mut Identification,
        duplicate_sets: &mut [DuplicateCis],
    ) -> Vec<Option<Hits>> {
        let mut proposals: Vec<Option<Hits>> = (0..self.cis.len()).map(|_| None).collect();
        // What each VM's key finds depends on no other VM's finding (only on the CIs still
        // available, fixed during the stage): found in parallel, recorded in VM order.
        let findings: Vec<Finding> = {
            let settled =
                |vm: usize| out.matched[vm].is_some() || out.quarantined[vm] || out.new[vm];
            self.candidates
                .par_iter()
                .enumerate()
                .map(|(vm, candidate)| match candidate.keys.get(r) {
                    Some(k) if !settled(vm) => {
                        let all = index.get(k).map(Hits::as_slice).unwrap_or_default();
                        self.find(candidate, all, available)
                    }
                    _ => Finding::Nothing,
                })
                .collect()
        };
        for (vm, finding) in findings.into_iter().enumerate() {
            let candidate = &self.candidates[vm];
            let Some(k) = candidate.keys.get(r) else {
                continue;
            };
            match finding {
                Finding::Nothing => {}
                Finding::Duplicates(sets) => {
                    out.quarantined[vm] = true;
                    for set in sets {
                        duplicate_sets[set].vms.push(vm);
                    }
                }
                Finding::Several(many) => {
                    out.quarantined[vm] = true;
                    out.held.extend(&many);
                    out.issues.push(Issue {
                        kind: IssueKind::Ambiguous,
                        source_ids: vec![candidate.source_id.to_owned()],
                        sys_ids: many.iter().map(|&ci| self.cis[ci].sys_id.clone()).collect(),
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
                Finding::One(ci) => match &mut proposals[ci] {
                    Some(hits) => hits.push(vm),
                    slot => *slot = Some(Hits::One(vm)),
                },
                // A weak rule simply does not offer contradicting CIs (a reused host name
                // gets a new CI); a strong one reports the pair.
                Finding::Contradicted(_) if rule.weak => {}
                Finding::Contradicted(contradicting) => {
                    let on = self.options.on_contradiction;
                    out.issues.push(contradiction(
                        rule,
                        self.strong,
                        candidate,
                        &contradicting,
                        self.cis,
                        on,
                    ));
                    out.held.extend(&contradicting);
                    match on {
                        OnContradiction::Quarantine => out.quarantined[vm] = true,
                        OnContradiction::New => out.new[vm] = true,
                    }
                }
            }
        }
        proposals
    }

    /// A CI proposed by one VM is its match; proposed by several, a conflict: the CI is held
    /// and the VMs quarantined. Either way the CI is no longer available to weaker rules.
    fn settle(
        &self,
        r: usize,
        rule: &IdentityRule,
        proposals: Vec<Option<Hits>>,
        available: &mut [bool],
        out: &mut Identification,
    ) {
        for (ci, hits) in proposals.into_iter().enumerate() {
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
                    .map(|&vm| self.candidates[vm].source_id.to_owned())
                    .collect(),
                sys_ids: vec![self.cis[ci].sys_id.clone()],
                name: self.cis[ci].name().to_owned(),
                field: Some(rule.describe()),
                message: format!(
                    "{} VMs match one CI by rule `{}`; neither the CI nor the VMs are written",
                    vms.len(),
                    rule.describe()
                ),
            });
        }
    }
}

/// The issue for a VM whose strong rule found only CIs that contradict it.
fn contradiction(
    rule: &IdentityRule,
    strong: &[&str],
    candidate: &Candidate,
    contradicting: &[usize],
    cis: &[Ci],
    on_contradiction: OnContradiction,
) -> Issue {
    let mut fields = Vec::new();
    let mut details = Vec::new();
    for &ci in contradicting {
        let (differ, words) = describe_contradiction(strong, candidate, &cis[ci]);
        for field in differ {
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
        details.push(format!("CI `{}`, but {words}", cis[ci].name()));
    }
    let outcome = match on_contradiction {
        OnContradiction::Quarantine => {
            "neither the VM nor the CI is written or retired (on_contradiction = \"quarantine\")"
        }
        OnContradiction::New => {
            "the VM is planned as a new CI and the CI is left alone (on_contradiction = \"new\")"
        }
    };
    Issue {
        kind: IssueKind::IdentityContradiction,
        source_ids: vec![candidate.source_id.to_owned()],
        sys_ids: contradicting
            .iter()
            .map(|&ci| cis[ci].sys_id.clone())
            .collect(),
        name: candidate.name.to_owned(),
        field: Some(fields.join(", ")),
        message: format!(
            "rule `{}` finds {}: the CI is not re-keyed; {outcome}",
            rule.describe(),
            details.join("; and ")
        ),
    }
}

/// The issue for one set of duplicate CIs and the VMs that would have matched them.
fn duplicate_issue(set: DuplicateCis, candidates: &[Candidate], cis: &[Ci]) -> Issue {
    let vms = match set.vms.len() {
        0 => String::new(),
        1 => "; the VM carrying it is not written either".to_owned(),
        n => format!("; the {n} VMs carrying it are not written either"),
    };
    Issue {
        kind: IssueKind::DuplicateCi,
        source_ids: set
            .vms
            .iter()
            .map(|&vm| candidates[vm].source_id.to_owned())
            .collect(),
        sys_ids: set.cis.iter().map(|&ci| cis[ci].sys_id.clone()).collect(),
        name: cis[set.cis[0]].name().to_owned(),
        field: Some(set.rules.into_iter().collect::<Vec<_>>().join(", ")),
        message: format!(
            "{} CIs in scope carry one identity ({}): one machine recorded twice; none is written or retired until one is left{vms}",
            set.cis.len(),
            set.shared.into_iter().collect::<Vec<_>>().join("; ")
        ),
    }
}
