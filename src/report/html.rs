//! `drift.html`: one self-contained page a CMDB owner can read and filter in a browser.
//!
//! Self-contained because reports are mailed, attached to tickets and opened from shares behind
//! the firewall: inline CSS and a little inline JavaScript, no external asset, no CDN.
//!
//! Everything from the inventory is untrusted (a VM may be named `<script>...`). All of it goes
//! through [`escape`] into text or double-quoted attribute values; none of it ever reaches the
//! script, which is a constant and reads filter values back from escaped `data-*` attributes.
//! Context keys (which are data too) never become attribute names: filters refer to them by
//! index (`data-c0`, `data-c1`...).

use std::fmt::Write as _;

use similar::{ChangeTag, TextDiff};

use super::model::{plural, Action, ChangeRow, IssueGroup, OutcomeStatus, ReportModel};

/// Escapes text for HTML text and double- or single-quoted attribute values.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // NUL is replaced by parsers anyway; other controls are not valid HTML text.
            c if c.is_control() && c != '\n' && c != '\t' && c != '\r' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Values longer than this are not diffed character by character: the diff would be slow and
/// unreadable, so they are shown as a whole deletion and insertion.
const MAX_DIFF_CHARS: usize = 2000;

/// Below this similarity a character diff is noise (e.g. one sys_id replaced by another).
const MIN_DIFF_RATIO: f32 = 0.4;

/// An inline character diff of two values: deletions in `<del>`, insertions in `<ins>`.
pub fn inline_diff(current: &str, desired: &str) -> String {
    if current.chars().count() > MAX_DIFF_CHARS || desired.chars().count() > MAX_DIFF_CHARS {
        return whole_diff(current, desired);
    }
    // A number is one unit: `1<del>00</del>` for 100 -> 1 misleads more than it helps.
    if is_number(current) || is_number(desired) {
        return whole_diff(current, desired);
    }
    let diff = TextDiff::from_chars(current, desired);
    if diff.ratio() < MIN_DIFF_RATIO {
        return whole_diff(current, desired);
    }
    let mut out = String::new();
    for op in diff.ops() {
        for change in diff.iter_changes(op) {
            let text = escape(change.value());
            match change.tag() {
                ChangeTag::Equal => out.push_str(&text),
                ChangeTag::Delete => {
                    let _ = write!(out, "<del>{text}</del>");
                }
                ChangeTag::Insert => {
                    let _ = write!(out, "<ins>{text}</ins>");
                }
            }
        }
    }
    // Adjacent single-character runs of the same tag read better as one run.
    out.replace("</del><del>", "").replace("</ins><ins>", "")
}

fn is_number(value: &str) -> bool {
    value.trim().parse::<f64>().is_ok()
}

fn whole_diff(current: &str, desired: &str) -> String {
    format!(
        "<del>{}</del><span class=\"arrow\"> → </span><ins>{}</ins>",
        escape(current),
        escape(desired)
    )
}

const EMPTY: &str = "<span class=\"empty\">empty</span>";

/// The change cell of a row: what the value is now and what it becomes.
fn change_cell(row: &ChangeRow) -> String {
    if row.field.is_empty() {
        return match row.action {
            Action::Delete => "<span class=\"note\">the CI is deleted</span>".to_owned(),
            _ => "<span class=\"note\">no field change</span>".to_owned(),
        };
    }
    match (row.action, row.current.is_empty(), row.desired.is_empty()) {
        (Action::Create, _, true) => EMPTY.to_owned(),
        (Action::Create, _, false) => format!("<ins>{}</ins>", escape(&row.desired)),
        (_, true, true) => EMPTY.to_owned(),
        (_, true, false) => format!(
            "{EMPTY}<span class=\"arrow\"> → </span><ins>{}</ins>",
            escape(&row.desired)
        ),
        (_, false, true) => format!(
            "<del>{}</del><span class=\"arrow\"> → </span>{EMPTY}",
            escape(&row.current)
        ),
        (_, false, false) => inline_diff(&row.current, &row.desired),
    }
}

fn outcome_class(status: OutcomeStatus) -> &'static str {
    match status {
        OutcomeStatus::Applied => "ok",
        OutcomeStatus::Failed => "bad",
        OutcomeStatus::SkippedStale | OutcomeStatus::Skipped => "warn",
    }
}

