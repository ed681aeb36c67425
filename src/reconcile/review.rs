//! Review: which part of a plan a person must approve before it is written, and the digest
//! that names a held plan. Pure: the shell (`app/review.rs`) opens the ServiceNow change
//! for the held part, applies the rest at once, and applies the held part only once the
//! change is approved.
//!
//! The digest hashes what the plan would *write* (the operations, with the versions they
//! were planned against), not when it was made: two runs that find the same drift make
//! plans with one digest, so waiting for an approval never opens a second change. A value
//! that is the plan's own clock reading (`last_discovered` of a create or a heartbeat
//! riding along a drift update) is hashed as `{now}`, and report-only context (and the
//! names shown at relationship ends) is left out.

use std::collections::BTreeSet;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::plan::{Plan, RelAction, RelEnd, RetireAction, Update, UpdateKind};
use super::policy::SN_DATETIME;

/// What needs approval (`[review]` in the config; README "Review in ServiceNow").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewPolicy {
    /// Retirements (`install_status` Retired...) need approval.
    pub retire: bool,
    /// Deletes (of CIs, relationship rows and classification rows) need approval.
    pub delete: bool,
    /// Marking CIs Absent (the first miss, before the grace period) needs approval.
    pub absent: bool,
    /// Creates need approval when the plan holds more than this many; `None`: never.
    pub creates_above: Option<usize>,
    /// Drift and restore updates need approval when the plan holds more than this many
    /// (heartbeat-only updates never do); `None`: never.
    pub updates_above: Option<usize>,
}

impl Default for ReviewPolicy {
    fn default() -> Self {
        Self {
            retire: true,
            delete: true,
            absent: false,
            creates_above: Some(20),
            updates_above: Some(20),
        }
    }
}

/// A plan cut in two: what is written at once and what waits for approval.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Written by this run (heartbeats, and whatever the policy lets through).
    pub now: Plan,
    /// Written only once a person approves it; `has_changes()` is false when nothing is held.
    pub held: Plan,
    /// Why each held kind of operation is held, in words (for the change's description).
    pub reasons: Vec<String>,
}

/// Whether an update writes drift or a restore (a heartbeat-only update does neither).
fn is_substantive(u: &Update) -> bool {
    u.has_writes() && u.kind != UpdateKind::Heartbeat
}

/// What a held plan says of itself (`Plan::held_for_review`): why `apply` refuses it.
pub const HELD: &str = "this plan holds writes that wait for approval in a ServiceNow change request (review = \"approve\"); the run that finds the change approved applies it";

