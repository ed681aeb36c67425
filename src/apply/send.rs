//! Sending writes: bounded concurrency, retries through [`Attempts`], creates whose answer
//! was lost looked up before a resend, and batches. Every request's result goes to the
//! [`Guard`], and nothing is sent once it says stop.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::net::{decide, Attempts, Decision, ErrorKind, HttpError};
use crate::reconcile::plan::Create;
use crate::servicenow::{BatchRequest, ServiceNow};

use super::guard::{Guard, Halt};
use super::write::Write;
use super::{ApplyOptions, OperationOutcome, OutcomeStatus};

/// Runs the writes with bounded concurrency; batched where asked (creates always go alone,
/// so that a lost response can be resolved by looking the CI up).
pub(super) async fn execute(
    sn: &ServiceNow,
    table: &str,
    writes: Vec<Write>,
    opts: &ApplyOptions,
    guard: &Guard,
) -> Vec<OperationOutcome> {
    let semaphore = Arc::new(Semaphore::new(opts.concurrency.max(1)));
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
        let guard = guard.clone();
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            if unit.len() == 1 {
                let write = unit.into_iter().next().expect("one write");
                vec![run_one(&sn, &table, &write, &opts, &guard).await]
            } else {
                run_batch(&sn, &table, unit, &opts, &guard).await
            }
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(batch) => outcomes.extend(batch),
            // A panicking task is a bug; its operations are reported, not lost.
            Err(e) => outcomes.push(OperationOutcome {
                sys_id: None,
                source_id: None,
                status: OutcomeStatus::Failed,
                message: format!("internal error while applying: {e}"),
            }),
        }
    }
    outcomes
}

/// Whether the server may have carried out a request whose answer we did not get.
fn maybe_processed(e: &HttpError) -> bool {
    matches!(e.kind, ErrorKind::Interrupted | ErrorKind::Timeout)
        || matches!(e.status, Some(502 | 504))
}

/// One write, retried per the policy until the guard says stop. A create whose outcome is
/// unknown is looked up by identity before it is sent again, and again before every later
/// send until a lookup answers: a failed lookup leaves the outcome as unknown as before.
async fn run_one(
    sn: &ServiceNow,
    table: &str,
    write: &Write,
    opts: &ApplyOptions,
    guard: &Guard,
) -> OperationOutcome {
    let mut attempts = Attempts::new(&opts.retry, write.verb());
    let mut must_look_up = false;
    let mut last = None;
    loop {
        if let Some(reason) = guard.stopped() {
            return write.halted(&Halt::Stopped { reason, last });
        }
        if let (true, Write::Create(create)) = (must_look_up, write) {
            match look_up_lost_create(sn, table, write, create).await {
                Ok(Some(outcome)) => {
                    guard.succeeded();
                    return outcome;
                }
                // Not there: the create never happened, so sending it again is safe.
                Ok(None) => {}
                Err(e) => {
                    guard.failed(&e);
                    match guard.wait(&mut attempts, e).await {
                        Ok(()) => continue,
                        Err(halt) => {
                            return write.outcome(
                                OutcomeStatus::Failed,
                                None,
                                format!(
                                    "the create's outcome is unknown and the lookup failed: {}",
                                    halt.message()
                                ),
                            )
                        }
                    }
                }
            }
        }
        match write.send(sn, table).await {
            Ok(sys_id) => {
                guard.succeeded();
                return write.outcome(OutcomeStatus::Applied, sys_id, "");
            }
            Err(e) => {
                guard.failed(&e);
                must_look_up = matches!(write, Write::Create(_)) && maybe_processed(&e);
                last = Some(e.clone());
                if let Err(halt) = guard.wait(&mut attempts, e).await {
                    return write.halted(&halt);
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
    guard: &Guard,
) -> Vec<OperationOutcome> {
    let requests: Vec<BatchRequest> = unit.iter().map(|w| w.request(table)).collect();
    let results = match guard
        .retry(&opts.retry, "batch", || sn.batch(&requests))
        .await
    {
        Ok(results) => results,
        Err(Halt::Failed(e)) => {
            return unit
                .iter()
                .map(|w| w.outcome(OutcomeStatus::Failed, None, format!("batch failed: {e}")))
                .collect()
        }
        Err(halt) => return unit.iter().map(|w| w.halted(&halt)).collect(),
    };
    let mut outcomes = Vec::with_capacity(unit.len());
    for (write, result) in unit.iter().zip(results) {
        outcomes.push(match result {
            Ok(_) => write.outcome(OutcomeStatus::Applied, None, ""),
            Err(e) if decide(&opts.retry, &e, 1, 0.0) != Decision::GiveUp => {
                run_one(sn, table, write, opts, guard).await
            }
            Err(e) => {
                guard.failed(&e);
                write.outcome(OutcomeStatus::Failed, None, e.to_string())
            }
        });
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ErrorKind;

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
