//! The policy stage: the lifecycle of a CI whose VM is gone (Absent, then retired after a
//! grace period, or deleted) and the safety rules that stand between a plan and the CMDB
//! (no retirement on incomplete knowledge, the count guards). Pure: `now` is a parameter.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use super::mapping::{Limit, Mapping, RetirePolicy};
use super::plan::*;
use super::record::Ci;

/// ServiceNow's datetime format (UTC).
pub const SN_DATETIME: &str = "%Y-%m-%d %H:%M:%S";

/// matched CI, and a format-string parser costs more than the rest of the diff.
pub(super) fn parse_sn_datetime(text: &str) -> Option<DateTime<Utc>> {
    let b = text.trim().as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?
        .and_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)
        .map(|t| t.and_utc())
}

/// Whether the CI already holds every one of these values (an empty list holds nothing).
pub(super) fn all_set(ci: &Ci, fields: &[(String, String)]) -> bool {
    !fields.is_empty()
        && fields
            .iter()
            .all(|(f, v)| ci.get(f).trim().eq_ignore_ascii_case(v))
}

/// Whether the CI counts as retired: it meets `retired_when` (however it got there: retired
/// by hand too), or holds every value this job's retirement sets.
pub(super) fn retired(mapping: &Mapping, ci: &Ci) -> bool {
    mapping.retired_when.as_ref().is_some_and(|r| r.matches(ci))
        || matches!(&mapping.retire, RetirePolicy::Set(set) if all_set(ci, set))
}

/// The next lifecycle step for an in-scope CI whose VM is missing, if any.
pub(super) fn lifecycle_step(mapping: &Mapping, ci: &Ci, now: DateTime<Utc>) -> Option<Retirement> {
    let lifecycle = &mapping.lifecycle;
    if retired(mapping, ci) {
        return None; // already retired: left alone, never back to Absent
    }
    let is_absent = all_set(ci, &lifecycle.absent);
    let last_seen = lifecycle
        .last_discovered
        .as_deref()
        .and_then(|f| parse_sn_datetime(ci.get(f)));
    // Without a last-seen time, the grace period counts from when the CI was marked Absent
    // (its last update), so the decision still needs no state outside the CMDB.
    let grace_from = last_seen.or_else(|| {
        is_absent
            .then(|| parse_sn_datetime(ci.get("sys_updated_on")))
            .flatten()
    });
    let retire_on = grace_from.map(|t| t + TimeDelta::seconds(lifecycle.retire_after_secs));
    let fmt = |t: DateTime<Utc>| t.format(SN_DATETIME).to_string();
    let absent_since = last_seen.map(fmt);
    let due = match retire_on {
        Some(t) => now >= t,
        None => lifecycle.absent.is_empty() || lifecycle.retire_after_secs == 0,
    };
    let since = absent_since
        .as_deref()
        .map(|s| format!(" since {s}"))
        .unwrap_or_default();
    let base = |action, reason: String, changes| Retirement {
        sys_id: ci.sys_id.clone(),
        name: mapping.row_name(ci).to_owned(),
        action,
        reason,
        absent_since: absent_since.clone(),
        retire_on: retire_on.map(fmt),
        sys_updated_on: ci.get("sys_updated_on").to_owned(),
        sys_mod_count: ci.get("sys_mod_count").to_owned(),
        changes,
        context: BTreeMap::new(),
    };
    let set_changes = |set: &[(String, String)], from: &str| -> Vec<Change> {
        set.iter()
            .filter(|(f, v)| !ci.get(f).trim().eq_ignore_ascii_case(v))
            .map(|(f, v)| Change {
                field: f.clone(),
                current: ci.get(f).to_owned(),
                desired: v.clone(),
                mode: FieldMode::Authoritative,
                from: from.to_owned(),
            })
            .collect()
    };
    let after = format_secs(lifecycle.retire_after_secs);
    // No retirement without warning: only a CI an earlier run marked Absent is retired, so
    // a job that did not run for longer than `retire_after` marks Absent first. Without
    // `absent` values there is no such step and a due CI is retired straight away.
    let warned = is_absent || lifecycle.absent.is_empty();
    if due && warned {
        match &mapping.retire {
            RetirePolicy::Set(set) => {
                return Some(base(
                    RetireAction::Retire,
                    format!("VM not in the complete source read{since}; retire_after {after} has passed"),
                    set_changes(set, "retire"),
                ))
            }
            RetirePolicy::Delete => {
                return Some(base(
                    RetireAction::Delete,
                    format!("VM not in the complete source read{since}; retire_after {after} has passed; the mapping deletes"),
                    Vec::new(),
                ))
            }
            RetirePolicy::None => {}
        }
    }
    if warned {
        return None; // waiting out the grace period
    }
    let when = match retire_on {
        Some(t) if due => format!(
            "; retire_after {after} passed on {}, so it is retired on a later run",
            fmt(t)
        ),
        Some(t) => format!("; due for retirement on {}", fmt(t)),
        None => String::new(),
    };
    Some(base(
        RetireAction::MarkAbsent,
        format!("VM not in the complete source read{since}; marked Absent{when}"),
        set_changes(&lifecycle.absent, "lifecycle: absent"),
    ))
}

