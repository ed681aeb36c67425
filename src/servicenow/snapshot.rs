//! Reads a ServiceNow export: a Table API response (`{"result":[...]}`) or a CSV export with
//! a header row of field names. Used for the target table and for referenced tables
//! (e.g. `sys_user` to resolve owners).
//!
//! Date-times reach the core as the Table API gives them, `YYYY-MM-DD HH:MM:SS`: a list
//! export renders them in ServiceNow's display format (`11/27/2026 08:00:00 PM`), which is
//! read back here (see [`display_datetimes_to_iso`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::Value;

use crate::reconcile::record::{Ci, FieldNames, Layouts};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot read ServiceNow export `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ServiceNow export `{path}` line {line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("ServiceNow export `{path}`: {message}")]
    Shape { path: PathBuf, message: String },
}

/// Reads an export file: JSON when it starts with `{` or `[`, CSV otherwise.
#[allow(
    clippy::disallowed_methods,
    reason = "the shell reads and writes files; the core never does"
)]
pub fn read(path: &Path) -> Result<Vec<Ci>, ExportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ExportError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses export text; `path` names the file in errors.
///
/// An empty file is an error, not an empty table: an export of an empty table still has its
/// header row (or `{"result":[]}`), so an empty file is an export that failed, and reading it
/// as "no CIs" would plan every VM a create.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Ci>, ExportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text); // Excel's BOM
    let mut cis = match text.trim_start().chars().next() {
        Some('{') | Some('[') => parse_json(text, path)?,
        Some(_) => parse_csv(text, path)?,
        None => {
            return Err(ExportError::Shape {
                path: path.to_owned(),
                message: "the file is empty; an export of an empty table still has its header row"
                    .into(),
            })
        }
    };
    display_datetimes_to_iso(&mut cis);
    Ok(cis)
}

/// The Table API's date-time form, which the core reads (UTC).
const ISO_DATETIME: &str = "%Y-%m-%d %H:%M:%S";

/// Rewrites ServiceNow's default display format for date-times (`MM/dd/yyyy hh:mm:ss AM`,
/// what a list export writes for `sys_updated_on`, `last_discovered`, ...) as the Table API's
/// `YYYY-MM-DD HH:MM:SS`, which the core compares with `now`. Left as it was, every CI's
/// `last_discovered` would be unreadable, so stale, and the heartbeat would write every CI
/// on every run.
///
/// Only in columns that hold nothing but date-times (each non-empty value in the display
/// format or already ISO, at least one in the display format): no dictionary says which
/// columns are date-times, and a text column is never rewritten for holding one date-like
/// value. A column with any other value is left whole; the core reports a `last_discovered`
/// it cannot read. The display format is in the exporting user's time zone, which the file
/// does not say: the times are taken as UTC (export as a user whose time zone is UTC).
fn display_datetimes_to_iso(cis: &mut [Ci]) {
    // Column -> whether it holds a display-format value; `None` once it holds a non-date.
    let mut columns: HashMap<Arc<str>, Option<bool>> = HashMap::new();
    for ci in cis.iter() {
        for (name, value) in &ci.fields {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let state = columns.entry(name.clone()).or_insert(Some(false));
            if state.is_none() {
                continue;
            }
            if display_datetime(value).is_some() {
                *state = Some(true);
            } else if !is_iso_datetime(value) {
                *state = None;
            }
        }
    }
    let convert: Vec<Arc<str>> = columns
        .into_iter()
        .filter_map(|(name, state)| (state == Some(true)).then_some(name))
        .collect();
    if convert.is_empty() {
        return;
    }
    for ci in cis.iter_mut() {
        for name in &convert {
            let iso = ci
                .fields
                .get(name)
                .and_then(|value| display_datetime(value.trim()));
            if let Some(t) = iso {
                ci.fields
                    .insert(name.clone(), t.format(ISO_DATETIME).to_string());
            }
        }
    }
}

/// `MM/dd/yyyy hh:mm:ss AM` (ServiceNow's default `glide.sys.date_format` and 12-hour time),
/// `AM`/`PM` in either case; `None` for anything else, impossible dates included.
fn display_datetime(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() != 22
        || !text.is_ascii()
        || b[2] != b'/'
        || b[5] != b'/'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b' '
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let hour = num(11..13).filter(|h| (1..=12).contains(h))? % 12;
    let hour = match &text[20..] {
        m if m.eq_ignore_ascii_case("AM") => hour,
        m if m.eq_ignore_ascii_case("PM") => hour + 12,
        _ => return None,
    };
    NaiveDate::from_ymd_opt(num(6..10)? as i32, num(0..2)?, num(3..5)?)?.and_hms_opt(
        hour,
        num(14..16)?,
        num(17..19)?,
    )
}

/// Whether `text` is already the Table API's `YYYY-MM-DD HH:MM:SS`.
fn is_iso_datetime(text: &str) -> bool {
    text.len() == 19 && NaiveDateTime::parse_from_str(text, ISO_DATETIME).is_ok()
}

/// A Table API value as a string: references (`{"link","value"}`) and display values
/// (`{"display_value","value"}`) give their `value`.
fn field_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Object(o) => o.get("value").map(field_text).unwrap_or_default(),
        other => other.to_string(),
    }
}

fn parse_json(text: &str, path: &Path) -> Result<Vec<Ci>, ExportError> {
    let document: Value = serde_json::from_str(text).map_err(|e| ExportError::Parse {
        path: path.to_owned(),
        line: e.line(),
        message: e
            .to_string()
            .split(" at line")
            .next()
            .unwrap_or_default()
            .to_owned(),
    })?;
    let rows = match document {
        Value::Object(mut o) => match o.remove("result") {
            Some(Value::Array(rows)) => rows,
            _ => {
                return Err(ExportError::Shape {
                    path: path.to_owned(),
                    message: "expected `{\"result\": [...]}`".into(),
                })
            }
        },
        Value::Array(rows) => rows,
        _ => {
            return Err(ExportError::Shape {
                path: path.to_owned(),
                message: "expected `{\"result\": [...]}`".into(),
            })
        }
    };
    let mut names = FieldNames::default();
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            let Value::Object(object) = row else {
                return Err(ExportError::Shape {
                    path: path.to_owned(),
                    message: format!("row {} is not an object", i + 1),
                });
            };
            let sys_id = object
                .get("sys_id")
                .map(field_text)
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| ExportError::Shape {
                    path: path.to_owned(),
                    message: format!("row {} has no `sys_id`", i + 1),
                })?;
            let fields = names.row(
                object
                    .iter()
                    .filter(|(k, _)| *k != "sys_id")
                    .map(|(k, v)| (k.as_str(), field_text(v))),
            );
            Ok(Ci { sys_id, fields })
        })
        .collect()
}

