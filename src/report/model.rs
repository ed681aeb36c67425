//! The report model: the plan flattened for display, and the only thing renderers see.
//!
//! Renderers must not reach into [`Plan`] (design invariant 5): everything they show is decided
//! here, once, so the CSV, Markdown and HTML reports can never disagree about what a plan means.
//! The model is built from a plan before `apply` (a dry run) and, with [`OperationOutcome`]s
//! attached, after it, so the same renderers also show what happened.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

// Renderers see only the model: the outcomes they show come through it.
pub use super::orders::OrderRow;
pub use super::relations::{KvRow, RelRow};
pub use super::summary::Counts;
pub use crate::apply::outcome::{OperationOutcome, OutcomeStatus};
use crate::reconcile::plan::{
    thousands, Change, Issue, IssueKind, Plan, RetireAction, Retirement, Update, UpdateKind,
};

/// What a change row does to the CMDB; one per lifecycle step a plan can take.
///
/// The declaration order is the order reports present the groups in: new CIs, then changed
/// ones, then the ones going away (the riskiest, reviewed last but never missed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Restore,
    Heartbeat,
    /// Named `absent` everywhere it shows, as in the summary table.
    #[serde(rename = "absent")]
    MarkAbsent,
    Retire,
    Delete,
}

impl Action {
    /// Every action, in presentation order.
    pub const ALL: [Action; 7] = [
        Self::Create,
        Self::Update,
        Self::Restore,
        Self::Heartbeat,
        Self::MarkAbsent,
        Self::Retire,
        Self::Delete,
    ];

    /// The machine name used in CSV cells, JSON and filter values.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Restore => "restore",
            Self::Heartbeat => "heartbeat",
            Self::MarkAbsent => "absent",
            Self::Retire => "retire",
            Self::Delete => "delete",
        }
    }

    /// The heading shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Create => "Create",
            Self::Update => "Update",
            Self::Restore => "Restore",
            Self::Heartbeat => "Heartbeat",
            Self::MarkAbsent => "Absent",
            Self::Retire => "Retire",
            Self::Delete => "Delete",
        }
    }

    /// One sentence for the reader of a report: what happens to the CIs in this group.
    pub fn description(self) -> &'static str {
        match self {
            Self::Create => "New CIs for VMs that have none in the CMDB.",
            Self::Update => "CIs whose fields drifted from what CloudForms says.",
            Self::Restore => "CIs marked Absent or Retired whose VM is back.",
            Self::Heartbeat => "Unchanged CIs whose last discovery date is refreshed.",
            Self::MarkAbsent => {
                "CIs whose VM is gone: marked Absent, retired after the grace period."
            }
            Self::Retire => "CIs whose VM has been gone past the grace period: retired.",
            Self::Delete => "CIs whose VM is gone: deleted, as the mapping asks.",
        }
    }

    /// Whether the action takes a CI out of service (the steps a safety block withholds).
    pub fn is_retirement(self) -> bool {
        matches!(self, Self::MarkAbsent | Self::Retire | Self::Delete)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a report shows about one plan, flattened for display.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportModel {
    pub header: Header,
    pub summary: SummaryView,
    pub safety: SafetyView,
    /// One row per field change, grouped by action (in [`Action::ALL`] order) and kept in plan
    /// order within a group.
    pub changes: Vec<ChangeRow>,
    /// Context keys present on any row (provider, cluster, owner first), for filters.
    pub context_keys: Vec<String>,
    /// Changes per field across drift updates (not restores or heartbeats), most drifted first.
    pub drift_by_field: Vec<FieldDrift>,
    /// Issues whose records are held back from every write, grouped by kind.
    pub quarantined: Vec<IssueGroup>,
    /// The other issues (bad records, bad values, unresolved references), grouped by kind.
    pub issues: Vec<IssueGroup>,
    /// What `apply` did; `None` for a dry run.
    pub outcomes: Option<OutcomeReport>,
    /// Relationship rows to create and delete (`[[relate]]`), creates first.
    pub relationships: Vec<RelRow>,
    /// Relationship deletes withheld with the retirements.
    pub relationship_deletes_withheld: usize,
    /// Classification rows to create and delete (`[classify]`), creates first.
    pub classifications: Vec<KvRow>,
    /// Classification deletes withheld with the retirements.
    pub classification_deletes_withheld: usize,
    /// The catalog pass's orders (RITMs ordered from CloudForms or resumed), in plan order.
    pub orders: Vec<OrderRow>,
}

/// Where the plan came from: the title block of every report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    pub mapping: String,
    pub mapping_origin: String,
    pub mapping_digest: String,
    pub table: String,
    pub scope: String,
    pub collection: String,
    /// `generated_at` as `YYYY-MM-DD HH:MM:SS UTC`.
    pub generated_at: String,
    /// `generated_at` as RFC 3339, for machines.
    pub generated_at_rfc3339: String,
    pub source_origin: String,
    pub source_complete: bool,
    pub source_records: usize,
    pub source_filtered_out: usize,
    /// VMs CloudForms reports as archived, orphaned or retired (their CIs go the missing path).
    pub source_inactive: usize,
    /// `updated_within`: the window the read covered, in words (rows outside it not judged).
    pub source_window: Option<String>,
    pub target_origin: String,
    pub target_cis: usize,
    pub target_in_scope: usize,
    /// `target_cis` and `target_in_scope` in words (`N CIs, M in scope`; the catalog's:
    /// `N requests searched, M carry a RITM number`).
    pub target_counts: String,
}

