//! `drift.html`: one self-contained page a CMDB owner can read and filter in a browser.
//!
//! Self-contained because reports are mailed, attached to tickets and opened from shares behind
//! the firewall: inline CSS and inline JavaScript, no external asset, no CDN, works from
//! `file://`.
//!
//! Built to stay quick at a million VMs: the summary, banners, apply outcome, drift by field,
//! relationships and issues are plain HTML, drawn as the page arrives; the change rows (which
//! grow with the estate) travel as JSON in a `<script type="application/json">` block and the
//! script draws one page of them at a time (100 rows by default) as a real table, filters and
//! searches over the array, and builds its lowercase search texts once, when the browser is
//! idle or at the first keystroke. The layout of that JSON is described at `write_data`.
//!
//! Everything from the inventory is untrusted (a VM may be named `<script>...`). In the HTML it
//! goes through [`escape`] into text or double-quoted attribute values. In the JSON block it is
//! a JSON string with `<`, `>` and `&` written as `\u003c`, `\u003e` and `\u0026` (so no
//! `</script>` or `<!--` can end or change the block) and U+2028/U+2029 escaped; the script is
//! a constant, reads that block with `JSON.parse` and puts values into the page only as text
//! (`textContent`, `createElement`), never as markup. Context keys (which are data too) never
//! become attribute names: filters refer to them by index (`data-c0`, `data-c1`...).

use std::collections::HashMap;
use std::fmt::Write as _;

use similar::{ChangeTag, TextDiff};

use super::model::{plural, shown_ids, Action, ChangeRow, IssueGroup, OutcomeStatus, ReportModel};
use super::Page;

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

/// One piece of a change cell, as the script draws it (its number is the JSON's `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// Text the current and desired values share.
    Same = 0,
    /// Text only in the current value (`<del>`).
    Del = 1,
    /// Text only in the desired value (`<ins>`).
    Ins = 2,
    /// The ` → ` between a whole current and desired value.
    Arrow = 3,
    /// An empty value, shown as the word `empty`.
    Empty = 4,
    /// A remark instead of a value (`the CI is deleted`, `no field change`).
    Note = 5,
}

/// The segments of an inline character diff of two values, adjacent runs of one kind merged.
pub fn diff_segments(current: &str, desired: &str) -> Vec<(Segment, String)> {
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
    let mut out: Vec<(Segment, String)> = Vec::new();
    for op in diff.ops() {
        for change in diff.iter_changes(op) {
            let kind = match change.tag() {
                ChangeTag::Equal => Segment::Same,
                ChangeTag::Delete => Segment::Del,
                ChangeTag::Insert => Segment::Ins,
            };
            match out.last_mut() {
                Some((last, text)) if *last == kind => text.push_str(change.value()),
                _ => out.push((kind, change.value().to_owned())),
            }
        }
    }
    out
}

/// An inline character diff of two values as HTML: deletions in `<del>`, insertions in `<ins>`.
pub fn inline_diff(current: &str, desired: &str) -> String {
    segments_html(&diff_segments(current, desired))
}

/// The HTML the script draws for these segments (for tests and readers of the JSON).
pub fn segments_html(segments: &[(Segment, String)]) -> String {
    let mut out = String::new();
    for (kind, text) in segments {
        let text = escape(text);
        let _ = match kind {
            Segment::Same => write!(out, "{text}"),
            Segment::Del => write!(out, "<del>{text}</del>"),
            Segment::Ins => write!(out, "<ins>{text}</ins>"),
            Segment::Arrow => write!(out, "<span class=\"arrow\"> → </span>"),
            Segment::Empty => write!(out, "<span class=\"empty\">empty</span>"),
            Segment::Note => write!(out, "<span class=\"note\">{text}</span>"),
        };
    }
    out
}

fn is_number(value: &str) -> bool {
    value.trim().parse::<f64>().is_ok()
}

fn whole_diff(current: &str, desired: &str) -> Vec<(Segment, String)> {
    vec![
        (Segment::Del, current.to_owned()),
        (Segment::Arrow, String::new()),
        (Segment::Ins, desired.to_owned()),
    ]
}