/// Cuts `plan` per `policy`. Relationship and classification rows go with the create they
/// hang on (a row whose end is a held create is held too); their deletes follow `delete`.
/// Both parts keep the plan's source, target, safety and issues, so each is a complete plan
/// that `apply` reads and the reports render; only `now` counts the unchanged CIs.
pub fn split(plan: &Plan, policy: &ReviewPolicy) -> Split {
    let mut reasons = Vec::new();
    let over = |limit: Option<usize>, n: usize| limit.is_some_and(|l| n > l);

    let hold_creates = over(policy.creates_above, plan.creates.len());
    if hold_creates {
        reasons.push(format!(
            "{} creates, more than the {} that are applied without approval",
            plan.creates.len(),
            policy.creates_above.unwrap_or_default()
        ));
    }
    let substantive = plan.updates.iter().filter(|u| is_substantive(u)).count();
    let hold_updates = over(policy.updates_above, substantive);
    if hold_updates {
        reasons.push(format!(
            "{substantive} updates, more than the {} that are applied without approval",
            policy.updates_above.unwrap_or_default()
        ));
    }
    let hold_retirement = |action: RetireAction| match action {
        RetireAction::MarkAbsent => policy.absent,
        RetireAction::Retire => policy.retire,
        RetireAction::Delete => policy.delete,
    };
    for (action, words) in [
        (RetireAction::MarkAbsent, "CIs marked Absent"),
        (RetireAction::Retire, "retirements"),
        (RetireAction::Delete, "CI deletes"),
    ] {
        let n = plan
            .retirements
            .iter()
            .filter(|r| r.action == action)
            .count();
        if n > 0 && hold_retirement(action) {
            reasons.push(format!("{n} {words} always need approval"));
        }
    }

    let (held_creates, now_creates): (Vec<_>, Vec<_>) =
        plan.creates.iter().cloned().partition(|_| hold_creates);
    let (held_updates, now_updates): (Vec<_>, Vec<_>) = plan
        .updates
        .iter()
        .cloned()
        .partition(|u| hold_updates && is_substantive(u));
    let (held_retirements, now_retirements): (Vec<_>, Vec<_>) = plan
        .retirements
        .iter()
        .cloned()
        .partition(|r| hold_retirement(r.action));

    let held_sources: BTreeSet<&str> = held_creates.iter().map(|c| c.source_id.as_str()).collect();
    let on_held = |end: &RelEnd| {
        end.source_id
            .as_deref()
            .is_some_and(|s| held_sources.contains(s))
    };
    let hold_row = |action: RelAction, ends: &[&RelEnd]| match action {
        RelAction::Delete => policy.delete,
        RelAction::Create => ends.iter().any(|e| on_held(e)),
    };
    let (held_rels, now_rels): (Vec<_>, Vec<_>) = plan
        .relationships
        .iter()
        .cloned()
        .partition(|r| hold_row(r.action, &[&r.parent, &r.child]));
    let (held_kvs, now_kvs): (Vec<_>, Vec<_>) = plan
        .classifications
        .iter()
        .cloned()
        .partition(|k| hold_row(k.action, &[&k.ci]));
    let row_deletes = held_rels
        .iter()
        .filter(|r| r.action == RelAction::Delete)
        .count()
        + held_kvs
            .iter()
            .filter(|k| k.action == RelAction::Delete)
            .count();
    if row_deletes > 0 {
        reasons.push(format!(
            "{row_deletes} relationship or classification row deletes always need approval"
        ));
    }

    let part = |creates, updates, retirements, unchanged, rels, kvs| {
        let mut p = Plan::new(
            plan.generated_at,
            plan.mapping.clone(),
            plan.source.clone(),
            plan.target.clone(),
            plan.safety.clone(),
            creates,
            updates,
            retirements,
            plan.issues.clone(),
            unchanged,
        );
        p.relationships = rels;
        p.classifications = kvs;
        p
    };
    Split {
        now: part(
            now_creates,
            now_updates,
            now_retirements,
            plan.summary.unchanged,
            now_rels,
            now_kvs,
        ),
        held: {
            let mut held = part(
                held_creates,
                held_updates,
                held_retirements,
                0,
                held_rels,
                held_kvs,
            );
            held.held_for_review = Some(HELD.to_owned());
            held
        },
        reasons,
    }
}

