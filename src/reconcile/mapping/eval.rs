//! Evaluation: one field rule applied to one record (extract, pick, convert, trim and case,
//! value map, default, reference lookup), and the scalar helpers the planner and the
//! filters share (a JSON value as text, numbers as ServiceNow stores them, tag values).
//!
//! A bad value is an [`EvalError`] for the report, never a panic.

use core::net::{Ipv4Addr, Ipv6Addr};
use std::borrow::Cow;

use super::template::render_template;
use super::{Case, Extract, FieldRule, Lookup, Pick};
use crate::reconcile::diff::trim;
use crate::reconcile::record::{References, SourceRecord, Val};

/// Why a field has no value for a record: data for the report, never a stopped run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    BadValue(String),
    Unresolved(String),
}

impl FieldRule {
    /// Derives this field's value from a record: `Ok(None)` when the source has no value.
    pub fn eval(
        &self,
        record: &SourceRecord,
        refs: &References,
    ) -> Result<Option<String>, EvalError> {
        Ok(self.eval_text(record, refs)?.map(Cow::into_owned))
    }

    /// [`eval`](Self::eval), the value borrowed from the record, the mapping or the
    /// referenced rows wherever it is not built: the planner evaluates every field of every
    /// record, and most values are found as they are.
    pub fn eval_text<'s>(
        &'s self,
        record: &SourceRecord<'s>,
        refs: &'s References,
    ) -> Result<Option<Cow<'s, str>>, EvalError> {
        match (self.eval_unresolved(record)?, &self.lookup) {
            (Some(v), Some(lookup)) => self.resolve(&v, lookup, record, refs).map(Some),
            (value, _) => Ok(value),
        }
    }

    /// Cuts `value` to the column's `max_length` characters, as ServiceNow cuts what it is
    /// sent (on a character boundary, never inside a UTF-8 sequence). Returns the length in
    /// characters it had when it was cut, `None` when it fits (or no length is known).
    pub fn fit(&self, value: &mut String) -> Option<usize> {
        let (cut_at, had) = self.cut(value)?;
        value.truncate(cut_at);
        Some(had)
    }

    /// [`fit`](Self::fit) for a value that may be borrowed (copied only when it is cut).
    pub fn fit_text(&self, value: &mut Cow<'_, str>) -> Option<usize> {
        let (cut_at, had) = self.cut(value)?;
        value.to_mut().truncate(cut_at);
        Some(had)
    }

    /// Where `value` must be cut, and its length in characters, when it is too long.
    fn cut(&self, value: &str) -> Option<(usize, usize)> {
        let max = self.max_length?;
        if value.len() <= max {
            // No more bytes than characters allowed: it fits whatever they are.
            return None;
        }
        let (cut_at, _) = value.char_indices().nth(max)?;
        Some((cut_at, max + value[cut_at..].chars().count()))
    }

    /// The value to look up, before the lookup: what a live target must find in the
    /// referenced table. `None` for fields without a lookup or records without a value.
    pub fn lookup_key(&self, record: &SourceRecord) -> Option<String> {
        self.lookup.as_ref()?;
        self.eval_unresolved(record)
            .ok()
            .flatten()
            .map(Cow::into_owned)
    }

    /// Every step but the reference lookup.
    fn eval_unresolved<'s>(
        &'s self,
        record: &SourceRecord<'s>,
    ) -> Result<Option<Cow<'s, str>>, EvalError> {
        // A record outside `when` gives the field no value (and no default: the field does
        // not apply to it).
        if !self.when.iter().all(|f| f.accepts(record)) {
            return Ok(None);
        }
        // Paths borrow from the record; only what is built here is owned (and its text
        // copied out before it goes).
        let owned = |built: Val| -> Result<Option<Cow<'s, str>>, EvalError> {
            let shaped = self.shape(self.reduce(&built)?)?;
            // Built text that comes out whole (a rendered template, as nearly always) is
            // moved out rather than copied.
            let whole = match (&shaped, &built) {
                (Some(Cow::Borrowed(t)), Val::String(s)) => {
                    t.as_ptr() == s.as_ptr() && t.len() == s.len()
                }
                _ => false,
            };
            if !whole {
                return Ok(shaped.map(|v| Cow::Owned(v.into_owned())));
            }
            Ok(match built {
                Val::String(s) => Some(Cow::Owned(s.into_string())),
                _ => None,
            })
        };
        let value = match &self.extract {
            Extract::Path(path) => match path.get(record.data) {
                Some(Cow::Borrowed(raw)) => self.shape(self.reduce(raw)?)?,
                Some(Cow::Owned(raw)) => owned(raw)?,
                None => None,
            },
            Extract::Const(value) => owned(Val::String(value.as_str().into()))?,
            // As the list of the tag's values (`reduce` of an array of strings), borrowed
            // from the record.
            Extract::Tag(category) => {
                let tags = tag_strs(record, category);
                let scalars = tags.iter().map(|t| Scalar::Text(Cow::Borrowed(*t)));
                self.shape(self.convert_step(self.pick_list(scalars))?)?
            }
            Extract::Template(parts) => owned(render_template(parts, record))?,
        };
        // Empty text is no value wherever it comes from: a map entry of `""` (CloudForms'
        // `unknown` power state: the source does not know) leaves the CI alone like a missing
        // value, without the default standing in for it.
        Ok(value
            .or_else(|| self.default.as_deref().map(Cow::Borrowed))
            .filter(|v| !v.is_empty()))
    }

    /// Lists to one value (pick), objects rejected, numbers converted.
    fn reduce<'a>(&self, raw: &'a Val) -> Result<Option<Scalar<'a>>, EvalError> {
        let scalar = match raw {
            Val::Array(items) => self.pick_list(items.iter().filter_map(Scalar::of)),
            Val::Object(_) => {
                return Err(EvalError::BadValue(format!(
                    "field `{}`: the source value is an object, not a value (name a nested key)",
                    self.name
                )))
            }
            Val::Null => None,
            other => match (self.pick, Scalar::of(other)) {
                // A single value where a list was expected counts as a list of one.
                (
                    Some(
                        pick @ (Pick::FirstIpv4
                        | Pick::FirstIpv6
                        | Pick::FirstIpv4Any
                        | Pick::FirstIpv6Any),
                    ),
                    Some(Scalar::Text(t)),
                ) if !picks_address(pick, &t) => None,
                (_, scalar) => scalar,
            },
        };
        self.convert_step(scalar)
    }

    /// A list's scalars (the array's elements that are scalars, in order) to one value.
    fn pick_list<'a>(
        &self,
        mut scalars: impl DoubleEndedIterator<Item = Scalar<'a>>,
    ) -> Option<Scalar<'a>> {
        match self.pick.unwrap_or(Pick::Join) {
            Pick::First => scalars.next(),
            Pick::Last => scalars.next_back(),
            pick
            @ (Pick::FirstIpv4 | Pick::FirstIpv6 | Pick::FirstIpv4Any | Pick::FirstIpv6Any) => {
                scalars
                    .map(Scalar::into_text)
                    .find(|t| picks_address(pick, t))
                    .map(Scalar::Text)
            }
            Pick::Join => {
                let mut texts = scalars.map(Scalar::into_text);
                let first = texts.next()?;
                // One value is its own join: borrowed as it is.
                let Some(second) = texts.next() else {
                    return (!first.is_empty()).then_some(Scalar::Text(first));
                };
                let mut joined = first.into_owned();
                for text in std::iter::once(second).chain(texts) {
                    joined.push_str(&self.separator);
                    joined.push_str(&text);
                }
                (!joined.is_empty()).then_some(Scalar::Text(Cow::Owned(joined)))
            }
            Pick::Count => Some(Scalar::Number(scalars.count() as f64)),
        }
    }

    /// The `convert` step: numbers scaled and rounded.
    fn convert_step<'a>(
        &self,
        scalar: Option<Scalar<'a>>,
    ) -> Result<Option<Scalar<'a>>, EvalError> {
        let Some(scalar) = scalar else {
            return Ok(None);
        };
        let Some(convert) = self.convert else {
            return Ok(Some(scalar));
        };
        let number = match &scalar {
            Scalar::Number(n) => *n,
            Scalar::Text(t) => t.trim().parse::<f64>().map_err(|_| {
                EvalError::BadValue(format!(
                    "field `{}`: `{t}` is not a number to convert",
                    self.name
                ))
            })?,
            Scalar::Bool(b) => {
                return Err(EvalError::BadValue(format!(
                    "field `{}`: `{b}` is not a number to convert",
                    self.name
                )))
            }
        };
        let scale = 10f64.powi(self.decimals as i32);
        Ok(Some(Scalar::Number(
            (number * convert.factor() * scale).round() / scale,
        )))
    }

    /// Text shaping: trim, case, value map. `None` for empty values.
    fn shape<'t>(&'t self, scalar: Option<Scalar<'t>>) -> Result<Option<Cow<'t, str>>, EvalError> {
        let Some(scalar) = scalar else {
            return Ok(None);
        };
        let mut text = scalar.into_text();
        if self.trim {
            text = match text {
                Cow::Borrowed(t) => Cow::Borrowed(trim(t)),
                Cow::Owned(t) if trim(&t).len() != t.len() => Cow::Owned(trim(&t).to_owned()),
                owned => owned,
            };
        }
        match self.case {
            Some(Case::Lower) => text = Cow::Owned(text.to_lowercase()),
            Some(Case::Upper) => text = Cow::Owned(text.to_uppercase()),
            None => {}
        }
        if text.is_empty() {
            return Ok(None);
        }
        let Some(map) = &self.map else {
            return Ok(Some(text));
        };
        if let Some(mapped) = map.get(text.as_ref()) {
            return Ok(Some(Cow::Borrowed(mapped)));
        }
        if let Some((_, mapped)) = map.iter().find(|(k, _)| k.eq_ignore_ascii_case(&text)) {
            return Ok(Some(Cow::Borrowed(mapped)));
        }
        // Then the patterns (`finished/*`), the most specific first: most literal characters,
        // then key order. A composite key (`{request_state}/{status}`) needs no entry for
        // every combination.
        if let Some((_, mapped)) = self
            .map_patterns
            .iter()
            .find(|(pattern, _)| glob_matches(pattern, &text))
        {
            return Ok(Some(Cow::Borrowed(mapped)));
        }
        match &self.default {
            Some(default) => Ok(Some(Cow::Borrowed(default))),
            None => Err(EvalError::BadValue(format!(
                "field `{}`: `{text}` is not in its value map and it has no default",
                self.name
            ))),
        }
    }

    fn resolve<'s>(
        &'s self,
        value: &str,
        lookup: &Lookup,
        record: &SourceRecord<'s>,
        refs: &'s References,
    ) -> Result<Cow<'s, str>, EvalError> {
        if !refs.has_table(&lookup.table) {
            return Err(EvalError::Unresolved(format!(
                "field `{}`: needs a lookup in `{}` but its rows were not loaded",
                self.name, lookup.table
            )));
        }
        let found = refs.resolve(&lookup.table, &lookup.by, value);
        if !self.lookup_and.is_empty() {
            return self.resolve_and(value, lookup, found, record, refs);
        }
        match found {
            [sys_id] => Ok(Cow::Borrowed(sys_id)),
            [] => Err(EvalError::Unresolved(format!(
                "field `{}`: no `{}` row has {} `{value}`",
                self.name, lookup.table, lookup.by
            ))),
            many => Err(EvalError::Unresolved(format!(
                "field `{}`: {} `{}` rows have {} `{value}`",
                self.name,
                many.len(),
                lookup.table,
                lookup.by
            ))),
        }
    }
}

