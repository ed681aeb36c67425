//! The executor: carries out exactly a reviewed plan against ServiceNow, with bounded
//! concurrency, retries decided by [`crate::net::decide`], idempotent creates and stale-CI
//! detection. Every operation ends with an [`OperationOutcome`]; one failure never stops the
//! others.
//!
//! - Creates: when a create's response is lost (reset, timeout, gateway error), the CI is
//!   looked up by its identity before anything is sent again, so a retry never duplicates it.
//! - Updates and retirements: the CIs' current versions are read first (in `IN` chunks, one
//!   round trip per hundred CIs); a CI whose `sys_mod_count`/`sys_updated_on` differs from the
//!   plan was changed since the owners reviewed it and is skipped as stale, and one that
//!   already holds the planned values is skipped as already applied (so applying a plan twice
//!   writes nothing the second time).
//! - With `batch_size` > 1, updates, retirements and deletes travel through the Batch API;
//!   items that fail there are retried one by one.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::net::{decide, Attempts, Decision, ErrorKind, HttpError, RetryPolicy};
use crate::reconcile::plan::{Change, Create, Plan, RetireAction};
use crate::reconcile::record::Ci;
use crate::servicenow::{BatchRequest, ServiceNow};

pub mod outcome;

pub use outcome::{tally, OperationOutcome, OutcomeStatus};

/// How to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Operations (or batches) in flight at once.
    pub concurrency: usize,
    /// Writes per Batch API request; 0 or 1 sends each write on its own.
    pub batch_size: usize,
    pub retry: RetryPolicy,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            concurrency: 8,
            batch_size: 0,
            retry: RetryPolicy::default(),
        }
    }
}

