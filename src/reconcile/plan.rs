//! The plan: the value the core produces, the reports render, the owners review and `apply`
//! carries out. It is serialised as `plan.json` (versioned) and must hold everything `apply`
//! needs without re-reading the source.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Bumped whenever `plan.json` changes incompatibly; `apply` refuses other versions.
pub const FORMAT_VERSION: u32 = 1;

/// The version of a plan whose orders carry secret dialog fields (their values stand as
/// "(secret)" and are made again at apply time): a build that reads only
/// [`FORMAT_VERSION`] refuses it rather than order with the placeholder as the value.
/// Every other plan stays at [`FORMAT_VERSION`], so older builds still read them.
pub const SECRET_FORMAT_VERSION: u32 = 2;

/// What one run intends to do to one CMDB table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    /// The `now` the plan was computed against (the only clock reading of a run).
    pub generated_at: DateTime<Utc>,
    pub mapping: MappingInfo,
    pub source: SourceSummary,
    pub target: TargetSummary,
    pub summary: Summary,
    pub safety: Safety,
    pub creates: Vec<Create>,
    pub updates: Vec<Update>,
    pub retirements: Vec<Retirement>,
    pub issues: Vec<Issue>,
    /// `cmdb_rel_ci` rows to create and delete (`[[relate]]`), creates first; absent from
    /// `plan.json` when the mapping keeps no relationships.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relationships: Vec<RelChange>,
    /// `cmdb_key_value` rows to create and delete (`[classify]`: CloudForms tags as
    /// classifications), creates first; absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classifications: Vec<KvChange>,
    /// CloudForms orders for approved ServiceNow requested items (the catalog pass,
    /// README "Service catalog"); absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orders: Vec<Order>,
    /// Set on a reviewed sync's plan that holds writes waiting for approval (README "Review
    /// in ServiceNow"): `apply` refuses it, as only the approved change request's copy may
    /// be applied, by the run that checks its digest. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_for_review: Option<String>,
}

/// What the catalog pass does for one requested item (RITM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderAction {
    /// Claim the RITM, order the template, write the request id back.
    Order,
    /// CloudForms already holds a request carrying the RITM's number (a run stopped between
    /// its order and the write-back): claim the RITM and write that request's id back, never
    /// ordering again.
    Resume,
}

impl OrderAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Order => "order",
            Self::Resume => "resume",
        }
    }
}

/// One CloudForms order for one approved ServiceNow requested item (RITM): `apply` claims
/// the RITM (state, claim marker, work note, read back), looks for a request already
/// carrying its number, orders the template with the dialog values (unless found), approves
/// the request when the catalog says so, and writes the request id to the RITM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub action: OrderAction,
    /// The RITM.
    pub ritm_sys_id: String,
    pub ritm_number: String,
    /// The catalog link (its name) that took the RITM's item to the template.
    pub link: String,
    /// The ServiceNow catalog item (`sc_cat_item` sys_id and name).
    pub item_sys_id: String,
    pub item: String,
    /// The CloudForms service template ordered (id and name; its catalog when known).
    pub template_id: String,
    pub template: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub catalog: String,
    /// The dialog fields sent with the order (the RITM number's field among them), each with
    /// the mapping expression that produced it.
    pub dialog: Vec<FieldValue>,
    /// The dialog field carrying the RITM number (searched for before ordering).
    pub ritm_field: String,
    /// The dialog fields the link marks `secret`: their `value` in `dialog` is `(secret)`,
    /// never the value, and `apply` reads them from the RITM when it orders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret: Vec<String>,
    /// The RITM's version when planned: an item changed since is skipped as stale.
    pub sys_mod_count: String,
    pub sys_updated_on: String,
    /// The RITM's `state` value for a claimed item (`Work in Progress`, from `sys_choice`).
    pub claim_state: String,
    /// For `resume`: the CloudForms request that already carries the RITM's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The reason sent with CloudForms' `approve` action (the job approves because ServiceNow
    /// did); `None` leaves the request to CloudForms' own approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve: Option<String>,
    /// Why, in words.
    pub reason: String,
}

