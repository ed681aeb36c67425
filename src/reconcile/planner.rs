//! The planner: records and CIs in, [`Plan`] out. It evaluates the mapping for every VM,
//! identifies each VM's CI, diffs fields by their mode, walks the lifecycle of CIs whose VMs
//! are gone, and applies the safety policy. Pure: `now` is a parameter.

use std::collections::BTreeMap;

use rayon::prelude::*;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::Value;

use super::diff;
use super::identity::{self, Candidate};
use super::mapping::{Limit, Mapping, OnEmpty, RetirePolicy};
use super::plan::*;
use super::record::{Ci, References, SourceRecord};

/// ServiceNow's datetime format (UTC).
pub const SN_DATETIME: &str = "%Y-%m-%d %H:%M:%S";

/// Everything one plan is computed from. Inputs are borrowed: the plan copies what it keeps.
pub struct Input<'a> {
    pub mapping: &'a Mapping,
    /// Source records as the source returned them (bad ones become issues).
    pub records: &'a [Value],
    pub source_origin: String,
    /// Why the source read is incomplete, if it is: blocks every retirement.
    pub source_incomplete: Option<String>,
    pub cis: &'a [Ci],
    pub target_origin: String,
    pub references: &'a References,
    pub now: DateTime<Utc>,
    /// Lifts the count guards for this run (recorded in the plan).
    pub allow_mass_change: bool,
}

/// A VM that passed the filters, with what its CI should hold.
struct Desired<'a> {
    record: SourceRecord<'a>,
    name: String,
    /// By mapping field index: the derived value (`None` when the source has none).
    values: Vec<Option<String>>,
    /// By mapping field index: the source value is empty and the rule says `on_empty = "clear"`.
    cleared: Vec<bool>,
}

