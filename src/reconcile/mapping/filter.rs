//! The two small condition languages: source filters (`vendor=vmware`), which pick the records
//! a mapping reads, and CI conditions in ServiceNow encoded-query form
//! (`discovery_source=CloudForms^install_status!=7`), which say which CIs the job owns
//! (scope) or must never write (freeze).

use std::fmt;

use super::eval::scalar_str;
use super::path::Path;
use crate::reconcile::record::{Ci, SourceRecord};

/// A source filter: `vendor=vmware`, `vendor!=redhat`, `cloud=false`, or
/// `request_type IN template,clone_to_vm` (any of several values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub path: Path,
    pub negate: bool,
    pub value: String,
    /// `IN`: the values any of which passes (`value` then holds them as written, joined by
    /// `,`). Empty for `=` and `!=`.
    pub any_of: Vec<String>,
}

impl Filter {
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        if let Some((left, right)) = text.split_once(" IN ") {
            let any_of: Vec<String> = right
                .split(',')
                .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned())
                .filter(|v| !v.is_empty())
                .collect();
            if any_of.is_empty() {
                return Err(format!("filter `{text}` lists no values after `IN`"));
            }
            return Ok(Self {
                path: Path::parse(left)?,
                negate: false,
                value: any_of.join(","),
                any_of,
            });
        }
        let (negate, (left, right)) = if let Some(parts) = text.split_once("!=") {
            (true, parts)
        } else if let Some(parts) = text.split_once('=') {
            (false, parts)
        } else {
            return Err(format!("filter `{text}` has no `=` or `!=`"));
        };
        let value = right
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_owned();
        Ok(Self {
            path: Path::parse(left)?,
            negate,
            value,
            any_of: Vec::new(),
        })
    }

    /// Whether a record passes: its value equals (case-insensitive) the filter's, or not.
    pub fn accepts(&self, record: &SourceRecord) -> bool {
        let found = self.path.get(record.data);
        let actual = found.as_deref().and_then(scalar_str).unwrap_or_default();
        if !self.any_of.is_empty() {
            return self.any_of.iter().any(|v| actual.eq_ignore_ascii_case(v));
        }
        let equal = if self.value.eq_ignore_ascii_case("null") {
            actual.is_empty()
        } else {
            actual.eq_ignore_ascii_case(&self.value)
        };
        equal != self.negate
    }
}

/// Whether no record can pass both filter lists: some path must equal one value under one
/// list and, under the other, another value or anything but that value. Conservative: `false`
/// means "may overlap", so two syncs are refused rather than trusted on a guess.
pub fn disjoint(a: &[Filter], b: &[Filter]) -> bool {
    a.iter().any(|x| {
        b.iter().any(|y| {
            if !x.any_of.is_empty() || !y.any_of.is_empty() {
                // Disjoint when no value passes both: each side's accepted values (one for
                // `=`), none shared; `!=` excluding every value of the other's `IN`.
                let accepted = |f: &Filter| -> Option<Vec<String>> {
                    match (f.any_of.is_empty(), f.negate) {
                        (false, _) => Some(f.any_of.iter().map(|v| v.to_lowercase()).collect()),
                        (true, false) => Some(vec![f.value.to_lowercase()]),
                        (true, true) => None,
                    }
                };
                return x.path == y.path
                    && match (accepted(x), accepted(y)) {
                        (Some(xs), Some(ys)) => !xs.iter().any(|v| ys.contains(v)),
                        (Some(xs), None) => xs == [y.value.to_lowercase()],
                        (None, Some(ys)) => ys == [x.value.to_lowercase()],
                        (None, None) => false,
                    };
            }
            x.path == y.path
                && match (x.negate, y.negate) {
                    (false, false) => !x.value.eq_ignore_ascii_case(&y.value),
                    (false, true) | (true, false) => x.value.eq_ignore_ascii_case(&y.value),
                    (true, true) => false,
                }
        })
    })
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.any_of.is_empty() {
            return write!(f, "{} IN {}", self.path, self.any_of.join(","));
        }
        write!(
            f,
            "{}{}{}",
            self.path,
            if self.negate { "!=" } else { "=" },
            self.value
        )
    }
}