/// One `cmdb_key_value` row (a CI's classification: `key` = tag category, `value` = entry)
/// to create or delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvChange {
    pub action: RelAction,
    /// The CI the row classifies (`configuration_item`): an existing CI or this plan's create.
    pub ci: RelEnd,
    pub key: String,
    pub value: String,
    /// The row's `tag` column: what marks the rows this job keeps.
    pub tag: String,
    /// The row, for deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sys_id: Option<String>,
    /// The row's version when planned, for deletes: a row changed since is not deleted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sys_mod_count: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sys_updated_on: String,
    pub reason: String,
}

/// What happens to one relationship row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelAction {
    Create,
    Delete,
}

/// One end of a relationship: a CI that exists (`sys_id`), or the CI this plan creates for
/// a record (`sys_id` empty, `source_id` set), whose sys_id `apply` learns when it creates it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RelEnd {
    #[serde(default)]
    pub sys_id: String,
    /// The record whose planned create makes this CI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// The CI's name when known (reports).
    #[serde(default)]
    pub name: String,
}

/// One `cmdb_rel_ci` row to create or delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelChange {
    pub action: RelAction,
    /// The `cmdb_rel_type` name and sys_id.
    #[serde(rename = "type")]
    pub kind: String,
    pub type_sys_id: String,
    pub parent: RelEnd,
    pub child: RelEnd,
    /// The row, for deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sys_id: Option<String>,
    /// The row's version when planned, for deletes: a row changed since is not deleted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sys_mod_count: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sys_updated_on: String,
    pub reason: String,
}

/// Which mapping produced the plan. `digest` (of the mapping's text) is recorded so a reader
/// of a report or `outcome.json` can tell which version of the mapping it came from; `apply`
/// carries out the plan as written and does not compare it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingInfo {
    pub name: String,
    pub origin: String,
    pub digest: String,
    pub table: String,
    pub scope: String,
    pub collection: String,
}

/// What the source read was: where from, how many records, and whether it was complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSummary {
    pub origin: String,
    pub complete: bool,
    /// Why the read is not complete (e.g. a page failed); `None` when complete.
    pub incomplete_reason: Option<String>,
    /// Records read (after de-duplication by id).
    pub records: usize,
    /// Records the mapping's source filter left out (and templates, which are never CIs).
    pub filtered_out: usize,
    /// Records CloudForms reports as archived, orphaned or retired: they follow the
    /// missing path, so their CIs are marked Absent and later retired.
    pub inactive: usize,
    /// `updated_within`: the read covers only records updated in this window (in words), so
    /// rows whose record was not read were not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// What the target read was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSummary {
    pub origin: String,
    pub table: String,
    pub cis: usize,
    pub in_scope: usize,
}

/// Counts for the summary table; computed once from the lists by [`Plan::new`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub creates: usize,
    pub updates: usize,
    /// Updates that restore the CI of a VM that came back (included in `updates`).
    pub restores: usize,
    /// Updates that only refresh `last_discovered` (included in `updates`).
    pub heartbeats: usize,
    pub retirements: usize,
    pub deletes: usize,
    pub marked_absent: usize,
    pub unchanged: usize,
    /// Issues holding records or CIs back from any write (ambiguous, conflicting,
    /// contradicted, duplicated, foreign, frozen).
    pub quarantined: usize,
    pub issues: usize,
    /// Field name -> number of planned writes of it (updates only).
    pub drift_by_field: BTreeMap<String, usize>,
}

/// Safety decisions taken on the plan: blocked retirements and tripped guards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Safety {
    /// Set when retirements were withheld (incomplete or suspiciously small source read).
    pub retirements_blocked: Option<String>,
    /// Number of retirements that would have been planned but were withheld.
    pub retirements_withheld: usize,
    /// Guards that tripped: when any is present, `apply` writes nothing.
    pub guards_tripped: Vec<GuardTrip>,
    /// Relationship rows not deleted because retirements were withheld.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub relationship_deletes_withheld: usize,
    /// Classification rows not deleted because retirements were withheld.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub classification_deletes_withheld: usize,
    pub mass_change_allowed: bool,
}

/// A guard (limit) the plan exceeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardTrip {
    pub guard: String,
    pub limit: String,
    pub planned: usize,
    pub message: String,
}

