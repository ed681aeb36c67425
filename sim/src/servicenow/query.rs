//! Encoded queries (`sysparm_query`): parsing, matching and ordering.
//!
//! The grammar is the subset clients of this project use: `^` (AND), `^OR` (OR with the
//! condition before it, so `a^b^ORc` is `a AND (b OR c)`), `^NQ` (a new query OR-ed with the
//! previous ones), `ORDERBYf` / `ORDERBYDESCf`, and the operators of [`Op`]. `^^` is a literal
//! caret. A part that cannot be parsed, or that names a field the table does not have, is
//! invalid: an instance ignores it, or, with the property `glide.invalid_query.returns_no_rows`
//! set to true, returns no rows at all (c_TableAPI.md, `sysparm_query`; the property is false
//! on a new instance).
//!
//! Parsing knows nothing of tables; [`EncodedQuery::compile`] binds field names to whatever
//! handle the caller uses to read a row, so this module stays testable without a store.

use std::cmp::Ordering;

/// A comparison operator and its operand(s).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Eq(Operand),
    Ne(Operand),
    In(Vec<Operand>),
    NotIn(Vec<Operand>),
    IsEmpty,
    IsNotEmpty,
    StartsWith(String),
    EndsWith(String),
    Like(String),
    NotLike(String),
    Lt(Operand),
    Le(Operand),
    Gt(Operand),
    Ge(Operand),
    Between(Operand, Operand),
    Anything,
}

/// A value to compare with, its number parsed once per query rather than once per row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Operand {
    text: String,
    number: Option<f64>,
}

impl From<&str> for Operand {
    fn from(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            number: as_number(text),
        }
    }
}

/// `field` `op`, e.g. `install_status!=7`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition<F> {
    pub field: F,
    pub op: Op,
    /// Compare as text even when both sides look numeric (sys_ids may be all digits).
    pub textual: bool,
}

/// A parsed encoded query: OR of `^NQ` groups, each an AND of clauses, each an OR of
/// conditions; plus the requested order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EncodedQuery<F = String> {
    pub groups: Vec<Vec<Vec<Condition<F>>>>,
    pub order: Vec<OrderBy<F>>,
    /// Some part could not be parsed.
    pub invalid: bool,
}

/// One `ORDERBY` / `ORDERBYDESC` term.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OrderBy<F> {
    pub field: F,
    pub desc: bool,
    pub textual: bool,
}

impl<F> Default for EncodedQuery<F> {
    fn default() -> Self {
        Self {
            groups: Vec::new(),
            order: Vec::new(),
            invalid: false,
        }
    }
}

/// Operators in the order they must be tried: longer spellings before their prefixes.
const OPERATORS: [&str; 16] = [
    "ISNOTEMPTY",
    "ISEMPTY",
    "NOT LIKE",
    "NOT IN",
    "STARTSWITH",
    "ENDSWITH",
    "ANYTHING",
    "BETWEEN",
    "LIKE",
    "IN",
    "!=",
    "<=",
    ">=",
    "=",
    "<",
    ">",
];

/// Parses an encoded query. Never fails: what cannot be understood is left out.
pub(crate) fn parse(query: &str) -> EncodedQuery {
    let mut parsed = EncodedQuery::default();
    let mut group: Vec<Vec<Condition<String>>> = Vec::new();
    let mut invalid = false;
    for term in split_terms(query) {
        let mut parsed_condition = |text: &str| {
            let cond = parse_condition(text);
            invalid |= cond.is_none();
            cond
        };
        if let Some(field) = term.strip_prefix("ORDERBYDESC") {
            parsed.order.extend(order_by(field, true));
        } else if let Some(field) = term.strip_prefix("ORDERBY") {
            parsed.order.extend(order_by(field, false));
        } else if let Some(rest) = term.strip_prefix("NQ") {
            let cond = parsed_condition(rest);
            parsed.groups.push(std::mem::take(&mut group));
            group.extend(cond.map(|c| vec![c]));
        } else if let Some(rest) = term.strip_prefix("OR") {
            if let Some(cond) = parsed_condition(rest) {
                match group.last_mut() {
                    Some(clause) => clause.push(cond),
                    None => group.push(vec![cond]),
                }
            }
        } else {
            let cond = parsed_condition(&term);
            group.extend(cond.map(|c| vec![c]));
        }
    }
    parsed.invalid = invalid;
    if !group.is_empty() || !parsed.groups.is_empty() {
        parsed.groups.push(group);
    }
    // A group emptied by ignored parts would match everything and swallow the others.
    if parsed.groups.len() > 1 {
        parsed.groups.retain(|g| !g.is_empty());
    }
    parsed
}

