//! The planner: records and CIs in, [`Plan`] out, as named steps: take the usable records,
//! triage them through the filters and evaluate the mapping ([`desired`](super::desired)),
//! identify each VM's CI ([`identity`]), turn matches into updates and the rest into
//! creates, walk the lifecycle of CIs whose VMs are gone and apply the safety rules
//! ([`policy`](super::policy)). Pure: `now` is a parameter.

use std::borrow::Cow;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use chrono::{DateTime, Utc};

use super::classify::{self, KvInput};
use super::desired::{create, diff_ci, evaluate, unreadable_dates, Desired};
use super::identity::{self, Candidate, Identification};
use super::mapping::Mapping;
use super::plan::*;
use super::policy::{lifecycle_step, safety, SafetyFacts, SN_DATETIME};
use super::record::{Ci, References, SourceRecord, Val};
use super::relations::{self, RelInput};

/// Everything one plan is computed from. Inputs are borrowed: the plan copies what it keeps.
pub struct Input<'a> {
    pub mapping: &'a Mapping,
    /// Source records as the source returned them (bad ones become issues). Given owned
    /// (a run's read), they are let go once evaluated, before the CIs are identified.
    pub records: Cow<'a, [Val]>,
    pub source_origin: String,
    /// Why the source read is incomplete, if it is: blocks every retirement.
    pub source_incomplete: Option<String>,
    pub cis: &'a [Ci],
    pub target_origin: String,
    pub references: &'a References,
    pub now: DateTime<Utc>,
    /// Lifts the count guards for this run (recorded in the plan).
    pub allow_mass_change: bool,
    /// The relationship rows, for a mapping with `[[relate]]` (`None`: not planned).
    pub relations: Option<&'a RelInput>,
    /// The classification rows, for a mapping with `[classify]` (`None`: not planned).
    pub classifications: Option<&'a KvInput>,
}

/// Computes the plan. Never fails: bad records and values become issues in the plan.
pub fn plan(input: Input) -> Plan {
    let Input {
        mapping,
        records,
        source_origin,
        source_incomplete,
        cis,
        target_origin,
        references,
        now,
        allow_mass_change,
        relations,
        classifications,
    } = input;
    let mut issues = Vec::new();
    let now_text = now.format(SN_DATETIME).to_string();

    let cis = read_rows(mapping, unique_rows(cis, &mut issues));
    let cis: &[Ci] = &cis;
    let usable = usable_records(&records, &mut issues);
    let records_read = usable.len();
    let since = mapping.source.window.as_ref().map(|w| w.since(now));
    // What the plan reads of a record is in its `Desired` once evaluated: records handed
    // over are let go batch by batch as they are.
    let mut triage = triage(mapping, records, &usable, references, since, &mut issues);
    let scope = Scope::of(mapping, cis);
    let mut ident = identify(mapping, &triage.desired, cis, &scope);
    issues.reserve_exact(ident.issues.len());
    issues.append(&mut ident.issues);
    issues.extend(unreadable_dates(mapping, cis, &scope.in_scope));
    let matched = creates_and_updates(
        mapping,
        &triage.desired,
        &ident,
        cis,
        &scope,
        now,
        &now_text,
    );
    issues.reserve_exact(matched.issues.len());
    issues.extend(matched.issues);
    // What the CIs should hold is written into the creates and updates by now: the steps
    // after this one read a record's id, name and relationships only. The values of every
    // record (most of them unchanged) are let go before the relationship rows are planned,
    // the largest step left.
    for d in &mut triage.desired {
        d.release_values();
    }
    // A windowed read (`updated_within`) is not the whole collection: a row whose record was
    // not read is not judged at all, so it takes no lifecycle step.
    let mut retirements = if since.is_some() {
        Vec::new()
    } else {
        missing_cis(mapping, cis, &ident, &scope, now, &mut issues)
    };
    let mut safety = safety(
        mapping,
        &mut retirements,
        &matched.creates,
        &matched.updates,
        SafetyFacts {
            incomplete: source_incomplete.clone(),
            present: triage.desired.len(),
            in_scope: scope.count,
            allow_mass_change,
            windowed: since.is_some(),
        },
    );
    let relationships = relationships(
        mapping,
        since.is_some(),
        relations,
        &triage.desired,
        &ident,
        cis,
        &scope,
        &matched.creates,
        &mut safety,
    );
    let classifications = classifications_of(
        mapping,
        classifications,
        &triage.desired,
        &ident,
        cis,
        &scope,
        &matched.creates,
        &mut safety,
    );

    let mut plan = Plan::new(
        now,
        MappingInfo {
            name: mapping.name.clone(),
            origin: mapping.origin.clone(),
            digest: mapping.digest.clone(),
            table: mapping.target.table.clone(),
            scope: mapping.target.scope.text.clone(),
            collection: mapping.source.collection.clone(),
        },
        SourceSummary {
            origin: source_origin,
            complete: source_incomplete.is_none(),
            incomplete_reason: source_incomplete,
            records: records_read,
            filtered_out: triage.filtered_out,
            inactive: triage.inactive,
            window: mapping.source.window.as_ref().zip(since).map(|(w, since)| {
                format!(
                    "{} after {} (updated_within {}): rows whose record was not read are not judged",
                    w.field,
                    since.format(SN_DATETIME),
                    w.text
                )
            }),
        },
        TargetSummary {
            origin: target_origin,
            table: mapping.target.table.clone(),
            cis: cis.len(),
            in_scope: scope.count,
        },
        safety,
        matched.creates,
        matched.updates,
        retirements,
        issues,
        matched.unchanged,
    );
    plan.relationships = relationships;
    plan.classifications = classifications;
    plan
}