/// How a field is owned by the job.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum FieldMode {
    /// The job's value wins (default).
    #[default]
    Authoritative,
    /// Written only when the CI's value is empty.
    FillEmpty,
    /// Written only when the CI is created.
    CreateOnly,
    /// Compared and reported, never written.
    Ignore,
    /// A journal field (`work_notes`, `comments`): never compared with the row; written on
    /// create and with an update that writes one of the field's `on_change` fields, so an
    /// entry is appended once per change of those, never again on later runs.
    Append,
}

impl FieldMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authoritative => "authoritative",
            Self::FillEmpty => "fill_empty",
            Self::CreateOnly => "create_only",
            Self::Ignore => "ignore",
            Self::Append => "append",
        }
    }
}

/// A field value for a new CI, with the mapping expression that produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldValue {
    pub field: String,
    pub value: String,
    pub from: String,
}

/// One field that differs between the CI and what it should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    pub current: String,
    pub desired: String,
    pub mode: FieldMode,
    /// The mapping expression (or lifecycle rule) that produced the desired value.
    pub from: String,
}

impl Change {
    /// Whether `apply` writes this change (`ignore` fields are only reported).
    pub fn is_write(&self) -> bool {
        self.mode != FieldMode::Ignore
    }
}

/// A CI to create for a VM that has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Create {
    pub source_id: String,
    pub name: String,
    /// Identity fields and values: `apply` looks the CI up by these before retrying a create
    /// whose response was lost, so a retry never duplicates a CI.
    pub identity: Vec<FieldValue>,
    pub fields: Vec<FieldValue>,
    /// Report-only facts about the VM (provider, cluster, owner...) for filtering.
    pub context: BTreeMap<String, String>,
}

/// Why an update is planned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateKind {
    /// Field values drifted from the source.
    #[default]
    Drift,
    /// The VM came back: its Absent or Retired CI is restored.
    Restore,
    /// Nothing drifted, but `last_discovered` is older than the heartbeat.
    Heartbeat,
}

/// A CI whose fields differ from what its VM says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    pub sys_id: String,
    pub source_id: String,
    pub name: String,
    pub kind: UpdateKind,
    /// The identity rule that matched the VM to this CI, e.g. `object_id+vcenter_uuid`.
    pub matched_by: String,
    /// The CI's version when planned: `apply` skips the CI as stale when it changed since.
    pub sys_updated_on: String,
    pub sys_mod_count: String,
    pub changes: Vec<Change>,
    pub context: BTreeMap<String, String>,
}

impl Update {
    /// Whether any change is written (an update with only `ignore` drift is reported only).
    pub fn has_writes(&self) -> bool {
        self.changes.iter().any(Change::is_write)
    }
}

/// The lifecycle step a retirement takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetireAction {
    /// First miss: mark the CI Absent; it is retired once the grace period has passed.
    MarkAbsent,
    /// Set the mapping's retire fields (e.g. install_status Retired).
    Retire,
    /// Delete the CI (only where the mapping says so).
    Delete,
}

/// A CI in scope whose VM is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retirement {
    pub sys_id: String,
    pub name: String,
    pub action: RetireAction,
    /// Why, in words: which rule and since when.
    pub reason: String,
    /// When the VM was last seen (the CI's `last_discovered`), if known.
    pub absent_since: Option<String>,
    /// When the CI is or was due to be retired.
    pub retire_on: Option<String>,
    pub sys_updated_on: String,
    pub sys_mod_count: String,
    /// Fields written (empty for a delete).
    pub changes: Vec<Change>,
    pub context: BTreeMap<String, String>,
}