/// The counts of the summary table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SummaryView {
    pub creates: usize,
    /// Updates that write something (drift, restores and heartbeats).
    pub updates: usize,
    pub restores: usize,
    pub heartbeats: usize,
    /// Updates whose only drift is on `ignore` fields: shown, never written.
    pub report_only: usize,
    pub marked_absent: usize,
    pub retirements: usize,
    pub deletes: usize,
    pub unchanged: usize,
    /// Issues whose records are held back from every write.
    pub quarantined: usize,
    /// Issues of the other kinds (bad records and values, unresolved references).
    pub other_issues: usize,
    /// All issues (`quarantined + other_issues`).
    pub issues: usize,
    /// Field changes in the report (rows of the changes table).
    pub changes: usize,
    /// Whether `apply` would write anything at all.
    pub has_writes: bool,
    /// The counts in the words of the summary table, the log and the metrics.
    pub counts: Counts,
}

/// Safety decisions, worded for the banner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SafetyView {
    /// Why retirements were withheld; `None` when they were not.
    pub retirements_blocked: Option<String>,
    pub retirements_withheld: usize,
    /// Why the source read is incomplete, if it is.
    pub source_incomplete: Option<String>,
    pub guards_tripped: Vec<GuardRow>,
    /// Whether the run was told a mass change is expected (guards relaxed on purpose).
    pub mass_change_allowed: bool,
    /// Whether `apply` refuses to write anything (a guard tripped).
    pub writes_blocked: bool,
}

impl SafetyView {
    /// Whether the report needs a warning banner.
    pub fn needs_attention(&self) -> bool {
        self.retirements_blocked.is_some()
            || self.writes_blocked
            || self.source_incomplete.is_some()
    }
}

/// A guard that tripped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardRow {
    pub guard: String,
    pub limit: String,
    pub planned: usize,
    pub message: String,
}

/// One field change of one operation.
///
/// An operation without field changes (a delete, a create with no mapped field) still gets one
/// row with an empty `field`, so no planned operation is ever missing from a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeRow {
    pub action: Action,
    /// The VM (CloudForms id); empty for retirements, whose VM is gone.
    pub source_id: String,
    /// The identity rule that matched the VM to the CI; empty for creates and retirements.
    pub matched_by: String,
    /// The CI; empty for creates.
    pub sys_id: String,
    pub name: String,
    pub field: String,
    pub current: String,
    pub desired: String,
    /// The field's ownership mode (`authoritative`, `fill_empty`...); empty for creates, which
    /// write every mapped field.
    pub mode: String,
    /// The mapping expression or lifecycle rule behind `desired`; for a retirement without
    /// field changes (a delete), the retirement reason.
    pub from: String,
    /// Whether `apply` writes this change (`false` for `ignore` fields).
    pub written: bool,
    /// For retirements: why, and since when.
    pub reason: Option<String>,
    /// Report-only facts about the VM (provider, cluster, owner...).
    pub context: BTreeMap<String, String>,
    /// What `apply` did with the operation this change belongs to.
    pub outcome: Option<RowOutcome>,
}

