//! OData conventions of Power BI answers: list envelopes, `$top`/`$skip`, and the `$filter` subset it documents.

use super::error::{PbiError, PbiResult};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const CONTENT_TYPE: &str = "application/json; odata.metadata=minimal; odata.streaming=true";

/// `{"@odata.context": "{base}/v1.0/myorg/{prefix}$metadata#{entity}", "value": [...]}`.
pub fn list(base: &str, prefix: &str, entity: &str, values: Vec<Value>) -> Response {
    json_response(json!({"@odata.context": format!("{base}/v1.0/myorg/{prefix}$metadata#{entity}"), "value": values}))
}

/// A single entity with its `@odata.context`.
pub fn entity(base: &str, prefix: &str, entity: &str, mut value: Value) -> Response {
    if let Value::Object(map) = &mut value {
        map.insert("@odata.context".into(), json!(format!("{base}/v1.0/myorg/{prefix}$metadata#{entity}/$entity")));
    }
    json_response(value)
}

pub fn json_response(value: Value) -> Response {
    let mut response = axum::Json(value).into_response();
    response.headers_mut().insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// `$top` and `$skip` as non-negative integers; a bad value is a 400 naming the parameter.
pub fn paging(query: &[(String, String)]) -> PbiResult<(Option<usize>, usize)> {
    let read = |name: &str| -> PbiResult<Option<usize>> {
        match query.iter().find(|(k, _)| k == name) {
            None => Ok(None),
            Some((_, v)) => v.trim().parse::<usize>().map(Some).map_err(|_| {
                PbiError::bad_request(format!("Invalid value '{v}' for query parameter '{name}': expected a non-negative integer."))
            }),
        }
    };
    Ok((read("$top")?, read("$skip")?.unwrap_or(0)))
}

pub fn page<T>(items: Vec<T>, top: Option<usize>, skip: usize) -> Vec<T> {
    items.into_iter().skip(skip).take(top.unwrap_or(usize::MAX)).collect()
}

/// A parsed `$filter`: disjunctions of conjunctions of simple comparisons on string properties.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    any_of: Vec<Vec<Term>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Term {
    Eq { property: String, lower: bool, value: String },
    Ne { property: String, value: String },
    Contains { property: String, value: String },
    StartsWith { property: String, value: String },
    EndsWith { property: String, value: String },
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, String> {
        let any_of = split_keyword(text, " or ")
            .into_iter()
            .map(|conj| split_keyword(conj, " and ").into_iter().map(parse_term).collect::<Result<Vec<_>, _>>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Filter { any_of })
    }

    /// `lookup(property)` gives an entity's string value for a property name (case-insensitive).
    pub fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.any_of.iter().any(|all| all.iter().all(|term| term.matches(&lookup)))
    }
}

impl Term {
    fn matches(&self, lookup: &impl Fn(&str) -> Option<String>) -> bool {
        match self {
            Term::Eq { property, lower, value } => {
                lookup(property).is_some_and(|v| if *lower { v.to_lowercase() == *value } else { v == *value })
            }
            Term::Ne { property, value } => lookup(property).is_none_or(|v| v != *value),
            Term::Contains { property, value } => lookup(property).is_some_and(|v| v.to_lowercase().contains(&value.to_lowercase())),
            Term::StartsWith { property, value } => lookup(property).is_some_and(|v| v.to_lowercase().starts_with(&value.to_lowercase())),
            Term::EndsWith { property, value } => lookup(property).is_some_and(|v| v.to_lowercase().ends_with(&value.to_lowercase())),
        }
    }
}

/// Splits on a keyword outside quotes, case-insensitively.
fn split_keyword<'a>(text: &'a str, keyword: &str) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut start = 0;
    while let Some(at) = find_keyword(&text[start..], keyword) {
        parts.push(&text[start..start + at]);
        start += at + keyword.len();
    }
    parts.push(&text[start..]);
    parts
}

