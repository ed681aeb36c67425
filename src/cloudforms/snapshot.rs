//! Reads a CloudForms inventory snapshot: an API collection response (`{"resources":[...]}`,
//! as `GET /api/vms?expand=resources` returns it), a JSON array of VM records, or JSON lines.
//!
//! A collection response that holds fewer resources than the server said it has (one page
//! saved from a paged read) is marked incomplete, so no CI is retired on its strength.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::reconcile::record::SourceRead;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read source snapshot `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("source snapshot `{path}` line {line} column {column}: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("source snapshot `{path}`: {message}")]
    Shape { path: PathBuf, message: String },
}

/// Reads a snapshot file.
#[allow(
    clippy::disallowed_methods,
    reason = "the shell reads and writes files; the core never does"
)]
pub fn read(path: &Path) -> Result<SourceRead, SnapshotError> {
    let text = std::fs::read_to_string(path).map_err(|source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses snapshot text; `path` names the file in errors.
pub fn parse(text: &str, path: &Path) -> Result<SourceRead, SnapshotError> {
    // Windows tools (PowerShell's `Out-File`, Notepad) save UTF-8 with a byte order mark,
    // which JSON does not allow; it carries nothing, so it is dropped.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let origin = path.display().to_string();
    let json_error = |e: serde_json::Error, line_offset: usize| SnapshotError::Json {
        path: path.to_owned(),
        line: e.line() + line_offset,
        column: e.column(),
        message: e
            .to_string()
            .split(" at line")
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(SnapshotError::Shape {
            path: path.to_owned(),
            message: "the file is empty".into(),
        });
    }
    // One JSON document (an array or a collection object) or JSON lines.
    let whole = serde_json::from_str::<Value>(text);
    let document = match whole {
        Ok(v) => v,
        // JSON lines: the document is not one value, but its first line is one object.
        Err(e)
            if e.is_syntax()
                && e.line() > 1
                && trimmed.lines().next().is_some_and(|first| {
                    serde_json::from_str::<serde_json::Map<String, Value>>(first).is_ok()
                }) =>
        {
            return parse_lines(text, path, json_error)
                .map(|records| SourceRead::from_json(origin, records, None));
        }
        Err(e) => return Err(json_error(e, 0)),
    };
    match document {
        Value::Array(records) => Ok(SourceRead::from_json(origin, records, None)),
        Value::Object(mut object) => match object.remove("resources") {
            Some(Value::Array(records)) => {
                let total = object
                    .get("subquery_count")
                    .or_else(|| object.get("count"))
                    .and_then(Value::as_u64)
                    .map(|n| n as usize);
                let incomplete = total.filter(|&t| t > records.len()).map(|t| {
                    format!("the snapshot holds {} of the {t} VMs the server reported (one page of a paged read?)", records.len())
                });
                Ok(SourceRead::from_json(origin, records, incomplete))
            }
            Some(_) => Err(SnapshotError::Shape { path: path.to_owned(), message: "`resources` is not an array".into() }),
            // A single VM record on its own is a one-line JSON-lines file.
            None if object.contains_key("id") => Ok(SourceRead::from_json(origin, vec![Value::Object(object)], None)),
            None => Err(SnapshotError::Shape {
                path: path.to_owned(),
                message: "expected a collection response with `resources`, a JSON array, or JSON lines of VM records".into(),
            }),
        },
        _ => Err(SnapshotError::Shape {
            path: path.to_owned(),
            message: "expected a collection response with `resources`, a JSON array, or JSON lines of VM records".into(),
        }),
    }
}

fn parse_lines(
    text: &str,
    path: &Path,
    json_error: impl Fn(serde_json::Error, usize) -> SnapshotError,
) -> Result<Vec<Value>, SnapshotError> {
    let mut records = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str::<Value>(line).map_err(|e| json_error(e, index))?;
        if !value.is_object() {
            return Err(SnapshotError::Shape {
                path: path.to_owned(),
                message: format!(
                    "line {}: a JSON line must be one VM record (an object)",
                    index + 1
                ),
            });
        }
        records.push(value);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("vms.json")
    }

    #[test]
    fn reads_a_collection_response() {
        let read = parse(
            r#"{"name":"vms","count":2,"subcount":2,"resources":[{"id":"1"},{"id":2}]}"#,
            p(),
        )
        .unwrap();
        assert_eq!(read.records.len(), 2);
        assert_eq!(read.incomplete, None);
    }

    #[test]
    fn a_single_page_is_incomplete() {
        let read = parse(
            r#"{"name":"vms","count":2500,"subcount":1000,"resources":[{"id":"1"}]}"#,
            p(),
        )
        .unwrap();
        assert!(read.incomplete.unwrap().contains("1 of the 2500"));
    }

    #[test]
    fn subquery_count_wins_over_count_when_filtered() {
        let read = parse(
            r#"{"count":90,"subcount":1,"subquery_count":1,"resources":[{"id":"1"}]}"#,
            p(),
        )
        .unwrap();
        assert_eq!(read.incomplete, None);
    }

    #[test]
    fn reads_an_array_and_json_lines() {
        assert_eq!(
            parse(r#"[{"id":1},{"id":2}]"#, p()).unwrap().records.len(),
            2
        );
        assert_eq!(
            parse("{\"id\":1}\n\n{\"id\":2}\n", p())
                .unwrap()
                .records
                .len(),
            2
        );
        assert_eq!(parse("{\"id\":1}\n", p()).unwrap().records.len(), 1);
    }

    #[test]
    fn a_bad_json_line_names_its_line() {
        let err = parse("{\"id\":1}\n{\"id\":2\n{\"id\":3}\n", p())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("source snapshot `vms.json` line 2"),
            "{err}"
        );
    }

    #[test]
    fn a_broken_document_is_not_mistaken_for_json_lines() {
        let err = parse("{\"resources\": [ {\"id\": 1},\n {\"id\" 2} ]}", p())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn bad_json_names_line_and_column() {
        let err = parse("[\n {\"id\": 1},\n {\"id\" 2}\n]", p())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3 column"), "{err}");
    }

    #[test]
    fn a_bom_is_read() {
        // Windows tools (PowerShell's Out-File, Notepad) save UTF-8 with a byte order mark.
        let read = parse("\u{feff}{\"resources\":[{\"id\":1}]}", p()).unwrap();
        assert_eq!(read.records.len(), 1);
        let read = parse("\u{feff}{\"id\":1}\n{\"id\":2}\n", p()).unwrap();
        assert_eq!(read.records.len(), 2);
        let err = parse("\u{feff}", p()).unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn empty_and_wrong_shapes_are_errors() {
        assert!(parse("  ", p()).is_err());
        assert!(parse("42", p()).is_err());
        assert!(parse(r#"{"foo": 1}"#, p()).is_err());
    }
}
