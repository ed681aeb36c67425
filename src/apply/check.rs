//! The checks just before writing, made chunk by chunk right before the chunk is sent (an
//! apply can take a while, and people edit CIs meanwhile): which planned creates already
//! exist (by identity), and whether each CI to be updated or retired still holds the
//! version it was planned against. A write that cannot be checked is not sent.

use std::collections::HashMap;

use crate::net::RetryPolicy;
use crate::reconcile::plan::{Change, Create, FieldMode};
use crate::reconcile::record::Ci;
use crate::servicenow::ServiceNow;

use super::guard::{Guard, Halt};
use super::write::{holds, Write};
use super::{OperationOutcome, OutcomeStatus};

/// A planned write to an existing CI, with the version it was planned against.
pub(super) struct Planned<'a> {
    pub(super) sys_id: &'a str,
    pub(super) source_id: Option<&'a str>,
    pub(super) sys_mod_count: &'a str,
    pub(super) sys_updated_on: &'a str,
    pub(super) changes: Vec<&'a Change>,
    pub(super) delete: bool,
}

/// The creates of one chunk that may be sent, and the outcomes of those that may not: a
/// CI with the identity is already there (applied before: creating it again would
/// duplicate it), or the check itself could not be made.
pub(super) async fn check_creates(
    sn: &ServiceNow,
    table: &str,
    creates: &[Create],
    retry: &RetryPolicy,
    guard: &Guard,
) -> (Vec<Write>, Vec<OperationOutcome>) {
    let (mut writes, mut outcomes) = (Vec::new(), Vec::new());
    match existing_identities(sn, table, creates, retry, guard).await {
        Ok(existing) => {
            for create in creates {
                match existing.get(&identity_key(create)) {
                    Some(sys_id) => outcomes.push(OperationOutcome {
                        sys_id: Some(sys_id.clone()),
                        source_id: Some(create.source_id.clone()),
                        status: OutcomeStatus::Skipped,
                        message: "already exists: a CI with this identity is in the CMDB".into(),
                    }),
                    None => writes.push(Write::Create(create.clone())),
                }
            }
        }
        Err(halt) => {
            let message = unchecked(&halt, "could not check that the CI does not exist yet");
            for create in creates {
                outcomes.push(OperationOutcome {
                    sys_id: None,
                    source_id: Some(create.source_id.clone()),
                    status: OutcomeStatus::NotAttempted,
                    message: message.clone(),
                });
            }
        }
    }
    (writes, outcomes)
}