impl Desired<'_> {
    /// The derived value of a CI field, by name.
    fn value<'a>(&'a self, mapping: &Mapping, field: &str) -> Option<&'a str> {
        let index = mapping.fields.iter().position(|f| f.name == field)?;
        self.values[index].as_deref()
    }

    /// Report-only facts (provider, cluster, owner) for the actions this VM gets.
    fn context(&self, mapping: &Mapping) -> BTreeMap<String, String> {
        mapping
            .context
            .iter()
            .filter_map(|(key, path)| {
                let value = path
                    .get(self.record.data)
                    .and_then(super::mapping::scalar_text)?;
                (!value.trim().is_empty()).then(|| (key.clone(), value))
            })
            .collect()
    }
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
    } = input;
    let mut issues = Vec::new();
    let now_text = now.format(SN_DATETIME).to_string();

    // 1. Records: usable objects with ids, de-duplicated, in a stable order.
    let mut usable = Vec::with_capacity(records.len());
    for (position, value) in records.iter().enumerate() {
        let Value::Object(object) = value else {
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
        usable.push(record);
    }
    // Numeric ids in numeric order; the sort is stable, so of a repeated id (a snapshot may
    // repeat a VM) the first is kept.
    usable.sort_by_cached_key(|r| natural(&r.id));
    usable.dedup_by(|later, first| later.id == first.id);
    let records_read = usable.len();

    // 2. Filters: templates are never CIs; inactive VMs follow the missing path. Each record
    // is evaluated on its own (in parallel; `collect` keeps the order).
    enum Triage<'a> {
        FilteredOut,
        Inactive,
        Present(Desired<'a>, Vec<Issue>),
    }
    let triaged: Vec<Triage> = usable
        .into_par_iter()
        .map(|record| {
            let is_true = |attr: &str| record.data.get(attr) == Some(&Value::Bool(true));
            if is_true("template") || !mapping.source.filters.iter().all(|f| f.accepts(&record)) {
                Triage::FilteredOut
            } else if mapping.lifecycle.missing_when.iter().any(|a| is_true(a)) {
                Triage::Inactive
            } else {
                let mut found = Vec::new();
                let d = evaluate(mapping, record, references, &mut found);
                Triage::Present(d, found)
            }
        })
        .collect();
    let mut filtered_out = 0;
    let mut inactive = 0;
    let mut desired = Vec::with_capacity(triaged.len());
    for t in triaged {
        match t {
            Triage::FilteredOut => filtered_out += 1,
            Triage::Inactive => inactive += 1,
            Triage::Present(d, found) => {
                desired.push(d);
                issues.extend(found);
            }
        }
    }

    // 3. Identification.
    let candidates: Vec<Candidate> = desired
        .par_iter()
        .map(|d| Candidate {
            source_id: &d.record.id,
            name: &d.name,
            keys: mapping
                .identify
                .iter()
                .map(|rule| identity::key(rule, |f| d.value(mapping, f)))
                .collect(),
        })
        .collect();
    let ident = identity::identify(&mapping.identify, &candidates, cis);
    issues.extend(ident.issues);

    let in_scope: Vec<bool> = cis
        .par_iter()
        .map(|ci| mapping.target.scope.matches(ci))
        .collect();
    let frozen = |ci: &Ci| {
        mapping
            .target
            .freeze
            .as_ref()
            .is_some_and(|f| f.matches(ci))
    };

    // 4. Matched VMs: updates; unmatched VMs: creates (each VM on its own, in parallel).
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
                return match create(mapping, d, &now_text) {
                    Ok(c) => Outcome::Create(c),
                    Err(issue) => Outcome::Issue(*issue),
                };
            };
            let rule = mapping.identify[rule].describe();
            let ci = &cis[ci_index];
            let adopting = !in_scope[ci_index];
            if adopting && !mapping.target.adopt {
                return Outcome::Issue(foreign_issue(mapping, d, ci, &rule));
            }
            match diff_ci(mapping, d, ci, &rule, adopting, now, &now_text) {
                Some(u) if frozen(ci) && u.has_writes() => {
                    Outcome::Issue(frozen_issue(ci, &d.record.id))
                }
                Some(u) => Outcome::Update(u),
                None => Outcome::Unchanged,
            }
        })
        .collect();
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    let mut unchanged = 0;
    for outcome in outcomes {
        match outcome {
            Outcome::Skip => {}
            Outcome::Create(c) => creates.push(c),
            Outcome::Update(u) => updates.push(u),
            Outcome::Unchanged => unchanged += 1,
            Outcome::Issue(i) => issues.push(i),
        }
    }
    // A CI matched by a VM is that VM's, written or not (foreign, frozen): never retired.
    let mut claimed = vec![false; cis.len()];
    for (ci, _) in ident.matched.iter().flatten() {
        claimed[*ci] = true;
    }

    // 5. CIs in scope whose VM is gone.
    let mut retirements = Vec::new();
    for (i, ci) in cis.iter().enumerate() {
        if !in_scope[i] || claimed[i] || ident.held.contains(&i) {
            continue;
        }
        if let Some(r) = lifecycle_step(mapping, ci, now) {
            if frozen(ci) {
                issues.push(frozen_issue(ci, ""));
            } else {
                retirements.push(r);
            }
        }
    }

    // 6. Safety.
    let in_scope_count = in_scope.iter().filter(|s| **s).count();
    let safety = safety(
        mapping,
        &mut retirements,
        &creates,
        &updates,
        SafetyFacts {
            incomplete: source_incomplete.clone(),
            present: desired.len(),
            in_scope: in_scope_count,
            allow_mass_change,
        },
    );

    Plan::new(
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
            filtered_out,
            inactive,
        },
        TargetSummary {
            origin: target_origin,
            table: mapping.target.table.clone(),
            cis: cis.len(),
            in_scope: in_scope_count,
        },
        safety,
        creates,
        updates,
        retirements,
        issues,
        unchanged,
    )
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
        source_ids: vec![d.record.id.to_string()],
        sys_ids: vec![ci.sys_id.clone()],
        name: d.name.clone(),
        field: Some(rule.to_owned()),
        message: format!(
            "matches CI `{}` by `{rule}`, which is outside the scope `{}`; set `adopt = true` to take it over",
            ci.name(),
            mapping.target.scope.text
        ),
    }
}

fn frozen_issue(ci: &Ci, source_id: &str) -> Issue {
    Issue {
        kind: IssueKind::Frozen,
        source_ids: if source_id.is_empty() {
            Vec::new()
        } else {
            vec![source_id.to_owned()]
        },
        sys_ids: vec![ci.sys_id.clone()],
        name: ci.name().to_owned(),
        field: None,
        message: "the CI carries the freeze marker; the planned change is not written".into(),
    }
}

fn evaluate<'a>(
    mapping: &Mapping,
    record: SourceRecord<'a>,
    refs: &References,
    issues: &mut Vec<Issue>,
) -> Desired<'a> {
    let mut values = Vec::with_capacity(mapping.fields.len());
    let mut cleared = vec![false; mapping.fields.len()];
    for (index, rule) in mapping.fields.iter().enumerate() {
        let value = match rule.eval(&record, refs) {
            Ok(value) => value,
            Err(e) => {
                let (kind, message) = match e {
                    super::mapping::EvalError::BadValue(m) => (IssueKind::BadValue, m),
                    super::mapping::EvalError::Unresolved(m) => (IssueKind::UnresolvedReference, m),
                };
                issues.push(Issue {
                    kind,
                    source_ids: vec![record.id.to_string()],
                    sys_ids: Vec::new(),
                    name: record_name(&record),
                    field: Some(rule.name.clone()),
                    message,
                });
                None
            }
        };
        cleared[index] = value.is_none() && rule.on_empty == OnEmpty::Clear;
        values.push(value);
    }
    let mut desired = Desired {
        record,
        name: String::new(),
        values,
        cleared,
    };
    desired.name = match desired.value(mapping, "name") {
        Some(name) => name.to_owned(),
        None => record_name(&desired.record),
    };
    desired
}