/// The plan's digest: SHA-256 (hex) of what it writes; see the module docs.
pub fn digest(plan: &Plan) -> String {
    let now = plan.generated_at.format(SN_DATETIME).to_string();
    let mut writes = serde_json::json!({
        "mapping": plan.mapping.name,
        "table": plan.mapping.table,
        "creates": plan.creates,
        "updates": plan.updates,
        "retirements": plan.retirements,
        "relationships": plan.relationships,
        "classifications": plan.classifications,
    });
    // The name shown at a relationship's or classification's end is for people (read
    // from whatever copy of the other CI the run had); the sys_id or source_id names it.
    for (list, ends) in [
        ("relationships", &["parent", "child"][..]),
        ("classifications", &["ci"][..]),
    ] {
        if let Some(rows) = writes.get_mut(list).and_then(Value::as_array_mut) {
            for row in rows {
                for end in ends {
                    if let Some(end) = row.get_mut(*end).and_then(Value::as_object_mut) {
                        end.remove("name");
                    }
                }
            }
        }
    }
    normalise(&mut writes, &now);
    let bytes = serde_json::to_vec(&writes).unwrap_or_default();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Drops report-only `context` and writes the clock reading as `{now}` where the lifecycle
/// put it: a field value or change whose `from` is a lifecycle rule (`lifecycle: discovered
/// now`, `lifecycle: heartbeat`) and whose value is the plan's `now`. A value read from the
/// CMDB that happens to equal `now` (a CI updated that second) is kept: it names a version.
fn normalise(value: &mut Value, now: &str) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| normalise(v, now)),
        Value::Object(map) => {
            map.remove("context");
            let from_clock = map
                .get("from")
                .and_then(Value::as_str)
                .is_some_and(|f| f.starts_with("lifecycle:"));
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s)
                        if from_clock && (key == "value" || key == "desired") && s == now =>
                    {
                        *s = "{now}".to_owned();
                    }
                    _ => normalise(v, now),
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    /// A plan from JSON with `creates` creates, the given updates (kind, field, desired) and
    /// retirements (action), made at `hour`, with `last_discovered` = now on each create.
    fn plan(
        hour: u32,
        creates: usize,
        updates: &[(&str, &str, &str)],
        retirements: &[&str],
    ) -> Plan {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0).unwrap();
        let now_text = now.format(SN_DATETIME).to_string();
        let create = |i: usize| {
            json!({"source_id": i.to_string(), "name": format!("vm{i}"), "identity": [],
                "fields": [{"field": "last_discovered", "value": now_text,
                            "from": "lifecycle: discovered now"}],
                "context": {"seen": now_text}})
        };
        let update = |(i, (kind, field, desired)): (usize, &(&str, &str, &str))| {
            let desired = if *desired == "now" {
                now_text.as_str()
            } else {
                desired
            };
            json!({"sys_id": format!("ci{i}"), "source_id": format!("u{i}"), "name": format!("u{i}"),
                "kind": kind, "matched_by": "uuid", "sys_updated_on": "2026-11-01 00:00:00",
                "sys_mod_count": "1", "context": {},
                "changes": [{"field": field, "current": "x", "desired": desired,
                             "mode": "authoritative",
                             "from": if *kind == "heartbeat" { "lifecycle: heartbeat" } else { "f" }}]})
        };
        let retirement = |(i, action): (usize, &&str)| {
            json!({"sys_id": format!("r{i}"), "name": format!("r{i}"), "action": action,
                "reason": "gone", "absent_since": null, "retire_on": null,
                "sys_updated_on": "2026-11-01 00:00:00", "sys_mod_count": "2",
                "changes": [], "context": {}})
        };
        let p: Plan = serde_json::from_value(json!({
            "format_version": 1, "generated_at": now,
            "mapping": {"name": "m", "origin": "m.toml", "digest": "d", "table": "t",
                        "scope": "", "collection": "vms"},
            "source": {"origin": "s", "complete": true, "incomplete_reason": null,
                       "records": 1, "filtered_out": 0, "inactive": 0},
            "target": {"origin": "t", "table": "t", "cis": 0, "in_scope": 0},
            "summary": {"creates": 0, "updates": 0, "restores": 0, "heartbeats": 0,
                        "retirements": 0, "deletes": 0, "marked_absent": 0, "unchanged": 7,
                        "quarantined": 0, "issues": 0, "drift_by_field": {}},
            "safety": {"retirements_blocked": null, "retirements_withheld": 0,
                       "guards_tripped": [], "mass_change_allowed": false},
            "creates": (0..creates).map(create).collect::<Vec<_>>(),
            "updates": updates.iter().enumerate().map(update).collect::<Vec<_>>(),
            "retirements": retirements.iter().enumerate().map(retirement).collect::<Vec<_>>(),
            "issues": []
        }))
        .unwrap();
        // Recount the summary as the planner would.
        Plan::new(
            p.generated_at,
            p.mapping,
            p.source,
            p.target,
            p.safety,
            p.creates,
            p.updates,
            p.retirements,
            p.issues,
            7,
        )
    }

    fn policy() -> ReviewPolicy {
        ReviewPolicy {
            retire: true,
            delete: true,
            absent: false,
            creates_above: Some(2),
            updates_above: Some(1),
        }
    }

    #[test]
    fn retirements_and_deletes_are_always_held_absent_marks_pass() {
        let p = plan(1, 0, &[], &["retire", "delete", "mark_absent"]);
        let s = split(&p, &policy());
        let actions = |p: &Plan| p.retirements.iter().map(|r| r.action).collect::<Vec<_>>();
        assert_eq!(
            actions(&s.held),
            [RetireAction::Retire, RetireAction::Delete]
        );
        assert_eq!(actions(&s.now), [RetireAction::MarkAbsent]);
        assert_eq!(s.held.summary.retirements, 1);
        assert_eq!(s.held.summary.deletes, 1);
        assert_eq!(s.now.summary.marked_absent, 1);
        assert_eq!(s.reasons.len(), 2, "{:?}", s.reasons);
    }

    #[test]
    fn creates_and_updates_are_held_only_above_their_counts() {
        let few = plan(1, 2, &[("drift", "cpus", "4")], &[]);
        let s = split(&few, &policy());
        assert!(!s.held.has_changes(), "at the limits nothing is held");
        assert_eq!(s.now.creates.len(), 2);
        assert_eq!(s.now.summary.unchanged, 7);
        assert!(s.reasons.is_empty());

        let many = plan(
            1,
            3,
            &[
                ("drift", "cpus", "4"),
                ("restore", "install_status", "1"),
                ("heartbeat", "last_discovered", "now"),
            ],
            &[],
        );
        let s = split(&many, &policy());
        assert_eq!(s.held.creates.len(), 3);
        assert_eq!(s.held.updates.len(), 2, "drift and restore");
        assert_eq!(s.now.updates.len(), 1);
        assert_eq!(s.now.updates[0].kind, UpdateKind::Heartbeat);
        assert_eq!(s.held.summary.unchanged, 0);
        assert_eq!(s.now.summary.unchanged, 7);
        assert_eq!(s.reasons.len(), 2);
    }

    #[test]
    fn heartbeat_only_plans_never_need_approval() {
        let hb: Vec<(&str, &str, &str)> = (0..50)
            .map(|_| ("heartbeat", "last_discovered", "now"))
            .collect();
        let s = split(&plan(1, 0, &hb, &[]), &policy());
        assert!(!s.held.has_changes());
        assert_eq!(s.now.updates.len(), 50);
    }

    #[test]
    fn no_limits_hold_nothing_but_what_always_needs_approval() {
        let open = ReviewPolicy {
            retire: false,
            delete: false,
            absent: false,
            creates_above: None,
            updates_above: None,
        };
        let p = plan(1, 30, &[("drift", "cpus", "4")], &["retire"]);
        let s = split(&p, &open);
        assert!(!s.held.has_changes());
        assert_eq!(s.now, p);
    }

    #[test]
    fn relationship_rows_follow_their_create_and_deletes_are_held() {
        let mut p = plan(1, 3, &[], &[]);
        let end = |sys_id: &str, source: Option<&str>| RelEnd {
            sys_id: sys_id.into(),
            source_id: source.map(str::to_owned),
            name: String::new(),
        };
        let row = |action, parent: RelEnd| crate::reconcile::plan::RelChange {
            action,
            kind: "Registered on::Has registered".into(),
            type_sys_id: "t".into(),
            parent,
            child: end("host", None),
            sys_id: None,
            sys_mod_count: String::new(),
            sys_updated_on: String::new(),
            reason: String::new(),
        };
        p.relationships = vec![
            row(RelAction::Create, end("", Some("1"))),
            row(RelAction::Create, end("existing", None)),
            row(RelAction::Delete, end("old", None)),
        ];
        let s = split(&p, &policy());
        assert_eq!(
            s.held.relationships.len(),
            2,
            "on a held create, and the delete"
        );
        assert_eq!(s.now.relationships.len(), 1);
        assert_eq!(s.now.relationships[0].parent.sys_id, "existing");
    }

    #[test]
    fn the_digest_names_the_writes_not_the_hour() {
        let a = plan(1, 3, &[("drift", "cpus", "4")], &["retire"]);
        let b = plan(5, 3, &[("drift", "cpus", "4")], &["retire"]);
        assert_ne!(a.generated_at, b.generated_at);
        assert_eq!(digest(&a), digest(&b), "same writes, other hour");
        assert_eq!(digest(&a).len(), 64);
        let c = plan(1, 3, &[("drift", "cpus", "8")], &["retire"]);
        assert_ne!(digest(&a), digest(&c), "another value");
        let d = plan(1, 3, &[("drift", "cpus", "4")], &[]);
        assert_ne!(digest(&a), digest(&d), "one retirement fewer");
        // A round trip through plan.json keeps it.
        let json = serde_json::to_string(&a).unwrap();
        let back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(digest(&back), digest(&a));
    }

    #[test]
    fn a_version_that_happens_to_equal_now_is_a_version() {
        // A CI updated in the very second the plan was made: its version is data.
        let a = plan(1, 0, &[("drift", "cpus", "4")], &[]);
        let mut b = plan(2, 0, &[("drift", "cpus", "4")], &[]);
        let second = |p: &Plan| p.generated_at.format(SN_DATETIME).to_string();
        let mut a2 = a.clone();
        a2.updates[0].sys_updated_on = second(&a);
        b.updates[0].sys_updated_on = second(&a);
        assert_eq!(digest(&a2), digest(&b), "the same version, other hours");
        assert_ne!(digest(&a2), digest(&a));
        // A heartbeat riding along is the clock's, whatever the hour.
        let h1 = plan(1, 0, &[("heartbeat", "last_discovered", "now")], &[]);
        let h2 = plan(3, 0, &[("heartbeat", "last_discovered", "now")], &[]);
        assert_eq!(digest(&h1), digest(&h2));
    }

    #[test]
    fn a_version_that_moved_changes_the_digest() {
        let a = plan(1, 0, &[("drift", "cpus", "4")], &[]);
        let mut b = a.clone();
        b.updates[0].sys_mod_count = "2".into();
        assert_ne!(digest(&a), digest(&b));
    }
}