/// Step 6, relationships: planned from the same matches; their deletes are withheld with
/// the retirements, on the same incomplete knowledge.
#[allow(clippy::too_many_arguments)]
fn relationships(
    mapping: &Mapping,
    windowed: bool,
    relations: Option<&RelInput>,
    desired: &[Desired],
    ident: &Identification,
    cis: &[Ci],
    scope: &Scope,
    creates: &[Create],
    safety: &mut Safety,
) -> Vec<RelChange> {
    let Some(input) = relations.filter(|_| !mapping.relate.is_empty()) else {
        return Vec::new();
    };
    let owned = owned(mapping, cis, scope);
    let mut changes = relations::plan(mapping, desired, ident, cis, &owned, creates, input).changes;
    if safety.retirements_blocked.is_some() || windowed {
        let before = changes.len();
        changes.retain(|r| r.action == RelAction::Create);
        safety.relationship_deletes_withheld = before - changes.len();
    }
    changes
}

/// The CIs whose relationships and classifications are the job's to write: in scope (or
/// adopted), and not frozen. A foreign or frozen CI's rows are left alone like its fields.
fn owned(mapping: &Mapping, cis: &[Ci], scope: &Scope) -> Vec<bool> {
    cis.iter()
        .enumerate()
        .map(|(i, ci)| (scope.in_scope[i] || mapping.target.adopt) && !scope.frozen(ci))
        .collect()
}

/// Step 7, classifications: CloudForms tags as `cmdb_key_value` rows, planned like the
/// relationships, their deletes withheld with the retirements.
#[allow(clippy::too_many_arguments)]
fn classifications_of(
    mapping: &Mapping,
    input: Option<&KvInput>,
    desired: &[Desired],
    ident: &Identification,
    cis: &[Ci],
    scope: &Scope,
    creates: &[Create],
    safety: &mut Safety,
) -> Vec<KvChange> {
    let (Some(classify), Some(input)) = (&mapping.classify, input) else {
        return Vec::new();
    };
    let owned = owned(mapping, cis, scope);
    let mut changes = classify::plan(classify, desired, ident, cis, &owned, creates, input);
    if safety.retirements_blocked.is_some() {
        let before = changes.len();
        changes.retain(|r| r.action == RelAction::Create);
        safety.classification_deletes_withheld = before - changes.len();
    }
    changes
}

