//! `drift.md`: the report as Markdown, for tickets, merge requests and chat.
//!
//! Inventory values are untrusted and land in table cells: [`escape`] keeps each value inside
//! its cell and inert (no pipes splitting the row, no HTML, no links or emphasis).

use std::fmt::Write as _;

use super::model::{plural, shown_ids, Action, ChangeRow, IssueGroup, OutcomeStatus, ReportModel};
use super::Page;

/// Escapes a value for a Markdown table cell (or any inline text).
///
/// `|` would split the row and a newline would end it; `<`, `>`, `&` would be raw HTML or
/// entities; backticks, `*`, `_`, `~`, `[`, `]` would be code, emphasis or links. Punctuation is
/// backslash-escaped (CommonMark), HTML characters become entities, and line breaks `<br>`.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    let mut previous = None;
    while let Some(c) = chars.next() {
        let after_word = previous.is_some_and(char::is_alphanumeric);
        previous = Some(c);
        match c {
            // An intra-word `_` cannot start or end emphasis (CommonMark flanking rules): left
            // as is, identifiers like `cmdb_ci_vmware_instance` stay readable in the raw file.
            '_' if after_word && chars.peek().is_some_and(|n| n.is_alphanumeric()) => out.push(c),
            '\\' | '|' | '`' | '*' | '_' | '~' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("<br>");
            }
            '\n' => out.push_str("<br>"),
            // Other control characters cannot be shown and could confuse a terminal.
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A value cell: an empty value is shown as such, so "set to empty" is not a blank cell.
fn value(v: &str) -> String {
    if v.is_empty() {
        "*(empty)*".to_owned()
    } else {
        escape(v)
    }
}

fn list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| escape(v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An issue row's ids, at most [`ISSUE_IDS_SHOWN`](super::model::ISSUE_IDS_SHOWN) of them and
/// a note of how many more.
fn ids(values: &[String]) -> String {
    let (shown, more) = shown_ids(values);
    let mut text = list(shown);
    if let Some(more) = more {
        text.push_str(", ");
        text.push_str(&escape(&more));
    }
    text
}

/// The Markdown report.
pub fn render(model: &ReportModel) -> String {
    Page::render(|page| render_to(model, page))
}

/// The Markdown report, written into `md` section by section (and row by row where a section
/// can be long), so that the page is never held whole.
pub fn render_to(model: &ReportModel, md: &mut Page) {
    header(md, model);
    md.spill();
    summary(md, model);
    md.spill();
    safety(md, model);
    md.spill();
    outcomes(md, model);
    md.spill();
    drift(md, model);
    md.spill();
    orders(md, model);
    md.spill();
    relationships(md, model);
    md.spill();
    classifications(md, model);
    md.spill();
    issue_section(
        md,
        "Quarantined records",
        "No record is quarantined.",
        &model.quarantined,
    );
    issue_section(md, "Issues", "No other issue.", &model.issues);
    changes(md, model);
}

fn header(md: &mut String, model: &ReportModel) {
    let h = &model.header;
    let _ = writeln!(
        md,
        "# Drift report: {} → {}\n",
        escape(&h.mapping),
        escape(&h.table)
    );
    let _ = writeln!(md, "Generated {}.\n", escape(&h.generated_at));
    let completeness = if h.source_complete {
        ""
    } else {
        ", **incomplete**"
    };
    let _ = writeln!(
        md,
        "- **Source:** {} ({}): {} records, {} filtered out, {} inactive{completeness}",
        escape(&h.source_origin),
        escape(&h.collection),
        h.source_records,
        h.source_filtered_out,
        h.source_inactive,
    );
    if let Some(window) = &h.source_window {
        let _ = writeln!(md, "- **Window:** {}", escape(window));
    }
    let _ = writeln!(
        md,
        "- **Target:** {} ({}): {} ({})",
        escape(&h.target_origin),
        escape(&h.table),
        escape(&h.target_counts),
        escape(&h.scope),
    );
    let _ = writeln!(
        md,
        "- **Mapping:** {} (digest {})\n",
        escape(&h.mapping_origin),
        escape(&h.mapping_digest),
    );
}

fn summary(md: &mut String, model: &ReportModel) {
    let s = &model.summary;
    md.push_str("## Summary\n\n| | CIs |\n|---|---:|\n");
    // The summary table's words and numbers (`Counts`), so the terminal, the log and this
    // report never disagree.
    let c = &s.counts;
    let rows: [(&str, usize); 12] = [
        ("Create", c.create),
        ("Update", c.update),
        ("… of which restore", s.restores),
        ("Heartbeat", c.heartbeat),
        ("Drift on `ignore` fields only (not written)", s.report_only),
        ("Absent", c.absent),
        ("Retire", c.retire),
        ("Delete", c.delete),
        ("Order", c.order),
        ("Unchanged", c.unchanged),
        ("Quarantined", c.quarantined),
        ("Issues (the quarantined included)", c.issues),
    ];
    for (label, count) in rows {
        let _ = writeln!(md, "| {label} | {count} |");
    }
    md.push('\n');
    if !s.has_writes {
        md.push_str("Nothing to write: the CMDB matches the inventory.\n\n");
    }
}

fn safety(md: &mut String, model: &ReportModel) {
    let safety = &model.safety;
    md.push_str("## Safety\n\n");
    if let Some(reason) = &safety.source_incomplete {
        let _ = writeln!(
            md,
            "> **The source read is incomplete:** {}\n",
            escape(reason)
        );
    }
    if let Some(reason) = &safety.retirements_blocked {
        let _ = writeln!(
            md,
            "> **Retirements are blocked** ({} withheld): {}\n",
            safety.retirements_withheld,
            escape(reason)
        );
    }
    if !safety.guards_tripped.is_empty() {
        md.push_str("> **A guard tripped: `apply` will write nothing.**\n\n");
        md.push_str("| Guard | Limit | Planned | Why |\n|---|---|---:|---|\n");
        for guard in &safety.guards_tripped {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                escape(&guard.guard),
                escape(&guard.limit),
                guard.planned,
                escape(&guard.message)
            );
        }
        md.push('\n');
    }
    if !safety.needs_attention() {
        md.push_str("No safety block: the source read is complete and no guard tripped.\n\n");
    }
    if safety.mass_change_allowed {
        md.push_str("Mass change was explicitly allowed for this run.\n\n");
    }
}

fn outcomes(md: &mut String, model: &ReportModel) {
    let Some(outcome) = &model.outcomes else {
        return;
    };
    md.push_str("## Apply outcome\n\n");
    let counts = outcome.counts();
    for (status, _) in counts {
        let _ = write!(md, "| {} ", status.label());
    }
    md.push_str("|\n");
    md.push_str(&"|---:".repeat(counts.len()));
    md.push_str("|\n");
    for (_, count) in counts {
        let _ = write!(md, "| {count} ");
    }
    md.push_str("|\n\n");
    let problems: Vec<_> = outcome
        .outcomes
        .iter()
        .filter(|o| o.status != OutcomeStatus::Applied)
        .collect();
    if !problems.is_empty() {
        md.push_str("| Status | sys_id | VM | Message |\n|---|---|---|---|\n");
        for o in problems {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                o.status.label(),
                escape(o.sys_id.as_deref().unwrap_or("")),
                escape(o.source_id.as_deref().unwrap_or("")),
                escape(&o.message)
            );
        }
        md.push('\n');
    }
}