/// The updates and retirements of one chunk that may be sent (see [`check_version`]), and
/// the outcomes of those that may not.
pub(super) async fn check_planned(
    sn: &ServiceNow,
    table: &str,
    planned: &[Planned<'_>],
    retry: &RetryPolicy,
    guard: &Guard,
) -> (Vec<Write>, Vec<OperationOutcome>) {
    let (mut writes, mut outcomes) = (Vec::new(), Vec::new());
    match current_versions(sn, table, planned, retry, guard).await {
        Ok(current) => {
            for p in planned {
                match check_version(p, current.get(p.sys_id)) {
                    Ok(write) => writes.push(write),
                    Err(outcome) => outcomes.push(outcome),
                }
            }
        }
        Err(halt) => {
            // Without the versions no write to an existing CI can be proven fresh.
            let message = unchecked(&halt, "could not read the CI's current version");
            for p in planned {
                outcomes.push(OperationOutcome {
                    sys_id: Some(p.sys_id.to_owned()),
                    source_id: p.source_id.map(str::to_owned),
                    status: OutcomeStatus::NotAttempted,
                    message: message.clone(),
                });
            }
        }
    }
    (writes, outcomes)
}

/// Why writes whose check halted were not sent.
fn unchecked(halt: &Halt, what: &str) -> String {
    match halt {
        Halt::Failed(e) => format!("not sent: {what}: {e}"),
        Halt::Stopped { .. } => halt.message(),
    }
}

/// The current version and values of the CIs about to be written, by sys_id.
async fn current_versions(
    sn: &ServiceNow,
    table: &str,
    planned: &[Planned<'_>],
    retry: &RetryPolicy,
    guard: &Guard,
) -> Result<HashMap<String, Ci>, Halt> {
    if planned.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<String> = planned.iter().map(|p| p.sys_id.to_owned()).collect();
    let mut fields: Vec<String> = ["sys_id", "sys_mod_count", "sys_updated_on"]
        .map(String::from)
        .to_vec();
    for change in planned.iter().flat_map(|p| &p.changes) {
        // A journal is not read back as written: nothing to compare.
        if change.mode != FieldMode::Append && !fields.contains(&change.field) {
            fields.push(change.field.clone());
        }
    }
    let rows = guard
        .retry(retry, "read CI versions", || {
            sn.read_where_in(table, "sys_id", &ids, &fields)
        })
        .await?;
    Ok(rows.into_iter().map(|ci| (ci.sys_id.clone(), ci)).collect())
}

/// A create's identity values, normalised as identification compares them.
pub(super) fn identity_key(create: &Create) -> Vec<(String, String)> {
    create
        .identity
        .iter()
        .map(|f| (f.field.clone(), f.value.trim().to_lowercase()))
        .collect()
}

/// The CIs that already carry a planned create's identity (identity -> sys_id).
async fn existing_identities(
    sn: &ServiceNow,
    table: &str,
    creates: &[Create],
    retry: &RetryPolicy,
    guard: &Guard,
) -> Result<HashMap<Vec<(String, String)>, String>, Halt> {
    let creates: Vec<&Create> = creates.iter().collect();
    let found = cis_by_identity(sn, table, &creates, retry, guard).await?;
    Ok(found
        .into_iter()
        .filter_map(|(key, cis)| cis.into_iter().next().map(|ci| (key, ci.sys_id)))
        .collect())
}

/// Whether the creates' identity checks read rows apart: no two creates share the value
/// their check reads by (the first identity field of their group, see [`cis_by_identity`]),
/// so the writes of one chunk never change what the check of another reads (a CI's
/// `object_id`, a relationship row's own VM; not a cluster that parents thousands of rows).
pub(super) fn reads_apart(creates: &[Create]) -> bool {
    let mut seen = std::collections::HashSet::with_capacity(creates.len());
    creates.iter().all(|c| {
        let fields: Vec<&str> = c.identity.iter().map(|f| f.field.as_str()).collect();
        c.identity
            .first()
            .is_none_or(|first| seen.insert((fields, first.value.trim().to_lowercase())))
    })
}

/// Every CI carrying one of the creates' identities, by identity: one `IN` read per hundred
/// creates, on the first identity field, matched in full here. Used before creates are sent
/// (an existing CI is not created again) and after a batch of them lost its answer (a CI
/// found was created; none found may be sent again; several are never added to).
pub(super) async fn cis_by_identity(
    sn: &ServiceNow,
    table: &str,
    creates: &[&Create],
    retry: &RetryPolicy,
    guard: &Guard,
) -> Result<HashMap<Vec<(String, String)>, Vec<Ci>>, Halt> {
    let mut by_fields: HashMap<Vec<String>, Vec<&Create>> = HashMap::new();
    for c in creates {
        let fields = c.identity.iter().map(|f| f.field.clone()).collect();
        by_fields.entry(fields).or_default().push(c);
    }
    let mut found: HashMap<Vec<(String, String)>, Vec<Ci>> = HashMap::new();
    for (fields, group) in by_fields {
        let Some(first) = fields.first() else {
            continue;
        };
        let values: Vec<String> = group.iter().map(|c| c.identity[0].value.clone()).collect();
        let mut wanted = fields.clone();
        wanted.push("sys_id".into());
        let rows = guard
            .retry(retry, "look up planned creates", || {
                sn.read_where_in(table, first, &values, &wanted)
            })
            .await?;
        for ci in rows {
            let key: Vec<(String, String)> = fields
                .iter()
                .map(|f| (f.clone(), ci.get(f).trim().to_lowercase()))
                .collect();
            found.entry(key).or_default().push(ci);
        }
    }
    Ok(found)
}

/// Whether a planned write may go ahead: the CI must exist, hold the version it was planned
/// against, and not already hold the planned values.
pub(super) fn check_version(p: &Planned, current: Option<&Ci>) -> Result<Write, OperationOutcome> {
    let outcome = |status, message: String| OperationOutcome {
        sys_id: Some(p.sys_id.to_owned()),
        source_id: p.source_id.map(str::to_owned),
        status,
        message,
    };
    let Some(ci) = current else {
        return Err(if p.delete {
            outcome(OutcomeStatus::Skipped, "already deleted".into())
        } else {
            outcome(
                OutcomeStatus::SkippedStale,
                "the CI no longer exists".into(),
            )
        });
    };
    // Journal entries (`append`) are left out: a journal does not read back as written, and
    // an update carrying one always writes another field, which says whether it was applied.
    if !p.delete
        && p.changes
            .iter()
            .filter(|c| c.mode != FieldMode::Append)
            .all(|c| holds(ci, &c.field, &c.desired))
    {
        return Err(outcome(
            OutcomeStatus::Skipped,
            "already applied: the CI holds the planned values".into(),
        ));
    }
    let (count, updated) = (ci.get("sys_mod_count"), ci.get("sys_updated_on"));
    if p.sys_mod_count.is_empty() && p.sys_updated_on.is_empty() {
        return Err(outcome(
            OutcomeStatus::SkippedStale,
            "the plan holds no version of this CI (its export lacked sys_mod_count and sys_updated_on), so it cannot be proven unchanged; plan from the live table or export those columns".into(),
        ));
    }
    if count != p.sys_mod_count || updated != p.sys_updated_on {
        return Err(outcome(
            OutcomeStatus::SkippedStale,
            format!(
                "changed since the plan (sys_mod_count {} -> {count}, sys_updated_on {} -> {updated}); plan again",
                p.sys_mod_count, p.sys_updated_on
            ),
        ));
    }
    Ok(if p.delete {
        Write::Delete {
            sys_id: p.sys_id.to_owned(),
        }
    } else {
        Write::Patch {
            sys_id: p.sys_id.to_owned(),
            source_id: p.source_id.map(str::to_owned),
            fields: p
                .changes
                .iter()
                .map(|c| (c.field.clone(), c.desired.clone()))
                .collect(),
            version: count.trim().parse().ok(),
            journal: p
                .changes
                .iter()
                .filter(|c| c.mode == FieldMode::Append)
                .map(|c| c.field.clone())
                .collect(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::plan::FieldValue;

    #[test]
    fn creates_read_apart_only_when_no_two_share_the_value_read_by() {
        let create = |identity: &[(&str, &str)]| Create {
            source_id: "vm".into(),
            name: "vm".into(),
            identity: identity
                .iter()
                .map(|(field, value)| FieldValue {
                    field: (*field).into(),
                    value: (*value).into(),
                    from: "test".into(),
                })
                .collect(),
            fields: Vec::new(),
            context: Default::default(),
        };
        // A VM's own rows (each VM the parent of its `Registered on` row): apart.
        let own = [
            create(&[("parent", "vm-1"), ("child", "host-1")]),
            create(&[("parent", "vm-2"), ("child", "host-1")]),
        ];
        assert!(reads_apart(&own));
        // A cluster's `Contains` rows share their parent: a check reads them all.
        let shared = [
            create(&[("parent", "cluster-1"), ("child", "host-1")]),
            create(&[("parent", "Cluster-1 "), ("child", "host-2")]),
        ];
        assert!(!reads_apart(&shared));
        // The same value under other identity fields is another read.
        let other = [
            create(&[("object_id", "vm-1")]),
            create(&[("parent", "vm-1"), ("child", "host-1")]),
        ];
        assert!(reads_apart(&other));
        assert!(reads_apart(&[]));
    }

    fn change(field: &str, current: &str, desired: &str) -> Change {
        Change {
            field: field.into(),
            current: current.into(),
            desired: desired.into(),
            mode: FieldMode::Authoritative,
            from: "test".into(),
        }
    }

    fn ci(fields: &[(&str, &str)]) -> Ci {
        Ci::new("s1", fields.iter().map(|(k, v)| (*k, v.to_string())))
    }

    fn planned<'a>(changes: Vec<&'a Change>, count: &'a str, delete: bool) -> Planned<'a> {
        Planned {
            sys_id: "s1",
            source_id: Some("42"),
            sys_mod_count: count,
            sys_updated_on: if count.is_empty() {
                ""
            } else {
                "2026-11-26 12:00:00"
            },
            changes,
            delete,
        }
    }

    #[test]
    fn an_unchanged_ci_is_written() {
        let c = change("cpus", "2", "4");
        let current = ci(&[
            ("cpus", "2"),
            ("sys_mod_count", "3"),
            ("sys_updated_on", "2026-11-26 12:00:00"),
        ]);
        match check_version(&planned(vec![&c], "3", false), Some(&current)) {
            Ok(Write::Patch { fields, .. }) => {
                assert_eq!(fields, vec![("cpus".to_string(), "4".to_string())])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_ci_changed_since_the_plan_is_stale() {
        let c = change("cpus", "2", "4");
        let current = ci(&[
            ("cpus", "8"),
            ("sys_mod_count", "5"),
            ("sys_updated_on", "2026-11-27 01:00:00"),
        ]);
        let outcome = check_version(&planned(vec![&c], "3", false), Some(&current)).unwrap_err();
        assert_eq!(outcome.status, OutcomeStatus::SkippedStale);
        assert!(
            outcome.message.contains("sys_mod_count 3 -> 5"),
            "{}",
            outcome.message
        );
    }

    #[test]
    fn a_ci_already_holding_the_values_is_skipped() {
        let c = change("cpus", "2", "4");
        let current = ci(&[
            ("cpus", "4"),
            ("sys_mod_count", "4"),
            ("sys_updated_on", "2026-11-27 01:00:00"),
        ]);
        let outcome = check_version(&planned(vec![&c], "3", false), Some(&current)).unwrap_err();
        assert_eq!(outcome.status, OutcomeStatus::Skipped);
    }

    #[test]
    fn a_journal_entry_does_not_count_as_a_planned_value_still_to_write() {
        let state = change("state", "2", "7");
        let mut note = change("work_notes", "", "closed by CloudForms");
        note.mode = FieldMode::Append;
        let current = |state: &str| {
            ci(&[
                ("state", state),
                ("sys_mod_count", "3"),
                ("sys_updated_on", "2026-11-26 12:00:00"),
            ])
        };
        // Already closed (a run whose answer was lost): skipped, the note is not sent twice.
        let outcome = check_version(
            &planned(vec![&state, &note], "3", false),
            Some(&current("7")),
        )
        .unwrap_err();
        assert_eq!(outcome.status, OutcomeStatus::Skipped);
        match check_version(
            &planned(vec![&state, &note], "3", false),
            Some(&current("2")),
        ) {
            Ok(Write::Patch {
                fields, journal, ..
            }) => {
                assert_eq!(fields.len(), 2);
                assert_eq!(journal, ["work_notes"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gone_cis_and_unversioned_plans() {
        let c = change("cpus", "2", "4");
        assert_eq!(
            check_version(&planned(vec![&c], "3", false), None)
                .unwrap_err()
                .status,
            OutcomeStatus::SkippedStale
        );
        assert_eq!(
            check_version(&planned(vec![], "3", true), None)
                .unwrap_err()
                .status,
            OutcomeStatus::Skipped
        );
        let current = ci(&[("cpus", "2"), ("sys_mod_count", "3")]);
        let outcome = check_version(&planned(vec![&c], "", false), Some(&current)).unwrap_err();
        assert!(
            outcome.message.contains("no version"),
            "{}",
            outcome.message
        );
    }
}