/// Step 1, records: usable objects with ids, de-duplicated, in a stable order: their
/// indexes in `records`.
fn usable_records(records: &[Val], issues: &mut Vec<Issue>) -> Vec<usize> {
    let mut usable = Vec::with_capacity(records.len());
    for (position, value) in records.iter().enumerate() {
        let Val::Object(object) = value else {
            issues.push(bad_record(format!(
                "record #{} is not a JSON object",
                position + 1
            )));
            continue;
        };
        let Some(record) = SourceRecord::from_object(object) else {
            issues.push(bad_record(format!("record #{} has no `id`", position + 1)));
            continue;
        };
        usable.push((position, record.id));
    }
    // Numeric ids in numeric order; the sort is stable, so of a repeated id (a snapshot may
    // repeat a VM) the first is kept.
    usable.sort_by_cached_key(|(_, id)| natural(id));
    usable.dedup_by(|later, first| later.1 == first.1);
    usable.into_iter().map(|(position, _)| position).collect()
}

/// Step 0, CMDB rows: one CI per sys_id. An export can repeat a row; planned twice, the CI
/// would be ambiguous with itself, or marked Absent twice and counted twice by the guards.
/// The first row is kept (borrowed as it is when nothing repeats, which is every live read)
/// and each repeated sys_id is reported once.
fn unique_rows<'c>(cis: &'c [Ci], issues: &mut Vec<Issue>) -> Cow<'c, [Ci]> {
    let mut seen: FxHashMap<&str, usize> =
        FxHashMap::with_capacity_and_hasher(cis.len(), Default::default());
    // By row: the index of the first row with its sys_id.
    let first: Vec<usize> = cis
        .iter()
        .enumerate()
        .map(|(i, ci)| *seen.entry(&ci.sys_id).or_insert(i))
        .collect();
    if seen.len() == cis.len() {
        return Cow::Borrowed(cis);
    }
    // By first row: how many rows carry its sys_id, and whether any differs from it.
    let mut times = vec![1usize; cis.len()];
    let mut differ = vec![false; cis.len()];
    for (i, &f) in first.iter().enumerate().filter(|(i, f)| i != *f) {
        times[f] += 1;
        differ[f] |= cis[i] != cis[f];
    }
    for (row, ci) in cis.iter().enumerate().filter(|(row, _)| times[*row] > 1) {
        issues.push(Issue {
            kind: IssueKind::RepeatedRow,
            source_ids: Vec::new(),
            sys_ids: vec![ci.sys_id.clone()],
            name: ci.name().to_owned(),
            field: None,
            message: format!(
                "the CMDB input holds this CI's row {} times{}; it is planned once, from the first",
                times[row],
                if differ[row] {
                    " (and the rows differ)"
                } else {
                    ""
                }
            ),
        });
    }
    Cow::Owned(
        cis.iter()
            .zip(&first)
            .enumerate()
            .filter(|(i, (_, f))| *i == **f)
            .map(|(_, (ci, _))| ci.clone())
            .collect(),
    )
}

/// What the filters left: the present records with what their CIs should hold.
struct Triage {
    desired: Vec<Desired>,
    filtered_out: usize,
    inactive: usize,
}

/// How many records are evaluated (in parallel) before their issues are gathered: the
/// per-record issues of one batch are all that is held before the unresolved references
/// among them are merged, never those of the whole estate.
const TRIAGE_BATCH: usize = 4096;

