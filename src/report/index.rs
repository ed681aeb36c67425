//! The run's index (`index.md` in the run folder): one row per sync of the run with its
//! counts, its relationship rows and links to its reports, so a person opening a run's
//! folder sees every sync of it at once. Mapping names are escaped like any other text
//! (they come from files, not servers, but a table cell must stay one cell).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::markdown::escape;
use super::summary::Counts;
use crate::reconcile::plan::Plan;

/// The index file's name in a run folder.
pub const INDEX_FILE: &str = "index.md";

/// One sync of the run: its plan, the name of its folder in the run folder, and whether
/// it was applied (its folder then holds `outcome.json`).
pub struct RunSync<'a> {
    pub plan: &'a Plan,
    pub folder: &'a str,
    pub applied: bool,
}

/// The index of a run made at `now`, its syncs in the order they ran.
pub fn render(now: DateTime<Utc>, syncs: &[RunSync]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# cmdb-reconcile run {}\n",
        now.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let _ = writeln!(
        out,
        "Syncs in the order they ran (parents first). Each folder holds its plan and reports.\n"
    );
    let mut header: Vec<&str> = vec!["sync", "table"];
    header.extend(Counts::NAMES);
    header.extend(["relationships +", "relationships -", "reports"]);
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for s in syncs {
        let counts = Counts::of(s.plan);
        let (add, remove) = s.plan.relationship_counts();
        let mut cells = vec![escape(&s.plan.mapping.name), escape(&s.plan.mapping.table)];
        cells.extend(counts.values().iter().map(usize::to_string));
        cells.push(add.to_string());
        cells.push(remove.to_string());
        let folder = s.folder;
        let mut links = format!(
            "[drift.html]({folder}/drift.html) · [drift.md]({folder}/drift.md) · [plan.json]({folder}/plan.json)"
        );
        if s.applied {
            let _ = write!(links, " · [outcome.json]({folder}/outcome.json)");
        }
        cells.push(links);
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    for s in syncs {
        if let Some(reason) = &s.plan.safety.retirements_blocked {
            let _ = writeln!(
                out,
                "\n- {}: {} retirements withheld: {}",
                escape(&s.plan.mapping.name),
                s.plan.safety.retirements_withheld,
                escape(reason)
            );
        }
        for trip in &s.plan.safety.guards_tripped {
            let _ = writeln!(
                out,
                "\n- {}: guard {} tripped: {}",
                escape(&s.plan.mapping.name),
                trip.guard,
                escape(&trip.message)
            );
        }
    }
    out
}
