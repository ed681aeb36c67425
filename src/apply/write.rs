//! One write the executor sends: a create, a PATCH (an update or a retirement that sets
//! fields) or a delete, and the outcome it ends with.

use crate::net::HttpError;
use crate::reconcile::plan::Create;
use crate::servicenow::{BatchRequest, ServiceNow};

use super::guard::Halt;
use super::{OperationOutcome, OutcomeStatus};

/// One write to carry out.
#[derive(Debug, Clone)]
pub(super) enum Write {
    Create(Create),
    Patch {
        sys_id: String,
        source_id: Option<String>,
        fields: Vec<(String, String)>,
    },
    Delete {
        sys_id: String,
    },
}

impl Write {
    pub(super) fn outcome(
        &self,
        status: OutcomeStatus,
        sys_id: Option<String>,
        message: impl Into<String>,
    ) -> OperationOutcome {
        let (planned_sys_id, source_id) = match self {
            Write::Create(c) => (None, Some(c.source_id.clone())),
            Write::Patch {
                sys_id, source_id, ..
            } => (Some(sys_id.clone()), source_id.clone()),
            Write::Delete { sys_id } => (Some(sys_id.clone()), None),
        };
        OperationOutcome {
            sys_id: sys_id.or(planned_sys_id),
            source_id,
            status,
            message: message.into(),
        }
    }

    /// The outcome of a write the run stopped (or that failed for good): never sent is
    /// `not_attempted`, sent and failed is `failed`.
    pub(super) fn halted(&self, halt: &Halt) -> OperationOutcome {
        let status = if halt.attempted() {
            OutcomeStatus::Failed
        } else {
            OutcomeStatus::NotAttempted
        };
        self.outcome(status, None, halt.message())
    }

    pub(super) fn request(&self, table: &str) -> BatchRequest {
        match self {
            Write::Create(c) => BatchRequest::Create {
                table: table.to_owned(),
                fields: c
                    .fields
                    .iter()
                    .map(|f| (f.field.clone(), f.value.clone()))
                    .collect(),
            },
            Write::Patch { sys_id, fields, .. } => BatchRequest::Update {
                table: table.to_owned(),
                sys_id: sys_id.clone(),
                fields: fields.clone(),
            },
            Write::Delete { sys_id } => BatchRequest::Delete {
                table: table.to_owned(),
                sys_id: sys_id.clone(),
            },
        }
    }

    /// What the write does, for logs.
    pub(super) fn verb(&self) -> &'static str {
        match self {
            Write::Create(_) => "create",
            Write::Patch { .. } => "update",
            Write::Delete { .. } => "delete",
        }
    }

    /// Sends the write once; the sys_id of the record written (none for a delete).
    pub(super) async fn send(
        &self,
        sn: &ServiceNow,
        table: &str,
    ) -> Result<Option<String>, HttpError> {
        match self {
            Write::Create(c) => {
                let fields: Vec<(String, String)> = c
                    .fields
                    .iter()
                    .map(|f| (f.field.clone(), f.value.clone()))
                    .collect();
                sn.create(table, &fields).await.map(|ci| Some(ci.sys_id))
            }
            Write::Patch { sys_id, fields, .. } => sn
                .update(table, sys_id, fields)
                .await
                .map(|ci| Some(ci.sys_id)),
            Write::Delete { sys_id } => sn.delete(table, sys_id).await.map(|()| None),
        }
    }
}
