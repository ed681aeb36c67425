//! One write the executor sends: a create, a PATCH (an update or a retirement that sets
//! fields) or a delete; what a write whose answer was lost turns out to have done, read
//! back from the CMDB; and the outcome it ends with.

use crate::net::{HttpError, RetryPolicy};
use crate::reconcile::plan::Create;
use crate::reconcile::record::Ci;
use crate::servicenow::{BatchRequest, ServiceNow};

use super::guard::{Guard, Halt};
use super::{OperationOutcome, OutcomeStatus};

/// One write to carry out.
#[derive(Debug, Clone)]
pub(super) enum Write {
    Create(Create),
    Patch {
        sys_id: String,
        source_id: Option<String>,
        fields: Vec<(String, String)>,
        /// The CI's `sys_mod_count` when it was checked just before the write, if readable:
        /// our write moves it by one.
        version: Option<u64>,
        /// Journal fields among `fields` (`mode = "append"`): an entry is appended, and a
        /// read-back does not show it as written, so they are not judged.
        journal: Vec<String>,
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

    /// Sends the write once; the record as written (none for a delete).
    pub(super) async fn send(&self, sn: &ServiceNow, table: &str) -> Result<Option<Ci>, HttpError> {
        match self {
            Write::Create(c) => {
                let fields: Vec<(String, String)> = c
                    .fields
                    .iter()
                    .map(|f| (f.field.clone(), f.value.clone()))
                    .collect();
                sn.create(table, &fields).await.map(Some)
            }
            Write::Patch { sys_id, fields, .. } => sn.update(table, sys_id, fields).await.map(Some),
            Write::Delete { sys_id } => sn.delete(table, sys_id).await.map(|()| None),
        }
    }

    /// The outcome of a write the server answered; `written` is the record it returned. A
    /// PATCH whose CI's `sys_mod_count` moved by more than our one write since the check just
    /// before it was changed by someone in between, and our values went over that change.
    pub(super) fn landed(&self, written: Option<Ci>) -> OperationOutcome {
        if let (
            Write::Patch {
                version: Some(before),
                ..
            },
            Some(ci),
        ) = (self, &written)
        {
            let after = ci.get("sys_mod_count").trim().parse::<u64>().ok();
            if let Some(after) = after.filter(|after| *after > before + 1) {
                return self.outcome(
                    OutcomeStatus::OverwroteConcurrentEdit,
                    None,
                    format!(
                        "written, but someone changed the CI between the check and this write (sys_mod_count {before} at the check, {after} after our one write): the planned values went over their change; review the CI"
                    ),
                );
            }
        }
        self.outcome(OutcomeStatus::Applied, written.map(|ci| ci.sys_id), "")
    }

    /// Reads the CMDB to learn what a write whose answer was lost did: a create is looked
    /// up by its identity, a PATCH read back and its fields compared, a delete looked for.
    /// The reads go through the guard: they count towards the breaker, and none is made
    /// once the run stops.
    pub(super) async fn read_back(
        &self,
        sn: &ServiceNow,
        table: &str,
        retry: &RetryPolicy,
        guard: &Guard,
    ) -> Result<ReadBack, Halt> {
        let found = match self {
            Write::Create(create) => {
                let identity: Vec<(String, String)> = create
                    .identity
                    .iter()
                    .map(|f| (f.field.clone(), f.value.clone()))
                    .collect();
                // One lookup (the client retries its pages itself).
                let once = RetryPolicy {
                    max_attempts: 1,
                    ..*retry
                };
                let wanted = ["sys_id".to_owned()];
                guard
                    .retry(&once, "look up", || sn.find(table, &identity, &wanted))
                    .await?
            }
            Write::Patch {
                sys_id,
                fields,
                journal,
                ..
            } => {
                let mut wanted: Vec<String> = fields
                    .iter()
                    .map(|(f, _)| f.clone())
                    .filter(|f| !journal.contains(f))
                    .collect();
                wanted.push("sys_mod_count".into());
                let what = format!("read back {table}/{sys_id}");
                let ci = guard
                    .retry(retry, &what, || sn.get_once(table, sys_id, &wanted))
                    .await?;
                ci.into_iter().collect()
            }
            Write::Delete { sys_id } => {
                let what = format!("read back {table}/{sys_id}");
                let ci = guard
                    .retry(retry, &what, || sn.get_once(table, sys_id, &[]))
                    .await?;
                ci.into_iter().collect()
            }
        };
        Ok(self.judge(&found))
    }

    /// What the CIs read back after a lost answer say about this write: those carrying a
    /// create's identity, or the one CI an update or delete wrote (none if it is gone).
    pub(super) fn judge(&self, found: &[Ci]) -> ReadBack {
        let settled = |status, sys_id, message: String| {
            ReadBack::Settled(self.outcome(status, sys_id, message))
        };
        match (self, found) {
            (Write::Create(_), []) => ReadBack::NotDone("no CI has its identity".into()),
            (Write::Create(_), [ci]) => settled(
                OutcomeStatus::Applied,
                Some(ci.sys_id.clone()),
                "created (the answer was lost; found by identity)".into(),
            ),
            (Write::Create(_), several) => settled(
                OutcomeStatus::Failed,
                None,
                format!(
                    "{} CIs now match the identity; not creating another",
                    several.len()
                ),
            ),
            (Write::Patch { .. }, []) => settled(
                OutcomeStatus::Failed,
                None,
                "the answer was lost, and the CI no longer exists".into(),
            ),
            (
                Write::Patch {
                    fields,
                    version,
                    journal,
                    ..
                },
                [ci, ..],
            ) => {
                let now = ci.get("sys_mod_count").trim().parse::<u64>().ok();
                // Judged on the other fields: a journal entry is not read back as written
                // (an update always writes a field besides its entry).
                if fields
                    .iter()
                    .filter(|(f, _)| !journal.contains(f))
                    .all(|(f, v)| holds(ci, f, v))
                {
                    settled(
                        OutcomeStatus::Applied,
                        None,
                        "the answer was lost; read back, the CI holds the planned values".into(),
                    )
                } else if version.is_none() || now == *version {
                    ReadBack::NotDone("the CI does not hold the planned values".into())
                } else {
                    // Someone else wrote it since the check: never write over that blind.
                    settled(
                        OutcomeStatus::Failed,
                        None,
                        format!(
                            "the answer was lost; read back, the CI does not hold the planned values and changed meanwhile (sys_mod_count {} -> {}): not sent again; plan again",
                            version.map_or_else(String::new, |v| v.to_string()),
                            ci.get("sys_mod_count")
                        ),
                    )
                }
            }
            (Write::Delete { .. }, []) => settled(
                OutcomeStatus::Applied,
                None,
                "deleted (the answer was lost; the CI is gone)".into(),
            ),
            (Write::Delete { .. }, [_, ..]) => ReadBack::NotDone("the CI is still there".into()),
        }
    }
}

/// Reads back every write of a batch whose answer was lost, in a few `IN` reads rather than
/// one per write: creates looked up by identity, PATCHes and deletes by sys_id. One verdict
/// per write, in order; see [`Write::judge`].
pub(super) async fn read_back_batch(
    sn: &ServiceNow,
    table: &str,
    writes: &[Write],
    retry: &RetryPolicy,
    guard: &Guard,
) -> Result<Vec<ReadBack>, Halt> {
    let creates: Vec<&Create> = writes
        .iter()
        .filter_map(|w| match w {
            Write::Create(c) => Some(c),
            _ => None,
        })
        .collect();
    let by_identity = if creates.is_empty() {
        Default::default()
    } else {
        super::check::cis_by_identity(sn, table, &creates, retry, guard).await?
    };
    let mut ids = Vec::new();
    let mut fields = vec!["sys_id".to_owned(), "sys_mod_count".to_owned()];
    for write in writes {
        match write {
            Write::Patch {
                sys_id, fields: f, ..
            } => {
                ids.push(sys_id.clone());
                for (name, _) in f {
                    if !fields.contains(name) {
                        fields.push(name.clone());
                    }
                }
            }
            Write::Delete { sys_id } => ids.push(sys_id.clone()),
            Write::Create(_) => {}
        }
    }
    let by_id: std::collections::HashMap<String, Ci> = if ids.is_empty() {
        Default::default()
    } else {
        guard
            .retry(retry, "read back a batch", || {
                sn.read_where_in(table, "sys_id", &ids, &fields)
            })
            .await?
            .into_iter()
            .map(|ci| (ci.sys_id.clone(), ci))
            .collect()
    };
    Ok(writes
        .iter()
        .map(|write| match write {
            Write::Create(c) => {
                let found = by_identity
                    .get(&super::check::identity_key(c))
                    .map_or(&[][..], Vec::as_slice);
                write.judge(found)
            }
            Write::Patch { sys_id, .. } | Write::Delete { sys_id } => {
                write.judge(by_id.get(sys_id).map_or(&[][..], std::slice::from_ref))
            }
        })
        .collect())
}

/// What reading back a write whose answer was lost found.
pub(super) enum ReadBack {
    /// The CMDB settles it: done, or not to be sent again.
    Settled(OperationOutcome),
    /// The write did not happen (why, in words): sending it again is safe.
    NotDone(String),
}

/// Whether the CI holds `value` in `field`, compared as the version check compares.
pub(super) fn holds(ci: &Ci, field: &str, value: &str) -> bool {
    ci.get(field).trim() == value.trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(version: Option<u64>) -> Write {
        Write::Patch {
            sys_id: "s1".into(),
            source_id: Some("42".into()),
            fields: vec![("cpus".into(), "4".into())],
            version,
            journal: Vec::new(),
        }
    }

    fn written(count: &str) -> Option<Ci> {
        Some(Ci::new(
            "s1",
            [
                ("cpus", "4".to_owned()),
                ("sys_mod_count", count.to_owned()),
            ],
        ))
    }

    fn status(read_back: ReadBack) -> Result<OutcomeStatus, String> {
        match read_back {
            ReadBack::Settled(o) => Ok(o.status),
            ReadBack::NotDone(why) => Err(why),
        }
    }

    #[test]
    fn what_a_read_back_after_a_lost_answer_settles() {
        let ci = |cpus: &str, count: &str| {
            Ci::new(
                "s1",
                [
                    ("cpus", cpus.to_owned()),
                    ("sys_mod_count", count.to_owned()),
                ],
            )
        };
        let p = patch(Some(3));
        assert_eq!(status(p.judge(&[ci("4", "4")])), Ok(OutcomeStatus::Applied));
        assert!(
            status(p.judge(&[ci("2", "3")])).is_err(),
            "not done: send again"
        );
        // Not ours and moved: someone else wrote it; never sent again over that.
        assert_eq!(status(p.judge(&[ci("8", "4")])), Ok(OutcomeStatus::Failed));
        assert_eq!(status(p.judge(&[])), Ok(OutcomeStatus::Failed), "gone");
        let delete = Write::Delete {
            sys_id: "s1".into(),
        };
        assert_eq!(status(delete.judge(&[])), Ok(OutcomeStatus::Applied));
        assert!(status(delete.judge(&[ci("2", "3")])).is_err());
    }

    #[test]
    fn a_journal_entry_is_not_judged_after_a_lost_answer() {
        let p = Write::Patch {
            sys_id: "s1".into(),
            source_id: Some("42".into()),
            fields: vec![
                ("cpus".into(), "4".into()),
                ("work_notes".into(), "provisioned".into()),
            ],
            version: Some(3),
            journal: vec!["work_notes".into()],
        };
        // The instance shows no journal text in the row: the write is judged by `cpus`.
        let ci = |cpus: &str, count: &str| {
            Ci::new(
                "s1",
                [
                    ("cpus", cpus.to_owned()),
                    ("work_notes", String::new()),
                    ("sys_mod_count", count.to_owned()),
                ],
            )
        };
        assert_eq!(status(p.judge(&[ci("4", "4")])), Ok(OutcomeStatus::Applied));
        assert!(
            status(p.judge(&[ci("2", "3")])).is_err(),
            "not done: send again"
        );
    }

    #[test]
    fn a_write_that_moved_the_version_by_more_than_itself_went_over_an_edit() {
        assert_eq!(
            patch(Some(3)).landed(written("4")).status,
            OutcomeStatus::Applied
        );
        let over = patch(Some(3)).landed(written("5"));
        assert_eq!(over.status, OutcomeStatus::OverwroteConcurrentEdit);
        assert!(
            over.message
                .contains("sys_mod_count 3 at the check, 5 after"),
            "{}",
            over.message
        );
        assert_eq!(over.sys_id.as_deref(), Some("s1"));
        // Nothing to compare: no verdict either way.
        assert_eq!(
            patch(None).landed(written("9")).status,
            OutcomeStatus::Applied
        );
        assert_eq!(
            patch(Some(3)).landed(written("")).status,
            OutcomeStatus::Applied
        );
    }
}
