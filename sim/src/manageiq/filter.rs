//! `filter[]=` expressions, parsed the way manageiq-api's `Api::Filter` does:
//! the first operator found scanning left to right (longest first at each
//! position), single or double quotes for strings, `%`/`*` wildcards in quoted
//! strings, `NULL`/`nil`, an `or ` prefix, at most one association
//! (`hardware.memory_mb>=8192`). Conditions without `or ` are AND-ed and the
//! `or ` ones are OR-ed onto that. The simulator also accepts `=~` and `!~`
//! (regular expression match) on top of the real operator set.

use super::error::MiqError;
use super::field::Field;
use regex::Regex;
use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Match,
    NoMatch,
}

/// Longest first, so `<=` wins over `<` at the same position.
const OPERATORS: &[(&str, Op)] = &[
    ("!=", Op::Ne),
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("=~", Op::Match),
    ("!~", Op::NoMatch),
    ("<", Op::Lt),
    (">", Op::Gt),
    ("=", Op::Eq),
];

#[derive(Debug, Clone)]
enum Operand {
    Null,
    Regex(Regex),
    Text { raw: String, number: Option<f64> },
}

#[derive(Debug, Clone)]
struct Condition<R> {
    attr: R,
    op: Op,
    operand: Operand,
}

/// A parsed set of `filter[]` expressions over attributes resolved to `R`.
#[derive(Debug, Clone)]
pub struct Filter<R> {
    and: Vec<Condition<R>>,
    or: Vec<Condition<R>>,
}

impl<R> Filter<R> {
    /// Parses every expression; `resolve(association, attribute)` names the
    /// attribute or returns `None` when the collection has no such attribute.
    pub fn parse(
        filters: &[String],
        mut resolve: impl FnMut(Option<&str>, &str) -> Option<R>,
    ) -> Result<Self, MiqError> {
        let mut filter = Filter {
            and: Vec::new(),
            or: Vec::new(),
        };
        for raw in filters.iter().filter(|f| !f.trim().is_empty()) {
            let (text, is_or) = match raw.get(..3) {
                Some(prefix) if prefix.eq_ignore_ascii_case("or ") => (&raw[3..], true),
                _ => (raw.as_str(), false),
            };
            let (pos, symbol, op) = find_operator(text).ok_or_else(|| {
                MiqError::bad_request(format!("Unknown operator specified in filter {text}"))
            })?;
            let attr = text[..pos].trim();
            let value = text[pos + symbol.len()..].trim();
            let mut parts: Vec<&str> = attr.split('.').collect();
            let name = parts.pop().unwrap_or_default();
            if parts.len() > 1 {
                return Err(MiqError::bad_request(
                    "Filtering of attributes with more than one association away is not supported",
                ));
            }
            let resolved = resolve(parts.first().copied(), name)
                .ok_or_else(|| MiqError::bad_request(format!("attribute {name} does not exist")))?;
            let value = datetime_operand(name, symbol, value)?;
            let operand = operand(op, &value)?;
            let condition = Condition {
                attr: resolved,
                op,
                operand,
            };
            if is_or {
                filter.or.push(condition);
            } else {
                filter.and.push(condition);
            }
        }
        Ok(filter)
    }

    pub fn is_empty(&self) -> bool {
        self.and.is_empty() && self.or.is_empty()
    }

    /// Whether a record passes; `get` reads one attribute of the record.
    pub fn matches<'a>(&self, get: impl Fn(&R) -> Field<'a>) -> bool {
        let check = |c: &Condition<R>| evaluate(c.op, &c.operand, &get(&c.attr));
        let and = self.and.iter().all(check);
        if self.or.is_empty() {
            return and;
        }
        (!self.and.is_empty() && and) || self.or.iter().any(check)
    }
}

/// Whether ManageIQ types the column as a date or datetime (`Field#datetime?`): the
/// simulator goes by name, as every such column of the collections it serves is named.
fn is_datetime(name: &str) -> bool {
    name.ends_with("_on") || name.ends_with("_at") || matches!(name, "boot_time" | "lastlogon")
}

