//! Templates: `{name}.{domain}` builds one value from several source paths; `{path?}` may be
//! missing (it is then left empty). `{{` and `}}` are literal braces.

use std::borrow::Cow;

use crate::reconcile::diff::trim;
use crate::reconcile::record::Val;

use super::eval::{scalar_str, scalar_text};
use super::path::Path;
use crate::reconcile::record::SourceRecord;

/// One piece of a compiled template: literal text or a source path to fill in.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplatePart {
    Text(String),
    Field(Path),
    /// `{path?}`: filled in when the record has a value, left empty otherwise (the
    /// template still has a value).
    Optional(Path),
}

/// Compiles a template; one that names no source path is an error (that is a `const`).
pub(super) fn parse_template(text: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                literal.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(format!("unclosed `{{` in template `{text}`")),
                    }
                }
                if !literal.is_empty() {
                    parts.push(TemplatePart::Text(std::mem::take(&mut literal)));
                }
                parts.push(match name.trim().strip_suffix('?') {
                    Some(optional) => TemplatePart::Optional(Path::parse(optional)?),
                    None => TemplatePart::Field(Path::parse(&name)?),
                });
            }
            '}' => {
                return Err(format!(
                    "unmatched `}}` in template `{text}` (write `}}}}`)"
                ))
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        parts.push(TemplatePart::Text(literal));
    }
    if !parts
        .iter()
        .any(|p| matches!(p, TemplatePart::Field(_) | TemplatePart::Optional(_)))
    {
        return Err(format!(
            "template `{text}` names no source field; use `const` for a constant"
        ));
    }
    Ok(parts)
}

/// Fills a template from a record: `Null` when any named value is missing or blank. A list
/// (`{miq_request_tasks[*].options.vm_target_name}`) is filled in as its values joined with
/// `, `.
pub(super) fn render_template(parts: &[TemplatePart], record: &SourceRecord) -> Val {
    // Room for the literal text and a few values: the text is built once per record.
    let literal: usize = parts
        .iter()
        .map(|p| match p {
            TemplatePart::Text(t) => t.len(),
            TemplatePart::Field(_) | TemplatePart::Optional(_) => 24,
        })
        .sum();
    let mut out = String::with_capacity(literal);
    for part in parts {
        match part {
            TemplatePart::Text(t) => out.push_str(t),
            TemplatePart::Field(path) => match text_at(path, record) {
                Some(v) if !trim(&v).is_empty() => out.push_str(trim(&v)),
                // A template with a missing part has no value: better none than a half name.
                _ => return Val::Null,
            },
            TemplatePart::Optional(path) => {
                if let Some(v) = text_at(path, record) {
                    out.push_str(trim(&v));
                }
            }
        }
    }
    Val::String(out.into_boxed_str())
}

/// The text at `path` of a record ([`text_of`]), borrowed from it where it is found as it is.
fn text_at<'a>(path: &Path, record: &SourceRecord<'a>) -> Option<Cow<'a, str>> {
    match path.get(record.data)? {
        Cow::Borrowed(value) => text_of(value),
        Cow::Owned(value) => text_of(&value).map(|t| Cow::Owned(t.into_owned())),
    }
}

/// A scalar's text, or a list's scalars joined with `, ` (blank ones left out).
fn text_of(value: &Val) -> Option<Cow<'_, str>> {
    match value {
        Val::Array(items) => {
            let texts: Vec<String> = items
                .iter()
                .filter_map(scalar_text)
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect();
            (!texts.is_empty()).then(|| Cow::Owned(texts.join(", ")))
        }
        other => scalar_str(other),
    }
}