fn parse_csv(text: &str, path: &Path) -> Result<Vec<Ci>, ExportError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let csv_error = |e: csv::Error| ExportError::Parse {
        path: path.to_owned(),
        line: e.position().map(|p| p.line() as usize).unwrap_or(0),
        message: e.to_string(),
    };
    let headers: Vec<String> = reader
        .headers()
        .map_err(csv_error)?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    // The reader skips blank lines before the header row but numbers its record line 1.
    let header_line = 1 + text.lines().take_while(|l| l.is_empty()).count();
    let Some(sys_id_column) = headers.iter().position(|h| h == "sys_id") else {
        return Err(ExportError::Shape {
            path: path.to_owned(),
            message: format!(
                "the header row has no `sys_id` column (columns: {})",
                headers.join(", ")
            ),
        });
    };
    // A column named twice (a hand-edited export, two exports pasted together) leaves no
    // telling which value the CI holds: the export is wrong, not one of its values.
    for (i, header) in headers.iter().enumerate() {
        if let Some(j) = headers[i + 1..].iter().position(|h| h == header) {
            return Err(ExportError::Parse {
                path: path.to_owned(),
                line: header_line,
                message: format!(
                    "the header row names column `{header}` twice (columns {} and {})",
                    i + 1,
                    i + j + 2
                ),
            });
        }
    }
    let names: Vec<Arc<str>> = headers.iter().map(|h| Arc::from(h.as_str())).collect();
    let mut cis = Vec::new();
    let mut layouts = Layouts::default();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
        let sys_id = record
            .get(sys_id_column)
            .unwrap_or_default()
            .trim()
            .to_owned();
        if sys_id.is_empty() {
            return Err(ExportError::Parse {
                path: path.to_owned(),
                line,
                message: "empty `sys_id`".into(),
            });
        }
        let fields = layouts.row(
            names
                .iter()
                .zip(record.iter())
                .filter(|(h, _)| h.as_ref() != "sys_id")
                .map(|(h, v)| (h.clone(), v)),
        );
        cis.push(Ci { sys_id, fields });
    }
    Ok(cis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("cmdb.csv")
    }

    #[test]
    fn reads_a_table_api_response_with_references() {
        let cis = parse(
            r#"{"result":[{"sys_id":"a1","name":"web","cpus":"4","owned_by":{"link":"https://x/api/now/table/sys_user/u1","value":"u1"},"x":null}]}"#,
            p(),
        )
        .unwrap();
        assert_eq!(cis[0].sys_id, "a1");
        assert_eq!(cis[0].get("owned_by"), "u1");
        assert_eq!(cis[0].get("cpus"), "4");
        assert_eq!(cis[0].get("x"), "");
    }

    #[test]
    fn reads_a_csv_export() {
        let cis = parse(
            "\u{feff}sys_id,name,memory\na1,\"web, 01\",4096\nb2,db,8192\n",
            p(),
        )
        .unwrap();
        assert_eq!(cis.len(), 2);
        assert_eq!(cis[0].get("name"), "web, 01");
        assert_eq!(cis[1].get("memory"), "8192");
    }

    #[test]
    fn csv_without_sys_id_is_an_error() {
        let err = parse("name,memory\nweb,1\n", p()).unwrap_err().to_string();
        assert!(err.contains("no `sys_id` column"), "{err}");
    }

    #[test]
    fn csv_row_errors_name_the_line() {
        let err = parse("sys_id,name\na1,web\nb2,db,extra\n", p())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        let err = parse("sys_id,name\na1,web\n,db\n", p())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 3") && err.contains("empty `sys_id`"),
            "{err}"
        );
    }

    #[test]
    fn a_duplicated_csv_column_is_an_error_naming_it() {
        // Which of the two would the job compare? Neither: the export is wrong.
        let err = parse("sys_id,name,cpus,name\na1,web,4,db\n", p())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`cmdb.csv` line 1") && err.contains("`name`") && err.contains("twice"),
            "{err}"
        );
        // Blank lines before the header row count.
        let err = parse("\n\nsys_id,name\na1,web\nb2,db,extra\n", p())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 5"), "{err}");
        let err = parse("\n\nsys_id,name, name\na1,web,db\n", p())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 3") && err.contains("columns 2 and 3"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_file_is_an_error() {
        // An export of an empty table still has its header row (or `{"result":[]}`): an empty
        // file is a failed export, and reading it as "no CIs" would plan every VM a create.
        for text in ["", "\u{feff}", " \n"] {
            let err = parse(text, p()).unwrap_err().to_string();
            assert!(err.contains("`cmdb.csv`") && err.contains("empty"), "{err}");
        }
        assert!(parse("sys_id,name\n", p()).unwrap().is_empty());
        assert!(parse(r#"{"result":[]}"#, p()).unwrap().is_empty());
    }

    #[test]
    fn a_bom_is_read_in_json_and_csv() {
        let cis = parse("\u{feff}{\"result\":[{\"sys_id\":\"a1\"}]}", p()).unwrap();
        assert_eq!(cis[0].sys_id, "a1");
        let cis = parse("\u{feff}sys_id,name\na1,web\n", p()).unwrap();
        assert_eq!(cis[0].get("name"), "web");
    }

    #[test]
    fn display_format_datetimes_are_read_as_iso() {
        let cis = parse(
            "sys_id,name,last_discovered,sys_updated_on,note\n\
             a1,web,11/27/2026 08:00:00 PM,12/01/2026 12:00:00 AM,11/27/2026 08:00:00 PM\n\
             b2,db,,2026-11-30 23:59:59,see ticket\n\
             c3,app,01/02/2026 12:30:05 pm,12/31/2026 11:59:59 PM,\n",
            p(),
        )
        .unwrap();
        assert_eq!(cis[0].get("last_discovered"), "2026-11-27 20:00:00");
        assert_eq!(cis[0].get("sys_updated_on"), "2026-12-01 00:00:00");
        assert_eq!(cis[1].get("last_discovered"), "");
        assert_eq!(cis[1].get("sys_updated_on"), "2026-11-30 23:59:59");
        assert_eq!(cis[2].get("last_discovered"), "2026-01-02 12:30:05");
        assert_eq!(cis[2].get("sys_updated_on"), "2026-12-31 23:59:59");
        // A text column is not a date-time column for holding one date-like value.
        assert_eq!(cis[0].get("note"), "11/27/2026 08:00:00 PM");
    }

    #[test]
    fn a_column_with_other_values_is_left_whole() {
        // One value the job cannot read (an impossible date, another format): the column is
        // left as exported, and the core reports the `last_discovered` it cannot read.
        for other in ["13/01/2026 08:00:00 PM", "27.11.2026 20:00:00", "yesterday"] {
            let text = format!("sys_id,last_discovered\na1,11/27/2026 08:00:00 PM\nb2,{other}\n");
            let cis = parse(&text, p()).unwrap();
            assert_eq!(cis[0].get("last_discovered"), "11/27/2026 08:00:00 PM");
            assert_eq!(cis[1].get("last_discovered"), other);
        }
        // JSON exports with display values are read the same way.
        let cis = parse(
            r#"{"result":[{"sys_id":"a1","last_discovered":"11/27/2026 08:00:00 AM"}]}"#,
            p(),
        )
        .unwrap();
        assert_eq!(cis[0].get("last_discovered"), "2026-11-27 08:00:00");
    }

    #[test]
    fn json_without_result_is_an_error() {
        assert!(parse(r#"{"rows":[]}"#, p()).is_err());
        assert!(parse(r#"{"result":[{"name":"x"}]}"#, p()).is_err());
    }
}
