//! Drift reports: the plan rendered for the people who review it, and the files written for
//! them (`plan.json`, `drift.csv`, `drift.md`, `drift.html`, and `outcome.json` after `apply`).
//!
//! Every renderer is a pure function of the [`model::ReportModel`] (design invariant 5): the
//! model decides what a plan means for display, the renderers only decide how it looks. The one
//! exception is `plan.json`, which is the plan itself because `apply` reads it back.
//!
//! Inventory values are untrusted (anyone who can name a VM writes into these reports): each
//! renderer escapes for its own format, see the module docs of [`csv`], [`markdown`], [`html`].

pub mod csv;
pub mod html;
pub mod index;
pub mod json;
pub mod markdown;
pub mod model;
pub mod orders;
pub mod relations;
pub mod retention;
pub mod summary;

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::reconcile::plan::Plan;
use model::{OperationOutcome, ReportModel};

/// A report format; one or more files per format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `plan.json` (the plan `apply` reads back), and `outcome.json` after `apply`.
    Json,
    /// `drift.csv`: one row per field change and one per issue, for spreadsheets.
    Csv,
    /// `drift.md`: for tickets, merge requests and chat.
    Markdown,
    /// `drift.html`: one self-contained page with filters.
    Html,
}

impl Format {
    /// Every format, in the order reports are written.
    pub const ALL: [Format; 4] = [Self::Json, Self::Csv, Self::Markdown, Self::Html];

    /// The names [`FromStr`] accepts (aliases aside), e.g. for a CLI's possible values.
    pub const NAMES: [&'static str; 4] = ["json", "csv", "markdown", "html"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Markdown => "markdown",
            Self::Html => "html",
        }
    }

    /// The file the format's report is written to.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Json => PLAN_FILE,
            Self::Csv => "drift.csv",
            Self::Markdown => "drift.md",
            Self::Html => "drift.html",
        }
    }
}

/// The file `apply` reads the reviewed plan from.
pub const PLAN_FILE: &str = "plan.json";