/// The catalog pass's orders: one table row per RITM, with its outcome once applied.
fn orders(md: &mut String, model: &ReportModel) {
    if model.orders.is_empty() {
        return;
    }
    let applied = model.outcomes.is_some();
    let _ = writeln!(
        md,
        "## Orders\n\nApproved ServiceNow requested items ordered from CloudForms (`resume`: CloudForms already holds a request carrying the RITM number; it is written back, never ordered again).\n"
    );
    md.push_str("| Action | RITM | Item | Template | Dialog | Request | Approval | Reason |");
    md.push_str(if applied { " Outcome |\n" } else { "\n" });
    md.push_str("|---|---|---|---|---|---|---|---|");
    md.push_str(if applied { "---|\n" } else { "\n" });
    for o in &model.orders {
        let _ = write!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            o.action,
            escape(&o.ritm),
            escape(&o.item),
            escape(&o.template),
            escape(&o.dialog),
            escape(&o.request),
            o.approval,
            escape(&o.reason)
        );
        if applied {
            let outcome = o.outcome.as_ref().map_or_else(
                || "not attempted".to_owned(),
                |out| {
                    if out.message.is_empty() {
                        out.status.label().to_owned()
                    } else {
                        format!("{}: {}", out.status.label(), escape(&out.message))
                    }
                },
            );
            let _ = write!(md, " {outcome} |");
        }
        md.push('\n');
    }
    md.push('\n');
}