fn format_secs(secs: i64) -> String {
    match secs {
        0 => "0".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s => format!("{s}s"),
    }
}

/// What the safety rules weigh besides the plan itself.
pub(super) struct SafetyFacts {
    pub incomplete: Option<String>,
    pub present: usize,
    pub in_scope: usize,
    pub allow_mass_change: bool,
    /// The read covers a time window only: its size says nothing about the collection's,
    /// and no row was judged missing (nothing to withhold).
    pub windowed: bool,
}

/// Withholds every retirement when the source cannot be trusted to be whole, and records
/// each count guard the plan trips (a tripped guard refuses the whole plan at apply).
pub(super) fn safety(
    mapping: &Mapping,
    retirements: &mut Vec<Retirement>,
    creates: &[Create],
    updates: &[Update],
    facts: SafetyFacts,
) -> Safety {
    let guards = &mapping.guards;
    let blocked = if let Some(reason) = &facts.incomplete {
        Some(format!(
            "the source read is incomplete ({reason}); no CI is retired on incomplete knowledge"
        ))
    } else if facts.windowed {
        None
    } else if facts.present == 0 && facts.in_scope > 0 {
        Some(format!(
            "the source returned no VMs while {} CIs are in scope; an empty source never retires",
            facts.in_scope
        ))
    } else if !facts.allow_mass_change
        && (facts.present as f64) < guards.min_source_ratio * facts.in_scope as f64
        && facts.in_scope - facts.present > guards.percent_floor
    {
        Some(format!(
            "the source holds {} VMs, fewer than {}% of the {} CIs in scope (min_source_ratio); use --allow-mass-change if this is real",
            facts.present,
            guards.min_source_ratio * 100.0,
            facts.in_scope
        ))
    } else {
        None
    };
    let mut safety = Safety {
        mass_change_allowed: facts.allow_mass_change,
        ..Default::default()
    };
    if blocked.is_some() {
        safety.retirements_withheld = retirements.len();
        retirements.clear();
        safety.retirements_blocked = blocked;
    }
    let count = |action| retirements.iter().filter(|r| r.action == action).count();
    let drift_updates = updates
        .iter()
        .filter(|u| u.kind != UpdateKind::Heartbeat && u.has_writes())
        .count();
    let checks = [
        (
            "max_retire",
            guards.max_retire,
            count(RetireAction::Retire) + count(RetireAction::MarkAbsent),
            "retire or mark Absent",
        ),
        (
            "max_delete",
            guards.max_delete,
            count(RetireAction::Delete),
            "delete",
        ),
        ("max_update", guards.max_update, drift_updates, "update"),
        ("max_create", guards.max_create, creates.len(), "create"),
    ];
    for (guard, limit, planned, verb) in checks {
        let Some(allowed) = limit.allowed(facts.in_scope, guards.percent_floor) else {
            continue;
        };
        if planned > allowed {
            let of = match limit {
                Limit::Percent(_) => format!(
                    " of {} CIs in scope, at least {}",
                    facts.in_scope, guards.percent_floor
                ),
                _ => String::new(),
            };
            safety.guards_tripped.push(GuardTrip {
                guard: guard.into(),
                limit: limit.to_string(),
                planned,
                message: format!(
                    "the plan would {verb} {planned} CIs, over the limit of {allowed} ({limit}{of})"
                ),
            });
        }
    }
    safety
}