/// The change cell of a row: what the value is now and what it becomes.
pub fn change_segments(row: &ChangeRow) -> Vec<(Segment, String)> {
    let empty = || (Segment::Empty, String::new());
    let arrow = || (Segment::Arrow, String::new());
    if row.field.is_empty() {
        let note = match row.action {
            Action::Delete => "the CI is deleted",
            _ => "no field change",
        };
        return vec![(Segment::Note, note.to_owned())];
    }
    match (row.action, row.current.is_empty(), row.desired.is_empty()) {
        (Action::Create, _, true) | (_, true, true) => vec![empty()],
        (Action::Create, _, false) => vec![(Segment::Ins, row.desired.clone())],
        (_, true, false) => vec![empty(), arrow(), (Segment::Ins, row.desired.clone())],
        (_, false, true) => vec![(Segment::Del, row.current.clone()), arrow(), empty()],
        (_, false, false) => diff_segments(&row.current, &row.desired),
    }
}

fn outcome_class(status: OutcomeStatus) -> &'static str {
    match status {
        OutcomeStatus::Applied => "ok",
        OutcomeStatus::Failed | OutcomeStatus::Unknown | OutcomeStatus::OverwroteConcurrentEdit => {
            "bad"
        }
        OutcomeStatus::SkippedStale | OutcomeStatus::Skipped => "warn",
        OutcomeStatus::NotAttempted => "muted",
    }
}

/// The HTML report.
pub fn render(model: &ReportModel) -> String {
    Page::render(|page| render_to(model, page))
}

/// The HTML report, written into `h` section by section (and row by row where a section can
/// be long), so that the page is never held whole.
pub fn render_to(model: &ReportModel, h: &mut Page) {
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
    header(h, model);
    h.push_str("<main class=\"wrap\">\n");
    banners(h, model);
    h.spill();
    cards(h, model);
    h.spill();
    outcomes(h, model);
    h.spill();
    nav(h, model);
    h.spill();
    // Drift by field before the changes: it is small, drawn at once, and where a reviewer
    // looks first for a mapping or a process gone wrong.
    drift(h, model);
    h.spill();
    changes(h, model);
    h.spill();
    orders(h, model);
    h.spill();
    relationships(h, model);
    h.spill();
    classifications(h, model);
    h.spill();
    issues(
        h,
        "quarantined",
        "Quarantined records",
        "Held back from every write until the data is fixed.",
        "No record is quarantined.",
        &model.quarantined,
    );
    issues(
        h,
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
    if !model.changes.is_empty() || model.relationships.len() > STATIC_RELATIONSHIPS {
        h.push_str("<script type=\"application/json\" id=\"report-data\">");
        write_data(h, model);
        h.push_str("</script>\n");
    }
    let _ = writeln!(h, "<script>{JS}</script>\n</body>\n</html>");
}

/// The JSON string of the change rows the page's script reads (`<script id="report-data">`).
pub fn data_json(model: &ReportModel) -> String {
    let mut out = String::with_capacity(model.changes.len() * 80);
    write_data(&mut out, model);
    out
}

/// Writes `value` as a JSON string that is safe inside a `<script>` block: `<`, `>` and `&`
/// as `\u003c`, `\u003e`, `\u0026` (no `</script>`, `<!--` or `<script` can appear), and the
/// line separators U+2028 and U+2029 escaped (older JavaScript parsers end a line on them).
pub fn json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Strings that repeat from row to row (fields, modes, mapping expressions, context values),
/// written once in the JSON and referred to by index.
#[derive(Default)]
struct Strings<'a> {
    index: HashMap<&'a str, usize>,
    list: Vec<&'a str>,
}

impl<'a> Strings<'a> {
    /// The index of `value`; `-1` (written as such) for an empty string.
    fn id(&mut self, value: &'a str) -> i64 {
        if value.is_empty() {
            return -1;
        }
        let next = self.list.len();
        let id = *self.index.entry(value).or_insert(next);
        if id == next {
            self.list.push(value);
        }
        id as i64
    }
}