fn record_name(record: &SourceRecord) -> String {
    record
        .data
        .get("name")
        .and_then(super::mapping::scalar_text)
        .unwrap_or_else(|| format!("vm {}", record.id))
}

/// The create for a VM without a CI, or the issue why it cannot be created (boxed: an
/// issue is far larger than the happy path's pointer).
fn create(mapping: &Mapping, d: &Desired, now_text: &str) -> Result<Create, Box<Issue>> {
    // A CI that no rule can find again would be created anew on every run.
    let Some(identity) = mapping.identify.iter().find(|rule| {
        rule.fields
            .iter()
            .all(|f| d.value(mapping, f).is_some_and(|v| !v.trim().is_empty()))
    }) else {
        return Err(Box::new(Issue {
            kind: IssueKind::BadRecord,
            source_ids: vec![d.record.id.to_string()],
            sys_ids: Vec::new(),
            name: d.name.clone(),
            field: None,
            message: format!(
                "no identity rule can identify this VM (empty {}); it is not created, or every run would create it again",
                mapping.identify.iter().map(|r| format!("`{}`", r.describe())).collect::<Vec<_>>().join(", ")
            ),
        }));
    };
    let identity = identity
        .fields
        .iter()
        .map(|f| FieldValue {
            field: f.clone(),
            value: d.value(mapping, f).unwrap_or_default().to_owned(),
            from: "identity".into(),
        })
        .collect();
    let mut fields: BTreeMap<String, FieldValue> = BTreeMap::new();
    for (rule, value) in mapping.fields.iter().zip(&d.values) {
        if rule.mode == FieldMode::Ignore {
            continue;
        }
        if let Some(value) = value {
            fields.insert(
                rule.name.clone(),
                FieldValue {
                    field: rule.name.clone(),
                    value: value.clone(),
                    from: rule.describe.clone(),
                },
            );
        }
    }
    let scope_values = mapping.target.scope.required_values();
    let constants = mapping
        .target
        .on_create
        .iter()
        .map(|(f, v)| (f, v, "on_create"))
        .chain(scope_values.iter().map(|(f, v)| (f, v, "scope")));
    for (field, value, from) in constants {
        fields.entry(field.clone()).or_insert_with(|| FieldValue {
            field: field.clone(),
            value: value.clone(),
            from: from.into(),
        });
    }
    let lifecycle = &mapping.lifecycle;
    for field in lifecycle
        .first_discovered
        .iter()
        .chain(&lifecycle.last_discovered)
    {
        fields.entry(field.clone()).or_insert_with(|| FieldValue {
            field: field.clone(),
            value: now_text.to_owned(),
            from: "lifecycle: discovered now".into(),
        });
    }
    Ok(Create {
        source_id: d.record.id.to_string(),
        name: d.name.clone(),
        identity,
        fields: fields.into_values().collect(),
        context: d.context(mapping),
    })
}

/// Parses `YYYY-MM-DD HH:MM:SS` (ServiceNow's UTC format). Done by hand: it runs for every
/// matched CI, and a format-string parser costs more than the rest of the diff.
fn parse_sn_datetime(text: &str) -> Option<DateTime<Utc>> {
    let b = text.trim().as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?
        .and_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)
        .map(|t| t.and_utc())
}

fn all_set(ci: &Ci, fields: &[(String, String)]) -> bool {
    !fields.is_empty()
        && fields
            .iter()
            .all(|(f, v)| ci.get(f).trim().eq_ignore_ascii_case(v))
}

