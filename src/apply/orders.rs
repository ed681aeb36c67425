//! The catalog pass's orders, carried out exactly as planned (README "Service catalog"):
//!
//! 1. Check each RITM just before claiming it: gone, already ordered (`correlation_id` holds a
//!    request), changed since the plan (`sys_mod_count`), no longer approved or active ->
//!    not claimed.
//! 2. Claim: PATCH `state` = Work in Progress, `correlation_id` = `cloudforms:claim:<time>:<run>`
//!    (stamped when it is written: its age is what tells the next pass whether this one may
//!    still be ordering),
//!    `correlation_display` = CloudForms and a work note. The Table API has no conditional
//!    update (integrations.md B.4), so after a settle time every claim is read back: a RITM
//!    whose marker is not this run's was taken by another pass and is left to it. Two passes
//!    could only both win if one stalled longer than the settle time between its check and its
//!    claim; the catalog lease keeps passes apart before that, and step 3 after.
//! 3. Before ordering, CloudForms' requests are searched (once for all claimed RITMs) for a
//!    dialog carrying each RITM number: one found is written back, never ordered again, so a
//!    pass that died between its claim (or its order) and its write-back is resumed without a
//!    second order.
//!    A dialog field the link marks `secret` is not in the plan (`(secret)` stands in its
//!    place): its value is made from this check's read of the RITM, by the link's rule, and
//!    only sent to CloudForms; a RITM that no longer gives it is not claimed.
//! 4. Order (`POST /api/service_templates/:id`, sent once), approve when the plan says so,
//!    then write `correlation_id` = `cloudforms:request:<id>`, `correlation_display` and a
//!    work note to the RITM. A lost answer to the order is settled by searching again; still
//!    nothing is `unknown` (the RITM stays claimed and the next pass searches before it orders).
//!    An order CloudForms refuses (4xx) marks the RITM `cloudforms:refused` with a work note
//!    quoting the refusal: no pass retries it until someone clears `correlation_id`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{Guard, OperationOutcome, OutcomeStatus};
use crate::cloudforms::CloudForms;
use crate::net::HttpError;
use crate::reconcile::catalog::{
    CatalogLink, CLAIM_PREFIX, CLAIM_TIME, DISPLAY, REQUEST_PREFIX, SECRET,
};
use crate::reconcile::plan::{Order, OrderAction, Plan};
use crate::reconcile::record::Val;
use crate::servicenow::ServiceNow;

/// `correlation_id` of a RITM whose order CloudForms refused: not picked up again until a
/// person clears it.
pub const REFUSED: &str = "cloudforms:refused";

/// How a pass carries out its orders.
#[derive(Debug, Clone)]
pub struct OrderOptions {
    /// This run's part of its claim markers (`cloudforms:claim:<time>:<marker>`), unique
    /// per run; the time is the claim's own, from `clock`.
    pub marker: String,
    /// The run's clock (its `now`, moved on by a stopwatch): what claims are stamped with.
    pub clock: crate::lease::Clock,
    /// How long to wait between claiming and reading the claims back.
    pub settle: Duration,
    /// The search covers requests updated since this time.
    pub search_since: chrono::DateTime<chrono::Utc>,
    /// The catalog links the plan was made with (its digest checked by the caller): the
    /// rules that make the secret dialog fields from the RITM.
    pub links: Vec<CatalogLink>,
}

const TABLE: &str = "sc_req_item";

fn outcome(order: &Order, status: OutcomeStatus, message: impl Into<String>) -> OperationOutcome {
    OperationOutcome {
        sys_id: Some(order.ritm_sys_id.clone()),
        source_id: Some(order.ritm_number.clone()),
        status,
        message: message.into(),
    }
}