fn relationships(md: &mut Page, model: &ReportModel) {
    let rows = model.relationships.iter().map(|r| {
        [
            r.action.to_string(),
            escape(&r.kind),
            escape(&r.parent),
            escape(&r.child),
            escape(&r.reason),
        ]
    });
    row_section(
        md,
        ("Relationships", "relationship"),
        model.relationship_deletes_withheld,
        ["Type", "Parent", "Child"],
        rows,
    );
}

fn classifications(md: &mut Page, model: &ReportModel) {
    let rows = model.classifications.iter().map(|r| {
        [
            r.action.to_string(),
            escape(&r.ci),
            escape(&r.key),
            escape(&r.value),
            escape(&r.reason),
        ]
    });
    row_section(
        md,
        ("Classifications", "classification"),
        model.classification_deletes_withheld,
        ["CI", "Key", "Value"],
        rows,
    );
}

/// A section of rows the CIs keep (relationships, classifications): the deletes withheld,
/// then one table row per change (action, three columns, reason); nothing when neither.
fn row_section(
    md: &mut Page,
    (title, noun): (&str, &str),
    withheld: usize,
    columns: [&str; 3],
    rows: impl ExactSizeIterator<Item = [String; 5]>,
) {
    if rows.len() == 0 && withheld == 0 {
        return;
    }
    let _ = writeln!(md, "## {title}\n");
    if withheld > 0 {
        let _ = writeln!(
            md,
            "{withheld} {noun} deletes withheld with the retirements.\n"
        );
    }
    if rows.len() == 0 {
        let _ = writeln!(md, "No {noun} changes.\n");
        return;
    }
    let [c1, c2, c3] = columns;
    let _ = writeln!(
        md,
        "| Action | {c1} | {c2} | {c3} | Reason |\n|---|---|---|---|---|"
    );
    for [action, a, b, c, reason] in rows {
        let _ = writeln!(md, "| {action} | {a} | {b} | {c} | {reason} |");
        md.spill();
    }
    md.push('\n');
}

fn drift(md: &mut String, model: &ReportModel) {
    md.push_str("## Drift by field\n\n");
    if model.drift_by_field.is_empty() {
        md.push_str("No field drifted.\n\n");
        return;
    }
    md.push_str("| Field | Changes | Written |\n|---|---:|---:|\n");
    for drift in &model.drift_by_field {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            escape(&drift.field),
            drift.changes,
            drift.written
        );
    }
    md.push('\n');
}

fn issue_section(md: &mut Page, title: &str, none: &str, groups: &[IssueGroup]) {
    let _ = writeln!(md, "## {title}\n");
    if groups.is_empty() {
        let _ = writeln!(md, "{none}\n");
        return;
    }
    for group in groups {
        let _ = writeln!(
            md,
            "### {} ({})\n\n{}\n",
            group.label,
            group.issues.len(),
            group.description
        );
        md.push_str("| Name | VMs | CIs | Field | Why |\n|---|---|---|---|---|\n");
        for issue in &group.issues {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                escape(&issue.name),
                ids(&issue.source_ids),
                ids(&issue.sys_ids),
                escape(&issue.field),
                escape(&issue.message)
            );
            md.spill();
        }
        md.push('\n');
    }
}