/// The change rows as JSON, one object:
///
/// - `strings`: the interned strings; `-1` stands for an empty string;
/// - `actions`: per [`Action::ALL`] entry `[name, label, description]`;
/// - `statuses`: per [`OutcomeStatus::ALL`] entry `[css class, label]`;
/// - `contextKeys`: the context keys, in filter order (`data-c0`...);
/// - `outcomes`: whether the model carries apply outcomes;
/// - `total`: the number of change rows;
/// - `rels`: the relationship rows, `[action, type, parent, child, reason]`;
/// - `ops`: the operations (consecutive rows of one CI and action), in report order, each
///   `[action, name, sys_id, source_id, matched_by, context, reason, written, outcome, rels,
///   rows]`: `action` indexes `actions`; `context` holds a string index (or -1) per context
///   key; `reason` is a string or `null`; `written` (0 or 1) is the first row's; `outcome` is
///   `null` or `[status index, message, sys_id of a created CI]`; `rels` indexes `rels` (the
///   rows planned around this CI); `rows` are the operation's changes, each `[field, mode,
///   from, written, cell]` with string indexes and `cell` the flat list `kind, text, kind,
///   text...` of [`Segment`]s.
fn write_data(out: &mut String, model: &ReportModel) {
    let mut strings = Strings::default();
    // Operations first, into a buffer: the string table is complete only at the end.
    let mut ops = String::with_capacity(model.changes.len() * 80);
    let rels_around = rels_index(model);
    let mut first = true;
    let mut rows = model.changes.iter().peekable();
    while let Some(head) = rows.next() {
        let mut operation = vec![head];
        while let Some(next) = rows.next_if(|r| same_operation(head, r)) {
            operation.push(next);
        }
        if !first {
            ops.push(',');
        }
        first = false;
        let action = Action::ALL
            .iter()
            .position(|a| *a == head.action)
            .unwrap_or(0);
        let _ = write!(ops, "[{action},");
        json_string(&mut ops, &head.name);
        ops.push(',');
        json_string(&mut ops, &head.sys_id);
        ops.push(',');
        json_string(&mut ops, &head.source_id);
        ops.push(',');
        json_string(&mut ops, &head.matched_by);
        ops.push_str(",[");
        for (i, key) in model.context_keys.iter().enumerate() {
            if i > 0 {
                ops.push(',');
            }
            let id = head
                .context
                .get(key)
                .map_or(-1, |value| strings.id(value.as_str()));
            let _ = write!(ops, "{id}");
        }
        ops.push_str("],");
        match &head.reason {
            Some(reason) => json_string(&mut ops, reason),
            None => ops.push_str("null"),
        }
        let _ = write!(ops, ",{},", u8::from(head.written));
        match &head.outcome {
            Some(o) => {
                let status = OutcomeStatus::ALL
                    .iter()
                    .position(|s| *s == o.status)
                    .unwrap_or(0);
                let _ = write!(ops, "[{status},");
                json_string(&mut ops, &o.message);
                ops.push(',');
                json_string(&mut ops, o.sys_id.as_deref().unwrap_or(""));
                ops.push(']');
            }
            None => ops.push_str("null"),
        }
        ops.push_str(",[");
        for (i, rel) in rels_around(head).iter().enumerate() {
            if i > 0 {
                ops.push(',');
            }
            let _ = write!(ops, "{rel}");
        }
        ops.push_str("],[");
        for (i, row) in operation.iter().enumerate() {
            if i > 0 {
                ops.push(',');
            }
            let field = strings.id(&row.field);
            let mode = strings.id(&row.mode);
            // A delete's `from` is its reason, already in the heading.
            let from = if row.field.is_empty() {
                -1
            } else {
                strings.id(&row.from)
            };
            let _ = write!(ops, "[{field},{mode},{from},{},[", u8::from(row.written));
            for (j, (kind, text)) in change_segments(row).iter().enumerate() {
                if j > 0 {
                    ops.push(',');
                }
                let _ = write!(ops, "{},", *kind as u8);
                json_string(&mut ops, text);
            }
            ops.push_str("]]");
        }
        ops.push_str("]]");
    }

    out.push_str("{\"strings\":[");
    for (i, value) in strings.list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(out, value);
    }
    out.push_str("],\n\"actions\":[");
    for (i, action) in Action::ALL.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        json_string(out, action.as_str());
        out.push(',');
        json_string(out, action.label());
        out.push(',');
        json_string(out, action.description());
        out.push(']');
    }
    out.push_str("],\n\"statuses\":[");
    for (i, status) in OutcomeStatus::ALL.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        json_string(out, outcome_class(*status));
        out.push(',');
        json_string(out, status.label());
        out.push(']');
    }
    out.push_str("],\n\"contextKeys\":[");
    for (i, key) in model.context_keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(out, key);
    }
    let _ = write!(
        out,
        "],\n\"outcomes\":{},\n\"total\":{},\n\"rels\":[",
        model.outcomes.is_some(),
        model.changes.len()
    );
    for (i, r) in model.relationships.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        json_string(out, r.action);
        out.push(',');
        json_string(out, &r.kind);
        out.push(',');
        json_string(out, &r.parent);
        out.push(',');
        json_string(out, &r.child);
        out.push(',');
        json_string(out, &r.reason);
        out.push(']');
    }
    out.push_str("],\n\"ops\":[\n");
    out.push_str(&ops);
    out.push_str("]}");
}

