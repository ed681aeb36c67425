//! Relationship rows (`cmdb_rel_ci`), applied after the plan's CIs through the same machinery
//! as CIs: a row to create is a create on `cmdb_rel_ci` whose identity is the row itself
//! (parent, child, type), so it is not created when the CMDB already holds it and a lost
//! answer is looked up before any resend; a row to delete carries the version it was
//! planned against and is skipped when it changed since. An end that is a CI this plan
//! creates takes the sys_id its create got; when that create did not happen, the row is
//! not attempted. Classification rows (`cmdb_key_value`) go the same way, after them.

use std::collections::{BTreeMap, HashMap};

use super::check::{check_creates, check_planned, reads_apart, Planned};

use super::{check_and_send, ApplyOptions, Guard, OperationOutcome, OutcomeStatus};
use crate::reconcile::plan::{Create, FieldValue, KvChange, Plan, RelAction, RelChange, RelEnd};
use crate::servicenow::ServiceNow;

/// The relationship table.
const TABLE: &str = "cmdb_rel_ci";

/// The classification table.
const KV_TABLE: &str = "cmdb_key_value";

/// The sys_id of each record's CI that `done` (the outcomes of the plan's CIs) created or
/// found, for rows whose CI is one this plan creates.
fn created_cis(done: &[OperationOutcome]) -> HashMap<&str, &str> {
    done.iter()
        .filter(|o| matches!(o.status, OutcomeStatus::Applied | OutcomeStatus::Skipped))
        .filter_map(|o| Some((o.source_id.as_deref()?, o.sys_id.as_deref()?)))
        .collect()
}

/// A row to delete: its sys_id, the version it was planned against, and its label.
struct RowDelete<'a> {
    sys_id: &'a str,
    sys_mod_count: &'a str,
    sys_updated_on: &'a str,
    label: String,
}

/// A planned row of a plain table the CIs' rows hang on (`cmdb_rel_ci`, `cmdb_key_value`):
/// what the executor needs to create or delete it.
trait RowChange {
    const TABLE: &'static str;
    fn action(&self) -> RelAction;
    /// The row (for deletes) and its version when planned.
    fn version(&self) -> (&str, &str, &str);
    /// How outcomes name the row.
    fn label(&self) -> String;
    /// The create, with ends created by this plan resolved to their new sys_ids.
    fn create(&self, created: &HashMap<&str, &str>) -> Result<Create, OperationOutcome>;
}

/// Both kinds of row carry their action and version in fields of the same names.
macro_rules! row_change {
    ($ty:ty, $table:expr, $label:ident, $create:ident) => {
        impl RowChange for $ty {
            const TABLE: &'static str = $table;
            fn action(&self) -> RelAction {
                self.action
            }
            fn version(&self) -> (&str, &str, &str) {
                let id = self.sys_id.as_deref().unwrap_or_default();
                (id, &self.sys_mod_count, &self.sys_updated_on)
            }
            fn label(&self) -> String {
                $label(self)
            }
            fn create(&self, created: &HashMap<&str, &str>) -> Result<Create, OperationOutcome> {
                $create(self, created)
            }
        }
    };
}

row_change!(RelChange, TABLE, label, row_create);
// Classification rows: a create's identity is the row (CI, key, value, tag).
row_change!(KvChange, KV_TABLE, kv_label, kv_create);

/// Applies the plan's relationship rows; `done` holds the outcomes of its CIs.
pub(super) async fn apply(
    plan: &Plan,
    done: &[OperationOutcome],
    sn: &ServiceNow,
    opts: &ApplyOptions,
    guard: &Guard,
) -> Vec<OperationOutcome> {
    apply_rows(&plan.relationships, done, sn, opts, guard).await
}

/// Applies the plan's classification rows (`cmdb_key_value`) like its relationship rows.
pub(super) async fn apply_classifications(
    plan: &Plan,
    done: &[OperationOutcome],
    sn: &ServiceNow,
    opts: &ApplyOptions,
    guard: &Guard,
) -> Vec<OperationOutcome> {
    apply_rows(&plan.classifications, done, sn, opts, guard).await
}

async fn apply_rows<T: RowChange>(
    changes: &[T],
    done: &[OperationOutcome],
    sn: &ServiceNow,
    opts: &ApplyOptions,
    guard: &Guard,
) -> Vec<OperationOutcome> {
    let created = created_cis(done);
    let mut creates = Vec::new();
    let mut deletes = Vec::new();
    for change in changes {
        match change.action() {
            RelAction::Create => creates.push(change.create(&created)),
            RelAction::Delete => {
                let (sys_id, sys_mod_count, sys_updated_on) = change.version();
                deletes.push(RowDelete {
                    sys_id,
                    sys_mod_count,
                    sys_updated_on,
                    label: change.label(),
                });
            }
        }
    }
    send_rows(T::TABLE, creates, deletes, sn, opts, guard).await
}