/// The HTML report.
pub fn render(model: &ReportModel) -> String {
    let mut h = String::with_capacity(16 * 1024 + model.changes.len() * 600);
    let head = &model.header;
    let title = format!("Drift report: {} → {}", head.mapping, head.table);
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"cmdb-reconcile\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>",
        escape(&title)
    );
    header(&mut h, model);
    h.push_str("<main class=\"wrap\">\n");
    banners(&mut h, model);
    cards(&mut h, model);
    outcomes(&mut h, model);
    nav(&mut h, model);
    changes(&mut h, model);
    drift(&mut h, model);
    issues(
        &mut h,
        "quarantined",
        "Quarantined records",
        "Held back from every write until the data is fixed.",
        "No record is quarantined.",
        &model.quarantined,
    );
    issues(
        &mut h,
        "issues",
        "Issues",
        "Problems with records and values; the rest of the plan goes ahead.",
        "No other issue.",
        &model.issues,
    );
    h.push_str("</main>\n");
    let _ = writeln!(
        h,
        "<footer class=\"wrap\">cmdb-reconcile · mapping digest <code>{}</code> · generated {}</footer>",
        escape(&head.mapping_digest),
        escape(&head.generated_at)
    );
    let _ = writeln!(h, "<script>{JS}</script>\n</body>\n</html>");
    h
}

fn header(h: &mut String, model: &ReportModel) {
    let head = &model.header;
    let _ = writeln!(
        h,
        "<header class=\"top\"><div class=\"wrap\">\
         <div class=\"kicker\">CMDB drift report</div>\
         <h1>{} <span class=\"to\">→</span> <code>{}</code></h1>\
         <dl class=\"meta\">\
         <div><dt>Generated</dt><dd>{}</dd></div>\
         <div><dt>Source</dt><dd>{} · {} records{}{}</dd></div>\
         <div><dt>Target</dt><dd>{} · {} CIs, {} in scope</dd></div>\
         <div><dt>Scope</dt><dd><code>{}</code></dd></div>\
         <div><dt>Mapping</dt><dd>{}</dd></div>\
         </dl></div></header>",
        escape(&head.mapping),
        escape(&head.table),
        escape(&head.generated_at),
        escape(&head.source_origin),
        head.source_records,
        {
            let mut extra = String::new();
            if head.source_filtered_out > 0 {
                let _ = write!(extra, ", {} filtered out", head.source_filtered_out);
            }
            if head.source_inactive > 0 {
                let _ = write!(extra, ", {} inactive", head.source_inactive);
            }
            extra
        },
        if head.source_complete {
            ""
        } else {
            " · <strong class=\"bad\">incomplete</strong>"
        },
        escape(&head.target_origin),
        head.target_cis,
        head.target_in_scope,
        escape(&head.scope),
        escape(&head.mapping_origin),
    );
}

fn banners(h: &mut String, model: &ReportModel) {
    let safety = &model.safety;
    if safety.writes_blocked {
        h.push_str(
            "<div class=\"banner danger\" role=\"alert\"><strong>A safety guard tripped: \
             <code>apply</code> will write nothing.</strong><ul>",
        );
        for guard in &safety.guards_tripped {
            let _ = write!(
                h,
                "<li><code>{}</code>: {} planned, limit {}. {}</li>",
                escape(&guard.guard),
                guard.planned,
                escape(&guard.limit),
                escape(&guard.message)
            );
        }
        h.push_str("</ul>");
        if safety.mass_change_allowed {
            h.push_str("<p>Mass change was allowed for this run.</p>");
        }
        h.push_str("</div>\n");
    }
    if let Some(reason) = &safety.retirements_blocked {
        let _ = writeln!(
            h,
            "<div class=\"banner warn\" role=\"alert\"><strong>Retirements are blocked: \
             {} withheld.</strong> {}</div>",
            safety.retirements_withheld,
            escape(reason)
        );
    }
    if let Some(reason) = &safety.source_incomplete {
        if safety.retirements_blocked.is_none() {
            let _ = writeln!(
                h,
                "<div class=\"banner warn\" role=\"alert\"><strong>The source read is \
                 incomplete.</strong> {}</div>",
                escape(reason)
            );
        }
    }
    if !safety.writes_blocked && safety.mass_change_allowed {
        h.push_str(
            "<div class=\"banner info\">Mass change was explicitly allowed for this run.</div>\n",
        );
    }
}