/// Splits at `^`, reading `^^` as a literal caret.
fn split_terms(query: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '^' {
            current.push(c);
        } else if chars.peek() == Some(&'^') {
            chars.next();
            current.push('^');
        } else {
            terms.push(std::mem::take(&mut current));
        }
    }
    terms.push(current);
    terms.retain(|t| !t.is_empty());
    terms
}

fn is_field_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'
}

fn is_textual(field: &str) -> bool {
    field == "sys_id" || field.ends_with(".sys_id")
}

fn order_by(field: &str, desc: bool) -> Option<OrderBy<String>> {
    let valid = !field.is_empty() && field.chars().all(is_field_char);
    valid.then(|| OrderBy {
        field: field.to_owned(),
        desc,
        textual: is_textual(field),
    })
}

/// `field` `OP` `value`; field names are lower case, which is what tells them from operators.
fn parse_condition(term: &str) -> Option<Condition<String>> {
    let split = term.find(|c| !is_field_char(c))?;
    let (field, rest) = term.split_at(split);
    if field.is_empty() {
        return None;
    }
    let op_name = OPERATORS.iter().find(|op| rest.starts_with(**op))?;
    let value = &rest[op_name.len()..];
    let list = |v: &str| v.split(',').map(|s| Operand::from(s.trim())).collect();
    let op = match *op_name {
        "ISNOTEMPTY" => Op::IsNotEmpty,
        "ISEMPTY" => Op::IsEmpty,
        "ANYTHING" => Op::Anything,
        "NOT LIKE" => Op::NotLike(value.to_owned()),
        "NOT IN" => Op::NotIn(list(value)),
        "IN" => Op::In(list(value)),
        "STARTSWITH" => Op::StartsWith(value.to_owned()),
        "ENDSWITH" => Op::EndsWith(value.to_owned()),
        "LIKE" => Op::Like(value.to_owned()),
        "BETWEEN" => {
            let (low, high) = value.split_once('@')?;
            Op::Between(low.into(), high.into())
        }
        "!=" => Op::Ne(value.into()),
        "<=" => Op::Le(value.into()),
        ">=" => Op::Ge(value.into()),
        "<" => Op::Lt(value.into()),
        ">" => Op::Gt(value.into()),
        _ => Op::Eq(value.into()),
    };
    Some(Condition {
        field: field.to_owned(),
        op,
        textual: is_textual(field),
    })
}

impl EncodedQuery<String> {
    /// ANDs `field=value` conditions (plain query parameters) into every group.
    pub(crate) fn and_equal(&mut self, filters: impl IntoIterator<Item = (String, String)>) {
        let clauses: Vec<Vec<Condition<String>>> = filters
            .into_iter()
            .map(|(field, value)| {
                let textual = is_textual(&field);
                vec![Condition {
                    field,
                    op: Op::Eq(value.as_str().into()),
                    textual,
                }]
            })
            .collect();
        if clauses.is_empty() {
            return;
        }
        if self.groups.is_empty() {
            self.groups.push(Vec::new());
        }
        for group in &mut self.groups {
            group.extend(clauses.iter().cloned());
        }
    }

