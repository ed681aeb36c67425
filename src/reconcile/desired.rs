//! What a VM's CI should hold: the mapping evaluated over one source record ([`Desired`]),
//! with bad values reported as issues, and the create or update that takes a CI there.
//! Pure: the time is a parameter.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use rayon::prelude::*;

use super::diff;
use super::mapping::{EvalError, Mapping, OnEmpty};
use super::plan::*;
use super::policy::{all_set, parse_sn_datetime, retired};
use super::record::{Ci, References, SourceRecord};

/// A VM that passed the filters, with what its CI should hold: everything the plan reads of
/// the record after evaluating it, so that the records can be let go then (the largest
/// input of a run: 125 MB at 100,000 VMs).
pub(super) struct Desired {
    /// The record's id (CloudForms').
    pub id: Box<str>,
    pub name: String,
    /// By mapping field index: the derived value (`None` when the source has none), and
    /// whether an empty source value clears the field (`on_empty = "clear"`); after the
    /// fields, by `context` index, the report-only facts.
    pub values: Values,
    /// By `[[relate]]` index: the other CI of the relationship.
    pub related: Vec<Related>,
    /// The record's managed tags that `[classify]` keeps, as (category, value), sorted
    /// (none without `[classify]`).
    pub tags: Box<[(String, String)]>,
}

/// What a record says about one of its relationships.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Related {
    /// It has none (e.g. a VM on no host): rows of the type are stale.
    Nothing,
    /// The other CI, by sys_id.
    To(String),
    /// The other CI could not be found (reported): the rows of the type are left alone.
    Unknown,
}

/// A record's derived values, by mapping field index, in one text buffer: two allocations
/// per record rather than one per field, and 4 bytes a field besides the text (every
/// record's values are held until the creates and updates are made: 100,000 of them at
/// 100,000 VMs).
pub(super) struct Values {
    text: Box<str>,
    /// By field: where its value ends in `text` (it starts where the field before ends),
    /// with [`Values::NONE`] and [`Values::CLEARED`] as flags.
    ends: Box<[u32]>,
}

/// [`Values`] as they are evaluated.
struct ValuesBuilder {
    text: String,
    ends: Vec<u32>,
}

impl ValuesBuilder {
    fn with_capacity(fields: usize) -> Self {
        Self {
            // Room for a typical record's values at once: growing by doubling from empty
            // would move the text several times per record.
            text: String::with_capacity(fields * 16),
            ends: Vec::with_capacity(fields),
        }
    }

    /// The next field's value; `cleared`: it has none and the rule clears the field.
    fn push(&mut self, value: Option<&str>, cleared: bool) {
        // A record's values are column-sized texts (`fit_text` cuts them to the column):
        // never near a gigabyte, the most an end can say.
        let fits = |len: usize| len <= Values::OFFSET as usize;
        let mut end = match value {
            Some(v) if fits(self.text.len() + v.len()) => {
                self.text.push_str(v);
                self.text.len() as u32
            }
            _ => self.text.len() as u32 | Values::NONE,
        };
        if cleared {
            end |= Values::CLEARED;
        }
        self.ends.push(end);
    }

    /// Held until the creates and updates are made: no more room than the values take.
    fn finish(self) -> Values {
        Values {
            text: self.text.into_boxed_str(),
            ends: self.ends.into_boxed_slice(),
        }
    }
}

impl Values {
    const NONE: u32 = 1 << 31;
    const CLEARED: u32 = 1 << 30;
    const OFFSET: u32 = Self::CLEARED - 1;

    fn end(&self, index: usize) -> Option<u32> {
        self.ends.get(index).copied()
    }

    /// The value of field `index`.
    pub fn get(&self, index: usize) -> Option<&str> {
        let end = self.end(index)?;
        if end & Self::NONE != 0 {
            return None;
        }
        let start = match index {
            0 => 0,
            _ => self.end(index - 1).unwrap_or(0) & Self::OFFSET,
        };
        self.text.get(start as usize..(end & Self::OFFSET) as usize)
    }

    /// Whether field `index` has no value and its rule clears the field (`on_empty`).
    pub fn cleared(&self, index: usize) -> bool {
        self.end(index).is_some_and(|end| end & Self::CLEARED != 0)
    }