fn cards(h: &mut String, model: &ReportModel) {
    let s = &model.summary;
    let mut update_note = Vec::new();
    if s.restores > 0 {
        update_note.push(plural(s.restores, "restore", "restores"));
    }
    if s.heartbeats > 0 {
        update_note.push(plural(s.heartbeats, "heartbeat", "heartbeats"));
    }
    if s.report_only > 0 {
        update_note.push(format!("+{} not written (ignore)", s.report_only));
    }
    let withheld = if model.safety.retirements_withheld > 0 {
        format!("{} withheld", model.safety.retirements_withheld)
    } else {
        String::new()
    };
    let cards: [(&str, &str, usize, String); 8] = [
        ("create", "Create", s.creates, String::new()),
        ("update", "Update", s.updates, update_note.join(" · ")),
        ("mark_absent", "Mark absent", s.marked_absent, String::new()),
        ("retire", "Retire", s.retirements, withheld),
        ("delete", "Delete", s.deletes, String::new()),
        ("unchanged", "Unchanged", s.unchanged, String::new()),
        ("quarantined", "Quarantined", s.quarantined, String::new()),
        ("issues", "Other issues", s.other_issues, String::new()),
    ];
    h.push_str("<section class=\"cards\" aria-label=\"Summary\">");
    for (class, label, count, note) in cards {
        let zero = if count == 0 { " zero" } else { "" };
        let _ = write!(
            h,
            "<div class=\"card c-{class}{zero}\"><div class=\"n\">{count}</div>\
             <div class=\"l\">{label}</div><div class=\"s\">{}</div></div>",
            escape(&note)
        );
    }
    h.push_str("</section>\n");
}