/// The file the outcomes of `apply` are written to, next to the plan.
pub const OUTCOME_FILE: &str = "outcome.json";

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A report format name that is not one of [`Format::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown report format `{0}` (expected json, csv, markdown or html)")]
pub struct ParseFormatError(String);

impl FromStr for Format {
    type Err = ParseFormatError;

    /// Parses a format by name, case-insensitively; `md` and `htm` are accepted as aliases.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "csv" => Ok(Self::Csv),
            "markdown" | "md" => Ok(Self::Markdown),
            "html" | "htm" => Ok(Self::Html),
            _ => Err(ParseFormatError(s.to_owned())),
        }
    }
}

/// Writing a report failed; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot create report folder `{}`", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write report `{}`", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot serialise report `{}`", path.display())]
    Serialize {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Writes the reports of `plan` in each of `formats` into `dir` (created if missing) and
/// returns the files written, in the order written. With `outcomes` (after `apply`) the
/// reports also show what happened to each operation, and `json` adds `outcome.json`.
///
/// Each file is written to a temporary name and renamed into place, so a reader (a person, or
/// `apply` reading `plan.json`) never sees half a report.
#[allow(
    clippy::disallowed_methods,
    reason = "the shell reads and writes files; the core never does"
)]
pub fn write_reports(
    plan: &Plan,
    outcomes: Option<&[OperationOutcome]>,
    dir: &Path,
    formats: &[Format],
) -> Result<Vec<PathBuf>, ReportError> {
    fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let mut model = ReportModel::from_plan(plan);
    if let Some(outcomes) = outcomes {
        model = model.with_outcomes(outcomes);
    }
    let mut formats = formats.to_vec();
    formats.sort();
    formats.dedup();
    let mut written = Vec::new();
    for format in formats {
        let path = dir.join(format.file_name());
        // Every file is written as it is rendered, never held whole in memory.
        match format {
            Format::Json => {
                write_atomically_with(&path, |out| {
                    json::write_plan(out, plan).map_err(|e| serialize_or_write(&path, e))
                })?;
                written.push(path);
                if let Some(outcome) = &model.outcomes {
                    let path = dir.join(OUTCOME_FILE);
                    write_atomically_with(&path, |out| {
                        json::write_outcome(out, &model, outcome)
                            .map_err(|e| serialize_or_write(&path, e))
                    })?;
                    written.push(path);
                }
                continue;
            }
            Format::Csv => write_atomically_with(&path, |out| {
                csv::write(&model, out).map_err(|e| ReportError::Write {
                    path: path.clone(),
                    source: match e.into_kind() {
                        ::csv::ErrorKind::Io(e) => e,
                        other => std::io::Error::other(format!("{other:?}")),
                    },
                })
            })?,
            Format::Markdown => write_page(&path, |page| markdown::render_to(&model, page))?,
            Format::Html => write_page(&path, |page| html::render_to(&model, page))?,
        }
        written.push(path);
    }
    Ok(written)
}

/// Writes a page (Markdown, HTML) to `path` as it is rendered.
fn write_page(path: &Path, render: impl FnOnce(&mut Page)) -> Result<(), ReportError> {
    write_atomically_with(path, |out| {
        let mut page = Page::new(out);
        render(&mut page);
        page.finish().map_err(|source| ReportError::Write {
            path: path.to_owned(),
            source,
        })
    })
}

#[allow(
    clippy::disallowed_methods,
    reason = "the shell reads and writes files; the core never does"
)]
fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), ReportError> {
    write_atomically_with(path, |out| {
        out.write_all(contents)
            .map_err(|source| ReportError::Write {
                path: path.to_owned(),
                source,
            })
    })
}

/// A JSON writer's error: the disk's (a write failed) or the serialiser's.
fn serialize_or_write(path: &Path, error: serde_json::Error) -> ReportError {
    match error.io_error_kind() {
        Some(kind) => ReportError::Write {
            path: path.to_owned(),
            source: std::io::Error::new(kind, error),
        },
        None => ReportError::Serialize {
            path: path.to_owned(),
            source: error,
        },
    }
}

/// Writes a file through `write` (buffered) to a temporary name, then renames it into place.
#[allow(
    clippy::disallowed_methods,
    reason = "the shell reads and writes files; the core never does"
)]
fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    let error = |source| ReportError::Write {
        path: path.to_owned(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    let result = fs::File::create(&tmp)
        .map_err(error)
        .and_then(|file| {
            let mut out = std::io::BufWriter::new(file);
            write(&mut out)?;
            let file = out.into_inner().map_err(|e| error(e.into_error()))?;
            file.sync_all().map_err(error)
        })
        .and_then(|()| fs::rename(&tmp, path).map_err(error));
    if result.is_err() {
        // Best effort: a leftover temporary file is harmless, the error is what matters.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes the run's `index.md` into the run folder `dir` (see [`index`]).
pub fn write_index(
    dir: &Path,
    now: chrono::DateTime<chrono::Utc>,
    syncs: &[index::RunSync],
) -> Result<PathBuf, ReportError> {
    let path = dir.join(index::INDEX_FILE);
    write_atomically(&path, index::render(now, syncs).as_bytes())?;
    Ok(path)
}

/// A page being written to its file: text gathers in a buffer that goes to the file each time
/// it passes [`Page::SPILL`] bytes, so a report is never held whole (at 100,000 VMs, when
/// every VM's unresolved references were reported one by one, the Markdown and HTML pages
/// were some 80 MB each). The renderers
/// write into it as into a `String` (it derefs to its buffer) and call [`Page::spill`] between
/// rows; the first write error is kept and returned by [`Page::finish`].
pub struct Page<'w> {
    buf: String,
    out: &'w mut dyn Write,
    error: Option<std::io::Error>,
}

impl<'w> Page<'w> {
    /// How much text is held before it is written out.
    const SPILL: usize = 1 << 20;

    pub fn new(out: &'w mut dyn Write) -> Self {
        Self {
            buf: String::with_capacity(Self::SPILL + 64 * 1024),
            out,
            error: None,
        }
    }

    /// Writes the buffer out once it holds [`Page::SPILL`] bytes.
    pub fn spill(&mut self) {
        if self.buf.len() >= Self::SPILL {
            self.write_out();
        }
    }

    fn write_out(&mut self) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(self.buf.as_bytes()) {
                self.error = Some(e);
            }
        }
        self.buf.clear();
    }

    /// Writes what is left; the first error of any write.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.write_out();
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A page rendered into memory (tests, benchmarks).
    pub fn render(write: impl FnOnce(&mut Page)) -> String {
        let mut bytes: Vec<u8> = Vec::new();
        let mut page = Page::new(&mut bytes);
        write(&mut page);
        // Writing into a Vec cannot fail.
        let _ = page.finish();
        // Every byte came from a `str`, so this is the text as written.
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

impl std::ops::Deref for Page<'_> {
    type Target = String;
    fn deref(&self) -> &String {
        &self.buf
    }
}

impl std::ops::DerefMut for Page<'_> {
    fn deref_mut(&mut self) -> &mut String {
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_written_in_spills_is_the_text_written() {
        use std::fmt::Write as _;
        let mut expected = String::new();
        let page = Page::render(|page| {
            for i in 0..200_000 {
                let _ = write!(page, "<tr><td>{i}</td><td>ü → x</td></tr>");
                page.push('\n');
                page.spill();
            }
        });
        for i in 0..200_000 {
            let _ = writeln!(expected, "<tr><td>{i}</td><td>ü → x</td></tr>");
        }
        assert!(
            expected.len() > 3 * Page::SPILL,
            "the text spills several times"
        );
        assert_eq!(page, expected);
    }

    #[test]
    fn a_page_returns_the_first_write_error() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut out = Full;
        let mut page = Page::new(&mut out);
        page.push_str(&"x".repeat(Page::SPILL));
        page.spill();
        page.push_str("more");
        let err = page.finish().unwrap_err();
        assert_eq!(err.to_string(), "disk full");
    }

    #[test]
    fn formats_parse_by_name_and_alias() {
        for format in Format::ALL {
            assert_eq!(format.as_str().parse::<Format>(), Ok(format));
            assert_eq!(
                format.to_string().to_uppercase().parse::<Format>(),
                Ok(format)
            );
        }
        assert_eq!("md".parse::<Format>(), Ok(Format::Markdown));
        let err = "pdf".parse::<Format>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown report format `pdf` (expected json, csv, markdown or html)"
        );
    }

    #[test]
    fn formats_serialise_by_name() {
        assert_eq!(
            serde_json::to_string(&Format::Markdown).unwrap(),
            "\"markdown\""
        );
        let names: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
        assert_eq!(names, Format::NAMES);
    }
}