/// One write to carry out.
#[derive(Debug, Clone)]
enum Write {
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
    fn outcome(
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

    fn request(&self, table: &str) -> BatchRequest {
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
    fn verb(&self) -> &'static str {
        match self {
            Write::Create(_) => "create",
            Write::Patch { .. } => "update",
            Write::Delete { .. } => "delete",
        }
    }

    /// Sends the write once; the sys_id of the record written (none for a delete).
    async fn send(&self, sn: &ServiceNow, table: &str) -> Result<Option<String>, HttpError> {
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

/// A planned write to an existing CI, with the version it was planned against.
struct Planned<'a> {
    sys_id: &'a str,
    source_id: Option<&'a str>,
    sys_mod_count: &'a str,
    sys_updated_on: &'a str,
    changes: Vec<&'a Change>,
    delete: bool,
}

/// Applies the plan; returns one outcome per planned operation. The caller has already
/// checked that no guard refuses the plan.
pub async fn apply(plan: &Plan, sn: &ServiceNow, opts: &ApplyOptions) -> Vec<OperationOutcome> {
    let table = plan.mapping.table.as_str();
    let mut outcomes = Vec::new();

    let planned: Vec<Planned> = plan
        .updates
        .iter()
        .filter(|u| u.has_writes())
        .map(|u| Planned {
            sys_id: &u.sys_id,
            source_id: Some(&u.source_id),
            sys_mod_count: &u.sys_mod_count,
            sys_updated_on: &u.sys_updated_on,
            changes: u.changes.iter().filter(|c| c.is_write()).collect(),
            delete: false,
        })
        .chain(plan.retirements.iter().map(|r| Planned {
            sys_id: &r.sys_id,
            source_id: None,
            sys_mod_count: &r.sys_mod_count,
            sys_updated_on: &r.sys_updated_on,
            changes: r.changes.iter().collect(),
            delete: r.action == RetireAction::Delete,
        }))
        .collect();

    let mut writes: Vec<Write> = Vec::new();
    match existing_identities(sn, table, &plan.creates, &opts.retry).await {
        Ok(existing) => {
            for create in &plan.creates {
                match existing.get(&identity_key(create)) {
                    // Applied before (the same plan twice, or a run that died after the
                    // write): creating again would duplicate the CI.
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
        Err(e) => {
            for create in &plan.creates {
                outcomes.push(OperationOutcome {
                    sys_id: None,
                    source_id: Some(create.source_id.clone()),
                    status: OutcomeStatus::Failed,
                    message: format!("could not check that the CI does not exist yet: {e}"),
                });
            }
        }
    }
    match current_versions(sn, table, &planned, &opts.retry).await {
        Ok(current) => {
            for p in &planned {
                match check_version(p, current.get(p.sys_id)) {
                    Ok(write) => writes.push(write),
                    Err(outcome) => outcomes.push(outcome),
                }
            }
        }
        Err(e) => {
            // Without the versions no write to an existing CI can be proven fresh.
            for p in &planned {
                outcomes.push(OperationOutcome {
                    sys_id: Some(p.sys_id.to_owned()),
                    source_id: p.source_id.map(str::to_owned),
                    status: OutcomeStatus::Failed,
                    message: format!("could not read the CI's current version: {e}"),
                });
            }
        }
    }

    outcomes.extend(execute(sn, table, writes, opts).await);
    outcome::sort_in_plan_order(plan, &mut outcomes);
    outcomes
}

/// The current version and values of the CIs about to be written, by sys_id.
async fn current_versions(
    sn: &ServiceNow,
    table: &str,
    planned: &[Planned<'_>],
    retry: &RetryPolicy,
) -> Result<HashMap<String, Ci>, HttpError> {
    if planned.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<String> = planned.iter().map(|p| p.sys_id.to_owned()).collect();
    let mut fields: Vec<String> = ["sys_id", "sys_mod_count", "sys_updated_on"]
        .map(String::from)
        .to_vec();
    for change in planned.iter().flat_map(|p| &p.changes) {
        if !fields.contains(&change.field) {
            fields.push(change.field.clone());
        }
    }
    let rows = crate::net::with_retry(retry, "read CI versions", |_| {
        sn.read_where_in(table, "sys_id", &ids, &fields)
    })
    .await?;
    Ok(rows.into_iter().map(|ci| (ci.sys_id.clone(), ci)).collect())
}

/// A create's identity values, normalised as identification compares them.
fn identity_key(create: &Create) -> Vec<(String, String)> {
    create
        .identity
        .iter()
        .map(|f| (f.field.clone(), f.value.trim().to_lowercase()))
        .collect()
}

/// The CIs that already carry a planned create's identity (identity -> sys_id): one `IN`
/// read per hundred creates, on the first identity field, matched in full here.
async fn existing_identities(
    sn: &ServiceNow,
    table: &str,
    creates: &[Create],
    retry: &RetryPolicy,
) -> Result<HashMap<Vec<(String, String)>, String>, HttpError> {
    let mut by_fields: HashMap<Vec<String>, Vec<&Create>> = HashMap::new();
    for c in creates {
        let fields = c.identity.iter().map(|f| f.field.clone()).collect();
        by_fields.entry(fields).or_default().push(c);
    }
    let mut existing = HashMap::new();
    for (fields, group) in by_fields {
        let Some(first) = fields.first() else {
            continue;
        };
        let values: Vec<String> = group.iter().map(|c| c.identity[0].value.clone()).collect();
        let mut wanted = fields.clone();
        wanted.push("sys_id".into());
        let rows = crate::net::with_retry(retry, "look up planned creates", |_| {
            sn.read_where_in(table, first, &values, &wanted)
        })
        .await?;
        for ci in rows {
            let key: Vec<(String, String)> = fields
                .iter()
                .map(|f| (f.clone(), ci.get(f).trim().to_lowercase()))
                .collect();
            existing.insert(key, ci.sys_id.clone());
        }
    }
    Ok(existing)
}

/// Whether a planned write may go ahead: the CI must exist, hold the version it was planned
/// against, and not already hold the planned values.
fn check_version(p: &Planned, current: Option<&Ci>) -> Result<Write, OperationOutcome> {
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
    if !p.delete
        && p.changes
            .iter()
            .all(|c| ci.get(&c.field).trim() == c.desired.trim())
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
        }
    })
}

/// Runs the writes with bounded concurrency; batched where asked (creates always go alone,
/// so that a lost response can be resolved by looking the CI up).
async fn execute(
    sn: &ServiceNow,
    table: &str,
    writes: Vec<Write>,
    opts: &ApplyOptions,
) -> Vec<OperationOutcome> {
    let semaphore = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    crate::progress::writes_started(writes.len() as u64);
    let mut tasks: JoinSet<Vec<OperationOutcome>> = JoinSet::new();
    let (creates, others): (Vec<Write>, Vec<Write>) = writes
        .into_iter()
        .partition(|w| matches!(w, Write::Create(_)));
    let mut units: Vec<Vec<Write>> = creates.into_iter().map(|w| vec![w]).collect();
    if opts.batch_size > 1 {
        let mut others = others;
        while !others.is_empty() {
            let rest = others.split_off(others.len().min(opts.batch_size));
            units.push(std::mem::replace(&mut others, rest));
        }
    } else {
        units.extend(others.into_iter().map(|w| vec![w]));
    }
    for unit in units {
        let (sn, table, opts, semaphore) = (sn.clone(), table.to_owned(), *opts, semaphore.clone());
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            if unit.len() == 1 {
                let write = unit.into_iter().next().expect("one write");
                vec![run_one(&sn, &table, &write, &opts).await]
            } else {
                run_batch(&sn, &table, unit, &opts).await
            }
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(batch) => {
                crate::progress::writes_done(batch.len() as u64);
                outcomes.extend(batch)
            }
            // A panicking task is a bug; its operations are reported, not lost.
            Err(e) => outcomes.push(OperationOutcome {
                sys_id: None,
                source_id: None,
                status: OutcomeStatus::Failed,
                message: format!("internal error while applying: {e}"),
            }),
        }
    }
    crate::progress::writes_finished();
    outcomes
}

/// Whether the server may have carried out a request whose answer we did not get.
fn maybe_processed(e: &HttpError) -> bool {
    matches!(e.kind, ErrorKind::Interrupted | ErrorKind::Timeout)
        || matches!(e.status, Some(502 | 504))
}

/// One write, retried per the policy. A create whose outcome is unknown is looked up by
/// identity before it is sent again, and again before every later send until a lookup
/// answers: a failed lookup leaves the outcome as unknown as before.
async fn run_one(
    sn: &ServiceNow,
    table: &str,
    write: &Write,
    opts: &ApplyOptions,
) -> OperationOutcome {
    let mut attempts = Attempts::new(&opts.retry, write.verb());
    let mut must_look_up = false;
    loop {
        if let (true, Write::Create(create)) = (must_look_up, write) {
            match look_up_lost_create(sn, table, write, create).await {
                Ok(Some(outcome)) => return outcome,
                // Not there: the create never happened, so sending it again is safe.
                Ok(None) => {}
                Err(e) => match attempts.wait(e).await {
                    Ok(()) => continue,
                    Err(e) => {
                        return write.outcome(
                            OutcomeStatus::Failed,
                            None,
                            format!("the create's outcome is unknown and the lookup failed: {e}"),
                        )
                    }
                },
            }
        }
        match write.send(sn, table).await {
            Ok(sys_id) => return write.outcome(OutcomeStatus::Applied, sys_id, ""),
            Err(e) => {
                must_look_up = matches!(write, Write::Create(_)) && maybe_processed(&e);
                if let Err(e) = attempts.wait(e).await {
                    return write.outcome(OutcomeStatus::Failed, None, e.to_string());
                }
            }
        }
    }
}

/// A create whose answer was lost, looked up by its identity: the outcome when the lookup
/// settles it (found once: created; found several times: not creating another), `None`
/// when no CI has the identity, so the create never happened.
async fn look_up_lost_create(
    sn: &ServiceNow,
    table: &str,
    write: &Write,
    create: &Create,
) -> Result<Option<OperationOutcome>, HttpError> {
    let identity: Vec<(String, String)> = create
        .identity
        .iter()
        .map(|f| (f.field.clone(), f.value.clone()))
        .collect();
    let found = sn.find(table, &identity, &["sys_id".to_owned()]).await?;
    Ok(match found.as_slice() {
        [] => None,
        [ci] => Some(write.outcome(
            OutcomeStatus::Applied,
            Some(ci.sys_id.clone()),
            "created (the response was lost; found by identity)",
        )),
        several => Some(write.outcome(
            OutcomeStatus::Failed,
            None,
            format!(
                "{} CIs now match the identity; not creating another",
                several.len()
            ),
        )),
    })
}

/// A batch of updates and deletes. If the batch request itself fails it is retried whole
/// (these writes are idempotent); items that fail inside it are retried one by one.
async fn run_batch(
    sn: &ServiceNow,
    table: &str,
    unit: Vec<Write>,
    opts: &ApplyOptions,
) -> Vec<OperationOutcome> {
    let requests: Vec<BatchRequest> = unit.iter().map(|w| w.request(table)).collect();
    let results = crate::net::with_retry(&opts.retry, "batch", |_| sn.batch(&requests)).await;
    let results = match results {
        Ok(results) => results,
        Err(e) => {
            return unit
                .iter()
                .map(|w| w.outcome(OutcomeStatus::Failed, None, format!("batch failed: {e}")))
                .collect()
        }
    };
    let mut outcomes = Vec::with_capacity(unit.len());
    for (write, result) in unit.iter().zip(results) {
        outcomes.push(match result {
            Ok(_) => write.outcome(OutcomeStatus::Applied, None, ""),
            Err(e) if decide(&opts.retry, &e, 1, 0.0) != Decision::GiveUp => {
                run_one(sn, table, write, opts).await
            }
            Err(e) => write.outcome(OutcomeStatus::Failed, None, e.to_string()),
        });
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::plan::FieldMode;

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

    #[test]
    fn outcomes_of_lost_responses() {
        let reset = HttpError::new("POST", "u", ErrorKind::Interrupted, "reset");
        assert!(maybe_processed(&reset));
        let mut gateway = HttpError::new("POST", "u", ErrorKind::Status, "504");
        gateway.status = Some(504);
        assert!(maybe_processed(&gateway));
        let refused = HttpError::new("POST", "u", ErrorKind::Connect, "refused");
        assert!(!maybe_processed(&refused), "never reached the server");
    }
}