impl FieldRule {
    /// A lookup with `and` conditions: the rows found by `by` that also hold every `and`
    /// field's value from the record. Exactly one must be left.
    fn resolve_and<'s>(
        &'s self,
        value: &str,
        lookup: &Lookup,
        found: &'s [String],
        record: &SourceRecord<'s>,
        refs: &'s References,
    ) -> Result<Cow<'s, str>, EvalError> {
        let mut key = vec![format!("{} `{value}`", lookup.by)];
        let mut left: Vec<&String> = found.iter().collect();
        for (field, path) in &self.lookup_and {
            let Some(wanted) = path.get(record.data).and_then(|v| scalar_text(&v)) else {
                return Err(EvalError::Unresolved(format!(
                    "field `{}`: the lookup in `{}` needs `{path}` for `{field}`, and the record has none",
                    self.name, lookup.table
                )));
            };
            let matching = refs.resolve(&lookup.table, field, &wanted);
            left.retain(|id| matching.contains(id));
            key.push(format!("{field} `{wanted}`"));
        }
        let key = key.join(" and ");
        match left.as_slice() {
            [sys_id] => Ok(Cow::Borrowed(sys_id.as_str())),
            [] => Err(EvalError::Unresolved(format!(
                "field `{}`: no `{}` row has {key}",
                self.name, lookup.table
            ))),
            many => Err(EvalError::Unresolved(format!(
                "field `{}`: {} `{}` rows have {key}",
                self.name,
                many.len(),
                lookup.table
            ))),
        }
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters (none
/// too); letters compared without case, as map keys are.
pub(crate) fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.to_lowercase().chars().collect();
    let text: Vec<char> = text.to_lowercase().chars().collect();
    // Iterative wildcard matching with one backtrack point (the last `*`).
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// Whether an address pick takes `text`: an address of its family and, unless the pick is an
/// `_any` one, an address another host could reach the VM by (not loopback, link-local or
/// unspecified). Anything else is not an address and never taken.
fn picks_address(pick: Pick, text: &str) -> bool {
    match pick {
        Pick::FirstIpv4 => text
            .parse::<Ipv4Addr>()
            .is_ok_and(|ip| !(ip.is_loopback() || ip.is_link_local() || ip.is_unspecified())),
        Pick::FirstIpv4Any => text.parse::<Ipv4Addr>().is_ok(),
        Pick::FirstIpv6 => text.parse::<Ipv6Addr>().is_ok_and(|ip| {
            !(ip.is_loopback() || ip.is_unicast_link_local() || ip.is_unspecified())
        }),
        Pick::FirstIpv6Any => text.parse::<Ipv6Addr>().is_ok(),
        Pick::First | Pick::Last | Pick::Join | Pick::Count => false,
    }
}

/// A scalar source value before it becomes text; text borrows from the record.
#[derive(Debug, Clone, PartialEq)]
enum Scalar<'a> {
    Text(Cow<'a, str>),
    Number(f64),
    Bool(bool),
}

impl<'a> Scalar<'a> {
    fn of(value: &'a Val) -> Option<Self> {
        match value {
            Val::String(s) => Some(Self::Text(Cow::Borrowed(s))),
            Val::Number(n) => match (n.as_i64(), n.as_u64()) {
                // Keep integers exact: they are rendered as written.
                (Some(i), _) => Some(Self::Text(Cow::Owned(i.to_string()))),
                (_, Some(u)) => Some(Self::Text(Cow::Owned(u.to_string()))),
                _ => n.as_f64().map(Self::Number),
            },
            Val::Bool(b) => Some(Self::Bool(*b)),
            Val::Null | Val::Array(_) | Val::Object(_) => None,
        }
    }

    fn into_text(self) -> Cow<'a, str> {
        match self {
            Self::Text(t) => t,
            Self::Bool(b) => Cow::Borrowed(if b { "true" } else { "false" }),
            Self::Number(n) => Cow::Owned(format_number(n)),
        }
    }
}