    /// Binds field names to handles. Conditions and orderings on fields `resolve` does not
    /// know are dropped (an instance ignores invalid query parts), unless `no_rows_if_invalid`
    /// (`glide.invalid_query.returns_no_rows`): then a query with any invalid condition
    /// matches nothing.
    pub(crate) fn compile<F>(
        &self,
        mut resolve: impl FnMut(&str) -> Option<F>,
        no_rows_if_invalid: bool,
    ) -> EncodedQuery<F> {
        let mut unknown = false;
        let mut groups: Vec<Vec<Vec<Condition<F>>>> = self
            .groups
            .iter()
            .map(|group| {
                group
                    .iter()
                    .map(|clause| {
                        clause
                            .iter()
                            .filter_map(|c| {
                                let field = resolve(&c.field);
                                unknown |= field.is_none();
                                Some(Condition {
                                    field: field?,
                                    op: c.op.clone(),
                                    textual: c.textual,
                                })
                            })
                            .collect::<Vec<_>>()
                    })
                    .filter(|clause| !clause.is_empty())
                    .collect()
            })
            .collect();
        if groups.len() > 1 {
            groups.retain(|g: &Vec<_>| !g.is_empty());
        }
        if no_rows_if_invalid && (unknown || self.invalid) {
            // One group of one clause of no conditions: a clause no row satisfies.
            groups = vec![vec![Vec::new()]];
        }
        // One empty group (matches everything) stands for "no filter", so that `matches`
        // needs no special case per row.
        if groups.is_empty() {
            groups.push(Vec::new());
        }
        let order = self
            .order
            .iter()
            .filter_map(|o| {
                Some(OrderBy {
                    field: resolve(&o.field)?,
                    desc: o.desc,
                    textual: o.textual,
                })
            })
            .collect();
        EncodedQuery {
            groups,
            order,
            invalid: false,
        }
    }
}

impl<F> EncodedQuery<F> {
    /// Whether the query filters at all (an empty group matches everything).
    pub(crate) fn is_unfiltered(&self) -> bool {
        self.groups.is_empty() || self.groups.iter().any(Vec::is_empty)
    }

    /// Whether a row matches; `value` reads a field of that row. Only for compiled queries,
    /// whose groups are never empty.
    pub(crate) fn matches<'r>(&self, mut value: impl FnMut(&F) -> &'r str) -> bool {
        self.groups.iter().any(|group| {
            group
                .iter()
                .all(|clause| clause.iter().any(|c| c.op.test(value(&c.field), c.textual)))
        })
    }
}

impl<F> Condition<F> {
    /// For `=` and `IN`: the values (ASCII-lowercased) one of which a row's value must equal,
    /// ignoring ASCII case, to match, so that an index can find the candidates. `None` for
    /// other operators, and when an operand may match numerically (`1` matches `1.0`).
    pub(crate) fn index_keys(&self) -> Option<Vec<String>> {
        let operands = match &self.op {
            Op::Eq(v) => std::slice::from_ref(v),
            Op::In(vs) => vs.as_slice(),
            _ => return None,
        };
        operands
            .iter()
            .map(|o| (self.textual || o.number.is_none()).then(|| o.text.to_ascii_lowercase()))
            .collect()
    }
}

impl Op {
    /// Whether a stored `value` satisfies the operator. Text comparisons ignore ASCII case,
    /// as an instance's database collation does.
    pub(crate) fn test(&self, value: &str, textual: bool) -> bool {
        let eq = |other: &Operand| values_equal(value, other, textual);
        // Ordering operators never match an empty (NULL) value, as in SQL.
        let cmp = |other: &Operand| (!value.is_empty()).then(|| compare(value, other, textual));
        match self {
            Op::Eq(v) => eq(v),
            Op::Ne(v) => !eq(v),
            Op::In(vs) => vs.iter().any(eq),
            Op::NotIn(vs) => !vs.iter().any(eq),
            Op::IsEmpty => value.is_empty(),
            Op::IsNotEmpty => !value.is_empty(),
            Op::StartsWith(v) => starts_with_ci(value, v),
            Op::EndsWith(v) => ends_with_ci(value, v),
            Op::Like(v) => contains_ci(value, v),
            Op::NotLike(v) => !contains_ci(value, v),
            Op::Lt(v) => cmp(v) == Some(Ordering::Less),
            Op::Le(v) => matches!(cmp(v), Some(Ordering::Less | Ordering::Equal)),
            Op::Gt(v) => cmp(v) == Some(Ordering::Greater),
            Op::Ge(v) => matches!(cmp(v), Some(Ordering::Greater | Ordering::Equal)),
            Op::Between(low, high) => {
                matches!(cmp(low), Some(Ordering::Greater | Ordering::Equal))
                    && matches!(cmp(high), Some(Ordering::Less | Ordering::Equal))
            }
            Op::Anything => true,
        }
    }
}