    /// Every field's value, in field order.
    pub fn iter(&self) -> impl Iterator<Item = Option<&str>> {
        (0..self.ends.len()).map(|i| self.get(i))
    }

    /// No values (every field `None`).
    fn none() -> Self {
        Self {
            text: Box::default(),
            ends: Box::default(),
        }
    }
}

impl Desired {
    /// Lets the derived values go once the creates and updates are made: what is planned
    /// after them (relationships, classifications) reads the id, the name,
    /// [`Desired::related`] and [`Desired::tags`] only. [`Desired::value`] is `None`
    /// afterwards.
    pub fn release_values(&mut self) {
        self.values = Values::none();
    }

    /// The derived value of a CI field, by name.
    pub fn value<'a>(&'a self, mapping: &Mapping, field: &str) -> Option<&'a str> {
        let index = mapping.fields.iter().position(|f| f.name == field)?;
        self.values.get(index)
    }

    /// Report-only facts (provider, cluster, owner) for the actions this VM gets: held
    /// after the fields' values, as [`evaluate`] found them.
    pub fn context(&self, mapping: &Mapping) -> BTreeMap<String, String> {
        let fields = mapping.fields.len();
        mapping
            .context
            .iter()
            .enumerate()
            .filter_map(|(i, (key, _))| {
                let value = self.values.get(fields + i)?;
                Some((key.clone(), value.to_owned()))
            })
            .collect()
    }
}