#[allow(clippy::too_many_arguments)]
fn diff_ci(
    mapping: &Mapping,
    d: &Desired,
    ci: &Ci,
    rule: &str,
    adopting: bool,
    now: DateTime<Utc>,
    now_text: &str,
) -> Option<Update> {
    let mut changes = Vec::new();
    for (index, field) in mapping.fields.iter().enumerate() {
        let current = ci.get(&field.name);
        let desired = match &d.values[index] {
            Some(v) => v.as_str(),
            None if d.cleared[index] => "",
            None => continue,
        };
        if diff::same(field.compare, current, desired) {
            continue;
        }
        let write = match field.mode {
            FieldMode::Authoritative | FieldMode::Ignore => true,
            FieldMode::FillEmpty => current.trim().is_empty(),
            FieldMode::CreateOnly => false,
        };
        if write {
            changes.push(Change {
                field: field.name.clone(),
                current: current.to_owned(),
                desired: desired.to_owned(),
                mode: field.mode,
                from: field.describe.clone(),
            });
        }
    }
    if adopting {
        for (field, value) in mapping.target.scope.required_values() {
            if !ci.get(&field).trim().eq_ignore_ascii_case(&value) {
                changes.push(Change {
                    field: field.clone(),
                    current: ci.get(&field).to_owned(),
                    desired: value,
                    mode: FieldMode::Authoritative,
                    from: "adopt: scope".into(),
                });
            }
        }
    }
    let lifecycle = &mapping.lifecycle;
    let retired_fields = match &mapping.retire {
        RetirePolicy::Set(set) => set.as_slice(),
        _ => &[],
    };
    let inactive = all_set(ci, &lifecycle.absent) || all_set(ci, retired_fields);
    let mut kind = UpdateKind::Drift;
    if inactive {
        for (field, value) in &lifecycle.restore {
            if !ci.get(field).trim().eq_ignore_ascii_case(value)
                && !changes.iter().any(|c| &c.field == field)
            {
                changes.push(Change {
                    field: field.clone(),
                    current: ci.get(field).to_owned(),
                    desired: value.clone(),
                    mode: FieldMode::Authoritative,
                    from: "lifecycle: VM is back".into(),
                });
            }
        }
        kind = UpdateKind::Restore;
    }
    if let Some(field) = &lifecycle.last_discovered {
        let stale = lifecycle.heartbeat_secs > 0
            && parse_sn_datetime(ci.get(field))
                .is_none_or(|seen| now - seen >= TimeDelta::seconds(lifecycle.heartbeat_secs));
        if stale && !changes.iter().any(|c| &c.field == field) {
            if changes.is_empty() {
                kind = UpdateKind::Heartbeat;
            }
            changes.push(Change {
                field: field.clone(),
                current: ci.get(field).to_owned(),
                desired: now_text.to_owned(),
                mode: FieldMode::Authoritative,
                from: "lifecycle: heartbeat".into(),
            });
        }
    }
    if changes.is_empty() {
        return None;
    }
    Some(Update {
        sys_id: ci.sys_id.clone(),
        source_id: d.record.id.to_string(),
        name: d.name.clone(),
        kind,
        matched_by: rule.to_owned(),
        sys_updated_on: ci.get("sys_updated_on").to_owned(),
        sys_mod_count: ci.get("sys_mod_count").to_owned(),
        changes,
        context: d.context(mapping),
    })
}

/// The next lifecycle step for an in-scope CI whose VM is missing, if any.
fn lifecycle_step(mapping: &Mapping, ci: &Ci, now: DateTime<Utc>) -> Option<Retirement> {
    let lifecycle = &mapping.lifecycle;
    if let RetirePolicy::Set(set) = &mapping.retire {
        if all_set(ci, set) {
            return None; // already retired
        }
    }
    let is_absent = all_set(ci, &lifecycle.absent);
    let last_seen = lifecycle
        .last_discovered
        .as_deref()
        .and_then(|f| parse_sn_datetime(ci.get(f)));
    // Without a last-seen time, the grace period counts from when the CI was marked Absent
    // (its last update), so the decision still needs no state outside the CMDB.
    let grace_from = last_seen.or_else(|| {
        is_absent
            .then(|| parse_sn_datetime(ci.get("sys_updated_on")))
            .flatten()
    });
    let retire_on = grace_from.map(|t| t + TimeDelta::seconds(lifecycle.retire_after_secs));
    let fmt = |t: DateTime<Utc>| t.format(SN_DATETIME).to_string();
    let absent_since = last_seen.map(fmt);
    let due = match retire_on {
        Some(t) => now >= t,
        None => lifecycle.absent.is_empty() || lifecycle.retire_after_secs == 0,
    };
    let since = absent_since
        .as_deref()
        .map(|s| format!(" since {s}"))
        .unwrap_or_default();
    let base = |action, reason: String, changes| Retirement {
        sys_id: ci.sys_id.clone(),
        name: ci.name().to_owned(),
        action,
        reason,
        absent_since: absent_since.clone(),
        retire_on: retire_on.map(fmt),
        sys_updated_on: ci.get("sys_updated_on").to_owned(),
        sys_mod_count: ci.get("sys_mod_count").to_owned(),
        changes,
        context: BTreeMap::new(),
    };
    let set_changes = |set: &[(String, String)], from: &str| -> Vec<Change> {
        set.iter()
            .filter(|(f, v)| !ci.get(f).trim().eq_ignore_ascii_case(v))
            .map(|(f, v)| Change {
                field: f.clone(),
                current: ci.get(f).to_owned(),
                desired: v.clone(),
                mode: FieldMode::Authoritative,
                from: from.to_owned(),
            })
            .collect()
    };
    let after = format_secs(lifecycle.retire_after_secs);
    if due {
        match &mapping.retire {
            RetirePolicy::Set(set) => {
                return Some(base(
                    RetireAction::Retire,
                    format!("VM not in the complete source read{since}; retire_after {after} has passed"),
                    set_changes(set, "retire"),
                ))
            }
            RetirePolicy::Delete => {
                return Some(base(
                    RetireAction::Delete,
                    format!("VM not in the complete source read{since}; retire_after {after} has passed; the mapping deletes"),
                    Vec::new(),
                ))
            }
            RetirePolicy::None => {}
        }
    }
    if is_absent || lifecycle.absent.is_empty() {
        return None; // waiting out the grace period
    }
    let when = retire_on
        .map(|t| format!("; due for retirement on {}", fmt(t)))
        .unwrap_or_default();
    Some(base(
        RetireAction::MarkAbsent,
        format!("VM not in the complete source read{since}; marked Absent{when}"),
        set_changes(&lifecycle.absent, "lifecycle: absent"),
    ))
}