fn fields(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// The RITM numbers CloudForms' requests carry in a dialog field, by number.
pub fn requests_by_ritm(records: &[Val], ritm_fields: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in records {
        let Some(dialog) = record
            .get("options")
            .and_then(|o| o.get("dialog"))
            .and_then(Val::as_object)
        else {
            continue;
        };
        let id = match record.get("id") {
            Some(Val::String(s)) => s.to_string(),
            Some(Val::Number(n)) => n.to_string(),
            _ => continue,
        };
        for field in ritm_fields {
            let bare = field.strip_prefix("dialog_").unwrap_or(field);
            let Some(number) = dialog
                .get(&format!("dialog_{bare}"))
                .and_then(Val::as_str)
                .map(str::trim)
                .filter(|n| !n.is_empty())
            else {
                continue;
            };
            let ids = found.entry(number.to_owned()).or_default();
            if !ids.contains(&id) {
                ids.push(id.clone());
            }
        }
    }
    found
}

/// Carries out the plan's orders; one outcome per order, in plan order.
pub async fn apply_orders(
    plan: &Plan,
    sn: &ServiceNow,
    cf: &CloudForms,
    opts: &OrderOptions,
    guard: &Guard,
) -> Vec<OperationOutcome> {
    // Each claim's marker, stamped when it is written.
    let mut markers: BTreeMap<&str, String> = BTreeMap::new();
    let mut done: BTreeMap<&str, OperationOutcome> = BTreeMap::new();
    // Each order's secret dialog values, made from the check's read: only ever sent.
    let mut secrets: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    let link_of = |o: &Order| opts.links.iter().find(|l| l.name == o.link);
    let read = |o: &Order| {
        let mut fields: Vec<String> = [
            "correlation_id",
            "sys_mod_count",
            "active",
            "approval",
            "number",
        ]
        .map(str::to_owned)
        .to_vec();
        if !o.secret.is_empty() {
            fields.extend(
                link_of(o)
                    .map(CatalogLink::secret_fields)
                    .unwrap_or_default(),
            );
        }
        let sys_id = o.ritm_sys_id.clone();
        async move { sn.get(TABLE, &sys_id, &fields).await }
    };

    // 1 and 2: check and claim each, the check just before its claim.
    let mut claimed: Vec<&Order> = Vec::new();
    for order in &plan.orders {
        if let Some(reason) = guard.stopped() {
            done.insert(
                &order.ritm_sys_id,
                outcome(
                    order,
                    OutcomeStatus::NotAttempted,
                    format!("not sent: {reason}"),
                ),
            );
            continue;
        }
        let row = match read(order).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                done.insert(
                    &order.ritm_sys_id,
                    outcome(order, OutcomeStatus::Skipped, "the requested item is gone"),
                );
                continue;
            }
            Err(e) => {
                guard.failed(&e);
                done.insert(
                    &order.ritm_sys_id,
                    outcome(
                        order,
                        OutcomeStatus::NotAttempted,
                        format!("could not be checked before its claim: {e}"),
                    ),
                );
                continue;
            }
        };
        let correlation = row.get("correlation_id").trim();
        let stale = if correlation.starts_with(REQUEST_PREFIX) {
            Some((
                OutcomeStatus::Skipped,
                format!("already ordered: {correlation}"),
            ))
        } else if row.get("sys_mod_count").trim() != order.sys_mod_count.trim() {
            Some((
                OutcomeStatus::SkippedStale,
                format!(
                    "the requested item changed since the plan (sys_mod_count {} -> {})",
                    order.sys_mod_count,
                    row.get("sys_mod_count")
                ),
            ))
        } else if row.get("active").trim() != "true" || row.get("approval").trim() != "approved" {
            Some((
                OutcomeStatus::SkippedStale,
                "the requested item is no longer approved and active".to_owned(),
            ))
        } else if order.secret.is_empty() || order.action == OrderAction::Resume {
            // A resume writes back the request found: nothing is ordered, nothing secret sent.
            None
        } else {
            let values = match link_of(order) {
                Some(link) => link.secret_values(&row, &order.secret),
                None => Err(format!(
                    "the catalog link `{}` is not in the config, so its secret dialog fields cannot be read",
                    order.link
                )),
            };
            match values {
                Ok(values) => {
                    secrets.insert(&order.ritm_sys_id, values);
                    None
                }
                Err(why) => Some((OutcomeStatus::SkippedStale, format!("{why}: not claimed"))),
            }
        };
        if let Some((status, message)) = stale {
            done.insert(&order.ritm_sys_id, outcome(order, status, message));
            continue;
        }
        let marker = format!(
            "{CLAIM_PREFIX}{}:{}",
            opts.clock.now().format(CLAIM_TIME),
            opts.marker
        );
        let note = format!(
            "cmdb-reconcile claims {} to order CloudForms service template \"{}\" ({}); claim {marker}.",
            order.ritm_number, order.template, order.template_id
        );
        let claim = fields(&[
            ("state", order.claim_state.clone()),
            ("correlation_id", marker.clone()),
            ("correlation_display", DISPLAY.to_owned()),
            ("work_notes", note),
        ]);
        match sn.update(TABLE, &order.ritm_sys_id, &claim).await {
            Ok(_) => {
                guard.succeeded();
                markers.insert(&order.ritm_sys_id, marker);
                claimed.push(order);
            }
            Err(e) => {
                guard.failed(&e);
                // The claim may have landed (a lost answer): the read-back below cannot tell
                // it from another pass's without a marker, so the RITM is left to the next
                // pass, which resumes a claim it finds after searching CloudForms.
                done.insert(
                    &order.ritm_sys_id,
                    outcome(
                        order,
                        OutcomeStatus::Failed,
                        format!("claim not written: {e}"),
                    ),
                );
            }
        }
    }

    // The read-back, after the settle time: only this run's claims are ordered.
    if !claimed.is_empty() {
        tokio::time::sleep(opts.settle).await;
    }
    let mut ours: Vec<&Order> = Vec::new();
    for order in claimed {
        match read(order).await {
            Ok(Some(row))
                if markers.get(order.ritm_sys_id.as_str()).map(String::as_str)
                    == Some(row.get("correlation_id").trim()) =>
            {
                ours.push(order)
            }
            Ok(Some(row)) => {
                done.insert(
                    &order.ritm_sys_id,
                    outcome(
                        order,
                        OutcomeStatus::Skipped,
                        format!(
                            "claimed by another pass meanwhile ({}): left to it",
                            row.get("correlation_id")
                        ),
                    ),
                );
            }
            Ok(None) => {
                done.insert(
                    &order.ritm_sys_id,
                    outcome(order, OutcomeStatus::Skipped, "the requested item is gone"),
                );
            }
            Err(e) => {
                done.insert(
                    &order.ritm_sys_id,
                    outcome(
                        order,
                        OutcomeStatus::NotAttempted,
                        format!("the claim could not be read back ({e}); the next pass resumes it"),
                    ),
                );
            }
        }
    }

    // 3: one search for all claimed RITMs.
    let mut found = BTreeMap::new();
    if !ours.is_empty() {
        let mut ritm_fields: Vec<String> = ours.iter().map(|o| o.ritm_field.clone()).collect();
        ritm_fields.sort();
        ritm_fields.dedup();
        match search(cf, opts, &ritm_fields).await {
            Ok(f) => found = f,
            Err(why) => {
                for order in ours.drain(..) {
                    done.insert(
                        &order.ritm_sys_id,
                        outcome(
                            order,
                            OutcomeStatus::NotAttempted,
                            format!(
                                "not ordered: CloudForms' requests could not be searched for {} ({why}); it stays claimed and the next pass resumes it",
                                order.ritm_number
                            ),
                        ),
                    );
                }
            }
        }
    }

    // 4: order (or take the request found), approve, write back.
    let none = BTreeMap::new();
    for order in ours {
        let secret = secrets.get(order.ritm_sys_id.as_str()).unwrap_or(&none);
        let result = order_one(order, secret, &found, sn, cf, opts, guard).await;
        done.insert(&order.ritm_sys_id, result);
    }
    plan.orders
        .iter()
        .filter_map(|o| done.remove(o.ritm_sys_id.as_str()))
        .collect()
}

