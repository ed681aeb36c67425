//! Templates: `{name}.{domain}` builds one value from several source paths; `{path?}` may be
//! missing (it is then left empty). `{{` and `}}` are literal braces.

use crate::reconcile::record::Val;

use super::eval::scalar_text;
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
    let mut out = String::new();
    for part in parts {
        match part {
            TemplatePart::Text(t) => out.push_str(t),
            TemplatePart::Field(path) => match path.get(record.data).and_then(|v| text_of(&v)) {
                Some(v) if !v.trim().is_empty() => out.push_str(v.trim()),
                // A template with a missing part has no value: better none than a half name.
                _ => return Val::Null,
            },
            TemplatePart::Optional(path) => {
                if let Some(v) = path.get(record.data).and_then(|v| text_of(&v)) {
                    out.push_str(v.trim());
                }
            }
        }
    }
    Val::String(out.into_boxed_str())
}

/// A scalar's text, or a list's scalars joined with `, ` (blank ones left out).
fn text_of(value: &Val) -> Option<String> {
    match value {
        Val::Array(items) => {
            let texts: Vec<String> = items
                .iter()
                .filter_map(scalar_text)
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect();
            (!texts.is_empty()).then(|| texts.join(", "))
        }
        other => scalar_text(other),
    }
}
