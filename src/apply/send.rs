//! Sending writes: bounded concurrency, retries through [`Attempts`], batches, and writes
//! whose answer was lost read back before anything else happens to them. Every request's
//! result goes to the [`Guard`], and nothing is sent once it says stop.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::net::{decide, Attempts, Decision, ErrorKind, HttpError};
use crate::servicenow::{BatchRequest, ServiceNow};

use super::guard::{Guard, Halt};
use super::write::{ReadBack, Write};
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
                vec![run_one(&sn, &table, &write, &opts, &guard, None).await]
            } else {
                run_batch(&sn, &table, unit, &opts, &guard).await
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
    outcomes
}

/// Whether the server may have carried out a request whose answer we did not get.
fn maybe_processed(e: &HttpError) -> bool {
    matches!(e.kind, ErrorKind::Interrupted | ErrorKind::Timeout)
        || matches!(e.status, Some(502 | 504))
}

/// One write, retried per the policy until the guard says stop. When its answer is lost
/// (`lost`, or a send that broke off) the CMDB is read back before anything else: done is
/// `applied`, not done is a failed attempt (sent again while the policy allows, `failed`
/// after), and a read-back that fails too leaves it `unknown`, never sent again, since it
/// may have happened.
pub(super) async fn run_one(
    sn: &ServiceNow,
    table: &str,
    write: &Write,
    opts: &ApplyOptions,
    guard: &Guard,
    mut lost: Option<HttpError>,
) -> OperationOutcome {
    let mut attempts = Attempts::new(&opts.retry, write.verb());
    let mut last = None;
    loop {
        let failure = match lost.take() {
            Some(answer) => {
                // Counted now: a hung server times out every write, and the breaker must
                // not wait for the read-backs to time out too.
                guard.failed(&answer);
                match write.read_back(sn, table, &opts.retry, guard).await {
                    Ok(ReadBack::Settled(outcome)) => {
                        if outcome.status == OutcomeStatus::Applied {
                            guard.succeeded();
                        }
                        return outcome;
                    }
                    Ok(ReadBack::NotDone(why)) => {
                        let mut failure = answer;
                        failure.message = format!("{}; read back: {why}", failure.message);
                        last = Some(failure.clone());
                        if let Err(halt) = guard.wait(&mut attempts, failure).await {
                            return write.halted(&halt);
                        }
                        continue;
                    }
                    Err(halt) => {
                        let why = match &halt {
                            Halt::Failed(e) => format!("reading it back failed: {e}"),
                            Halt::Stopped { reason, .. } => format!("not read back: {reason}"),
                        };
                        return write.outcome(
                            OutcomeStatus::Unknown,
                            None,
                            format!(
                                "the answer was lost ({answer}) and {why}; whether the {} happened is unknown: check the CI",
                                write.verb()
                            ),
                        );
                    }
                }
            }
            None => {
                if let Some(reason) = guard.stopped() {
                    return write.halted(&Halt::Stopped { reason, last });
                }
                match write.send(sn, table).await {
                    Ok(written) => {
                        guard.succeeded();
                        return write.landed(written);
                    }
                    Err(e) if maybe_processed(&e) => {
                        lost = Some(e);
                        continue;
                    }
                    Err(e) => e,
                }
            }
        };
        guard.failed(&failure);
        last = Some(failure.clone());
        if let Err(halt) = guard.wait(&mut attempts, failure).await {
            return write.halted(&halt);
        }
    }
}

/// A batch of updates and deletes. A batch request that failed before the instance saw it
/// is sent again whole; one whose answer was lost is read back write by write; items that
/// fail inside it are retried one by one.
async fn run_batch(
    sn: &ServiceNow,
    table: &str,
    unit: Vec<Write>,
    opts: &ApplyOptions,
    guard: &Guard,
) -> Vec<OperationOutcome> {
    let requests: Vec<BatchRequest> = unit.iter().map(|w| w.request(table)).collect();
    let mut attempts = Attempts::new(&opts.retry, "batch");
    let mut last = None;
    let results = loop {
        if let Some(reason) = guard.stopped() {
            let halt = Halt::Stopped { reason, last };
            return unit.iter().map(|w| w.halted(&halt)).collect();
        }
        match sn.batch(&requests).await {
            Ok(results) => {
                guard.succeeded();
                break results;
            }
            Err(e) if maybe_processed(&e) => {
                let mut outcomes = Vec::with_capacity(unit.len());
                for write in &unit {
                    outcomes.push(run_one(sn, table, write, opts, guard, Some(e.clone())).await);
                }
                return outcomes;
            }
            Err(e) => {
                guard.failed(&e);
                last = Some(e.clone());
                if let Err(halt) = guard.wait(&mut attempts, e).await {
                    let message = format!("batch failed: {}", halt.message());
                    return unit
                        .iter()
                        .map(|w| w.outcome(OutcomeStatus::Failed, None, message.clone()))
                        .collect();
                }
            }
        }
    };
    let mut outcomes = Vec::with_capacity(unit.len());
    for (write, result) in unit.iter().zip(results) {
        outcomes.push(match result {
            Ok(written) => write.landed(written),
            Err(e) if maybe_processed(&e) => run_one(sn, table, write, opts, guard, Some(e)).await,
            Err(e) if decide(&opts.retry, &e, 1, 0.0) != Decision::GiveUp => {
                run_one(sn, table, write, opts, guard, None).await
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
