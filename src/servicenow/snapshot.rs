//! Reads a ServiceNow export: a Table API response (`{"result":[...]}`) or a CSV export with
//! a header row of field names. Used for the target table and for referenced tables
//! (e.g. `sys_user` to resolve owners).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::reconcile::record::{Ci, FieldNames, Fields};

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
    match text.trim_start().chars().next() {
        Some('{') | Some('[') => parse_json(text, path),
        Some(_) => parse_csv(text, path),
        None => Err(ExportError::Shape {
            path: path.to_owned(),
            message: "the file is empty; an export of an empty table still has its header row"
                .into(),
        }),
    }
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
            let mut fields: Fields = object
                .iter()
                .map(|(k, v)| (names.intern(k), field_text(v)))
                .collect();
            let sys_id = fields
                .remove("sys_id")
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| ExportError::Shape {
                    path: path.to_owned(),
                    message: format!("row {} has no `sys_id`", i + 1),
                })?;
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
        let fields = names
            .iter()
            .zip(record.iter())
            .filter(|(h, _)| h.as_ref() != "sys_id")
            .map(|(h, v)| (h.clone(), v.to_owned()))
            .collect();
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
    fn json_without_result_is_an_error() {
        assert!(parse(r#"{"rows":[]}"#, p()).is_err());
        assert!(parse(r#"{"result":[{"name":"x"}]}"#, p()).is_err());
    }
}