fn outcomes(h: &mut String, model: &ReportModel) {
    let Some(outcome) = &model.outcomes else {
        return;
    };
    h.push_str("<section id=\"outcome\"><h2>Apply outcome</h2><div class=\"cards small\">");
    let counts = [
        ("ok", "Applied", outcome.applied),
        ("bad", "Failed", outcome.failed),
        ("warn", "Skipped (stale)", outcome.skipped_stale),
        ("warn", "Skipped", outcome.skipped),
        ("muted", "Not attempted", outcome.not_attempted),
    ];
    for (class, label, count) in counts {
        let zero = if count == 0 { " zero" } else { "" };
        let _ = write!(
            h,
            "<div class=\"card o-{class}{zero}\"><div class=\"n\">{count}</div>\
             <div class=\"l\">{label}</div></div>"
        );
    }
    h.push_str("</div>");
    let problems: Vec<_> = outcome
        .outcomes
        .iter()
        .filter(|o| o.status != OutcomeStatus::Applied)
        .collect();
    if !problems.is_empty() {
        h.push_str(
            "<table class=\"plain\"><thead><tr><th>Status</th><th>sys_id</th><th>VM</th>\
             <th>Message</th></tr></thead><tbody>",
        );
        for o in problems {
            let _ = write!(
                h,
                "<tr><td><span class=\"status {}\">{}</span></td><td><code>{}</code></td>\
                 <td><code>{}</code></td><td>{}</td></tr>",
                outcome_class(o.status),
                o.status.label(),
                escape(o.sys_id.as_deref().unwrap_or("")),
                escape(o.source_id.as_deref().unwrap_or("")),
                escape(&o.message)
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>\n");
}

fn nav(h: &mut String, model: &ReportModel) {
    let q: usize = model.quarantined.iter().map(|g| g.issues.len()).sum();
    let i: usize = model.issues.iter().map(|g| g.issues.len()).sum();
    let _ = writeln!(
        h,
        "<nav class=\"toc\"><a href=\"#changes\">Changes <b>{}</b></a>\
         <a href=\"#drift\">Drift by field <b>{}</b></a>\
         <a href=\"#quarantined\">Quarantined <b>{q}</b></a>\
         <a href=\"#issues\">Issues <b>{i}</b></a></nav>",
        model.changes.len(),
        model.drift_by_field.len(),
    );
}

fn select(h: &mut String, attribute: &str, label: &str, values: &[(String, String)]) {
    let _ = write!(
        h,
        "<label class=\"sel\"><span>{}</span><select data-filter=\"{}\">\
         <option value=\"\">all</option>",
        escape(label),
        escape(attribute)
    );
    for (value, text) in values {
        let _ = write!(
            h,
            "<option value=\"{}\">{}</option>",
            escape(value),
            escape(text)
        );
    }
    h.push_str("</select></label>");
}

fn changes(h: &mut String, model: &ReportModel) {
    h.push_str("<section id=\"changes\"><h2>Changes</h2>\n");
    if model.changes.is_empty() {
        h.push_str("<p class=\"none\">No change: the CMDB matches the inventory.</p></section>\n");
        return;
    }
    let actions = model.actions_present();
    h.push_str("<div class=\"filters\" role=\"search\">");
    h.push_str(
        "<input type=\"search\" id=\"q\" placeholder=\"Filter by any text: name, sys_id, value…\" \
         aria-label=\"Filter changes\">",
    );
    let action_values: Vec<(String, String)> = actions
        .iter()
        .map(|a| (a.as_str().to_owned(), a.label().to_owned()))
        .collect();
    select(h, "data-action", "Action", &action_values);
    let fields: Vec<(String, String)> = model
        .fields_present()
        .into_iter()
        .map(|f| (f.clone(), f))
        .collect();
    select(h, "data-field", "Field", &fields);
    for (index, key) in model.context_keys.iter().enumerate() {
        let values: Vec<(String, String)> = model
            .context_values(key)
            .into_iter()
            .map(|v| (v.clone(), v))
            .collect();
        select(h, &format!("data-c{index}"), key, &values);
    }
    let _ = writeln!(
        h,
        "<button type=\"button\" id=\"reset\">Reset</button>\
         <span id=\"shown\" aria-live=\"polite\">{0} of {0} changes</span></div>",
        model.changes.len()
    );
    let with_outcomes = model.outcomes.is_some();
    for action in actions {
        let rows: Vec<&ChangeRow> = model.rows_of(action).collect();
        // Consecutive rows of one CI are one operation: shown as a CI heading and its fields.
        let mut operations: Vec<Vec<&ChangeRow>> = Vec::new();
        for row in rows.iter().copied() {
            match operations.last_mut() {
                Some(op) if same_operation(op[0], row) => op.push(row),
                _ => operations.push(vec![row]),
            }
        }
        let _ = writeln!(
            h,
            "<section class=\"group a-{0}\" data-group=\"{0}\"><h3><span class=\"pill a-{0}\">{1}</span> \
             <span class=\"count\">{2} · {3}</span></h3><p class=\"desc\">{4}</p>\n\
             <table class=\"changes\"><colgroup><col class=\"w-field\"><col class=\"w-change\">\
             <col class=\"w-mode\"><col class=\"w-from\"></colgroup><thead><tr><th>Field</th>\
             <th>Change</th><th>Mode</th><th>From</th></tr></thead>",
            action.as_str(),
            action.label(),
            plural(operations.len(), "CI", "CIs"),
            plural(rows.len(), "change", "changes"),
            action.description(),
        );
        for operation in operations {
            h.push_str("<tbody class=\"op\">");
            operation_heading(h, model, operation[0], with_outcomes);
            for row in operation {
                change_row(h, model, row);
            }
            h.push_str("</tbody>\n");
        }
        h.push_str("</table></section>\n");
    }
    h.push_str(
        "<p class=\"none\" id=\"nomatch\" hidden>No change matches the filters.</p></section>\n",
    );
}

fn same_operation(a: &ChangeRow, b: &ChangeRow) -> bool {
    a.action == b.action && a.sys_id == b.sys_id && a.source_id == b.source_id
}

/// The heading row of one operation: the CI, the ids a reviewer looks it up by, its context,
/// why it is retired and what `apply` did with it.
fn operation_heading(h: &mut String, model: &ReportModel, row: &ChangeRow, outcomes: bool) {
    let name = if row.name.is_empty() {
        "<span class=\"empty\">no name</span>".to_owned()
    } else {
        escape(&row.name)
    };
    let _ = write!(
        h,
        "<tr class=\"cihead\"><td colspan=\"4\"><div class=\"line\"><span class=\"name\">{name}</span>"
    );
    let ids = [
        ("sys_id", "sys_id", &row.sys_id),
        ("VM", "CloudForms VM id", &row.source_id),
        ("by", "identity rule that matched", &row.matched_by),
    ];
    for (label, title, value) in ids {
        if !value.is_empty() {
            let _ = write!(
                h,
                "<span class=\"id\" title=\"{title}\">{label} <code>{}</code></span>",
                escape(value)
            );
        }
    }
    for key in &model.context_keys {
        if let Some(value) = row.context.get(key) {
            let _ = write!(
                h,
                "<span class=\"chip\"><span class=\"k\">{}</span> {}</span>",
                escape(key),
                escape(value)
            );
        }
    }
    if outcomes {
        h.push_str("<span class=\"outcome\">");
        match &row.outcome {
            Some(o) => {
                let _ = write!(
                    h,
                    "<span class=\"status {}\">{}</span>",
                    outcome_class(o.status),
                    o.status.label()
                );
                if let (Action::Create, Some(sys_id)) = (row.action, &o.sys_id) {
                    let _ = write!(
                        h,
                        " <span class=\"id\">new sys_id <code>{}</code></span>",
                        escape(sys_id)
                    );
                }
            }
            None if row.written => h.push_str("<span class=\"status muted\">not attempted</span>"),
            None => h.push_str("<span class=\"status muted\">not written</span>"),
        }
        h.push_str("</span>");
    }
    h.push_str("</div>");
    if let Some(reason) = &row.reason {
        let _ = write!(h, "<div class=\"reason\">{}</div>", escape(reason));
    }
    if let Some(o) = row.outcome.as_ref().filter(|o| !o.message.is_empty()) {
        let _ = write!(
            h,
            "<div class=\"message {}\">{}</div>",
            outcome_class(o.status),
            escape(&o.message)
        );
    }
    h.push_str("</td></tr>");
}

fn change_row(h: &mut String, model: &ReportModel, row: &ChangeRow) {
    let _ = write!(
        h,
        "<tr class=\"{}\" data-row=\"\" data-action=\"{}\" data-field=\"{}\"",
        if row.written { "row" } else { "row unwritten" },
        row.action.as_str(),
        escape(&row.field)
    );
    for (index, key) in model.context_keys.iter().enumerate() {
        if let Some(value) = row.context.get(key) {
            let _ = write!(h, " data-c{index}=\"{}\"", escape(value));
        }
    }
    h.push('>');
    let _ = write!(
        h,
        "<td class=\"field\"><code>{}</code></td>",
        escape(&row.field)
    );
    let _ = write!(h, "<td class=\"diff\">{}</td>", change_cell(row));
    let mode = if row.mode.is_empty() {
        String::new()
    } else if row.written {
        format!("<span class=\"mode\">{}</span>", escape(&row.mode))
    } else {
        format!(
            "<span class=\"mode ignore\">{}</span> <span class=\"hint\">not written</span>",
            escape(&row.mode)
        )
    };
    let _ = write!(h, "<td class=\"modecell\">{mode}</td>");
    // A delete's `from` is its reason, already in the heading.
    let from = if row.field.is_empty() {
        String::new()
    } else {
        format!("<code class=\"expr\">{}</code>", escape(&row.from))
    };
    let _ = writeln!(h, "<td class=\"from\">{from}</td></tr>");
}

fn drift(h: &mut String, model: &ReportModel) {
    h.push_str("<section id=\"drift\"><h2>Drift by field</h2>");
    if model.drift_by_field.is_empty() {
        h.push_str("<p class=\"none\">No field drifted.</p></section>\n");
        return;
    }
    h.push_str(
        "<p class=\"desc\">Changes planned per field across drift updates (restores and heartbeats aside). A field that drifts on \
         many CIs usually points at a mapping rule or a process writing the CMDB by hand.</p>\
         <table class=\"plain drift\"><thead><tr><th>Field</th><th></th><th class=\"num\">Changes</th>\
         <th class=\"num\">Written</th></tr></thead><tbody>",
    );
    let max = model
        .drift_by_field
        .iter()
        .map(|d| d.changes)
        .max()
        .unwrap_or(1)
        .max(1);
    for d in &model.drift_by_field {
        let width = d.changes * 100 / max;
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td class=\"barcell\"><div class=\"bar\" \
             style=\"width:{width}%\"></div></td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&d.field),
            d.changes,
            d.written
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn issues(
    h: &mut String,
    id: &str,
    title: &str,
    description: &str,
    none: &str,
    groups: &[IssueGroup],
) {
    let _ = write!(h, "<section id=\"{id}\"><h2>{title}</h2>");
    if groups.is_empty() {
        let _ = writeln!(h, "<p class=\"none\">{none}</p></section>");
        return;
    }
    let _ = write!(h, "<p class=\"desc\">{description}</p>");
    for group in groups {
        let _ = write!(
            h,
            "<div class=\"issue-group k-{}\"><h3>{} <span class=\"count\">{}</span></h3>\
             <p class=\"desc\">{}</p><table class=\"plain issues\"><colgroup><col class=\"w-name\">\
             <col class=\"w-ids\"><col class=\"w-ids\"><col class=\"w-ifield\"><col class=\"w-why\">\
             </colgroup><thead><tr><th>Name</th><th>VMs</th><th>CIs</th><th>Field</th><th>Why</th>\
             </tr></thead><tbody>",
            escape(&group.kind),
            escape(&group.label),
            group.issues.len(),
            escape(&group.description)
        );
        for issue in &group.issues {
            let codes = |values: &[String]| {
                values
                    .iter()
                    .map(|v| format!("<code>{}</code>", escape(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let _ = write!(
                h,
                "<tr><td class=\"name\">{}</td><td>{}</td><td>{}</td><td><code>{}</code></td>\
                 <td>{}</td></tr>",
                escape(&issue.name),
                codes(&issue.source_ids),
                codes(&issue.sys_ids),
                escape(&issue.field),
                escape(&issue.message)
            );
        }
        h.push_str("</tbody></table></div>");
    }
    h.push_str("</section>\n");
}

const CSS: &str = r#"
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--bg:#fff;
--create:#1a7f37;--update:#0969da;--restore:#1b7c83;--heartbeat:#6e7781;--mark_absent:#9a6700;
--retire:#bc4c00;--delete:#cf222e;--quarantined:#8250df;--issues:#9a6700;--unchanged:#6e7781}
*{box-sizing:border-box}
[hidden]{display:none!important}
html{font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI","Noto Sans",Helvetica,Arial,sans-serif;color:var(--fg);background:var(--soft)}
body{margin:0}
code{font:12.5px/1.4 ui-monospace,SFMono-Regular,"SF Mono",Menlo,Consolas,"Liberation Mono",monospace}
.wrap{max-width:1320px;margin:0 auto;padding:0 24px}
header.top{background:#24292f;color:#fff;padding:20px 0 16px}
header.top .kicker{text-transform:uppercase;letter-spacing:.08em;font-size:11px;color:#9ea7b3}
header.top h1{margin:4px 0 12px;font-size:24px;font-weight:600;word-break:break-word}
header.top h1 code{font-size:20px;background:#32383f;padding:1px 8px;border-radius:6px}
header.top .to{color:#9ea7b3}
dl.meta{display:flex;flex-wrap:wrap;gap:6px 28px;margin:0;font-size:13px}
dl.meta div{display:flex;gap:6px;min-width:0}
dl.meta dt{color:#9ea7b3}
dl.meta dd{margin:0;word-break:break-word}
dl.meta code{font-size:12px;color:#fff}
.bad{color:#ff8182}
main.wrap{padding-top:20px;padding-bottom:8px}
h2{font-size:19px;margin:28px 0 10px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:18px 0 4px;display:flex;align-items:center;gap:10px}
p.desc{margin:2px 0 10px;color:var(--muted)}
p.none{color:var(--muted);font-style:italic}
.banner{border:1px solid;border-left-width:6px;border-radius:6px;padding:12px 16px;margin:0 0 12px;background:#fff}
.banner ul{margin:6px 0 0;padding-left:20px}.banner p{margin:6px 0 0}
.banner.danger{border-color:#ff8182;border-left-color:var(--delete);background:#ffebe9}
.banner.warn{border-color:#d4a72c;border-left-color:#bf8700;background:#fff8c5}
.banner.info{border-color:#54aeff;border-left-color:var(--update);background:#ddf4ff}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:10px;margin:6px 0 8px}
.card{background:#fff;border:1px solid var(--line);border-top:4px solid var(--c,var(--line));border-radius:8px;padding:10px 14px}
.card .n{font-size:26px;font-weight:600;line-height:1.1}
.card .l{font-weight:600;color:var(--fg)}
.card .s{font-size:12px;color:var(--muted);min-height:1em}
.card.zero{border-top-color:var(--line)}.card.zero .n{color:#8c959f}
.cards.small .card{padding:8px 12px}.cards.small .n{font-size:20px}
.c-create{--c:var(--create)}.c-update{--c:var(--update)}.c-mark_absent{--c:var(--mark_absent)}
.c-retire{--c:var(--retire)}.c-delete{--c:var(--delete)}.c-unchanged{--c:var(--unchanged)}
.c-quarantined{--c:var(--quarantined)}.c-issues{--c:var(--issues)}
.o-ok{--c:var(--create)}.o-bad{--c:var(--delete)}.o-warn{--c:#bf8700}.o-muted{--c:var(--heartbeat)}
nav.toc{display:flex;gap:6px;flex-wrap:wrap;margin:14px 0 0}
nav.toc a{color:var(--fg);text-decoration:none;background:#fff;border:1px solid var(--line);border-radius:20px;padding:3px 12px}
nav.toc a:hover{border-color:var(--update)}
nav.toc b{font-weight:600;color:var(--muted);margin-left:4px}
.filters{position:sticky;top:0;z-index:2;display:flex;flex-wrap:wrap;align-items:center;gap:8px 12px;background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 12px;margin:0 0 6px;box-shadow:0 1px 3px rgba(31,35,40,.06)}
.filters input{flex:1 1 260px;min-width:200px;font:inherit;padding:5px 10px;border:1px solid var(--line);border-radius:6px}
.filters input:focus,.filters select:focus{outline:2px solid #0969da55;border-color:var(--update)}
.filters label.sel{display:flex;align-items:center;gap:5px;color:var(--muted);font-size:13px}
.filters select{font:inherit;padding:4px 6px;border:1px solid var(--line);border-radius:6px;background:var(--soft);max-width:190px;color:var(--fg)}
.filters button{font:inherit;padding:4px 12px;border:1px solid var(--line);border-radius:6px;background:var(--soft);cursor:pointer}
#shown{margin-left:auto;color:var(--muted);font-size:13px;white-space:nowrap}
.pill{display:inline-block;color:#fff;background:var(--a);border-radius:12px;padding:1px 10px;font-size:13px;font-weight:600}
.a-create{--a:var(--create)}.a-update{--a:var(--update)}.a-restore{--a:var(--restore)}.a-heartbeat{--a:var(--heartbeat)}
.a-mark_absent{--a:var(--mark_absent)}.a-retire{--a:var(--retire)}.a-delete{--a:var(--delete)}
.count{color:var(--muted);font-weight:400;font-size:13px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line);border-radius:8px;overflow:hidden}
th{text-align:left;font-weight:600;font-size:12px;color:var(--muted);background:var(--soft);padding:7px 10px;border-bottom:1px solid var(--line)}
td{padding:6px 10px;vertical-align:top;overflow-wrap:anywhere;word-break:break-word}
table.changes{table-layout:fixed}
table.changes tbody.op{border-top:1px solid var(--line)}
tr.cihead td{background:var(--soft);padding:8px 10px 6px;box-shadow:inset 3px 0 var(--a)}
tr.row td.field{padding-left:22px}
tr.cihead .line{display:flex;flex-wrap:wrap;align-items:center;gap:4px 10px}
tr.cihead .name{font-weight:600;font-size:14.5px;overflow-wrap:anywhere}
tr.cihead .id{font-size:12px;color:var(--muted)}
tr.cihead .id code{font-size:11.5px;color:var(--fg)}
tr.cihead .outcome{margin-left:auto}
tr.cihead .reason{font-size:12.5px;color:var(--fg);margin-top:3px}
tr.cihead .message{font-size:12.5px;margin-top:3px}
.message.bad{color:var(--delete)}.message.warn{color:#7d4e00}
table.changes tr.row td{border-top:1px dashed #eaeef2}
table.changes tr.cihead+tr.row td{border-top:0}
table.changes tr.row:hover td{background:#f6f8fa}
col.w-field{width:17%}col.w-change{width:45%}col.w-mode{width:13%}col.w-from{width:25%}
td.field code{font-weight:600}
td.diff{font:12.5px/1.5 ui-monospace,SFMono-Regular,"SF Mono",Menlo,Consolas,"Liberation Mono",monospace;white-space:pre-wrap}
ins{background:#aceebb;color:#0f3d1c;text-decoration:none;border-radius:2px}
del{background:#ffcecb;color:#6e1015;text-decoration:line-through;text-decoration-color:#cf222e88;border-radius:2px}
del+ins{margin-left:1px}
.arrow{color:var(--muted)}
.empty{color:#8c959f;font-style:italic;font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",sans-serif;font-size:12px}
.note{color:var(--muted);font-style:italic;font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",sans-serif}
.mode{font-size:12px;border:1px solid var(--line);border-radius:10px;padding:0 7px;color:var(--muted);white-space:nowrap}
.mode.ignore{border-style:dashed}
.hint{font-size:12px;color:var(--muted)}
tr.unwritten td.diff{opacity:.6}
td.from code.expr{font-size:12px;color:#3d444d;background:var(--soft);border-radius:4px;padding:0 4px}
.chip{display:inline-block;font-size:11.5px;background:#fff;border:1px solid var(--line);border-radius:10px;padding:0 7px;max-width:100%;overflow-wrap:anywhere}
.chip .k{color:var(--muted)}
.status{font-size:12px;font-weight:600;border-radius:10px;padding:1px 8px;white-space:nowrap}
.status.ok{background:#dafbe1;color:var(--create)}.status.bad{background:#ffebe9;color:var(--delete)}
.status.warn{background:#fff8c5;color:#7d4e00}.status.muted{background:var(--soft);color:var(--muted)}
.issue-group{margin:0 0 14px}
.issue-group h3{margin-top:10px}
table.plain td.name{font-weight:600}
table.drift{max-width:760px}
table.issues{table-layout:fixed}
col.w-name{width:22%}col.w-ids{width:19%}col.w-ifield{width:13%}col.w-why{width:27%}
.num{text-align:right;white-space:nowrap}
td.barcell{width:45%;vertical-align:middle}
.bar{height:10px;border-radius:5px;background:linear-gradient(90deg,#54aeff,#0969da);min-width:2px}
footer{color:var(--muted);font-size:12px;padding:20px 24px 30px}
@media print{.filters,nav.toc{display:none}html{background:#fff}table.changes tr.row:hover td{background:none}}
"#;

/// The filter script. A constant: no report data is ever interpolated into it; it reads the
/// (escaped) `data-*` attributes of the rows and the values of the filter controls.
const JS: &str = r#"
(function () {
  var q = document.getElementById('q');
  if (!q) return;
  var selects = Array.prototype.slice.call(document.querySelectorAll('select[data-filter]'));
  var rows = Array.prototype.slice.call(document.querySelectorAll('tr[data-row]'));
  var ops = Array.prototype.slice.call(document.querySelectorAll('tbody.op'));
  var groups = Array.prototype.slice.call(document.querySelectorAll('section.group'));
  var shown = document.getElementById('shown');
  var nomatch = document.getElementById('nomatch');
  // A row matches the text filter on its own text or its CI heading's (name, ids, context).
  var texts = rows.map(function (r) {
    var head = r.parentNode.querySelector('tr.cihead');
    return ((head ? head.textContent : '') + ' ' + r.textContent).toLowerCase();
  });
  function apply() {
    var needle = q.value.trim().toLowerCase();
    var wanted = selects.filter(function (s) { return s.value !== ''; });
    var count = 0;
    rows.forEach(function (row, i) {
      var ok = needle === '' || texts[i].indexOf(needle) !== -1;
      for (var j = 0; ok && j < wanted.length; j++) {
        ok = row.getAttribute(wanted[j].getAttribute('data-filter')) === wanted[j].value;
      }
      row.hidden = !ok;
      if (ok) count++;
    });
    ops.forEach(function (op) {
      op.hidden = !op.querySelector('tr[data-row]:not([hidden])');
    });
    groups.forEach(function (g) {
      g.hidden = !g.querySelector('tr[data-row]:not([hidden])');
    });
    shown.textContent = count + ' of ' + rows.length + ' changes';
    nomatch.hidden = count !== 0;
  }
  q.addEventListener('input', apply);
  selects.forEach(function (s) { s.addEventListener('change', apply); });
  document.getElementById('reset').addEventListener('click', function () {
    q.value = '';
    selects.forEach(function (s) { s.value = ''; });
    apply();
  });
  apply();
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_attributes() {
        assert_eq!(
            escape(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(escape("a\u{0}b"), "a\u{FFFD}b");
    }

    #[test]
    fn diff_marks_deleted_and_inserted_characters() {
        assert_eq!(
            inline_diff("100", "1"),
            "<del>100</del><span class=\"arrow\"> → </span><ins>1</ins>"
        );
        assert_eq!(
            inline_diff("web-01", "web-02"),
            "web-0<del>1</del><ins>2</ins>"
        );
        assert_eq!(inline_diff("a<b", "a<c"), "a&lt;<del>b</del><ins>c</ins>");
    }

    #[test]
    fn long_values_are_not_diffed_by_character() {
        let a = "x".repeat(MAX_DIFF_CHARS + 1);
        let b = format!("{a}y");
        assert!(inline_diff(&a, &b).starts_with("<del>"));
    }
}