async fn search(
    cf: &CloudForms,
    opts: &OrderOptions,
    ritm_fields: &[String],
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let read = cf
        .service_requests_since(opts.search_since)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(why) = read.incomplete {
        return Err(why);
    }
    Ok(requests_by_ritm(&read.records, ritm_fields))
}

/// `error` without any of the secret values it might quote (a refusal echoing the dialog).
fn redact(mut error: HttpError, secret: &BTreeMap<String, String>) -> HttpError {
    for value in secret.values().filter(|v| !v.is_empty()) {
        error.message = error.message.replace(value.as_str(), SECRET);
    }
    error
}

async fn order_one(
    order: &Order,
    secret: &BTreeMap<String, String>,
    found: &BTreeMap<String, Vec<String>>,
    sn: &ServiceNow,
    cf: &CloudForms,
    opts: &OrderOptions,
    guard: &Guard,
) -> OperationOutcome {
    let existing = found.get(&order.ritm_number).cloned().unwrap_or_default();
    if existing.len() > 1 {
        return outcome(
            order,
            OutcomeStatus::Failed,
            format!(
                "CloudForms holds {} requests carrying {} ({}); left claimed for a person to cancel the extra ones",
                existing.len(),
                order.ritm_number,
                existing.join(", ")
            ),
        );
    }
    // A request the plan found (`resume`) is written back even if this search missed it (an
    // `apply` of an older plan, a narrower window): a resume is never ordered.
    let (request, ordered_now) = match existing
        .into_iter()
        .next()
        .or_else(|| order.request_id.clone())
    {
        Some(id) => (id, false),
        None => {
            if let Some(reason) = guard.stopped() {
                return outcome(
                    order,
                    OutcomeStatus::NotAttempted,
                    format!("not ordered: {reason}; it stays claimed and the next pass resumes it"),
                );
            }
            let mut dialog: Vec<(String, String)> = Vec::new();
            for f in &order.dialog {
                let value = if order.secret.contains(&f.field) {
                    // Made by the check before the claim; never in the plan.
                    let Some(value) = secret.get(&f.field) else {
                        return outcome(
                            order,
                            OutcomeStatus::NotAttempted,
                            format!("not ordered: the secret dialog field `{}` was not read; it stays claimed and the next pass resumes it", f.field),
                        );
                    };
                    value.clone()
                } else {
                    f.value.clone()
                };
                dialog.push((f.field.clone(), value));
            }
            match cf
                .order(&order.template_id, &dialog)
                .await
                .map_err(|e| redact(e, secret))
            {
                Ok(id) => {
                    guard.succeeded();
                    (id, true)
                }
                Err(e) if refused(&e) => return refuse(order, sn, &e).await,
                Err(e) => {
                    guard.failed(&e);
                    // The answer may be lost while the order was placed: search again.
                    let again = search(cf, opts, std::slice::from_ref(&order.ritm_field)).await;
                    match again.as_ref().map(|f| f.get(&order.ritm_number)) {
                        Ok(Some(ids)) if ids.len() == 1 => (ids[0].clone(), true),
                        _ => {
                            return outcome(
                                order,
                                OutcomeStatus::Unknown,
                                format!(
                                    "the order's answer was lost ({e}) and no request carries {} yet; it stays claimed and the next pass searches again before ordering",
                                    order.ritm_number
                                ),
                            )
                        }
                    }
                }
            }
        }
    };
    let mut problems = Vec::new();
    let mut approved = String::new();
    if let Some(reason) = &order.approve {
        // Only a request still awaiting approval is approved (a resumed one may be past it).
        let pending = if ordered_now {
            true
        } else {
            cf.get_json(&format!(
                "service_requests/{request}?attributes=approval_state"
            ))
            .await
            .map(|r| r.get("approval_state").and_then(Value::as_str) == Some("pending_approval"))
            .unwrap_or(false)
        };
        if pending {
            match cf.approve(&request, reason).await {
                Ok(()) => approved = " and approved it (the RITM's approval)".to_owned(),
                Err(e) => problems.push(format!(
                    "approving request {request} failed ({e}): approve it in CloudForms"
                )),
            }
        }
    }
    let verb = if ordered_now {
        "Ordered"
    } else {
        "Found the order"
    };
    let note = format!(
        "{verb} CloudForms service template \"{}\" ({}): request {request}{approved}. Progress follows in work notes.",
        order.template, order.template_id
    );
    let write = fields(&[
        ("correlation_id", format!("{REQUEST_PREFIX}{request}")),
        ("correlation_display", DISPLAY.to_owned()),
        ("work_notes", note),
    ]);
    if let Err(e) = sn.update(TABLE, &order.ritm_sys_id, &write).await {
        guard.failed(&e);
        problems.push(format!(
            "request {request} not written to the RITM ({e}); the next pass finds it by {} and writes it",
            order.ritm_number
        ));
    }
    if problems.is_empty() {
        let what = if order.action == OrderAction::Resume || !ordered_now {
            "resumed"
        } else {
            "ordered"
        };
        outcome(
            order,
            OutcomeStatus::Applied,
            format!("{what}: request {request}"),
        )
    } else {
        outcome(order, OutcomeStatus::Failed, problems.join("; "))
    }
}