pub(super) fn evaluate(
    mapping: &Mapping,
    record: SourceRecord,
    refs: &References,
    issues: &mut Vec<Issue>,
) -> Desired {
    let mut values = ValuesBuilder::with_capacity(mapping.fields.len() + mapping.context.len());
    for rule in &mapping.fields {
        let mut cleared = false;
        let value = match rule.eval_text(&record, refs) {
            Ok(mut value) => {
                // Only a source without a value clears: a bad value says nothing about the
                // CI's, so it is reported and the field left alone (README, `map`).
                cleared = value.is_none() && rule.on_empty == OnEmpty::Clear;
                // Too long for its column: cut here, so the value written, the value compared
                // and the identity key are all what ServiceNow will hold.
                if let Some(had) = value.as_mut().and_then(|v| rule.fit_text(v)) {
                    issues.push(Issue {
                        kind: IssueKind::Truncated,
                        source_ids: vec![record.id.to_string()],
                        sys_ids: Vec::new(),
                        name: record_name(&record),
                        field: Some(rule.name.clone()),
                        message: format!(
                            "field `{}`: {had} characters, cut to the column's {} (max_length); the cut value is written",
                            rule.name,
                            rule.max_length.unwrap_or_default()
                        ),
                    });
                }
                // Not what the column takes (a reference given an email, a value outside the
                // choices): reported, and the CI's value is left alone.
                if let Some(why) = value
                    .as_deref()
                    .zip(rule.column.as_ref())
                    .and_then(|(v, column)| column.misfit(v))
                {
                    issues.push(Issue {
                        kind: IssueKind::BadValue,
                        source_ids: vec![record.id.to_string()],
                        sys_ids: Vec::new(),
                        name: record_name(&record),
                        field: Some(rule.name.clone()),
                        message: format!("field `{}`: {why}; not written", rule.name),
                    });
                    value = None;
                }
                value
            }
            Err(e) => {
                let (kind, message) = match e {
                    EvalError::BadValue(m) => (IssueKind::BadValue, m),
                    EvalError::Unresolved(m) => (IssueKind::UnresolvedReference, m),
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
        values.push(value.as_deref(), cleared);
    }
    for (_, path) in &mapping.context {
        let found = path.get(record.data);
        let value = found
            .as_deref()
            .and_then(super::mapping::scalar_str)
            .filter(|v| !v.trim().is_empty());
        values.push(value.as_deref(), false);
    }
    let values = values.finish();
    let related = mapping
        .relate
        .iter()
        .map(|relate| {
            if !relate.when.iter().all(|f| f.accepts(&record)) {
                return Related::Nothing;
            }
            match relate.to.eval(&record, refs) {
                Ok(Some(sys_id)) => Related::To(sys_id),
                Ok(None) => Related::Nothing,
                Err(e) => {
                    let message = match e {
                        EvalError::BadValue(m) | EvalError::Unresolved(m) => m,
                    };
                    issues.push(Issue {
                        kind: IssueKind::UnresolvedReference,
                        source_ids: vec![record.id.to_string()],
                        sys_ids: Vec::new(),
                        name: record_name(&record),
                        field: Some(relate.to.name.clone()),
                        message: format!(
                            "{message}; its `{}` rows are left as they are",
                            relate.kind
                        ),
                    });
                    Related::Unknown
                }
            }
        })
        .collect();
    let tags = match &mapping.classify {
        Some(classify) => super::classify::managed_tags(record.data.get("tags"))
            .into_iter()
            .filter(|(key, _)| classify.keeps(key))
            .collect(),
        None => Box::default(),
    };
    let mut desired = Desired {
        id: record.id.as_ref().into(),
        name: String::new(),
        values,
        related,
        tags,
    };
    desired.name = match desired.value(mapping, &mapping.name_field) {
        Some(name) => name.to_owned(),
        None => record_name(&record),
    };
    desired
}

/// The in-scope CIs whose `last_discovered` holds something that is not a date-time the job
/// reads (`YYYY-MM-DD HH:MM:SS`; the snapshot reader converts ServiceNow's default display
/// format): reported as bad values, since neither the heartbeat nor the retirement grace can
/// count from them. `diff_ci` writes no heartbeat over such a value.
pub(super) fn unreadable_dates(mapping: &Mapping, cis: &[Ci], in_scope: &[bool]) -> Vec<Issue> {
    let Some(field) = &mapping.lifecycle.last_discovered else {
        return Vec::new();
    };
    cis.par_iter()
        .zip(in_scope)
        .filter(|(ci, in_scope)| {
            let value = ci.get(field).trim();
            **in_scope && !value.is_empty() && parse_sn_datetime(value).is_none()
        })
        .map(|(ci, _)| Issue {
            kind: IssueKind::BadValue,
            source_ids: Vec::new(),
            sys_ids: vec![ci.sys_id.clone()],
            name: mapping.row_name(ci).to_owned(),
            field: Some(field.clone()),
            message: format!(
                "the CI's `{field}` `{}` is not a date-time the job reads (`YYYY-MM-DD HH:MM:SS`, or an export's `MM/dd/yyyy hh:mm:ss AM`); it is not refreshed, and grace cannot count from it",
                ci.get(field).trim()
            ),
        })
        .collect()
}

pub(super) fn record_name(record: &SourceRecord) -> String {
    record
        .data
        .get("name")
        .and_then(super::mapping::scalar_text)
        .unwrap_or_else(|| format!("vm {}", record.id))
}

/// The create for a VM without a CI, or the issue why it cannot be created (boxed: an
/// issue is far larger than the happy path's pointer).
pub(super) fn create(mapping: &Mapping, d: &Desired, now_text: &str) -> Result<Create, Box<Issue>> {
    // A CI that no rule can find again would be created anew on every run.
    let Some(identity) = mapping.identify.iter().find(|rule| {
        rule.fields
            .iter()
            .all(|f| d.value(mapping, f).is_some_and(|v| !v.trim().is_empty()))
    }) else {
        return Err(Box::new(Issue {
            kind: IssueKind::BadRecord,
            source_ids: vec![d.id.to_string()],
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
    for (rule, value) in mapping.fields.iter().zip(d.values.iter()) {
        if rule.mode == FieldMode::Ignore {
            continue;
        }
        if let Some(value) = value {
            fields.insert(
                rule.name.clone(),
                FieldValue {
                    field: rule.name.clone(),
                    value: value.to_owned(),
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
        source_id: d.id.to_string(),
        name: d.name.clone(),
        identity,
        fields: fields.into_values().collect(),
        context: d.context(mapping),
    })
}

#[allow(clippy::too_many_arguments)]
pub(super) fn diff_ci(
    mapping: &Mapping,
    d: &Desired,
    ci: &Ci,
    rule: &str,
    adopting: bool,
    now: DateTime<Utc>,
    now_text: &str,
) -> Option<Update> {
    let mut changes = field_changes(mapping, d, ci);
    if adopting {
        changes.extend(adopt_changes(mapping, ci));
    }
    let lifecycle = &mapping.lifecycle;
    let inactive = all_set(ci, &lifecycle.absent) || retired(mapping, ci);
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
    if let Some(change) = heartbeat(mapping, ci, &changes, now, now_text) {
        if changes.is_empty() {
            kind = UpdateKind::Heartbeat;
        }
        changes.push(change);
    }
    if changes.is_empty() {
        return None;
    }
    Some(Update {
        sys_id: ci.sys_id.clone(),
        source_id: d.id.to_string(),
        name: d.name.clone(),
        kind,
        matched_by: rule.to_owned(),
        sys_updated_on: ci.get("sys_updated_on").to_owned(),
        sys_mod_count: ci.get("sys_mod_count").to_owned(),
        changes,
        context: d.context(mapping),
    })
}

/// The mapped fields whose CI value differs from the desired one, as the field's mode allows.
fn field_changes(mapping: &Mapping, d: &Desired, ci: &Ci) -> Vec<Change> {
    let mut changes = Vec::new();
    for (index, field) in mapping.fields.iter().enumerate() {
        if field.mode == FieldMode::Append {
            continue; // never compared: see below
        }
        let current = ci.get(&field.name);
        let desired = match d.values.get(index) {
            Some(v) => v,
            None if d.values.cleared(index) => "",
            None => continue,
        };
        if diff::same(field.compare, current, desired) {
            continue;
        }
        let write = match field.mode {
            FieldMode::Authoritative | FieldMode::Ignore => true,
            FieldMode::FillEmpty => current.trim().is_empty(),
            FieldMode::CreateOnly | FieldMode::Append => false,
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
    // Journal fields (`work_notes`): an entry goes with an update that writes one of the
    // field's `on_change` fields, once; the row's journal is never compared (the Table API
    // does not read an entry back as it was written), so nothing is appended on a run that
    // writes nothing else.
    for (index, field) in mapping.fields.iter().enumerate() {
        if field.mode != FieldMode::Append {
            continue;
        }
        let Some(entry) = d.values.get(index) else {
            continue;
        };
        let carried = changes
            .iter()
            .any(|c| c.is_write() && field.on_change.contains(&c.field));
        if carried {
            changes.push(Change {
                field: field.name.clone(),
                current: String::new(),
                desired: entry.to_owned(),
                mode: FieldMode::Append,
                from: field.describe.clone(),
            });
        }
    }
    changes
}

/// Adopting a CI outside the scope: the scope's values, so that it is the job's from now on.
fn adopt_changes(mapping: &Mapping, ci: &Ci) -> Vec<Change> {
    mapping
        .target
        .scope
        .required_values()
        .into_iter()
        .filter(|(field, value)| !ci.get(field).trim().eq_ignore_ascii_case(value))
        .map(|(field, value)| Change {
            current: ci.get(&field).to_owned(),
            field,
            desired: value,
            mode: FieldMode::Authoritative,
            from: "adopt: scope".into(),
        })
        .collect()
}

/// The heartbeat: `last_discovered` refreshed when it is older than `heartbeat` (and no
/// other change already writes it).
fn heartbeat(
    mapping: &Mapping,
    ci: &Ci,
    changes: &[Change],
    now: DateTime<Utc>,
    now_text: &str,
) -> Option<Change> {
    let lifecycle = &mapping.lifecycle;
    let field = lifecycle.last_discovered.as_ref()?;
    let seen = ci.get(field);
    let stale = lifecycle.heartbeat_secs > 0
        && match parse_sn_datetime(seen) {
            Some(seen) => now - seen >= TimeDelta::seconds(lifecycle.heartbeat_secs),
            // Never discovered: now it is.
            None if seen.trim().is_empty() => true,
            // Unreadable (reported by `unreadable_dates`): the Table API only returns
            // readable date-times, so the export's format is at fault, and a write would
            // not make the next export readable: it would be repeated on every run.
            None => false,
        };
    (stale && !changes.iter().any(|c| &c.field == field)).then(|| Change {
        field: field.clone(),
        current: ci.get(field).to_owned(),
        desired: now_text.to_owned(),
        mode: FieldMode::Authoritative,
        from: "lifecycle: heartbeat".into(),
    })
}