/// Kinds of problems found while planning; each is data in the report, never a stopped run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueKind {
    /// A source record that cannot be used at all (no id, not an object).
    BadRecord,
    /// A value that does not fit its transform (e.g. text where a number is converted).
    BadValue,
    /// A reference lookup (e.g. owner email -> sys_user) found no row or several.
    UnresolvedReference,
    /// An identity rule matched several CIs: the VM is quarantined.
    Ambiguous,
    /// Several VMs matched one CI: all are quarantined and the CI is left alone.
    Conflict,
    /// A rule matched a CI that holds another strong identity field with a different value:
    /// the CI is not re-keyed nor retired; the VM is held or, with `on_contradiction = "new"`,
    /// planned as a new CI.
    IdentityContradiction,
    /// Several VMs share an identity that must be unique (e.g. clones sharing a UUID).
    DuplicateSource,
    /// Several in-scope CIs carry one strong identity (one machine recorded twice): all are
    /// held, and a VM carrying it is quarantined.
    DuplicateCi,
    /// The VM matched a CI outside the job's scope; not written (unless `adopt = true`).
    Foreign,
    /// The CI carries the freeze marker; never written.
    Frozen,
    /// A value longer than its column (`max_length`): cut, then written and compared cut.
    Truncated,
    /// The CMDB input holds one CI's row more than once (an export can repeat a row): it is
    /// planned once, from its first row.
    RepeatedRow,
}

impl IssueKind {
    /// Every kind, in declaration order (reports and their tests walk them all).
    pub const ALL: [IssueKind; 11] = [
        Self::BadRecord,
        Self::BadValue,
        Self::UnresolvedReference,
        Self::Ambiguous,
        Self::Conflict,
        Self::IdentityContradiction,
        Self::DuplicateSource,
        Self::DuplicateCi,
        Self::Foreign,
        Self::Frozen,
        Self::RepeatedRow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRecord => "bad_record",
            Self::BadValue => "bad_value",
            Self::UnresolvedReference => "unresolved_reference",
            Self::Ambiguous => "ambiguous",
            Self::Conflict => "conflict",
            Self::IdentityContradiction => "identity_contradiction",
            Self::DuplicateSource => "duplicate_source",
            Self::DuplicateCi => "duplicate_ci",
            Self::Foreign => "foreign",
            Self::Frozen => "frozen",
            Self::Truncated => "truncated",
            Self::RepeatedRow => "repeated_row",
        }
    }

    /// Whether the records or CIs involved are held back from every write.
    pub fn quarantines(self) -> bool {
        matches!(
            self,
            Self::Ambiguous
                | Self::Conflict
                | Self::IdentityContradiction
                | Self::DuplicateSource
                | Self::DuplicateCi
                | Self::Foreign
                | Self::Frozen
        )
    }
}

/// A problem with a record, a value or an identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    pub kind: IssueKind,
    /// The VM(s) involved (CloudForms ids).
    pub source_ids: Vec<String>,
    /// The CI(s) involved.
    pub sys_ids: Vec<String>,
    pub name: String,
    pub field: Option<String>,
    pub message: String,
}