/// For an operation's first row, the indexes of the relationship rows planned around its CI
/// (as [`super::relations::RelRow::touches`] decides, through maps rather than a scan per CI).
fn rels_index(model: &ReportModel) -> impl Fn(&ChangeRow) -> Vec<usize> + '_ {
    let mut by_sys_id: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_source_id: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in model.relationships.iter().enumerate() {
        for end in [&r.parent_sys_id, &r.child_sys_id] {
            if !end.is_empty() {
                by_sys_id.entry(end.as_str()).or_default().push(i);
            }
        }
        if let Some(source) = r.new_ci_source_id.as_deref().filter(|s| !s.is_empty()) {
            by_source_id.entry(source).or_default().push(i);
        }
    }
    move |row: &ChangeRow| {
        let mut found = if row.sys_id.is_empty() {
            by_source_id.get(row.source_id.as_str()).cloned()
        } else {
            by_sys_id.get(row.sys_id.as_str()).cloned()
        }
        .unwrap_or_default();
        found.sort_unstable();
        found.dedup();
        found
    }
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
         <div><dt>Target</dt><dd>{} · {}</dd></div>\
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
            if let Some(window) = &head.source_window {
                let _ = write!(extra, "; {}", escape(window));
            }
            extra
        },
        if head.source_complete {
            ""
        } else {
            " · <strong class=\"bad\">incomplete</strong>"
        },
        escape(&head.target_origin),
        escape(&head.target_counts),
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
    let c = &s.counts;
    let mut update_note = Vec::new();
    if s.restores > 0 {
        update_note.push(plural(s.restores, "restore", "restores"));
    }
    if s.report_only > 0 {
        update_note.push(format!("+{} not written (ignore)", s.report_only));
    }
    let withheld = if model.safety.retirements_withheld > 0 {
        format!("{} withheld", model.safety.retirements_withheld)
    } else {
        String::new()
    };
    let issues_note = if c.quarantined > 0 {
        format!("{} quarantined", c.quarantined)
    } else {
        String::new()
    };
    // The summary table's words and numbers (`Counts`).
    let cards: [(&str, &str, usize, String); 10] = [
        ("create", "Create", c.create, String::new()),
        ("update", "Update", c.update, update_note.join(" · ")),
        ("heartbeat", "Heartbeat", c.heartbeat, String::new()),
        ("absent", "Absent", c.absent, String::new()),
        ("retire", "Retire", c.retire, withheld),
        ("delete", "Delete", c.delete, String::new()),
        ("order", "Order", c.order, String::new()),
        ("unchanged", "Unchanged", c.unchanged, String::new()),
        ("quarantined", "Quarantined", c.quarantined, String::new()),
        ("issues", "Issues", c.issues, issues_note),
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
    for (status, count) in outcome.counts() {
        let zero = if count == 0 { " zero" } else { "" };
        let _ = write!(
            h,
            "<div class=\"card o-{}{zero}\"><div class=\"n\">{count}</div>\
             <div class=\"l\">{}</div></div>",
            outcome_class(status),
            status.label()
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
    let _ = write!(
        h,
        "<nav class=\"toc\" aria-label=\"Sections\"><a href=\"#drift\">Drift by field <b>{}</b></a>\
         <a href=\"#changes\">Changes <b>{}</b></a>",
        model.drift_by_field.len(),
        model.changes.len(),
    );
    if !model.orders.is_empty() {
        let _ = write!(
            h,
            "<a href=\"#orders\">Orders <b>{}</b></a>",
            model.orders.len()
        );
    }
    if !model.relationships.is_empty() {
        let _ = write!(
            h,
            "<a href=\"#relationships\">Relationships <b>{}</b></a>",
            model.relationships.len()
        );
    }
    let _ = writeln!(
        h,
        "<a href=\"#quarantined\">Quarantined <b>{q}</b></a>\
         <a href=\"#issues\">Issues <b>{i}</b></a></nav>"
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
    // The script fills the pagers and the rows; without it, say where the rows are.
    h.push_str(
        "<nav class=\"pager\" aria-label=\"Pages of changes\" hidden></nav>\
         <div id=\"rows\"><p class=\"none\" id=\"loading\">Loading the changes…</p></div>\
         <nav class=\"pager\" aria-label=\"Pages of changes, bottom\" hidden></nav>\
         <noscript><p class=\"none\">The list of changes needs JavaScript; <code>drift.csv</code> \
         and <code>drift.md</code> next to this file list every change.</p></noscript>\
         <p class=\"none\" id=\"nomatch\" hidden>No change matches the filters.</p>\
         <p class=\"print-note\">Printed: the changes shown on screen (one page of them); \
         <code>drift.csv</code> and <code>drift.md</code> list every change.</p></section>\n",
    );
}

fn same_operation(a: &ChangeRow, b: &ChangeRow) -> bool {
    a.action == b.action && a.sys_id == b.sys_id && a.source_id == b.source_id
}

fn relationships(h: &mut String, model: &ReportModel) {
    if model.relationships.is_empty() && model.relationship_deletes_withheld == 0 {
        return;
    }
    h.push_str("<section id=\"relationships\"><h2>Relationships</h2>");
    if model.relationship_deletes_withheld > 0 {
        let _ = write!(
            h,
            "<p class=\"desc\">{} relationship deletes withheld with the retirements.</p>",
            model.relationship_deletes_withheld
        );
    }
    if model.relationships.is_empty() {
        h.push_str("<p class=\"none\">No relationship changes.</p></section>\n");
        return;
    }
    h.push_str(
        "<table class=\"plain rels\"><thead><tr><th>Action</th><th>Type</th><th>Parent</th>\
         <th>Child</th><th>Reason</th></tr></thead><tbody>",
    );
    // A long table in the HTML is slow to open (12,000 rows take seconds): the first rows are
    // HTML, the rest are drawn from the JSON block on request.
    for r in model.relationships.iter().take(STATIC_RELATIONSHIPS) {
        let _ = write!(
            h,
            "<tr class=\"rel {}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.action,
            r.action,
            escape(&r.kind),
            escape(&r.parent),
            escape(&r.child),
            escape(&r.reason)
        );
    }
    h.push_str("</tbody></table>");
    let rest = model
        .relationships
        .len()
        .saturating_sub(STATIC_RELATIONSHIPS);
    if rest > 0 {
        let _ = write!(
            h,
            "<p class=\"more\"><button type=\"button\" id=\"rels-all\">Show the other {rest} \
             relationship rows</button> <span class=\"hint\">(all {} are in <code>drift.csv</code> \
             and <code>drift.md</code>)</span></p>",
            model.relationships.len()
        );
    }
    h.push_str("</section>\n");
}

/// The relationship rows written as HTML; the others are drawn by the script on request.
pub const STATIC_RELATIONSHIPS: usize = 500;

/// The catalog pass's orders: few per run, so all written as HTML.
fn orders(h: &mut String, model: &ReportModel) {
    if model.orders.is_empty() {
        return;
    }
    let applied = model.outcomes.is_some();
    h.push_str(
        "<section id=\"orders\"><h2>Orders</h2><p class=\"desc\">Approved ServiceNow requested items ordered \
         from CloudForms (<code>resume</code>: CloudForms already holds a request carrying the RITM number; it is \
         written back, never ordered again).</p><table class=\"plain rels\"><thead><tr><th>Action</th><th>RITM</th>\
         <th>Item</th><th>Template</th><th>Dialog</th><th>Request</th><th>Approval</th><th>Reason</th>",
    );
    if applied {
        h.push_str("<th>Outcome</th>");
    }
    h.push_str("</tr></thead><tbody>");
    for o in &model.orders {
        let _ = write!(
            h,
            "<tr class=\"rel {}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td>",
            o.action,
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
                |out| format!("{} {}", out.status.label(), out.message),
            );
            let _ = write!(h, "<td>{}</td>", escape(&outcome));
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table></section>\n");
}

fn classifications(h: &mut String, model: &ReportModel) {
    if model.classifications.is_empty() && model.classification_deletes_withheld == 0 {
        return;
    }
    h.push_str("<section id=\"classifications\"><h2>Classifications</h2>");
    if model.classification_deletes_withheld > 0 {
        let _ = write!(
            h,
            "<p class=\"desc\">{} classification deletes withheld with the retirements.</p>",
            model.classification_deletes_withheld
        );
    }
    if model.classifications.is_empty() {
        h.push_str("<p class=\"none\">No classification changes.</p></section>\n");
        return;
    }
    h.push_str(
        "<table class=\"plain rels\"><thead><tr><th>Action</th><th>CI</th><th>Key</th>\
         <th>Value</th><th>Reason</th></tr></thead><tbody>",
    );
    for r in &model.classifications {
        let _ = write!(
            h,
            "<tr class=\"rel {}\"><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            r.action,
            r.action,
            escape(&r.ci),
            escape(&r.key),
            escape(&r.value),
            escape(&r.reason)
        );
    }
    h.push_str("</tbody></table></section>\n");
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
    h: &mut Page,
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
            // At most `ISSUE_IDS_SHOWN` ids a row, and a note of how many more.
            let codes = |values: &[String]| {
                let (shown, more) = shown_ids(values);
                let mut codes = shown
                    .iter()
                    .map(|v| format!("<code>{}</code>", escape(v)))
                    .collect::<Vec<_>>()
                    .join(" ");
                if let Some(more) = more {
                    let _ = write!(codes, " <span class=\"more\">{}</span>", escape(&more));
                }
                codes
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
            h.spill();
        }
        h.push_str("</tbody></table></div>");
    }
    h.push_str("</section>\n");
}

/// The stylesheet, kept as a file so editors check it as CSS.
const CSS: &str = include_str!("assets/report.css");

/// The script that draws, pages and filters the change rows. A constant: no report data is
/// ever interpolated into it; it reads the JSON block and the values of the filter controls.
const JS: &str = include_str!("assets/report.js");

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
    fn json_strings_cannot_end_their_script_block() {
        let mut out = String::new();
        json_string(
            &mut out,
            "</script><!--<img src=x onerror=alert(1)>&\u{2028}\u{2029}\"\\\n\u{1}",
        );
        assert_eq!(
            out,
            r#""\u003c/script\u003e\u003c!--\u003cimg src=x onerror=alert(1)\u003e\u0026\u2028\u2029\"\\\n\u0001""#
        );
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(
            back,
            "</script><!--<img src=x onerror=alert(1)>&\u{2028}\u{2029}\"\\\n\u{1}"
        );
    }

    #[test]
    fn strings_are_interned_once_and_empty_is_minus_one() {
        let mut strings = Strings::default();
        assert_eq!(strings.id("cpus"), 0);
        assert_eq!(strings.id(""), -1);
        assert_eq!(strings.id("memory"), 1);
        assert_eq!(strings.id("cpus"), 0);
        assert_eq!(strings.list, ["cpus", "memory"]);
    }

    #[test]
    fn an_issue_row_shows_ten_ids_and_says_where_the_rest_are() {
        let group = super::super::model::issue_group_of;
        let page = |n| Page::render(|h| issues(h, "issues", "Issues", "", "None.", &[group(n)]));
        let html = page(12);
        assert!(
            html.contains("<code>10</code> <span class=\"more\">… and 2 more (every id is in drift.csv and plan.json)</span>"),
            "{html}"
        );
        assert!(!html.contains("<code>11</code>"), "{html}");
        let html = page(10);
        assert!(html.contains("<code>10</code></td>"), "{html}");
        assert!(!html.contains("more"), "{html}");
    }

    #[test]
    fn long_values_are_not_diffed_by_character() {
        let a = "x".repeat(MAX_DIFF_CHARS + 1);
        let b = format!("{a}y");
        assert!(inline_diff(&a, &b).starts_with("<del>"));
    }
}
