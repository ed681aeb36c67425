//! Relationship rows (`cmdb_rel_ci`), applied after the plan's CIs through the same machinery
//! as CIs: a row to create is a create on `cmdb_rel_ci` whose identity is the row itself
//! (parent, child, type), so it is not created when the CMDB already holds it and a lost
//! answer is looked up before any resend; a row to delete carries the version it was
//! planned against and is skipped when it changed since. An end that is a CI this plan
//! creates takes the sys_id its create got; when that create did not happen, the row is
//! not attempted.

use std::collections::{BTreeMap, HashMap};

use super::check::{check_creates, check_planned, Planned};
use super::send::execute;
use super::{ApplyOptions, Guard, OperationOutcome, OutcomeStatus};
use crate::reconcile::plan::{Create, FieldValue, Plan, RelAction, RelChange, RelEnd};
use crate::servicenow::ServiceNow;

/// The relationship table.
const TABLE: &str = "cmdb_rel_ci";

/// Applies the plan's relationship rows; `done` holds the outcomes of its CIs.
pub(super) async fn apply(
    plan: &Plan,
    done: &[OperationOutcome],
    sn: &ServiceNow,
    opts: &ApplyOptions,
    guard: &Guard,
) -> Vec<OperationOutcome> {
    // The sys_id of each record's CI, for ends that are CIs this plan creates.
    let created: HashMap<&str, &str> = done
        .iter()
        .filter(|o| matches!(o.status, OutcomeStatus::Applied | OutcomeStatus::Skipped))
        .filter_map(|o| Some((o.source_id.as_deref()?, o.sys_id.as_deref()?)))
        .collect();
    let mut outcomes = Vec::new();
    let mut creates = Vec::new();
    let mut deletes = Vec::new();
    for change in &plan.relationships {
        match change.action {
            RelAction::Create => match row_create(change, &created) {
                Ok(create) => creates.push(create),
                Err(outcome) => outcomes.push(outcome),
            },
            RelAction::Delete => deletes.push(change),
        }
    }
    let size = opts.chunk_len();
    for chunk in creates.chunks(size) {
        let (writes, unsent) = check_creates(sn, TABLE, chunk, &opts.retry, guard).await;
        outcomes.extend(unsent);
        outcomes.extend(execute(sn, TABLE, writes, opts, guard).await);
    }
    let planned: Vec<Planned> = deletes
        .iter()
        .map(|d| Planned {
            sys_id: d.sys_id.as_deref().unwrap_or_default(),
            source_id: None,
            sys_mod_count: &d.sys_mod_count,
            sys_updated_on: &d.sys_updated_on,
            changes: Vec::new(),
            delete: true,
        })
        .collect();
    for chunk in planned.chunks(size) {
        let (writes, unsent) = check_planned(sn, TABLE, chunk, &opts.retry, guard).await;
        outcomes.extend(unsent);
        outcomes.extend(execute(sn, TABLE, writes, opts, guard).await);
    }
    // Name the rows: an outcome's source id says which relationship it was.
    let labels: BTreeMap<String, String> = plan
        .relationships
        .iter()
        .filter_map(|c| Some((c.sys_id.clone()?, label(c))))
        .collect();
    for o in &mut outcomes {
        if o.source_id.is_none() {
            o.source_id = o.sys_id.as_ref().and_then(|id| labels.get(id)).cloned();
        }
    }
    outcomes
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