/// `n` with a comma between thousands (`1,034`), as a CMDB owner reads a count: the name of
/// an issue several VMs make (`1,034 VMs`), and the reports' counts of ids left out.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Plan {
    /// Assembles a plan and computes its summary; lists are sorted for a deterministic order.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        generated_at: DateTime<Utc>,
        mapping: MappingInfo,
        source: SourceSummary,
        target: TargetSummary,
        safety: Safety,
        mut creates: Vec<Create>,
        mut updates: Vec<Update>,
        mut retirements: Vec<Retirement>,
        mut issues: Vec<Issue>,
        unchanged: usize,
    ) -> Self {
        creates.sort_by(|a, b| (&a.name, &a.source_id).cmp(&(&b.name, &b.source_id)));
        updates.sort_by(|a, b| (&a.name, &a.sys_id).cmp(&(&b.name, &b.sys_id)));
        retirements.sort_by(|a, b| (&a.name, &a.sys_id).cmp(&(&b.name, &b.sys_id)));
        issues.sort_by(|a, b| {
            (a.kind, &a.name, &a.source_ids, &a.sys_ids, &a.field).cmp(&(
                b.kind,
                &b.name,
                &b.source_ids,
                &b.sys_ids,
                &b.field,
            ))
        });
        let mut drift_by_field = BTreeMap::new();
        for change in updates
            .iter()
            .filter(|u| u.kind == UpdateKind::Drift)
            .flat_map(|u| &u.changes)
        {
            *drift_by_field.entry(change.field.clone()).or_insert(0) += 1;
        }
        let count = |action| retirements.iter().filter(|r| r.action == action).count();
        let kind = |kind| {
            updates
                .iter()
                .filter(|u| u.kind == kind && u.has_writes())
                .count()
        };
        let summary = Summary {
            creates: creates.len(),
            updates: updates.iter().filter(|u| u.has_writes()).count(),
            restores: kind(UpdateKind::Restore),
            heartbeats: kind(UpdateKind::Heartbeat),
            retirements: count(RetireAction::Retire),
            deletes: count(RetireAction::Delete),
            marked_absent: count(RetireAction::MarkAbsent),
            unchanged,
            quarantined: issues.iter().filter(|i| i.kind.quarantines()).count(),
            issues: issues.len(),
            drift_by_field,
        };
        Self {
            format_version: FORMAT_VERSION,
            generated_at,
            mapping,
            source,
            target,
            summary,
            safety,
            creates,
            updates,
            retirements,
            issues,
            relationships: Vec::new(),
            classifications: Vec::new(),
            orders: Vec::new(),
            held_for_review: None,
        }
    }

    /// How many CIs the CMDB holds more than once (the sys_ids of the `duplicate_ci` issues):
    /// none of them is written or retired until someone merges them, so a run that finds
    /// any should end as a warning.
    pub fn duplicate_cis(&self) -> usize {
        self.issues
            .iter()
            .filter(|i| i.kind == IssueKind::DuplicateCi)
            .map(|i| i.sys_ids.len())
            .sum()
    }

    /// Whether applying this plan would write anything.
    pub fn has_changes(&self) -> bool {
        !self.creates.is_empty()
            || self.updates.iter().any(Update::has_writes)
            || !self.retirements.is_empty()
            || !self.relationships.is_empty()
            || !self.classifications.is_empty()
            || !self.orders.is_empty()
    }

    /// Classification rows to create and to delete.
    pub fn classification_counts(&self) -> (usize, usize) {
        let creates = self
            .classifications
            .iter()
            .filter(|r| r.action == RelAction::Create)
            .count();
        (creates, self.classifications.len() - creates)
    }

    /// Relationship rows to create and to delete.
    pub fn relationship_counts(&self) -> (usize, usize) {
        let creates = self
            .relationships
            .iter()
            .filter(|r| r.action == RelAction::Create)
            .count();
        (creates, self.relationships.len() - creates)
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(kind: IssueKind, sys_ids: &[&str]) -> Issue {
        Issue {
            kind,
            source_ids: Vec::new(),
            sys_ids: sys_ids.iter().map(|s| (*s).to_owned()).collect(),
            name: String::new(),
            field: None,
            message: String::new(),
        }
    }

    #[test]
    fn thousands_are_separated_by_commas() {
        for (n, text) in [
            (0, "0"),
            (7, "7"),
            (999, "999"),
            (1000, "1,000"),
            (1034, "1,034"),
        ] {
            assert_eq!(thousands(n), text);
        }
        assert_eq!(thousands(150_000), "150,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn duplicate_cis_counts_the_cis_of_duplicate_ci_issues_only() {
        let plan = |issues| {
            Plan::new(
                DateTime::UNIX_EPOCH,
                MappingInfo {
                    name: String::new(),
                    origin: String::new(),
                    digest: String::new(),
                    table: String::new(),
                    scope: String::new(),
                    collection: String::new(),
                },
                SourceSummary {
                    origin: String::new(),
                    complete: true,
                    incomplete_reason: None,
                    records: 0,
                    filtered_out: 0,
                    inactive: 0,
                    window: None,
                },
                TargetSummary {
                    origin: String::new(),
                    table: String::new(),
                    cis: 0,
                    in_scope: 0,
                },
                Safety::default(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                issues,
                0,
            )
        };
        assert_eq!(plan(Vec::new()).duplicate_cis(), 0);
        let found = plan(vec![
            issue(IssueKind::DuplicateCi, &["a", "b"]),
            issue(IssueKind::DuplicateCi, &["c", "d", "e"]),
            issue(IssueKind::Ambiguous, &["f", "g"]),
        ]);
        assert_eq!(found.duplicate_cis(), 5);
        assert_eq!(found.summary.quarantined, 3);
    }
}