/// Creates then deletes rows of `table` through the executor's check and send; the
/// outcomes name each row by its label.
async fn send_rows(
    table: &str,
    creates: Vec<Result<Create, OperationOutcome>>,
    deletes: Vec<RowDelete<'_>>,
    sn: &ServiceNow,
    opts: &ApplyOptions,
    guard: &Guard,
) -> Vec<OperationOutcome> {
    let mut outcomes = Vec::new();
    let mut sendable = Vec::new();
    for create in creates {
        match create {
            Ok(create) => sendable.push(create),
            Err(outcome) => outcomes.push(outcome),
        }
    }
    let size = opts.chunk_len();
    let check = |chunk| check_creates(sn, table, chunk, &opts.retry, guard);
    let overlap = reads_apart(&sendable);
    let chunks = sendable.chunks(size);
    outcomes.extend(check_and_send(sn, table, chunks, check, overlap, opts, guard).await);
    let planned: Vec<Planned> = deletes
        .iter()
        .map(|d| Planned {
            sys_id: d.sys_id,
            source_id: None,
            sys_mod_count: d.sys_mod_count,
            sys_updated_on: d.sys_updated_on,
            changes: Vec::new(),
            delete: true,
        })
        .collect();
    let check = |chunk| check_planned(sn, table, chunk, &opts.retry, guard);
    let chunks = planned.chunks(size);
    outcomes.extend(check_and_send(sn, table, chunks, check, true, opts, guard).await);
    // Name the rows: an outcome's source id says which row it was.
    let labels: BTreeMap<&str, &str> = deletes
        .iter()
        .map(|d| (d.sys_id, d.label.as_str()))
        .collect();
    for o in &mut outcomes {
        if o.source_id.is_none() {
            o.source_id = o
                .sys_id
                .as_deref()
                .and_then(|id| labels.get(id))
                .map(|l| (*l).to_owned());
        }
    }
    outcomes
}

/// A classification row to create, its CI resolved; or why it cannot be.
fn kv_create(change: &KvChange, created: &HashMap<&str, &str>) -> Result<Create, OperationOutcome> {
    let label = kv_label(change);
    let ci = match &change.ci.source_id {
        None => Some(change.ci.sys_id.clone()),
        Some(source) => created.get(source.as_str()).map(|s| (*s).to_owned()),
    };
    let Some(ci) = ci else {
        return Err(OperationOutcome {
            sys_id: None,
            source_id: Some(label),
            status: OutcomeStatus::NotAttempted,
            message: "its CI is one this plan was to create, and that create did not happen".into(),
        });
    };
    let value = |field: &str, value: String| FieldValue {
        field: field.to_owned(),
        value,
        from: "classification".into(),
    };
    let fields = vec![
        value("configuration_item", ci),
        value("key", change.key.clone()),
        value("value", change.value.clone()),
        value("tag", change.tag.clone()),
    ];
    Ok(Create {
        source_id: label.clone(),
        name: label,
        identity: fields.clone(),
        fields,
        context: Default::default(),
    })
}

/// `classification <key>=<value>: <CI>`, for outcomes.
fn kv_label(change: &KvChange) -> String {
    let ci = if change.ci.name.is_empty() {
        change.ci.sys_id.as_str()
    } else {
        change.ci.name.as_str()
    };
    format!("classification {}={}: {ci}", change.key, change.value)
}

/// A row to create as a create on `cmdb_rel_ci`, its ends resolved; or why it cannot be.
fn row_create(
    change: &RelChange,
    created: &HashMap<&str, &str>,
) -> Result<Create, OperationOutcome> {
    let resolve = |end: &RelEnd| -> Option<String> {
        match &end.source_id {
            None => Some(end.sys_id.clone()),
            Some(source) => created.get(source.as_str()).map(|s| (*s).to_owned()),
        }
    };
    let label = label(change);
    let (Some(parent), Some(child)) = (resolve(&change.parent), resolve(&change.child)) else {
        return Err(OperationOutcome {
            sys_id: None,
            source_id: Some(label),
            status: OutcomeStatus::NotAttempted,
            message: "one end is a CI this plan was to create, and that create did not happen"
                .into(),
        });
    };
    let value = |field: &str, value: String| FieldValue {
        field: field.to_owned(),
        value,
        from: "relationship".into(),
    };
    let fields = vec![
        value("parent", parent),
        value("child", child),
        value("type", change.type_sys_id.clone()),
    ];
    Ok(Create {
        source_id: label.clone(),
        name: label,
        identity: fields.clone(),
        fields,
        context: Default::default(),
    })
}

/// `relationship <type>: <parent> -> <child>`, for outcomes.
fn label(change: &RelChange) -> String {
    let end = |e: &RelEnd| {
        if e.name.is_empty() {
            e.sys_id.clone()
        } else {
            e.name.clone()
        }
    };
    format!(
        "relationship {}: {} -> {}",
        change.kind,
        end(&change.parent),
        end(&change.child)
    )
}
