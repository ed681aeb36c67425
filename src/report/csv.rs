//! `drift.csv`: one row per field change, for owners who review drift in a spreadsheet, then
//! one row per relationship row and per issue (quarantined records first), whose `action` is
//! `relationship_create`/`relationship_delete` or the issue kind (`ambiguous`,
//! `duplicate_ci`...), with the VMs and CIs involved (space-separated) and the message in
//! `from`: a reviewer filtering the sheet sees what was held back, and why. The catalog
//! pass's orders are rows whose `action` is `order` or `resume`: the RITM number in
//! `source_id`, its sys_id, the catalog item in `name`, the template in `desired`, the request
//! already found in `current`, who approves in `mode` and the dialog values in `from`. The copy `apply`
//! refreshes adds what happened to each row's operation ([`OUTCOME_HEADER`]).
//!
//! Every cell holds inventory data, which is untrusted: a VM named `=HYPERLINK(...)` would be a
//! live formula in Excel or LibreOffice. Per the OWASP CSV injection guidance, every cell that
//! starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, which makes
//! spreadsheets show it as text. Quoting of commas, quotes and newlines is left to the `csv`
//! crate, so the file still parses as ordinary CSV.

use std::borrow::Cow;
use std::io;

use super::model::{OutcomeStatus, ReportModel};

/// The header row; the column order is part of the report's contract with its readers.
pub const HEADER: [&str; 10] = [
    "action",
    "source_id",
    "matched_by",
    "sys_id",
    "name",
    "field",
    "current",
    "desired",
    "mode",
    "from",
];

/// The columns added after [`HEADER`] once `apply` has run: what happened to the row's
/// operation (an [`OutcomeStatus`](super::model::OutcomeStatus) name, `not_attempted` for a
/// written change with no outcome, empty for a change never written) and why.
pub const OUTCOME_HEADER: [&str; 2] = ["outcome", "outcome_message"];

/// Makes a cell inert in spreadsheets: a formula-looking cell gets a leading `'`.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// Writes the CSV report to `out`.
pub fn write<W: io::Write>(model: &ReportModel, out: W) -> Result<(), ::csv::Error> {
    let mut writer = ::csv::Writer::from_writer(out);
    let applied = model.outcomes.is_some();
    if applied {
        writer.write_record(HEADER.iter().chain(&OUTCOME_HEADER))?;
    } else {
        writer.write_record(HEADER)?;
    }
    for row in &model.changes {
        let mut cells = vec![
            row.action.as_str(),
            &row.source_id,
            &row.matched_by,
            &row.sys_id,
            &row.name,
            &row.field,
            &row.current,
            &row.desired,
            &row.mode,
            &row.from,
        ];
        if applied {
            let (status, message) = match &row.outcome {
                Some(o) => (o.status.as_str(), o.message.as_str()),
                None if row.written => (OutcomeStatus::NotAttempted.as_str(), ""),
                None => ("", ""),
            };
            cells.extend([status, message]);
        }
        writer.write_record(cells.iter().map(|cell| neutralise(cell).into_owned()))?;
    }
    // Relationship rows: the action says so, the type stands in the field column, the ends
    // (parent -> child) in the values.
    for r in &model.relationships {
        let (current, desired) = match r.action {
            "delete" => (format!("{} -> {}", r.parent, r.child), String::new()),
            _ => (String::new(), format!("{} -> {}", r.parent, r.child)),
        };
        let action = format!("relationship_{}", r.action);
        let mut cells = vec![
            &action,
            r.new_ci_source_id.as_deref().unwrap_or_default(),
            "",
            &r.sys_id,
            &r.parent,
            &r.kind,
            &current,
            &desired,
            "",
            &r.reason,
        ];
        if applied {
            // Relationship rows are applied with their CI; no per-row outcome yet.
            cells.extend(["", ""]);
        }
        writer.write_record(cells.iter().map(|cell| neutralise(cell).into_owned()))?;
    }
    // Classification rows: the category stands in the field column, the entry in the values.
    for r in &model.classifications {
        let (current, desired) = match r.action {
            "delete" => (r.value.clone(), String::new()),
            _ => (String::new(), r.value.clone()),
        };
        let action = format!("classification_{}", r.action);
        let mut cells = vec![
            &action,
            r.new_ci_source_id.as_deref().unwrap_or_default(),
            "",
            &r.sys_id,
            &r.ci,
            &r.key,
            &current,
            &desired,
            "",
            &r.reason,
        ];
        if applied {
            cells.extend(["", ""]);
        }
        writer.write_record(cells.iter().map(|cell| neutralise(cell).into_owned()))?;
    }
    // Orders (the catalog pass): the RITM as the record, the template in the values, the
    // dialog fields sent in `from`.
    for o in &model.orders {
        let from = format!("dialog: {}; {}", o.dialog, o.reason);
        let mut cells = vec![
            o.action,
            &o.ritm,
            "",
            &o.ritm_sys_id,
            &o.item,
            "template",
            &o.request,
            &o.template,
            o.approval,
            &from,
        ];
        if applied {
            let (status, message) = match &o.outcome {
                Some(out) => (out.status.as_str(), out.message.as_str()),
                None => (OutcomeStatus::NotAttempted.as_str(), ""),
            };
            cells.extend([status, message]);
        }
        writer.write_record(cells.iter().map(|cell| neutralise(cell).into_owned()))?;
    }
    for group in model.quarantined.iter().chain(&model.issues) {
        for issue in &group.issues {
            let (source_ids, sys_ids) = (issue.source_ids.join(" "), issue.sys_ids.join(" "));
            let mut cells = vec![
                group.kind.as_str(),
                &source_ids,
                "",
                &sys_ids,
                &issue.name,
                &issue.field,
                "",
                "",
                "",
                &issue.message,
            ];
            if applied {
                // Issues are not operations: nothing was applied for them.
                cells.extend(["", ""]);
            }
            writer.write_record(cells.iter().map(|cell| neutralise(cell).into_owned()))?;
        }
    }
    writer.flush()?;
    Ok(())
}

/// The CSV report as a string.
pub fn render(model: &ReportModel) -> String {
    let mut out = Vec::new();
    // Writing plain string records into memory has no failure mode: no I/O, no serde.
    write(model, &mut out).expect("writing CSV to memory cannot fail");
    // The input was all `str`, and the writer only adds ASCII quotes and separators.
    String::from_utf8(out).expect("CSV of UTF-8 cells is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_prefixes_are_neutralised() {
        for cell in ["=1+1", "+cmd", "-1+1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralise(cell), format!("'{cell}"));
        }
    }

    #[test]
    fn plain_cells_are_untouched() {
        for cell in ["", "vm-01", "1=1", " =1", "'quoted", "ünïcode"] {
            assert!(matches!(neutralise(cell), Cow::Borrowed(c) if c == cell));
        }
    }
}