/// A decimal number (`-12`, `3.5`), the only strings compared numerically. Exponents are not
/// numbers here, so hex sys_ids like `1e5...` stay text.
fn as_number(s: &str) -> Option<f64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if all_digits(int) && all_digits(frac) {
        s.parse().ok()
    } else {
        None
    }
}

/// The stored value as a number, when it should be compared as one: the operand is a number
/// and the field is not textual.
fn numbers(value: &str, operand: &Operand, textual: bool) -> Option<(f64, f64)> {
    let y = operand.number.filter(|_| !textual)?;
    Some((as_number(value)?, y))
}

fn values_equal(value: &str, operand: &Operand, textual: bool) -> bool {
    match numbers(value, operand, textual) {
        Some((x, y)) => x == y,
        None => value.eq_ignore_ascii_case(&operand.text),
    }
}

/// Numeric when both sides are numbers (and the field is not textual), else byte order.
fn compare(value: &str, operand: &Operand, textual: bool) -> Ordering {
    match numbers(value, operand, textual) {
        Some((x, y)) => x.total_cmp(&y),
        None => value.cmp(&operand.text),
    }
}

/// A total order for `ORDERBY`: empty values first, then numbers by value, then text ignoring
/// ASCII case (ties by bytes). Mixing numeric and text comparison pairwise would not be a
/// total order, and sorting requires one.
pub(crate) fn order_cmp(a: &str, b: &str, textual: bool) -> Ordering {
    let class = |s: &str| -> (u8, Option<f64>) {
        if s.is_empty() {
            (0, None)
        } else if textual {
            (2, None)
        } else {
            as_number(s).map_or((2, None), |n| (1, Some(n)))
        }
    };
    let (ca, na) = class(a);
    let (cb, nb) = class(b);
    ca.cmp(&cb).then_with(|| match (na, nb) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => a
            .bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
            .then_with(|| a.cmp(b)),
    })
}

fn starts_with_ci(value: &str, prefix: &str) -> bool {
    value
        .as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn ends_with_ci(value: &str, suffix: &str) -> bool {
    value
        .len()
        .checked_sub(suffix.len())
        .and_then(|start| value.as_bytes().get(start..))
        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix.as_bytes()))
}