/// `Api::Filter#parse_filter` on an unquoted value of a date/datetime column: only `>`
/// (AFTER), `<` (BEFORE) and `=` (IS) exist, others answer 400 "Unsupported operator for
/// datetime: >="; the value must parse ("Bad format for datetime: x"). A quoted value skips
/// both checks and becomes a plain SQL comparison (`MiqExpression::Component::GreaterThan` ...),
/// which PostgreSQL evaluates by casting the text to a timestamp: the simulator compares it
/// as a time too. NULL/nil are not datetimes. Returns the value, a datetime with a zone
/// normalized to the `...Z` form records carry (so that text order is time order).
fn datetime_operand(name: &str, symbol: &str, value: &str) -> Result<String, MiqError> {
    let quoted = unquote(value).is_some();
    let null = value.eq_ignore_ascii_case("null") || value.eq_ignore_ascii_case("nil");
    if !is_datetime(name) || quoted || null {
        return Ok(value.to_owned());
    }
    if !matches!(symbol, ">" | "<" | "=") {
        return Err(MiqError::bad_request(format!(
            "Unsupported operator for datetime: {symbol}"
        )));
    }
    let bad = || MiqError::bad_request(format!("Bad format for datetime: {value}"));
    if chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok() {
        return Ok(value.to_owned());
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        let t = t.with_timezone(&chrono::Utc);
        return Ok(t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    // `2026-12-01 08:00:00` or without a zone: Time.zone (UTC on an appliance) applies.
    ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(value, f).ok())
        .map(|t| t.and_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .ok_or_else(bad)
}

fn find_operator(text: &str) -> Option<(usize, &'static str, Op)> {
    (0..text.len())
        .filter(|&i| text.is_char_boundary(i))
        .find_map(|i| {
            OPERATORS
                .iter()
                .find(|(sym, _)| text[i..].starts_with(sym))
                .map(|&(sym, op)| (i, sym, op))
        })
}

fn unquote(value: &str) -> Option<&str> {
    for q in ['\'', '"'] {
        if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
            return Some(&value[1..value.len() - 1]);
        }
    }
    None
}

fn operand(op: Op, value: &str) -> Result<Operand, MiqError> {
    let quoted = unquote(value);
    if matches!(op, Op::Match | Op::NoMatch) {
        let pattern = quoted.unwrap_or(value);
        return Regex::new(pattern)
            .map(Operand::Regex)
            .map_err(|_| MiqError::bad_request(format!("Invalid regular expression {pattern}")));
    }
    match quoted {
        // Wildcards only work in quoted strings and only for = and != (like
        // the real server, which turns an unquoted `a%` into a literal).
        Some(s) if (s.contains('%') || s.contains('*')) && matches!(op, Op::Eq | Op::Ne) => {
            let mut pattern = String::from("^");
            for ch in s.chars() {
                match ch {
                    '%' | '*' => pattern.push_str(".*"),
                    c => pattern.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
                }
            }
            pattern.push('$');
            Regex::new(&pattern)
                .map(Operand::Regex)
                .map_err(|_| MiqError::bad_request(format!("Invalid filter value {value}")))
        }
        Some(s) => Ok(text(s)),
        None if value.eq_ignore_ascii_case("null") || value.eq_ignore_ascii_case("nil") => {
            Ok(Operand::Null)
        }
        None => Ok(text(value)),
    }
}

fn text(s: &str) -> Operand {
    Operand::Text {
        raw: s.to_owned(),
        number: s.parse::<f64>().ok(),
    }
}

fn evaluate(op: Op, operand: &Operand, field: &Field<'_>) -> bool {
    if let Operand::Null = operand {
        return match op {
            Op::Eq => field.is_null(),
            Op::Ne => !field.is_null(),
            _ => false,
        };
    }
    if field.is_null() {
        // SQL: a comparison with NULL is never true.
        return false;
    }
    if let Some(items) = field.elements() {
        return match op {
            Op::Ne | Op::NoMatch => items.iter().all(|f| evaluate(op, operand, f)),
            _ => items.iter().any(|f| evaluate(op, operand, f)),
        };
    }
    match operand {
        Operand::Null => false,
        Operand::Regex(re) => {
            let hit = field.text().is_some_and(|t| re.is_match(&t));
            match op {
                Op::Ne | Op::NoMatch => !hit,
                _ => hit,
            }
        }
        Operand::Text { raw, number } => compare(op, raw, *number, field),
    }
}

fn compare(op: Op, raw: &str, number: Option<f64>, field: &Field<'_>) -> bool {
    let ordering = match (field, field.number(), number) {
        (_, Some(f), Some(n)) => f.partial_cmp(&n),
        (Field::Bool(b), ..) => match raw.to_ascii_lowercase().as_str() {
            "true" | "t" => Some(b.cmp(&true)),
            "false" | "f" => Some(b.cmp(&false)),
            _ => None,
        },
        (Field::Time(t), ..) => {
            // A date alone means that whole day for `=` (MiqExpression's IS).
            let is_date = raw.len() == 10 && raw.as_bytes().get(4) == Some(&b'-');
            if is_date && matches!(op, Op::Eq | Op::Ne) {
                let same = t.starts_with(raw);
                return (op == Op::Eq) == same;
            }
            if is_date && op == Op::Gt {
                // AFTER a date: after the end of that day (RelativeDatetime "end").
                return *t > format!("{raw}T23:59:59Z").as_str();
            }
            Some(t.cmp(&raw))
        }
        _ => field.text().map(|t| t.as_ref().cmp(raw)),
    };
    let Some(ordering) = ordering else {
        return op == Op::Ne;
    };
    match op {
        Op::Eq | Op::Match => ordering == Ordering::Equal,
        Op::Ne | Op::NoMatch => ordering != Ordering::Equal,
        Op::Lt => ordering == Ordering::Less,
        Op::Le => ordering != Ordering::Greater,
        Op::Gt => ordering == Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(filters: &[&str]) -> Result<Filter<String>, MiqError> {
        let filters: Vec<String> = filters.iter().map(|s| s.to_string()).collect();
        Filter::parse(&filters, |assoc, attr| match (assoc, attr) {
            (None, "name" | "id" | "vendor" | "retired" | "created_on" | "ipaddresses") => {
                Some(attr.to_owned())
            }
            (Some("hardware"), "memory_mb") => Some("memory_mb".to_owned()),
            _ => None,
        })
    }

    fn record(attr: &str) -> Field<'static> {
        match attr {
            "name" => Field::Str("prd-web-001"),
            "id" => Field::Id(10_000_000_000_123),
            "vendor" => Field::Str("vmware"),
            "retired" => Field::Null,
            "created_on" => Field::Time("2024-05-01T10:00:00Z"),
            "ipaddresses" => Field::Owned(json!(["10.0.0.1", "fe80::1"])),
            "memory_mb" => Field::Int(8192),
            _ => Field::Null,
        }
    }

    fn hit(filters: &[&str]) -> bool {
        parse(filters)
            .map(|f| f.matches(|a| record(a)))
            .unwrap_or(false)
    }

    #[test]
    fn operators_compare_like_sql() {
        assert!(hit(&["name='prd-web-001'"]));
        assert!(hit(&["name = \"prd-web-001\""]));
        assert!(!hit(&["name!='prd-web-001'"]));
        assert!(hit(&["id>10000000000122"]));
        assert!(!hit(&["id>10000000000123"]));
        assert!(hit(&["id>=10000000000123"]));
        assert!(hit(&["hardware.memory_mb>=8192"]));
        assert!(!hit(&["hardware.memory_mb<8192"]));
        assert!(hit(&["created_on>2024-01-01"]));
        assert!(hit(&["created_on=2024-05-01"]));
        assert!(hit(&["ipaddresses='10.0.0.1'"]));
    }

    #[test]
    fn wildcards_regex_and_null() {
        assert!(hit(&["name='prd-%'"]));
        assert!(hit(&["name=\"*web*\""]));
        assert!(!hit(&["name=prd-%"]), "unquoted wildcards are literal");
        assert!(hit(&["name=~^prd-w"]));
        assert!(hit(&["name!~db"]));
        assert!(hit(&["retired=NULL"]));
        assert!(!hit(&["retired!=nil"]));
        assert!(!hit(&["retired='x'"]), "NULL compares false");
    }

    #[test]
    fn or_prefix_adds_alternatives() {
        assert!(hit(&["vendor=redhat", "or name='prd-web-001'"]));
        assert!(!hit(&["vendor=redhat", "or name='x'"]));
        assert!(hit(&["or vendor=redhat", "or vendor=vmware"]));
    }

    #[test]
    fn datetimes_take_only_after_before_and_is_unquoted() {
        let err = |f: &str| parse(&[f]).err().map(|e| e.message).unwrap_or_default();
        assert_eq!(
            err("created_on>=2024-01-01T00:00:00Z"),
            "Unsupported operator for datetime: >="
        );
        assert_eq!(
            err("created_on <= 2024-01-01"),
            "Unsupported operator for datetime: <="
        );
        assert_eq!(
            err("created_on!=2024-01-01"),
            "Unsupported operator for datetime: !="
        );
        assert_eq!(err("created_on>foobar"), "Bad format for datetime: foobar");
        assert!(hit(&["created_on>2024-05-01T09:59:59Z"]));
        assert!(!hit(&["created_on>2024-05-01T10:00:00Z"]));
        assert!(hit(&["created_on<2024-05-01T10:00:01Z"]));
        assert!(hit(&["created_on=2024-05-01T10:00:00Z"]));
        // Another zone is the same instant.
        assert!(hit(&["created_on>2024-05-01T11:59:59+02:00"]));
        // AFTER a date means after that whole day.
        assert!(!hit(&["created_on>2024-05-01"]));
        assert!(hit(&["created_on>2024-04-30"]));
        // Quoted: a plain comparison, any operator; NULL is not a datetime.
        assert!(hit(&["created_on>='2024-05-01T10:00:00Z'"]));
        assert!(!hit(&["created_on!=NULL", "retired!=nil"]));
        assert!(parse(&["created_on!=NULL"]).is_ok());
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |f: &str| parse(&[f]).err().map(|e| e.message).unwrap_or_default();
        assert_eq!(err("nosuch=1"), "attribute nosuch does not exist");
        assert_eq!(err("name"), "Unknown operator specified in filter name");
        assert_eq!(
            err("host.ems.name=x"),
            "Filtering of attributes with more than one association away is not supported"
        );
    }
}