/// A column of a change table: its heading and how a row fills it.
type Column = (&'static str, fn(&ChangeRow) -> String);

/// The columns worth showing for an action (a create has no current value, a retirement no VM).
fn columns(action: Action, with_outcomes: bool) -> Vec<Column> {
    let mut cols: Vec<Column> = vec![("CI", |r| escape(&r.name))];
    match action {
        Action::Create => {
            cols.push(("VM", |r| escape(&r.source_id)));
            cols.push(("Field", |r| escape(&r.field)));
            cols.push(("Value", |r| value(&r.desired)));
            cols.push(("From", |r| escape(&r.from)));
        }
        Action::Update | Action::Restore | Action::Heartbeat => {
            cols.push(("sys_id", |r| escape(&r.sys_id)));
            cols.push(("VM", |r| escape(&r.source_id)));
            cols.push(("Matched by", |r| escape(&r.matched_by)));
            cols.push(("Field", |r| escape(&r.field)));
            cols.push(("Current", |r| value(&r.current)));
            cols.push(("Desired", |r| value(&r.desired)));
            cols.push(("Mode", |r| {
                if r.written {
                    escape(&r.mode)
                } else {
                    format!("{} (not written)", escape(&r.mode))
                }
            }));
            cols.push(("From", |r| escape(&r.from)));
        }
        Action::MarkAbsent | Action::Retire | Action::Delete => {
            cols.push(("sys_id", |r| escape(&r.sys_id)));
            cols.push(("Field", |r| escape(&r.field)));
            cols.push(("Current", |r| {
                if r.field.is_empty() {
                    String::new()
                } else {
                    value(&r.current)
                }
            }));
            cols.push(("Desired", |r| {
                if r.field.is_empty() {
                    String::new()
                } else {
                    value(&r.desired)
                }
            }));
            cols.push(("Why", |r| escape(r.reason.as_deref().unwrap_or(""))));
        }
    }
    if with_outcomes {
        cols.push(("Outcome", |r| match &r.outcome {
            Some(o) if o.message.is_empty() => o.status.label().to_owned(),
            Some(o) => format!("{}: {}", o.status.label(), escape(&o.message)),
            None if r.written => "not attempted".to_owned(),
            None => String::new(),
        }));
    }
    cols
}

fn changes(md: &mut Page, model: &ReportModel) {
    md.push_str("## Changes\n\n");
    let actions = model.actions_present();
    if actions.is_empty() {
        md.push_str("No change.\n");
        return;
    }
    for action in actions {
        let rows: Vec<&ChangeRow> = model.rows_of(action).collect();
        let mut cis: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.sys_id.as_str(), r.source_id.as_str()))
            .collect();
        cis.dedup();
        let _ = writeln!(
            md,
            "### {} ({}, {})\n\n{}\n",
            action.label(),
            plural(cis.len(), "CI", "CIs"),
            plural(rows.len(), "change", "changes"),
            action.description()
        );
        let cols = columns(action, model.outcomes.is_some());
        let heads: Vec<&str> = cols.iter().map(|(h, _)| *h).collect();
        let _ = writeln!(md, "| {} |", heads.join(" | "));
        let _ = writeln!(md, "|{}", "---|".repeat(cols.len()));
        for row in rows {
            let cells: Vec<String> = cols.iter().map(|(_, cell)| cell(row)).collect();
            let _ = writeln!(md, "| {} |", cells.join(" | "));
            md.spill();
        }
        md.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_table_breakers_html_and_markup() {
        assert_eq!(escape("a|b"), "a\\|b");
        assert_eq!(escape("a\nb\r\nc\rd"), "a<br>b<br>c<br>d");
        assert_eq!(escape("`x`"), "\\`x\\`");
        assert_eq!(
            escape("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(escape("a & b"), "a &amp; b");
        assert_eq!(escape("[x](http://y)"), "\\[x\\](http://y)");
        assert_eq!(escape("*_~\\"), "\\*\\_\\~\\\\");
        assert_eq!(escape("cmdb_ci _x_ y_"), "cmdb_ci \\_x\\_ y\\_");
        assert_eq!(escape("ünï ✓"), "ünï ✓");
    }

    #[test]
    fn an_issue_row_shows_ten_ids_and_says_where_the_rest_are() {
        let group = super::super::model::issue_group_of;
        let md = Page::render(|md| issue_section(md, "Issues", "None.", &[group(1034)]));
        let row = md.lines().find(|l| l.starts_with("| 1034 VMs")).unwrap();
        assert!(
            row.contains("| 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, … and 1,024 more (every id is in drift.csv and plan.json) |"),
            "{row}"
        );
        let md = Page::render(|md| issue_section(md, "Issues", "None.", &[group(10)]));
        let row = md.lines().find(|l| l.starts_with("| 10 VMs")).unwrap();
        assert!(row.contains("| 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 |"), "{row}");
        assert!(!row.contains("more"), "{row}");
    }
}