impl ChangeRow {
    /// The operation key outcomes are matched on: the CI when there is one, else the VM.
    fn operation_key(&self) -> OperationKey {
        if self.sys_id.is_empty() {
            OperationKey::Source(self.source_id.clone())
        } else {
            OperationKey::Ci(self.sys_id.clone())
        }
    }
}

/// What happened to a row's operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowOutcome {
    pub status: OutcomeStatus,
    pub message: String,
    /// The CI a create produced.
    pub sys_id: Option<String>,
}

/// How often one field drifted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldDrift {
    pub field: String,
    /// Changes of the field across all drift updates.
    pub changes: usize,
    /// Of which `apply` writes (the others are `ignore` fields).
    pub written: usize,
}

/// The issues of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssueGroup {
    pub kind: String,
    pub label: String,
    /// What this kind means and what the job did about it.
    pub description: String,
    pub issues: Vec<IssueRow>,
}

/// One problem with a record, a value or an identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssueRow {
    pub name: String,
    pub source_ids: Vec<String>,
    pub sys_ids: Vec<String>,
    pub field: String,
    pub message: String,
}

/// How many ids (VMs, CIs) an issue row shows in the Markdown and HTML reports: an unresolved
/// reference lists every VM that makes it, thousands of them at a large estate. `drift.csv`
/// and `plan.json` keep every id.
pub const ISSUE_IDS_SHOWN: usize = 10;

/// The ids an issue row shows in the Markdown and HTML reports, and what the row says of the
/// rest (`None` when all are shown).
pub fn shown_ids(ids: &[String]) -> (&[String], Option<String>) {
    if ids.len() <= ISSUE_IDS_SHOWN {
        return (ids, None);
    }
    let more = ids.len() - ISSUE_IDS_SHOWN;
    (
        &ids[..ISSUE_IDS_SHOWN],
        Some(format!(
            "… and {} more (every id is in drift.csv and plan.json)",
            thousands(more)
        )),
    )
}

/// What `apply` did: counts and the outcomes as the executor reported them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutcomeReport {
    pub applied: usize,
    pub failed: usize,
    pub skipped_stale: usize,
    pub skipped: usize,
    pub unknown: usize,
    pub overwrote_concurrent_edit: usize,
    /// Planned operations with writes that were never sent: those the executor reported
    /// as not attempted, and any it reported nothing for.
    pub not_attempted: usize,
    pub outcomes: Vec<OperationOutcome>,
}