/// Renders a number as ServiceNow would store it: integers without a fraction.
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// The text of a scalar JSON value (`None` for null, arrays and objects).
pub fn scalar_text(value: &Val) -> Option<String> {
    scalar_str(value).map(Cow::into_owned)
}

/// [`scalar_text`], borrowed from the value when it is a string.
pub fn scalar_str(value: &Val) -> Option<Cow<'_, str>> {
    Scalar::of(value).map(Scalar::into_text)
}

/// The values of one tag category on a record. Tags come as `expand=tags` objects
/// (`{"name": "/managed/environment/prod"}`) or plain strings.
pub fn tag_values(record: &SourceRecord, category: &str) -> Vec<String> {
    tag_strs(record, category)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// [`tag_values`], borrowed from the record.
fn tag_strs<'a>(record: &SourceRecord<'a>, category: &str) -> Vec<&'a str> {
    let Some(Val::Array(tags)) = record.data.get("tags") else {
        return Vec::new();
    };
    let mut values: Vec<&'a str> = tags
        .iter()
        .filter_map(|tag| match tag {
            Val::String(s) => Some(&**s),
            Val::Object(o) => o.get("name").and_then(Val::as_str),
            _ => None,
        })
        .filter_map(|name| {
            let mut parts = name.trim_start_matches('/').splitn(3, '/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("managed"), Some(cat), Some(value)) if cat == category => Some(value),
                _ => None,
            }
        })
        .collect();
    values.sort();
    values.dedup();
    values
}
