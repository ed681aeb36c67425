//! The change request state model, as a Table API client meets it: the states of a normal
//! change in order, New (-5) -> Assess (-4) -> Authorize (-3) -> Scheduled (-2) -> Implement
//! (-1) -> Review (0) -> Closed (3), Canceled (4) from any open state (ServiceNowDocs
//! `change-management/c_ChangeStateModel.md` "State model and transitions" and
//! `normal-standard-emergency-states.md`: standard changes go from New to Scheduled,
//! emergency ones skip Assess). Closed and Canceled are final.
//!
//! The approvals are the instance's, not the client's: moving New -> Assess ("Request
//! Approval") sets `approval` to `requested` (the approvers are asked); the moves past
//! Assess and Authorize are made by the approval itself (the docs' "Change Management and
//! the CAB ... provide final authorization"), so a client asking for them while `approval`
//! is not `approved` is refused. Here a test or the demo stands in for the approvers with
//! [`super::ServiceNow::decide_change`]: approved moves the change to Scheduled, rejected
//! sends it back to New with `approval` `rejected` (the base normal change flow's behaviour
//! on a rejection; UNVERIFIED beyond that flow's description).
//!
//! A refused move is answered as a business rule's abort is: 403 `Operation Failed` with
//! `Error during update of change_request (<number>)` (the detail's wording past that, the
//! reason, is the simulator's, to help a reader of a failed test). A new change must start
//! New: its first state is the model's initial state (an assumption: the state model's
//! rule runs on insert too).

use axum::http::StatusCode;

use super::api::ApiResponse;
use super::schema::TableId;
use super::store::Store;

pub(crate) const NEW: &str = "-5";
pub(crate) const ASSESS: &str = "-4";
pub(crate) const AUTHORIZE: &str = "-3";
pub(crate) const SCHEDULED: &str = "-2";
const IMPLEMENT: &str = "-1";
const REVIEW: &str = "0";
const CLOSED: &str = "3";
const CANCELED: &str = "4";

/// The normal model's order.
const NORMAL: [&str; 7] = [NEW, ASSESS, AUTHORIZE, SCHEDULED, IMPLEMENT, REVIEW, CLOSED];

/// Whether rows of `class` follow the change model.
pub(crate) fn governs(store: &Store, class: TableId) -> bool {
    store
        .table("change_request")
        .is_some_and(|change| store.schema().extends(class, change))
}

/// Why moving a change of `kind` with `approval` from `from` to `to` is refused, if it is.
fn refusal(kind: &str, approval: &str, from: &str, to: &str) -> Option<String> {
    if from == to {
        return None;
    }
    if from == CLOSED || from == CANCELED {
        return Some(format!("the change is final (state {from})"));
    }
    if to == CANCELED {
        return None;
    }
    let skip_to = match kind {
        "standard" => Some((NEW, SCHEDULED)),
        "emergency" => Some((NEW, AUTHORIZE)),
        _ => None,
    };
    let next = NORMAL
        .iter()
        .position(|s| *s == from)
        .and_then(|i| NORMAL.get(i + 1));
    let allowed = next == Some(&to) || skip_to == Some((from, to));
    if !allowed {
        return Some(format!("invalid state transition from {from} to {to}"));
    }
    let gated = matches!((from, to), (ASSESS, AUTHORIZE) | (AUTHORIZE, SCHEDULED));
    if gated && approval != "approved" {
        return Some(format!(
            "moving from {from} to {to} takes an approval (approval is `{approval}`)"
        ));
    }
    None
}

fn abort(table: &str, number: &str, why: &str) -> ApiResponse {
    ApiResponse::error(
        StatusCode::FORBIDDEN,
        "Operation Failed",
        format!("Error during update of {table} ({number}): {why}"),
    )
}

/// Checks a client's update of a change against the model; on "Request Approval" (New ->
/// Assess) adds `approval = requested` to the fields written.
pub(crate) fn check_update(
    store: &Store,
    table: TableId,
    sys_id: &str,
    fields: &mut Vec<(String, String)>,
) -> Result<(), ApiResponse> {
    let Some((class, row)) = store.find(table, sys_id) else {
        return Ok(());
    };
    if !governs(store, class) {
        return Ok(());
    }
    let Some(to) = fields
        .iter()
        .rev()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.trim().to_owned())
    else {
        return Ok(());
    };
    let from = store.value(class, row, "state");
    let given = |name: &str| {
        fields
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let kind = given("type").unwrap_or_else(|| store.value(class, row, "type"));
    let approval = given("approval").unwrap_or_else(|| store.value(class, row, "approval"));
    if let Some(why) = refusal(kind, approval, from, &to) {
        return Err(abort(
            &store.def(class).name,
            store.value(class, row, "number"),
            &why,
        ));
    }
    if from == NEW && to == ASSESS {
        fields.push(("approval".to_owned(), "requested".to_owned()));
    }
    Ok(())
}

/// Checks a new change: it starts New (or gives no state, which defaults to New).
pub(crate) fn check_insert(
    store: &Store,
    table: TableId,
    fields: &[(String, String)],
) -> Result<(), ApiResponse> {
    if !governs(store, table) {
        return Ok(());
    }
    match fields.iter().rev().find(|(k, _)| k == "state") {
        Some((_, state)) if state.trim() != NEW && !state.trim().is_empty() => Err(abort(
            &store.def(table).name,
            "new",
            &format!("a change starts New ({NEW}), not {state}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_normal_change_moves_one_state_at_a_time_and_approvals_gate_two_moves() {
        assert_eq!(refusal("normal", "", NEW, ASSESS), None);
        assert!(refusal("normal", "requested", ASSESS, AUTHORIZE).is_some());
        assert_eq!(refusal("normal", "approved", ASSESS, AUTHORIZE), None);
        assert!(refusal("normal", "requested", AUTHORIZE, SCHEDULED).is_some());
        assert_eq!(refusal("normal", "approved", SCHEDULED, IMPLEMENT), None);
        assert_eq!(refusal("normal", "approved", IMPLEMENT, REVIEW), None);
        assert_eq!(refusal("normal", "approved", REVIEW, CLOSED), None);
        // No skipping ahead, no going back.
        assert!(refusal("normal", "approved", NEW, SCHEDULED).is_some());
        assert!(refusal("normal", "approved", SCHEDULED, CLOSED).is_some());
        assert!(refusal("normal", "approved", IMPLEMENT, ASSESS).is_some());
    }

    #[test]
    fn cancel_from_any_open_state_and_final_states_stay_final() {
        for from in [NEW, ASSESS, AUTHORIZE, SCHEDULED, IMPLEMENT, REVIEW] {
            assert_eq!(
                refusal("normal", "requested", from, CANCELED),
                None,
                "{from}"
            );
        }
        assert!(refusal("normal", "approved", CLOSED, CANCELED).is_some());
        assert!(refusal("normal", "approved", CANCELED, NEW).is_some());
        assert_eq!(refusal("normal", "approved", CLOSED, CLOSED), None);
    }

    #[test]
    fn standard_and_emergency_changes_skip_states() {
        assert_eq!(refusal("standard", "", NEW, SCHEDULED), None);
        assert_eq!(refusal("emergency", "", NEW, AUTHORIZE), None);
        assert!(refusal("normal", "", NEW, AUTHORIZE).is_some());
    }
}