/// Step 2, filters: records the mapping skips (`skip_when`, e.g. templates), filters out or
/// that were updated before its window (`updated_within`; a snapshot holds them all) are
/// never rows; inactive records (`missing_when`) follow the missing path. Each record is
/// evaluated on its own (in parallel, a batch at a time; `collect` keeps the order).
/// Unresolved references that say the same thing are gathered into one issue (see
/// [`Unresolved`]); every other issue is one per record, as found.
fn triage(
    mapping: &Mapping,
    mut records: Cow<[Val]>,
    usable: &[usize],
    references: &References,
    since: Option<DateTime<Utc>>,
    issues: &mut Vec<Issue>,
) -> Triage {
    enum One {
        FilteredOut,
        Inactive,
        Present(Desired, Vec<Issue>),
    }
    let one = |value: &Cow<Val>| {
        let Val::Object(object) = &**value else {
            unreachable!("step 1 keeps objects only");
        };
        let record = SourceRecord::from_object(object).expect("step 1 keeps records with ids");
        let is_true = |attr: &str| record.data.get(attr) == Some(&Val::Bool(true));
        let stale = |since| {
            mapping
                .source
                .window
                .as_ref()
                .is_some_and(|w| !w.admits(&record, since))
        };
        if mapping.source.skip_when.iter().any(|a| is_true(a))
            || !mapping.source.filters.iter().all(|f| f.accepts(&record))
            || since.is_some_and(stale)
        {
            One::FilteredOut
        } else if mapping.lifecycle.missing_when.iter().any(|a| is_true(a)) {
            One::Inactive
        } else {
            let mut found = Vec::new();
            let d = evaluate(mapping, record, references, &mut found);
            One::Present(d, found)
        }
    };
    let mut out = Triage {
        desired: Vec::with_capacity(usable.len()),
        filtered_out: 0,
        inactive: 0,
    };
    let mut unresolved = Unresolved::default();
    for positions in usable.chunks(TRIAGE_BATCH) {
        // A record handed over is taken out of the read and dropped once evaluated.
        let batch: Vec<Cow<Val>> = match &mut records {
            Cow::Owned(read) => positions
                .iter()
                .map(|&p| Cow::Owned(std::mem::take(&mut read[p])))
                .collect(),
            Cow::Borrowed(read) => positions.iter().map(|&p| Cow::Borrowed(&read[p])).collect(),
        };
        // Each record goes on the thread that evaluated it.
        let triaged: Vec<One> = batch.into_par_iter().map(|record| one(&record)).collect();
        for t in triaged {
            match t {
                One::FilteredOut => out.filtered_out += 1,
                One::Inactive => out.inactive += 1,
                One::Present(d, found) => {
                    out.desired.push(d);
                    for issue in found {
                        if issue.kind == IssueKind::UnresolvedReference {
                            unresolved.add(issue);
                        } else {
                            issues.push(issue);
                        }
                    }
                }
            }
        }
    }
    unresolved.into_issues(issues);
    out
}

/// Unresolved references, one entry per thing the CMDB lacks: references that say the same
/// (same field, same message, which names the looked-up value and nothing of the VM) are one
/// issue listing every VM that makes them. At 100,000 VMs naming datastores the CMDB does not
/// hold, one issue per VM was 150,000 issues (some 65 MB of plan); a CMDB owner acts per
/// missing CI, not per VM.
#[derive(Default)]
struct Unresolved {
    /// By (field, message): the VMs in the order they were added, and the first one's name.
    by_key: FxHashMap<(Option<String>, String), Vms>,
}

struct Vms {
    ids: Vec<String>,
    first_name: String,
}

impl Unresolved {
    /// One VM's unresolved reference. Records come in step 1's order (numeric ids in
    /// numeric order, see [`natural`]), so each entry's ids are in that order too.
    fn add(&mut self, issue: Issue) {
        let Issue {
            source_ids,
            name,
            field,
            message,
            ..
        } = issue;
        let vms = self.by_key.entry((field, message)).or_insert_with(|| Vms {
            ids: Vec::new(),
            first_name: name,
        });
        for id in source_ids {
            // A VM that makes the same reference twice (two `[[relate]]` to one lookup) is
            // listed once.
            if vms.ids.last() != Some(&id) {
                vms.ids.push(id);
            }
        }
    }

    /// The merged issues. The name is the VM's when one VM makes the reference, or the
    /// count (`1,034 VMs`) when several do.
    fn into_issues(self, issues: &mut Vec<Issue>) {
        // In key order, so that issues tied in the plan's sort come out the same every run.
        let mut merged: Vec<_> = self.by_key.into_iter().collect();
        merged.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        issues.reserve_exact(merged.len());
        issues.extend(merged.into_iter().map(|((field, message), vms)| Issue {
            kind: IssueKind::UnresolvedReference,
            name: match vms.ids.len() {
                1 => vms.first_name,
                n => format!("{} VMs", thousands(n)),
            },
            source_ids: vms.ids,
            sys_ids: Vec::new(),
            field,
            message,
        }));
    }
}