fn format_secs(secs: i64) -> String {
    match secs {
        0 => "0".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s => format!("{s}s"),
    }
}

struct SafetyFacts {
    incomplete: Option<String>,
    present: usize,
    in_scope: usize,
    allow_mass_change: bool,
}

fn safety(
    mapping: &Mapping,
    retirements: &mut Vec<Retirement>,
    creates: &[Create],
    updates: &[Update],
    facts: SafetyFacts,
) -> Safety {
    let guards = &mapping.guards;
    let blocked = if let Some(reason) = &facts.incomplete {
        Some(format!(
            "the source read is incomplete ({reason}); no CI is retired on incomplete knowledge"
        ))
    } else if facts.present == 0 && facts.in_scope > 0 {
        Some(format!(
            "the source returned no VMs while {} CIs are in scope; an empty source never retires",
            facts.in_scope
        ))
    } else if !facts.allow_mass_change
        && (facts.present as f64) < guards.min_source_ratio * facts.in_scope as f64
        && facts.in_scope - facts.present > guards.percent_floor
    {
        Some(format!(
            "the source holds {} VMs, fewer than {}% of the {} CIs in scope (min_source_ratio); use --allow-mass-change if this is real",
            facts.present,
            guards.min_source_ratio * 100.0,
            facts.in_scope
        ))
    } else {
        None
    };
    let mut safety = Safety {
        mass_change_allowed: facts.allow_mass_change,
        ..Default::default()
    };
    if blocked.is_some() {
        safety.retirements_withheld = retirements.len();
        retirements.clear();
        safety.retirements_blocked = blocked;
    }
    let count = |action| retirements.iter().filter(|r| r.action == action).count();
    let drift_updates = updates
        .iter()
        .filter(|u| u.kind != UpdateKind::Heartbeat && u.has_writes())
        .count();
    let checks = [
        (
            "max_retire",
            guards.max_retire,
            count(RetireAction::Retire) + count(RetireAction::MarkAbsent),
            "retire or mark Absent",
        ),
        (
            "max_delete",
            guards.max_delete,
            count(RetireAction::Delete),
            "delete",
        ),
        ("max_update", guards.max_update, drift_updates, "update"),
        ("max_create", guards.max_create, creates.len(), "create"),
    ];
    for (guard, limit, planned, verb) in checks {
        let Some(allowed) = limit.allowed(facts.in_scope, guards.percent_floor) else {
            continue;
        };
        if planned > allowed {
            let of = match limit {
                Limit::Percent(_) => format!(
                    " of {} CIs in scope, at least {}",
                    facts.in_scope, guards.percent_floor
                ),
                _ => String::new(),
            };
            safety.guards_tripped.push(GuardTrip {
                guard: guard.into(),
                limit: limit.to_string(),
                planned,
                message: format!(
                    "the plan would {verb} {planned} CIs, over the limit of {allowed} ({limit}{of})"
                ),
            });
        }
    }
    safety
}
