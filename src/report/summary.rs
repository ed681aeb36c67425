//! The short summary a command prints on stdout: one row per sync with its counts, then the
//! warnings (retirements withheld, guards tripped) and where each report went. It uses the
//! same counts as the report model, so the terminal and the reports never disagree.

use std::fmt::Write as _;
use std::path::Path;

use crate::reconcile::plan::Plan;

/// The short summary printed on stdout: one row per sync, then warnings and report paths.
pub fn summary_table<'a>(
    planned: impl IntoIterator<Item = (&'a Plan, &'a Path)> + Clone,
) -> String {
    let mut out = String::new();
    let header = [
        "mapping",
        "table",
        "create",
        "update",
        "heartbeat",
        "absent",
        "retire",
        "delete",
        "unchanged",
        "quarantined",
        "issues",
    ];
    let rows: Vec<Vec<String>> = planned
        .clone()
        .into_iter()
        .map(|(p, _)| {
            let s = &p.summary;
            vec![
                p.mapping.name.clone(),
                p.mapping.table.clone(),
                s.creates.to_string(),
                (s.updates - s.heartbeats).to_string(),
                s.heartbeats.to_string(),
                s.marked_absent.to_string(),
                s.retirements.to_string(),
                s.deletes.to_string(),
                s.unchanged.to_string(),
                s.quarantined.to_string(),
                s.issues.to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            // Names left-aligned, counts right-aligned.
            if i < 2 {
                let _ = write!(l, "{cell:<w$}  ", w = widths[i]);
            } else {
                let _ = write!(l, "{cell:>w$}  ", w = widths[i]);
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    out.push_str(&line(&header));
    for row in &rows {
        out.push_str(&line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    for (plan, dir) in planned {
        if let Some(reason) = &plan.safety.retirements_blocked {
            let _ = writeln!(
                out,
                "warning: {}: {} retirements withheld: {reason}",
                plan.mapping.name, plan.safety.retirements_withheld
            );
        }
        for trip in &plan.safety.guards_tripped {
            let verdict = if plan.safety.mass_change_allowed {
                "lifted by --allow-mass-change"
            } else {
                "plan refused"
            };
            let _ = writeln!(
                out,
                "guard {}: {}: {} ({verdict})",
                trip.guard, plan.mapping.name, trip.message
            );
        }
        let _ = writeln!(out, "report: {}", dir.display());
    }
    out
}
