//! The report model of relationship rows (`[[relate]]`) and classification rows
//! (`[classify]`): each row to create or delete, worded for people, with what the renderers
//! need to place it under its CIs.

use serde::Serialize;

use crate::reconcile::plan::{KvChange, RelAction, RelChange, RelEnd};

/// One relationship row to create or delete, worded for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelRow {
    /// `create` or `delete`.
    pub action: &'static str,
    /// The `cmdb_rel_type` name.
    pub kind: String,
    pub parent: String,
    pub parent_sys_id: String,
    pub child: String,
    pub child_sys_id: String,
    /// The record whose planned create makes one end (its sys_id is learnt at apply).
    pub new_ci_source_id: Option<String>,
    /// The row, for deletes.
    pub sys_id: String,
    pub reason: String,
}

/// A CI as a row end, for people: its name, `(new)` for one this plan creates.
fn end(e: &RelEnd) -> String {
    match (&e.source_id, e.name.is_empty()) {
        (Some(source), true) => format!("new CI of record {source}"),
        (Some(_), false) => format!("{} (new)", e.name),
        (None, true) => e.sys_id.clone(),
        (None, false) => e.name.clone(),
    }
}

/// One classification row (`cmdb_key_value`) to create or delete, worded for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvRow {
    /// `create` or `delete`.
    pub action: &'static str,
    pub ci: String,
    pub ci_sys_id: String,
    /// The record whose planned create makes the CI.
    pub new_ci_source_id: Option<String>,
    pub key: String,
    pub value: String,
    /// The row, for deletes.
    pub sys_id: String,
    pub reason: String,
}

impl KvRow {
    pub(super) fn from_change(change: &KvChange) -> Self {
        Self {
            action: match change.action {
                RelAction::Create => "create",
                RelAction::Delete => "delete",
            },
            ci: end(&change.ci),
            ci_sys_id: change.ci.sys_id.clone(),
            new_ci_source_id: change.ci.source_id.clone(),
            key: change.key.clone(),
            value: change.value.clone(),
            sys_id: change.sys_id.clone().unwrap_or_default(),
            reason: change.reason.clone(),
        }
    }
}

impl RelRow {
    pub(super) fn from_change(change: &RelChange) -> Self {
        Self {
            action: match change.action {
                RelAction::Create => "create",
                RelAction::Delete => "delete",
            },
            kind: change.kind.clone(),
            parent: end(&change.parent),
            parent_sys_id: change.parent.sys_id.clone(),
            child: end(&change.child),
            child_sys_id: change.child.sys_id.clone(),
            new_ci_source_id: change
                .parent
                .source_id
                .clone()
                .or_else(|| change.child.source_id.clone()),
            sys_id: change.sys_id.clone().unwrap_or_default(),
            reason: change.reason.clone(),
        }
    }

    /// Whether the row touches this CI (by sys_id, or by the record of a CI being created).
    pub fn touches(&self, sys_id: &str, source_id: &str) -> bool {
        (!sys_id.is_empty() && (self.parent_sys_id == sys_id || self.child_sys_id == sys_id))
            || (!source_id.is_empty() && self.new_ci_source_id.as_deref() == Some(source_id))
    }
}