impl OutcomeReport {
    /// The count of each status, in [`OutcomeStatus::ALL`] order.
    pub fn counts(&self) -> [(OutcomeStatus, usize); 7] {
        OutcomeStatus::ALL.map(|status| {
            let n = match status {
                OutcomeStatus::Applied => self.applied,
                OutcomeStatus::Failed => self.failed,
                OutcomeStatus::SkippedStale => self.skipped_stale,
                OutcomeStatus::Skipped => self.skipped,
                OutcomeStatus::Unknown => self.unknown,
                OutcomeStatus::NotAttempted => self.not_attempted,
                OutcomeStatus::OverwroteConcurrentEdit => self.overwrote_concurrent_edit,
            };
            (status, n)
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum OperationKey {
    Ci(String),
    Source(String),
}

/// `1 CI`, `2 CIs`: counts in headings read as English.
pub fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// Context keys that filters show first, in this order, when present.
const PREFERRED_CONTEXT_KEYS: [&str; 3] = ["provider", "cluster", "owner"];

impl ReportModel {
    /// Flattens a plan for display.
    pub fn from_plan(plan: &Plan) -> Self {
        let mut changes = Vec::new();
        for create in &plan.creates {
            let row = |field: &str, desired: &str, from: &str| ChangeRow {
                action: Action::Create,
                source_id: create.source_id.clone(),
                matched_by: String::new(),
                sys_id: String::new(),
                name: create.name.clone(),
                field: field.to_owned(),
                current: String::new(),
                desired: desired.to_owned(),
                mode: String::new(),
                from: from.to_owned(),
                written: true,
                reason: None,
                context: create.context.clone(),
                outcome: None,
            };
            if create.fields.is_empty() {
                changes.push(row("", "", ""));
            }
            for value in &create.fields {
                changes.push(row(&value.field, &value.value, &value.from));
            }
        }
        for update in &plan.updates {
            push_update(&mut changes, update);
        }
        for retirement in &plan.retirements {
            push_retirement(&mut changes, retirement);
        }
        // Stable: plan order is kept within each action.
        changes.sort_by_key(|row| row.action);

        let summary = summarise(plan, &changes);
        let context_keys = context_keys(&changes);
        let (quarantined, issues) = group_issues(&plan.issues);
        Self {
            header: header(plan),
            summary,
            safety: SafetyView {
                retirements_blocked: plan.safety.retirements_blocked.clone(),
                retirements_withheld: plan.safety.retirements_withheld,
                source_incomplete: if plan.source.complete {
                    None
                } else {
                    Some(
                        plan.source
                            .incomplete_reason
                            .clone()
                            .unwrap_or_else(|| "the source read is incomplete".to_owned()),
                    )
                },
                guards_tripped: plan
                    .safety
                    .guards_tripped
                    .iter()
                    .map(|g| GuardRow {
                        guard: g.guard.clone(),
                        limit: g.limit.clone(),
                        planned: g.planned,
                        message: g.message.clone(),
                    })
                    .collect(),
                mass_change_allowed: plan.safety.mass_change_allowed,
                writes_blocked: !plan.safety.guards_tripped.is_empty(),
            },
            changes,
            context_keys,
            drift_by_field: drift_by_field(&plan.updates),
            quarantined,
            issues,
            outcomes: None,
            relationships: plan.relationships.iter().map(RelRow::from_change).collect(),
            relationship_deletes_withheld: plan.safety.relationship_deletes_withheld,
            classifications: plan
                .classifications
                .iter()
                .map(KvRow::from_change)
                .collect(),
            classification_deletes_withheld: plan.safety.classification_deletes_withheld,
            orders: plan.orders.iter().map(OrderRow::from_order).collect(),
        }
    }

    /// Attaches what `apply` did, so the same renderers show the result of a run.
    ///
    /// An outcome is matched to its operation by CI (`sys_id`) for updates and retirements and
    /// by VM (`source_id`) for creates, whose CI did not exist when the plan was made.
    pub fn with_outcomes(mut self, outcomes: &[OperationOutcome]) -> Self {
        let mut by_key: BTreeMap<OperationKey, &OperationOutcome> = BTreeMap::new();
        for outcome in outcomes {
            // A create's outcome carries the new CI's sys_id too: index it by VM as well.
            if let Some(source_id) = &outcome.source_id {
                by_key
                    .entry(OperationKey::Source(source_id.clone()))
                    .or_insert(outcome);
            }
            if let Some(sys_id) = &outcome.sys_id {
                by_key
                    .entry(OperationKey::Ci(sys_id.clone()))
                    .or_insert(outcome);
            }
        }
        let mut written_ops = BTreeSet::new();
        let mut attempted_ops = BTreeSet::new();
        for row in &mut self.changes {
            let key = row.operation_key();
            if row.written {
                written_ops.insert(key.clone());
            }
            if let Some(outcome) = by_key.get(&key) {
                attempted_ops.insert(key);
                row.outcome = Some(RowOutcome {
                    status: outcome.status,
                    message: outcome.message.clone(),
                    sys_id: outcome.sys_id.clone(),
                });
            }
        }
        for row in &mut self.orders {
            row.attach(outcomes);
        }
        let count = |status| outcomes.iter().filter(|o| o.status == status).count();
        self.outcomes = Some(OutcomeReport {
            applied: count(OutcomeStatus::Applied),
            failed: count(OutcomeStatus::Failed),
            skipped_stale: count(OutcomeStatus::SkippedStale),
            skipped: count(OutcomeStatus::Skipped),
            unknown: count(OutcomeStatus::Unknown),
            overwrote_concurrent_edit: count(OutcomeStatus::OverwroteConcurrentEdit),
            not_attempted: count(OutcomeStatus::NotAttempted)
                + written_ops.difference(&attempted_ops).count(),
            outcomes: outcomes.to_vec(),
        });
        self
    }

    /// The rows of one action, in plan order.
    pub fn rows_of(&self, action: Action) -> impl Iterator<Item = &ChangeRow> {
        self.changes.iter().filter(move |row| row.action == action)
    }

    /// The actions that have rows, in presentation order.
    pub fn actions_present(&self) -> Vec<Action> {
        Action::ALL
            .into_iter()
            .filter(|a| self.changes.iter().any(|row| row.action == *a))
            .collect()
    }

    /// The distinct fields changed, sorted, for filters.
    pub fn fields_present(&self) -> Vec<String> {
        let fields: BTreeSet<&str> = self
            .changes
            .iter()
            .map(|row| row.field.as_str())
            .filter(|f| !f.is_empty())
            .collect();
        fields.into_iter().map(str::to_owned).collect()
    }

    /// The distinct values of one context key, sorted, for filters.
    pub fn context_values(&self, key: &str) -> Vec<String> {
        let values: BTreeSet<&str> = self
            .changes
            .iter()
            .filter_map(|row| row.context.get(key).map(String::as_str))
            .filter(|v| !v.is_empty())
            .collect();
        values.into_iter().map(str::to_owned).collect()
    }
}

fn push_update(rows: &mut Vec<ChangeRow>, update: &Update) {
    let action = match update.kind {
        UpdateKind::Drift => Action::Update,
        UpdateKind::Restore => Action::Restore,
        UpdateKind::Heartbeat => Action::Heartbeat,
    };
    let row = |change: Option<&Change>| ChangeRow {
        action,
        source_id: update.source_id.clone(),
        matched_by: update.matched_by.clone(),
        sys_id: update.sys_id.clone(),
        name: update.name.clone(),
        field: change.map(|c| c.field.clone()).unwrap_or_default(),
        current: change.map(|c| c.current.clone()).unwrap_or_default(),
        desired: change.map(|c| c.desired.clone()).unwrap_or_default(),
        mode: change
            .map(|c| c.mode.as_str().to_owned())
            .unwrap_or_default(),
        from: change.map(|c| c.from.clone()).unwrap_or_default(),
        // An update without field changes writes nothing (see `Update::has_writes`).
        written: change.is_some_and(Change::is_write),
        reason: None,
        context: update.context.clone(),
        outcome: None,
    };
    if update.changes.is_empty() {
        rows.push(row(None));
    }
    rows.extend(update.changes.iter().map(|c| row(Some(c))));
}

fn push_retirement(rows: &mut Vec<ChangeRow>, retirement: &Retirement) {
    let action = match retirement.action {
        RetireAction::MarkAbsent => Action::MarkAbsent,
        RetireAction::Retire => Action::Retire,
        RetireAction::Delete => Action::Delete,
    };
    let mut reason = retirement.reason.clone();
    if let Some(since) = &retirement.absent_since {
        reason.push_str(&format!("; last seen {since}"));
    }
    if let Some(on) = &retirement.retire_on {
        reason.push_str(&format!("; retire on {on}"));
    }
    let row = |change: Option<&Change>| ChangeRow {
        action,
        source_id: String::new(),
        matched_by: String::new(),
        sys_id: retirement.sys_id.clone(),
        name: retirement.name.clone(),
        field: change.map(|c| c.field.clone()).unwrap_or_default(),
        current: change.map(|c| c.current.clone()).unwrap_or_default(),
        desired: change.map(|c| c.desired.clone()).unwrap_or_default(),
        mode: change
            .map(|c| c.mode.as_str().to_owned())
            .unwrap_or_default(),
        // A delete has no field to explain: the reason is its "why" (and shows up in the CSV).
        from: change
            .map(|c| c.from.clone())
            .unwrap_or_else(|| retirement.reason.clone()),
        // A retirement without field changes is a delete: it is a write.
        written: change.is_none_or(Change::is_write),
        reason: Some(reason.clone()),
        context: retirement.context.clone(),
        outcome: None,
    };
    if retirement.changes.is_empty() {
        rows.push(row(None));
    }
    rows.extend(retirement.changes.iter().map(|c| row(Some(c))));
}

fn header(plan: &Plan) -> Header {
    Header {
        mapping: plan.mapping.name.clone(),
        mapping_origin: plan.mapping.origin.clone(),
        mapping_digest: plan.mapping.digest.clone(),
        table: plan.mapping.table.clone(),
        scope: plan.mapping.scope.clone(),
        collection: plan.mapping.collection.clone(),
        generated_at: plan
            .generated_at
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        generated_at_rfc3339: plan.generated_at.to_rfc3339(),
        source_origin: plan.source.origin.clone(),
        source_complete: plan.source.complete,
        source_records: plan.source.records,
        source_filtered_out: plan.source.filtered_out,
        source_inactive: plan.source.inactive,
        source_window: plan.source.window.clone(),
        target_origin: plan.target.origin.clone(),
        target_cis: plan.target.cis,
        target_in_scope: plan.target.in_scope,
        target_counts: super::orders::target_counts(plan),
    }
}

fn summarise(plan: &Plan, rows: &[ChangeRow]) -> SummaryView {
    SummaryView {
        creates: plan.summary.creates,
        updates: plan.summary.updates,
        restores: plan.summary.restores,
        heartbeats: plan.summary.heartbeats,
        report_only: plan.updates.iter().filter(|u| !u.has_writes()).count(),
        marked_absent: plan.summary.marked_absent,
        retirements: plan.summary.retirements,
        deletes: plan.summary.deletes,
        unchanged: plan.summary.unchanged,
        quarantined: plan.summary.quarantined,
        other_issues: plan.summary.issues.saturating_sub(plan.summary.quarantined),
        issues: plan.summary.issues,
        changes: rows.len(),
        has_writes: plan.has_changes(),
        counts: Counts::of(plan),
    }
}

fn context_keys(rows: &[ChangeRow]) -> Vec<String> {
    let present: BTreeSet<&str> = rows
        .iter()
        .flat_map(|row| row.context.keys().map(String::as_str))
        .collect();
    let mut keys: Vec<String> = PREFERRED_CONTEXT_KEYS
        .iter()
        .filter(|k| present.contains(*k))
        .map(|k| (*k).to_owned())
        .collect();
    keys.extend(
        present
            .into_iter()
            .filter(|k| !PREFERRED_CONTEXT_KEYS.contains(k))
            .map(str::to_owned),
    );
    keys
}

fn drift_by_field(updates: &[Update]) -> Vec<FieldDrift> {
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    // Drift only, as in the plan's summary: restores and heartbeats are lifecycle bookkeeping,
    // not fields that went out of line.
    for change in updates
        .iter()
        .filter(|u| u.kind == UpdateKind::Drift)
        .flat_map(|u| &u.changes)
    {
        let entry = counts.entry(&change.field).or_default();
        entry.0 += 1;
        entry.1 += usize::from(change.is_write());
    }
    let mut drift: Vec<FieldDrift> = counts
        .into_iter()
        .map(|(field, (changes, written))| FieldDrift {
            field: field.to_owned(),
            changes,
            written,
        })
        .collect();
    // Most drifted first: that is where a mapping or a CMDB process most likely needs a look.
    drift.sort_by(|a, b| {
        b.changes
            .cmp(&a.changes)
            .then_with(|| a.field.cmp(&b.field))
    });
    drift
}

fn group_issues(issues: &[Issue]) -> (Vec<IssueGroup>, Vec<IssueGroup>) {
    let mut groups: BTreeMap<IssueKind, Vec<IssueRow>> = BTreeMap::new();
    for issue in issues {
        groups.entry(issue.kind).or_default().push(IssueRow {
            name: issue.name.clone(),
            source_ids: issue.source_ids.clone(),
            sys_ids: issue.sys_ids.clone(),
            field: issue.field.clone().unwrap_or_default(),
            message: issue.message.clone(),
        });
    }
    let mut quarantined = Vec::new();
    let mut other = Vec::new();
    for (kind, issues) in groups {
        let group = IssueGroup {
            kind: kind.as_str().to_owned(),
            label: issue_label(kind).to_owned(),
            description: issue_description(kind).to_owned(),
            issues,
        };
        if kind.quarantines() {
            quarantined.push(group);
        } else {
            other.push(group);
        }
    }
    (quarantined, other)
}

fn issue_label(kind: IssueKind) -> &'static str {
    match kind {
        IssueKind::BadRecord => "Bad records",
        IssueKind::BadValue => "Bad values",
        IssueKind::UnresolvedReference => "Unresolved references",
        IssueKind::Ambiguous => "Ambiguous matches",
        IssueKind::Conflict => "Conflicts",
        IssueKind::IdentityContradiction => "Identity contradictions",
        IssueKind::DuplicateSource => "Duplicate VMs",
        IssueKind::DuplicateCi => "Duplicate CIs",
        IssueKind::Foreign => "CIs outside the job's scope",
        IssueKind::Frozen => "Frozen CIs",
        IssueKind::Truncated => "Truncated values",
        IssueKind::RepeatedRow => "Repeated CMDB rows",
    }
}

fn issue_description(kind: IssueKind) -> &'static str {
    match kind {
        IssueKind::BadRecord => "Source records that cannot be used at all; they were skipped.",
        IssueKind::BadValue => {
            "Values that do not fit their transform; the field was left out of the plan."
        }
        IssueKind::UnresolvedReference => {
            "Reference lookups that found no row or several: one row for each value not found, listing every VM that names it. A field's value is left out of the plan; a relationship's rows are left as they are."
        }
        IssueKind::Ambiguous => {
            "An identity rule matched several CIs; the VM is held back until the CMDB has one."
        }
        IssueKind::Conflict => "Several VMs matched one CI; all of them and the CI are held back.",
        IssueKind::IdentityContradiction => {
            "A rule matched a CI whose other identity fields disagree with the VM (e.g. a moref reused after a vCenter rebuild); the CI is not re-keyed or retired, and the VM is held back or, with on_contradiction = \"new\", gets a new CI."
        }
        IssueKind::DuplicateSource => {
            "Several VMs share an identity that must be unique (e.g. clones); all are held back."
        }
        IssueKind::DuplicateCi => {
            "Several CIs in scope carry one identity (one machine recorded twice); none is written or retired, nor their VM, until one is left."
        }
        IssueKind::Foreign => {
            "The VM matched a CI outside the job's scope; that CI is not written."
        }
        IssueKind::Frozen => "The CI carries the freeze marker; it is never written.",
        IssueKind::Truncated => {
            "Values longer than their CMDB column (max_length): cut as ServiceNow would cut them, written and compared cut."
        }
        IssueKind::RepeatedRow => {
            "The CMDB input repeats a CI's row; the CI is planned once, from its first row."
        }
    }
}

/// An unresolved-reference group of one issue named by `vms` VMs (ids 1 to `vms`): the
/// Markdown and HTML renderers' tests of the ids an issue row shows.
#[cfg(test)]
pub(super) fn issue_group_of(vms: usize) -> IssueGroup {
    IssueGroup {
        kind: "unresolved_reference".into(),
        label: "Unresolved references".into(),
        description: String::new(),
        issues: vec![IssueRow {
            name: format!("{vms} VMs"),
            source_ids: (1..=vms).map(|i| i.to_string()).collect(),
            sys_ids: Vec::new(),
            field: "datastore".into(),
            message: "field `datastore`: no `cmdb_ci_datastore` row has name `ds-9`".into(),
        }],
    }
}
