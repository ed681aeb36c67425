//! The short summary a command prints on stdout: one row per sync with its counts, then the
//! warnings (retirements withheld, guards tripped) and where each report went.
//!
//! [`Counts`] is the one vocabulary of counts: the table's columns, the log line's fields,
//! the Markdown and HTML summaries and the metrics' `action` label all use its names and
//! numbers, so no two of them can disagree. [`printable`] strips control characters from
//! text that may come from a server before it reaches a terminal (this module's own helper;
//! the logs escape on their own).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::reconcile::plan::Plan;

/// The counts of one plan, in the words every output uses (README "Output and logs").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// New CIs.
    pub create: usize,
    /// CIs written for drift or restored (a VM that came back); heartbeats aside.
    pub update: usize,
    /// CIs whose only write refreshes `last_discovered`.
    pub heartbeat: usize,
    /// CIs marked Absent (first miss).
    pub absent: usize,
    /// CIs retired (past the grace period).
    pub retire: usize,
    /// CIs deleted (`[retire] action = "delete"`).
    pub delete: usize,
    /// CloudForms orders for ServiceNow requested items (the catalog pass), resumed ones
    /// included.
    pub order: usize,
    /// Matched CIs with nothing to write.
    pub unchanged: usize,
    /// Issues holding records or CIs back from any write.
    pub quarantined: usize,
    /// All issues, the quarantined included.
    pub issues: usize,
}

impl Counts {
    /// The names, in table order.
    pub const NAMES: [&'static str; 10] = [
        "create",
        "update",
        "heartbeat",
        "absent",
        "retire",
        "delete",
        "order",
        "unchanged",
        "quarantined",
        "issues",
    ];

    /// The names that are operations (the rest count CIs left alone and issues).
    pub const OPERATIONS: [&'static str; 7] = [
        "create",
        "update",
        "heartbeat",
        "absent",
        "retire",
        "delete",
        "order",
    ];

    pub fn of(plan: &Plan) -> Self {
        let s = &plan.summary;
        Self {
            create: s.creates,
            update: s.updates.saturating_sub(s.heartbeats),
            heartbeat: s.heartbeats,
            absent: s.marked_absent,
            retire: s.retirements,
            delete: s.deletes,
            order: plan.orders.len(),
            unchanged: s.unchanged,
            quarantined: s.quarantined,
            issues: s.issues,
        }
    }

    /// The values, in [`Counts::NAMES`] order.
    pub fn values(&self) -> [usize; 10] {
        [
            self.create,
            self.update,
            self.heartbeat,
            self.absent,
            self.retire,
            self.delete,
            self.order,
            self.unchanged,
            self.quarantined,
            self.issues,
        ]
    }

    /// `(name, value)` pairs in table order.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, usize)> {
        Self::NAMES.into_iter().zip(self.values())
    }
}

/// `text` without control characters, fit to print on a terminal: C0 and C1 controls (ESC
/// starts the sequences that move the cursor or recolour), DEL, and the bidirectional
/// overrides that reorder what a line shows. Newlines and tabs stay.
pub fn printable(text: &str) -> Cow<'_, str> {
    let bad = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    if text.chars().any(bad) {
        // Line by line through the one stripper the clients use (whole escape sequences
        // go, not just their ESC), keeping the lines.
        Cow::Owned(
            text.split('\n')
                .map(crate::net::printable)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// The short summary printed on stdout: one row per sync, then warnings and report paths.
pub fn summary_table<'a>(
    planned: impl IntoIterator<Item = (&'a Plan, &'a Path)> + Clone,
) -> String {
    let mut out = String::new();
    let header: Vec<&str> = ["mapping", "table"]
        .into_iter()
        .chain(Counts::NAMES)
        .collect();
    let rows: Vec<Vec<String>> = planned
        .clone()
        .into_iter()
        .map(|(p, _)| {
            let mut row = vec![p.mapping.name.clone(), p.mapping.table.clone()];
            row.extend(Counts::of(p).values().iter().map(usize::to_string));
            row
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(printable("vm-01"), "vm-01");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
        assert_eq!(
            printable("a\u{1b}[2J\u{1b}]0;owned\u{7}b\r\u{9b}c\u{202e}d\u{7f}"),
            // Whole sequences go: a clear-screen's `[2J` and a window title's `]0;owned`
            // are not left behind as text.
            "abcd"
        );
        assert_eq!(printable("line 1\n\tline 2"), "line 1\n\tline 2");
    }
}