/// Step 3, identification: each present record's keys, one per `[[identify]]` rule, and
/// its strong identity values, which a CI must not contradict.
fn identify(mapping: &Mapping, desired: &[Desired], cis: &[Ci], scope: &Scope) -> Identification {
    let strong = identity::strong_fields(&mapping.identify);
    let candidates: Vec<Candidate> = desired
        .par_iter()
        .map(|d| Candidate {
            source_id: &d.id,
            name: &d.name,
            keys: identity::Keys::of_rules(&mapping.identify, |f| d.value(mapping, f)),
            strong: strong
                .iter()
                .map(|f| d.value(mapping, f).map(str::trim).filter(|v| !v.is_empty()))
                .collect(),
        })
        .collect();
    let options = identity::Options {
        in_scope: &scope.in_scope,
        on_contradiction: mapping.target.on_contradiction,
    };
    identity::identify(&mapping.identify, &candidates, cis, &options)
}

/// Which CIs the job owns (the mapping's scope) and which it must not write (frozen).
/// Step 0, the rows the sync reads (`[target] read`): a live read asks the instance for
/// these alone, and an export is cut the same way, so that both plan alike.
fn read_rows<'c>(mapping: &Mapping, cis: Cow<'c, [Ci]>) -> Cow<'c, [Ci]> {
    if mapping.target.read.is_none() || cis.iter().all(|ci| mapping.target.reads(ci)) {
        return cis;
    }
    Cow::Owned(
        cis.iter()
            .filter(|ci| mapping.target.reads(ci))
            .cloned()
            .collect(),
    )
}

struct Scope<'m> {
    mapping: &'m Mapping,
    in_scope: Vec<bool>,
    count: usize,
}

impl<'m> Scope<'m> {
    fn of(mapping: &'m Mapping, cis: &[Ci]) -> Self {
        let in_scope: Vec<bool> = cis
            .par_iter()
            .map(|ci| mapping.target.owns_class(ci) && mapping.target.scope.matches(ci))
            .collect();
        let count = in_scope.iter().filter(|s| **s).count();
        Self {
            mapping,
            in_scope,
            count,
        }
    }

    fn frozen(&self, ci: &Ci) -> bool {
        self.mapping
            .target
            .freeze
            .as_ref()
            .is_some_and(|f| f.matches(ci))
    }
}

/// What step 4 produced.
struct Matched {
    creates: Vec<Create>,
    updates: Vec<Update>,
    unchanged: usize,
    issues: Vec<Issue>,
}

/// Step 4, matched records become updates and unmatched ones creates (each on its own, in
/// parallel, folded in order).
#[allow(clippy::too_many_arguments)]
fn creates_and_updates(
    mapping: &Mapping,
    desired: &[Desired],
    ident: &Identification,
    cis: &[Ci],
    scope: &Scope,
    now: DateTime<Utc>,
    now_text: &str,
) -> Matched {
    enum Outcome {
        Skip,
        Create(Create),
        Update(Update),
        Unchanged,
        Issue(Issue),
    }
    let outcomes: Vec<Outcome> = desired
        .par_iter()
        .enumerate()
        .map(|(vm, d)| {
            if ident.quarantined[vm] {
                return Outcome::Skip;
            }
            let Some((ci_index, rule)) = ident.matched[vm] else {
                if !mapping.target.create {
                    return Outcome::Skip;
                }
                return match create(mapping, d, now_text) {
                    Ok(mut c) => {
                        if ident.new[vm] {
                            c.identity = strong_identity(mapping, d);
                        }
                        Outcome::Create(c)
                    }
                    Err(issue) => Outcome::Issue(*issue),
                };
            };
            let rule = mapping.identify[rule].describe();
            let ci = &cis[ci_index];
            let adopting = !scope.in_scope[ci_index];
            if adopting && !mapping.target.adopt {
                return Outcome::Issue(foreign_issue(mapping, d, ci, &rule));
            }
            match diff_ci(mapping, d, ci, &rule, adopting, now, now_text) {
                Some(u) if scope.frozen(ci) && u.has_writes() => {
                    if mapping.target.freeze_report {
                        Outcome::Issue(frozen_issue(mapping, ci, &d.id))
                    } else {
                        Outcome::Unchanged
                    }
                }
                Some(u) => Outcome::Update(u),
                None => Outcome::Unchanged,
            }
        })
        .collect();
    let mut out = Matched {
        creates: Vec::new(),
        updates: Vec::new(),
        unchanged: 0,
        issues: Vec::new(),
    };
    for outcome in outcomes {
        match outcome {
            Outcome::Skip => {}
            Outcome::Create(c) => out.creates.push(c),
            Outcome::Update(u) => out.updates.push(u),
            Outcome::Unchanged => out.unchanged += 1,
            Outcome::Issue(i) => out.issues.push(i),
        }
    }
    out
}