fn contains_ci(value: &str, needle: &str) -> bool {
    let needle = needle.as_bytes();
    needle.is_empty()
        || value
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cond(field: &str, op: Op) -> Condition<String> {
        Condition {
            field: field.into(),
            textual: is_textual(field),
            op,
        }
    }

    /// Matches `query` against a row given as `field=value` pairs; every field is known.
    fn hits(query: &str, row: &[(&str, &str)]) -> bool {
        let row: HashMap<&str, &str> = row.iter().copied().collect();
        parse(query)
            .compile(|f| Some(f.to_owned()), false)
            .matches(|f| row.get(f.as_str()).copied().unwrap_or(""))
    }

    #[test]
    fn parses_and_or_nq_and_order() {
        let q = parse("a=1^b=2^ORc!=3^NQdISEMPTY^ORDERBYname^ORDERBYDESCsys_id");
        assert_eq!(
            q.groups,
            vec![
                vec![
                    vec![cond("a", Op::Eq("1".into()))],
                    vec![cond("b", Op::Eq("2".into())), cond("c", Op::Ne("3".into()))],
                ],
                vec![vec![cond("d", Op::IsEmpty)]],
            ]
        );
        assert_eq!(
            q.order,
            vec![
                OrderBy {
                    field: "name".into(),
                    desc: false,
                    textual: false
                },
                OrderBy {
                    field: "sys_id".into(),
                    desc: true,
                    textual: true
                },
            ]
        );
    }

    #[test]
    fn parses_every_operator() {
        let ops = [
            ("f=x", Op::Eq("x".into())),
            ("f!=x", Op::Ne("x".into())),
            (
                "fINa, b,c",
                Op::In(vec!["a".into(), "b".into(), "c".into()]),
            ),
            ("fNOT INa,b", Op::NotIn(vec!["a".into(), "b".into()])),
            ("fISEMPTY", Op::IsEmpty),
            ("fISNOTEMPTY", Op::IsNotEmpty),
            ("fSTARTSWITHab", Op::StartsWith("ab".to_owned())),
            ("fENDSWITHab", Op::EndsWith("ab".to_owned())),
            ("fLIKEab", Op::Like("ab".to_owned())),
            ("fNOT LIKEab", Op::NotLike("ab".to_owned())),
            ("f<3", Op::Lt("3".into())),
            ("f<=3", Op::Le("3".into())),
            ("f>3", Op::Gt("3".into())),
            ("f>=3", Op::Ge("3".into())),
            ("fBETWEEN1@5", Op::Between("1".into(), "5".into())),
            ("fANYTHING", Op::Anything),
            ("f=", Op::Eq("".into())),
        ];
        for (text, op) in ops {
            assert_eq!(
                parse(text).groups,
                vec![vec![vec![cond("f", op)]]],
                "{text}"
            );
        }
    }

    #[test]
    fn double_caret_is_a_literal_caret() {
        let q = parse("name=a^^b^c=d");
        assert_eq!(
            q.groups,
            vec![vec![
                vec![cond("name", Op::Eq("a^b".into()))],
                vec![cond("c", Op::Eq("d".into()))],
            ]]
        );
        assert!(hits("name=a^^b", &[("name", "a^b")]));
        assert!(!hits("name=a^^b", &[("name", "a")]));
    }

    #[test]
    fn invalid_parts_are_ignored() {
        // No operator, no field, an unknown operator, an empty term, a BETWEEN without `@`,
        // an ORDERBY without a field: all dropped, leaving only `b=2`.
        let q = parse("garbage^=x^fSAMEASg^^^b=2^fBETWEEN1^ORDERBY^EQ");
        assert_eq!(q.groups, vec![vec![vec![cond("b", Op::Eq("2".into()))]]]);
        assert!(q.order.is_empty());
        assert!(parse("").is_unfiltered());
        assert!(parse("^^^").groups.iter().all(|g| g.is_empty()));
    }

    #[test]
    fn unknown_fields_are_dropped_at_compile_time() {
        let q = parse("nope=1^name=a^ORnope=2^ORDERBYnope^ORDERBYname")
            .compile(|f| (f == "name").then_some(0usize), false);
        assert_eq!(q.groups.len(), 1);
        assert_eq!(q.groups[0].len(), 1);
        assert_eq!(q.groups[0][0].len(), 1);
        assert_eq!(q.order.len(), 1);
        // A query left without conditions matches everything.
        let all = parse("nope=1").compile(|f| (f == "name").then_some(0usize), false);
        assert!(all.is_unfiltered());
        assert!(all.matches(|_| "x"));
        let none = parse("").compile(|f| Some(f.to_owned()), false);
        assert!(none.is_unfiltered());
        assert!(none.matches(|_| "x"));
    }

    #[test]
    fn with_returns_no_rows_an_invalid_part_matches_nothing() {
        let name = |f: &str| (f == "name").then_some(0usize);
        let strict = parse("nope=1^name=a").compile(name, true);
        assert!(!strict.is_unfiltered());
        assert!(!strict.matches(|_| "a"));
        assert!(!parse("garbage^name=a").compile(name, true).matches(|_| "a"));
        assert!(parse("garbage^name=a")
            .compile(name, false)
            .matches(|_| "a"));
        assert!(parse("name=a").compile(name, true).matches(|_| "a"));
        assert!(parse("").compile(name, true).matches(|_| "a"));
        assert!(parse("garbage").invalid && !parse("a=1^ORDERBYb").invalid);
    }

    #[test]
    fn or_binds_to_the_condition_before_it() {
        let row = [("a", "1"), ("b", "0"), ("c", "3")];
        assert!(hits("a=1^b=2^ORc=3", &row));
        assert!(!hits("a=2^b=2^ORc=3", &row));
        assert!(hits("a=2^NQc=3", &row));
        assert!(!hits("a=2^NQc=4", &row));
        // A leading OR has nothing to bind to and starts its own clause.
        assert!(hits("ORa=1", &row));
    }

    #[test]
    fn plain_parameters_are_anded_into_every_group() {
        let mut q = parse("a=1^NQa=2");
        q.and_equal([("b".to_owned(), "x".to_owned())]);
        let compiled = q.compile(|f| Some(f.to_owned()), false);
        let row = |a: &'static str, b: &'static str| move |f: &String| if f == "a" { a } else { b };
        assert!(compiled.matches(row("2", "x")));
        assert!(!compiled.matches(row("2", "y")));
        let mut empty = parse("");
        empty.and_equal([("b".to_owned(), "x".to_owned())]);
        assert_eq!(empty.groups.len(), 1);
    }

    #[test]
    fn operators_match_as_on_an_instance() {
        let row = [
            ("name", "Web-01"),
            ("cpus", "8"),
            ("empty", ""),
            ("id", "abc"),
        ];
        assert!(hits("name=web-01", &row), "= ignores case");
        assert!(hits("name!=web-02", &row));
        assert!(hits("nameINx,WEB-01", &row));
        assert!(hits("nameNOT INx,y", &row));
        assert!(hits("nameSTARTSWITHweb", &row));
        assert!(hits("nameENDSWITH-01", &row));
        assert!(!hits("nameENDSWITHlonger-than-the-name", &row));
        assert!(hits("nameLIKEb-0", &row));
        assert!(hits("nameNOT LIKEdb", &row));
        assert!(hits("emptyISEMPTY", &row));
        assert!(hits("missingISEMPTY", &row));
        assert!(hits("nameISNOTEMPTY", &row));
        assert!(
            hits("cpus>=8^cpus<10^cpus>7.5^cpus<=8", &row),
            "numeric, not text (\"8\" > \"10\")"
        );
        assert!(hits("cpusBETWEEN2@8", &row));
        assert!(!hits("cpusBETWEEN9@12", &row));
        assert!(hits("cpus=8.0", &row));
        assert!(
            !hits("empty<5", &row),
            "ordering never matches empty values"
        );
        assert!(!hits("empty>5", &row));
        assert!(hits("id>abb^id<abd", &row), "text order");
    }

    #[test]
    fn sys_ids_compare_as_text_even_when_all_digits() {
        let row = [("sys_id", "9")];
        assert!(!hits("sys_id<10", &[("sys_id", "10")]));
        assert!(hits("sys_id>10", &row), "\"9\" > \"10\" as text");
        assert!(!hits("sys_id=09", &[("sys_id", "9")]));
    }

    #[test]
    fn numbers_are_plain_decimals() {
        assert_eq!(as_number("-12"), Some(-12.0));
        assert_eq!(as_number("3.25"), Some(3.25));
        assert_eq!(as_number("1e5"), None);
        assert_eq!(as_number("1."), None);
        assert_eq!(as_number(""), None);
        assert_eq!(as_number("-"), None);
        assert_eq!(as_number("0x1"), None);
    }

    #[test]
    fn ordering_is_total_and_sensible() {
        let mut values = vec!["b", "10", "", "A", "9", "a", "-1", "2.5", "B"];
        values.sort_by(|a, b| order_cmp(a, b, false));
        assert_eq!(values, vec!["", "-1", "2.5", "9", "10", "A", "a", "B", "b"]);
        let mut ids = vec!["9", "10", "0a"];
        ids.sort_by(|a, b| order_cmp(a, b, true));
        assert_eq!(ids, vec!["0a", "10", "9"]);
    }
}