/// A refusal CloudForms means (a 4xx other than an expired token or rate limit): the order
/// was not placed and sending it again cannot help.
fn refused(e: &HttpError) -> bool {
    e.status
        .is_some_and(|s| (400..500).contains(&s) && s != 401 && s != 408 && s != 429)
}

async fn refuse(order: &Order, sn: &ServiceNow, e: &HttpError) -> OperationOutcome {
    let note = format!(
        "CloudForms refused the order of service template \"{}\" ({}): {}. Fix the request or the catalog link, then clear Correlation ID to order again.",
        order.template, order.template_id, e.message
    );
    let write = fields(&[("correlation_id", REFUSED.to_owned()), ("work_notes", note)]);
    let written = sn.update(TABLE, &order.ritm_sys_id, &write).await;
    let mut message = format!("CloudForms refused the order: {e}");
    if let Err(w) = written {
        message.push_str(&format!(
            "; the refusal was not written to the RITM ({w}), so the next pass tries again"
        ));
    }
    outcome(order, OutcomeStatus::Failed, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_are_found_by_the_ritm_number_in_their_dialog() {
        let records = vec![
            json!({"id": "1", "options": {"dialog": {"dialog_ritm_number": "RITM1", "dialog_vm_name": "a"}}}),
            json!({"id": 2, "options": {"dialog": {"dialog_ritm_number": " RITM2 "}}}),
            json!({"id": "3", "options": {"dialog": {"dialog_ritm_number": "RITM1"}}}),
            json!({"id": "4", "options": {"src_vm_id": [1, "t"]}}),
            json!({"id": "5", "options": {"dialog": {"dialog_other": "RITM9"}}}),
        ];
        let read = crate::reconcile::record::SourceRead::from_json(String::new(), records, None);
        let found = requests_by_ritm(&read.records, &["ritm_number".to_owned()]);
        assert_eq!(
            found,
            BTreeMap::from([
                ("RITM1".to_owned(), vec!["1".to_owned(), "3".to_owned()]),
                ("RITM2".to_owned(), vec!["2".to_owned()]),
            ])
        );
    }
}