/// Where a keyword first occurs outside quotes, case-insensitively (a doubled quote inside a string toggles
/// twice, so it stays inside).
fn find_keyword(text: &str, keyword: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut in_quote = false;
    for i in 0..bytes.len() {
        if bytes[i] == b'\'' {
            in_quote = !in_quote;
        } else if !in_quote && bytes[i..].len() >= keyword.len() && bytes[i..i + keyword.len()].eq_ignore_ascii_case(keyword.as_bytes()) {
            // The keyword is ASCII, so a byte match starts and ends on character boundaries.
            return Some(i);
        }
    }
    None
}

fn parse_term(term: &str) -> Result<Term, String> {
    let term = term.trim().trim_start_matches('(').trim_end_matches(')').trim();
    let unsupported = || {
        format!(
            "Unsupported $filter expression '{term}'. Supported: name eq 'x', tolower(name) eq 'x', contains(name,'x'), startswith(name,'x'), endswith(name,'x'), joined by and/or."
        )
    };
    for (function, make) in [("contains(", 0), ("startswith(", 1), ("endswith(", 2)] {
        if let Some(args) = strip_prefix_ci(term, function) {
            let args = args.strip_suffix(')').unwrap_or(args);
            let (property, value) = args.split_once(',').ok_or_else(unsupported)?;
            let property = property.trim().to_owned();
            let value = quoted(value).ok_or_else(unsupported)?;
            return Ok(match make {
                0 => Term::Contains { property, value },
                1 => Term::StartsWith { property, value },
                _ => Term::EndsWith { property, value },
            });
        }
    }
    // The operator is the first one outside quotes: a value may well contain " eq " or " ne ".
    let (at, op) =
        ["eq", "ne"].iter().filter_map(|op| Some((find_keyword(term, &format!(" {op} "))?, *op))).min().ok_or_else(unsupported)?;
    let (left, right) = (&term[..at], &term[at + op.len() + 2..]);
    let value = quoted(right).ok_or_else(unsupported)?;
    let left = left.trim();
    let (property, lower) = match strip_prefix_ci(left, "tolower(") {
        Some(inner) => (inner.trim_end_matches(')').trim().to_owned(), true),
        None => (left.to_owned(), false),
    };
    Ok(match op {
        "eq" => Term::Eq { property, lower, value: if lower { value.to_lowercase() } else { value } },
        _ => Term::Ne { property, value },
    })
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

/// `'it''s'` → `it's`. A quote inside must be doubled: `'it's'` is not a string (OData's rule).
fn quoted(text: &str) -> Option<String> {
    let inner = text.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    let unescaped = inner.replace("''", "'");
    (unescaped.matches('\'').count() * 2 == inner.matches('\'').count()).then_some(unescaped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn named(name: &'static str) -> impl Fn(&str) -> Option<String> {
        move |p: &str| p.eq_ignore_ascii_case("name").then(|| name.to_owned())
    }

    #[test]
    fn documented_filters_work() {
        let f = Filter::parse("contains(name,'marketing') or name eq 'contoso'").expect("valid");
        assert!(f.matches(named("Global Marketing")));
        assert!(f.matches(named("contoso")));
        assert!(!f.matches(named("Contoso")));
        let f = Filter::parse("tolower(name) eq 'sales'").expect("valid");
        assert!(f.matches(named("SALES")));
        assert!(Filter::parse("name eq 'it''s'").expect("valid").matches(named("it's")));
        assert!(Filter::parse("name gt 3").is_err());
        // Found by the grammar-built properties below: an operator inside a value, and a quote left undoubled.
        assert!(Filter::parse("name ne 'x eq y'").expect("valid").matches(named("z")));
        assert!(Filter::parse("name eq 'it's'").is_err());
    }

    /// One term of a generated filter, as the documented grammar has it, with the meaning the sandbox gives it.
    #[derive(Debug, Clone)]
    enum Op {
        Eq,
        EqLower,
        Ne,
        Contains,
        StartsWith,
        EndsWith,
    }

    #[derive(Debug, Clone)]
    struct Term {
        op: Op,
        property: &'static str,
        value: String,
        parens: bool,
        shout: bool,
        space_after_comma: bool,
    }

    type Expr = Vec<Vec<Term>>;

    fn literal(value: &str) -> String {
        format!("'{}'", value.replace('\'', "''"))
    }

    fn render_term(t: &Term, value: &str) -> String {
        let word = |w: &str| if t.shout { w.to_ascii_uppercase() } else { w.to_owned() };
        let comma = if t.space_after_comma { ", " } else { "," };
        let p = t.property;
        let text = match t.op {
            Op::Eq => format!("{p} {} {value}", word("eq")),
            Op::EqLower => format!("{}({p}) {} {value}", word("tolower"), word("eq")),
            Op::Ne => format!("{p} {} {value}", word("ne")),
            Op::Contains => format!("{}({p}{comma}{value})", word("contains")),
            Op::StartsWith => format!("{}({p}{comma}{value})", word("startswith")),
            Op::EndsWith => format!("{}({p}{comma}{value})", word("endswith")),
        };
        if t.parens { format!("({text})") } else { text }
    }

    fn render(expr: &Expr, shout: bool) -> String {
        let (and, or) = if shout { (" AND ", " OR ") } else { (" and ", " or ") };
        expr.iter()
            .map(|all| all.iter().map(|t| render_term(t, &literal(&t.value))).collect::<Vec<_>>().join(and))
            .collect::<Vec<_>>()
            .join(or)
    }

    /// The meaning of a term: `eq` and `ne` exact, `tolower(…) eq` and the functions ignoring case, and a
    /// missing property equal to nothing.
    fn holds(t: &Term, lookup: &impl Fn(&str) -> Option<String>) -> bool {
        let (got, want) = (lookup(t.property), &t.value);
        let lower = |s: &str| s.to_lowercase();
        match t.op {
            Op::Eq => got.as_deref() == Some(want.as_str()),
            Op::EqLower => got.is_some_and(|g| lower(&g) == lower(want)),
            Op::Ne => got.as_deref() != Some(want.as_str()),
            Op::Contains => got.is_some_and(|g| lower(&g).contains(&lower(want))),
            Op::StartsWith => got.is_some_and(|g| lower(&g).starts_with(&lower(want))),
            Op::EndsWith => got.is_some_and(|g| lower(&g).ends_with(&lower(want))),
        }
    }

    /// Values made of the characters and words the parser must not mistake for syntax inside quotes.
    fn value() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            4 => "[aBé]{1,2}",
            1 => Just("'".to_owned()),
            1 => Just(" ".to_owned()),
            1 => Just("(".to_owned()),
            1 => Just(")".to_owned()),
            1 => Just(",".to_owned()),
            1 => Just(" and ".to_owned()),
            1 => Just(" or ".to_owned()),
            1 => Just(" eq ".to_owned()),
            1 => Just(" ne ".to_owned()),
        ];
        proptest::collection::vec(token, 0..4).prop_map(|tokens| tokens.concat())
    }

    fn term() -> impl Strategy<Value = Term> {
        let op = prop_oneof![Just(Op::Eq), Just(Op::EqLower), Just(Op::Ne), Just(Op::Contains), Just(Op::StartsWith), Just(Op::EndsWith)];
        let property = prop_oneof![3 => Just("name"), 1 => Just("Name"), 1 => Just("displayName")];
        (op, property, value(), any::<bool>(), prop::bool::weighted(0.2), any::<bool>()).prop_map(
            |(op, property, value, parens, shout, space_after_comma)| Term { op, property, value, parens, shout, space_after_comma },
        )
    }

    fn expr() -> impl Strategy<Value = Expr> {
        proptest::collection::vec(proptest::collection::vec(term(), 1..3), 1..3)
    }

    /// An entity whose name is often one of the filter's values (as is, in another case, or with more
    /// around it), so that terms both hold and fail; its displayName is sometimes missing.
    fn entity(expr: &Expr) -> impl Strategy<Value = (String, Option<String>)> + use<> {
        let values: Vec<String> = expr.iter().flatten().map(|t| t.value.clone()).collect();
        let around = |values: Vec<String>| {
            (prop::sample::select(values), 0..5usize, "[aB]{0,2}").prop_map(|(v, how, more)| match how {
                0 | 1 => v,
                2 => v.to_uppercase(),
                3 => format!("{more}{v}"),
                _ => format!("{v}{more}"),
            })
        };
        let name = prop_oneof![4 => around(values.clone()), 1 => "[aBé' ]{0,4}"];
        let display = prop::option::weighted(0.5, prop_oneof![around(values), "[aB]{0,3}".boxed()]);
        (name, display)
    }

    /// One change that takes a valid filter outside the grammar.
    fn broken(expr: Expr, shout: bool, how: usize, at: prop::sample::Index, word: String) -> String {
        let terms: Vec<&Term> = expr.iter().flatten().collect();
        let target = at.index(terms.len());
        let bare: String = word.chars().filter(char::is_ascii_alphanumeric).collect();
        let (and, or) = if shout { (" AND ", " OR ") } else { (" and ", " or ") };
        let mut i = 0;
        let mut groups = Vec::new();
        for all in &expr {
            let mut rendered = Vec::new();
            for t in all {
                let mut text = render_term(t, &literal(&t.value));
                if i == target {
                    text = match (how, &t.op) {
                        // An operator or function the subset does not have.
                        (0, Op::Eq | Op::EqLower | Op::Ne) => {
                            let renamed = Term { op: Op::Eq, ..t.clone() };
                            render_term(&renamed, &literal(&t.value)).replacen(" eq ", " gt ", 1).replacen(" EQ ", " GT ", 1)
                        }
                        (0, _) => format!("substringof({},{})", t.property, literal(&t.value)),
                        // A value that is not a quoted string.
                        (1, _) => render_term(t, &format!("x{bare}")),
                        // A string that never ends.
                        (2, _) => render_term(t, &format!("'x{bare}")),
                        // A function call without its comma.
                        (_, Op::Contains | Op::StartsWith | Op::EndsWith) => {
                            render_term(&Term { space_after_comma: false, ..t.clone() }, &literal(&t.value.replace(',', "")))
                                .replacen(",", " ", 1)
                        }
                        (_, _) => format!("{} eq", t.property),
                    };
                }
                i += 1;
                rendered.push(text);
            }
            groups.push(rendered.join(and));
        }
        let text = groups.join(or);
        if how == 4 { format!("{text}{}", if at.index(2) == 0 { and } else { or }) } else { text }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn parse_never_panics(text in ".{0,80}") {
            let _ = Filter::parse(&text);
        }

        /// Every filter the grammar makes parses, and selects exactly the entities its meaning selects.
        #[test]
        fn grammatical_filters_select_what_they_mean(
            (expr, shout, (name, display)) in (expr(), prop::bool::weighted(0.2)).prop_flat_map(|(e, shout)| (Just(e.clone()), Just(shout), entity(&e)))
        ) {
            let text = render(&expr, shout);
            let filter = Filter::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let lookup = |p: &str| {
                if p.eq_ignore_ascii_case("name") { Some(name.clone()) } else if p.eq_ignore_ascii_case("displayName") { display.clone() } else { None }
            };
            let meant = expr.iter().any(|all| all.iter().all(|t| holds(t, &lookup)));
            prop_assert_eq!(filter.matches(lookup), meant, "{} on name {:?}, displayName {:?}", text, name, display);
        }

        /// One step outside the grammar is refused, with the supported forms named.
        #[test]
        fn filters_one_step_outside_the_grammar_are_refused(
            expr in expr(), shout in prop::bool::weighted(0.2), how in 0..5usize, at in any::<prop::sample::Index>(), word in "[a-z]{0,3}"
        ) {
            let text = broken(expr, shout, how, at, word);
            match Filter::parse(&text) {
                Ok(filter) => prop_assert!(false, "{} parsed as {:?}", text, filter),
                Err(message) => prop_assert!(message.starts_with("Unsupported $filter expression") && message.contains("Supported:"), "{}", message),
            }
        }
    }
}