/// A conjunction of conditions on CI fields, in ServiceNow encoded-query form:
/// `discovery_source=CloudForms^install_status!=7^sys_class_nameINa,b^nameISNOTEMPTY`
/// (and `fieldSTARTSWITHprefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conditions {
    pub text: String,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    IsEmpty(String),
    IsNotEmpty(String),
    /// `fieldSTARTSWITHprefix`, compared without case as ServiceNow does.
    StartsWith(String, String),
}

impl Conditions {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut conditions = Vec::new();
        for part in text.split('^').map(str::trim).filter(|p| !p.is_empty()) {
            let condition = if let Some(field) = part.strip_suffix("ISNOTEMPTY") {
                Condition::IsNotEmpty(field.trim().to_owned())
            } else if let Some(field) = part.strip_suffix("ISEMPTY") {
                Condition::IsEmpty(field.trim().to_owned())
            } else if let Some((f, v)) = part.split_once("STARTSWITH") {
                Condition::StartsWith(f.trim().to_owned(), v.trim().to_owned())
            } else if let Some((f, v)) = part.split_once("!=") {
                Condition::NotEquals(f.trim().to_owned(), v.trim().to_owned())
            } else if let Some((f, v)) = part.split_once('=') {
                Condition::Equals(f.trim().to_owned(), v.trim().to_owned())
            } else if let Some((f, v)) = part.split_once("IN") {
                Condition::In(
                    f.trim().to_owned(),
                    v.split(',').map(|s| s.trim().to_owned()).collect(),
                )
            } else {
                return Err(format!("cannot read condition `{part}`"));
            };
            let field = match &condition {
                Condition::Equals(f, _)
                | Condition::NotEquals(f, _)
                | Condition::In(f, _)
                | Condition::IsEmpty(f)
                | Condition::IsNotEmpty(f)
                | Condition::StartsWith(f, _) => f,
            };
            if !is_field_name(field) {
                return Err(format!(
                    "`{field}` is not a field name in condition `{part}`"
                ));
            }
            conditions.push(condition);
        }
        if conditions.is_empty() {
            return Err("no condition given".into());
        }
        Ok(Self {
            text: text.trim().to_owned(),
            conditions,
        })
    }

    /// Whether the CI meets every condition (values compared case-insensitively, as
    /// ServiceNow compares choice and string values).
    pub fn matches(&self, ci: &Ci) -> bool {
        self.conditions.iter().all(|c| match c {
            Condition::Equals(f, v) => ci.get(f).trim().eq_ignore_ascii_case(v),
            Condition::NotEquals(f, v) => !ci.get(f).trim().eq_ignore_ascii_case(v),
            Condition::In(f, vs) => vs.iter().any(|v| ci.get(f).trim().eq_ignore_ascii_case(v)),
            Condition::IsEmpty(f) => ci.get(f).trim().is_empty(),
            Condition::IsNotEmpty(f) => !ci.get(f).trim().is_empty(),
            Condition::StartsWith(f, prefix) => {
                let value = ci.get(f).trim();
                value
                    .get(..prefix.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
            }
        })
    }

    /// The field values a CI must hold to meet the `=` conditions (written on create and
    /// on adoption, so that the job's CIs stay in its scope).
    pub fn required_values(&self) -> Vec<(String, String)> {
        self.conditions
            .iter()
            .filter_map(|c| match c {
                Condition::Equals(f, v) => Some((f.clone(), v.clone())),
                _ => None,
            })
            .collect()
    }

    /// The CI fields the conditions read.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.conditions.iter().map(|c| match c {
            Condition::Equals(f, _)
            | Condition::NotEquals(f, _)
            | Condition::In(f, _)
            | Condition::IsEmpty(f)
            | Condition::IsNotEmpty(f)
            | Condition::StartsWith(f, _) => f.as_str(),
        })
    }
}

/// A name as ServiceNow spells fields and tables: ASCII letters, digits, `_` and `.`
/// (callers that need a plain name also reject `.`).
pub(super) fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}