/// The identity of a VM planned as new after a contradiction: every strong identity field it
/// holds. A rule's fields alone could be the very key of the contradicting CI (a reused
/// moref), and `apply`, which looks a create up by its identity before sending it, would take
/// that CI for this VM's.
fn strong_identity(mapping: &Mapping, d: &Desired) -> Vec<FieldValue> {
    identity::strong_fields(&mapping.identify)
        .into_iter()
        .filter_map(|field| {
            let value = d.value(mapping, field)?.trim();
            (!value.is_empty()).then(|| FieldValue {
                field: field.to_owned(),
                value: value.to_owned(),
                from: "identity".into(),
            })
        })
        .collect()
}

/// Step 5, CIs in scope whose record is gone take their next lifecycle step. A CI matched
/// by a record is that record's, written or not (foreign, frozen): never retired; nor is a
/// CI held by a quarantine.
fn missing_cis(
    mapping: &Mapping,
    cis: &[Ci],
    ident: &Identification,
    scope: &Scope,
    now: DateTime<Utc>,
    issues: &mut Vec<Issue>,
) -> Vec<Retirement> {
    let mut claimed = vec![false; cis.len()];
    for (ci, _) in ident.matched.iter().flatten() {
        claimed[*ci] = true;
    }
    let mut retirements = Vec::new();
    for (i, ci) in cis.iter().enumerate() {
        if !scope.in_scope[i] || claimed[i] || ident.held.contains(&i) {
            continue;
        }
        if let Some(r) = lifecycle_step(mapping, ci, now) {
            if scope.frozen(ci) {
                issues.push(frozen_issue(mapping, ci, ""));
            } else {
                retirements.push(r);
            }
        }
    }
    retirements
}

/// Orders ids numerically when they are numbers (CloudForms ids), textually otherwise.
fn natural(id: &str) -> (u8, u128, String) {
    match id.parse::<u128>() {
        Ok(n) => (0, n, String::new()),
        Err(_) => (1, 0, id.to_owned()),
    }
}

fn bad_record(message: String) -> Issue {
    Issue {
        kind: IssueKind::BadRecord,
        source_ids: Vec::new(),
        sys_ids: Vec::new(),
        name: String::new(),
        field: None,
        message,
    }
}

fn foreign_issue(mapping: &Mapping, d: &Desired, ci: &Ci, rule: &str) -> Issue {
    Issue {
        kind: IssueKind::Foreign,
        source_ids: vec![d.id.to_string()],
        sys_ids: vec![ci.sys_id.clone()],
        name: d.name.clone(),
        field: Some(rule.to_owned()),
        message: format!(
            "matches CI `{}` by `{rule}`, which is outside the scope `{}`; set `adopt = true` to take it over",
            mapping.row_name(ci),
            mapping.target.scope.text
        ),
    }
}

fn frozen_issue(mapping: &Mapping, ci: &Ci, source_id: &str) -> Issue {
    Issue {
        kind: IssueKind::Frozen,
        source_ids: if source_id.is_empty() {
            Vec::new()
        } else {
            vec![source_id.to_owned()]
        },
        sys_ids: vec![ci.sys_id.clone()],
        name: mapping.row_name(ci).to_owned(),
        field: None,
        message: "the CI carries the freeze marker; the planned change is not written".into(),
    }
}
