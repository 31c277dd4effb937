//! Fault injection: the next N requests matching a method and path pattern get a chosen failure.

use serde::{Deserialize, Serialize};
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// `GET`, `POST`, ...; `None` matches every method.
    #[serde(default)]
    pub method: Option<String>,
    /// The request path; `*` matches any run of characters (slashes included).
    pub path: String,
    /// How many matching requests get the fault before the rule is used up.
    #[serde(default = "one")]
    pub count: u32,
    /// How many matching requests pass untouched before the fault applies (to fail the second of a run).
    #[serde(default)]
    pub skip: u32,
    pub fault: FaultKind,
}

fn one() -> u32 {
    1
}

pub type Fault = FaultKind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum FaultKind {
    /// 429 with `Retry-After: retry_after` seconds, as Power BI throttles.
    Throttle { retry_after: u64 },
    /// Any status with a Power BI-shaped error body (500, 502, 503, ...). `retry_after` adds the header.
    Status {
        status: u16,
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Answer normally, but only after `millis` on the sandbox's clock: real time on a system or shifted
    /// clock (client time-out tests, benchmarks), and until a test advances a manual clock that far.
    Delay { millis: u64 },
    /// Cut the connection before a complete answer reaches the client (it sees an incomplete message).
    Drop,
    /// 200 with a body that is not JSON.
    InvalidBody,
}

impl FaultRule {
    pub fn new(method: Option<&str>, path: &str, count: u32, fault: FaultKind) -> Self {
        Self { method: method.map(str::to_owned), path: path.to_owned(), count, skip: 0, fault }
    }

    /// The same rule, letting the first `skip` matching requests through.
    pub fn after(self, skip: u32) -> Self {
        Self { skip, ..self }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method)) && glob_match(&self.path, path)
    }
}

#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

impl Faults {
    pub fn add(&self, rule: FaultRule) {
        if rule.count > 0 {
            self.rules.lock().unwrap_or_else(PoisonError::into_inner).push(rule);
        }
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    pub fn pending(&self) -> Vec<FaultRule> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Consumes one use of the first rule matching the request, oldest rule first.
    pub fn take(&self, method: &str, path: &str) -> Option<FaultKind> {
        let mut rules = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        let index = rules.iter().position(|r| r.matches(method, path))?;
        if rules[index].skip > 0 {
            rules[index].skip -= 1;
            return None;
        }
        let fault = rules[index].fault.clone();
        rules[index].count -= 1;
        if rules[index].count == 0 {
            rules.remove(index);
        }
        Some(fault)
    }
}

/// `*` matches any run of characters; everything else matches itself, case-insensitively as Power BI paths do.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let text = text.to_ascii_lowercase();
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else { return rest.is_empty() };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn globs_match_as_documented() {
        assert!(glob_match("/v1.0/myorg/groups", "/v1.0/myorg/groups"));
        assert!(!glob_match("/v1.0/myorg/groups", "/v1.0/myorg/groups/x"));
        assert!(glob_match("/v1.0/myorg/datasets/*/rows", "/v1.0/myorg/datasets/abc/tables/t/rows"));
        assert!(glob_match("*", "/anything"));
        assert!(glob_match("*/token", "/contoso/oauth2/v2.0/token"));
        assert!(!glob_match("*/token", "/contoso/oauth2/v2.0/authorize"));
        assert!(!glob_match("/a*a", "/a"));
    }

    #[test]
    fn a_rule_is_used_up_after_count_matches() {
        let faults = Faults::default();
        faults.add(FaultRule::new(Some("POST"), "/x", 2, FaultKind::Drop));
        assert_eq!(faults.take("GET", "/x"), None);
        assert_eq!(faults.take("post", "/x"), Some(FaultKind::Drop));
        assert_eq!(faults.take("POST", "/x"), Some(FaultKind::Drop));
        assert_eq!(faults.take("POST", "/x"), None);
    }

    #[test]
    fn a_rule_with_skip_lets_that_many_matches_through_first() {
        let faults = Faults::default();
        faults.add(FaultRule::new(Some("POST"), "/x", 1, FaultKind::Drop).after(2));
        assert_eq!(faults.take("GET", "/x"), None, "not a match: nothing skipped");
        assert_eq!((faults.take("POST", "/x"), faults.take("POST", "/x")), (None, None));
        assert_eq!(faults.take("POST", "/x"), Some(FaultKind::Drop));
        assert_eq!(faults.take("POST", "/x"), None, "used up");
        let rule: FaultRule = serde_json::from_str(r#"{"path":"/x","skip":1,"fault":{"kind":"drop"}}"#).expect("valid");
        assert_eq!((rule.skip, rule.count), (1, 1));
    }

    #[test]
    fn rules_read_from_the_documented_json() {
        let rule: FaultRule =
            serde_json::from_str(r#"{"method":"GET","path":"/v1.0/*","count":3,"fault":{"kind":"throttle","retryAfter":30}}"#)
                .expect("valid");
        assert_eq!(rule.fault, FaultKind::Throttle { retry_after: 30 });
    }

    /// The specification, written the slow obvious way: `*` tries every split, other bytes match ignoring ASCII case.
    fn reference_match(pattern: &[u8], text: &[u8]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some((b'*', rest)) => (0..=text.len()).any(|i| reference_match(rest, &text[i..])),
            Some((c, rest)) => text.split_first().is_some_and(|(t, text)| c.eq_ignore_ascii_case(t) && reference_match(rest, text)),
        }
    }

    /// A pattern from its grammar: literal pieces from a small alphabet (so pieces recur and overlap, where a
    /// greedy matcher goes wrong), joined by zero to three stars, doubled stars included.
    fn pattern() -> impl Strategy<Value = String> {
        proptest::collection::vec(("[ab/]{0,4}", prop_oneof![3 => Just("*"), 1 => Just("**"), 2 => Just("")]), 1..4)
            .prop_map(|parts| parts.into_iter().map(|(piece, star)| format!("{piece}{star}")).collect::<String>())
            .prop_filter("at most three stars", |p| p.matches('*').count() <= 3)
    }

    /// A text the pattern matches (each star filled, letters in either case), then maybe one edit that
    /// usually makes it a text the pattern does not match.
    fn matching_text_then_edited(pattern: &str) -> impl Strategy<Value = String> + use<> {
        let stars = pattern.matches('*').count();
        let pieces: Vec<String> = pattern.split('*').map(str::to_owned).collect();
        let fills = proptest::collection::vec("[ab/]{0,3}", stars);
        let edit = prop_oneof![
            2 => Just(None),
            1 => (any::<prop::sample::Index>(), "[ab/xA]").prop_map(|(at, c)| Some((at, Some(c), true))),
            1 => (any::<prop::sample::Index>(), "[ab/xA]").prop_map(|(at, c)| Some((at, Some(c), false))),
            1 => any::<prop::sample::Index>().prop_map(|at| Some((at, None, false))),
        ];
        (fills, any::<u64>(), edit).prop_map(move |(fills, cases, edit)| {
            let mut text = pieces[0].clone();
            for (piece, fill) in pieces[1..].iter().zip(&fills) {
                text.push_str(fill);
                text.push_str(piece);
            }
            let mut text: Vec<char> =
                text.chars().enumerate().map(|(i, c)| if cases >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c }).collect();
            match edit {
                None => {}
                Some((at, Some(c), true)) => text.insert(at.index(text.len() + 1), c.chars().next().unwrap_or('x')),
                Some((at, Some(c), false)) if !text.is_empty() => {
                    let at = at.index(text.len());
                    text[at] = c.chars().next().unwrap_or('x');
                }
                Some((at, None, _)) if !text.is_empty() => {
                    text.remove(at.index(text.len()));
                }
                Some(_) => text.push('x'),
            }
            text.into_iter().collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn globs_match_exactly_what_the_reference_matches(
            (pattern, text) in pattern().prop_flat_map(|p| (Just(p.clone()), matching_text_then_edited(&p)))
        ) {
            prop_assert_eq!(glob_match(&pattern, &text), reference_match(pattern.as_bytes(), text.as_bytes()), "{} against {}", pattern, text);
        }

        #[test]
        fn a_pattern_without_stars_matches_itself_in_any_case_and_nothing_else(
            (pattern, text) in "[ab/]{0,8}".prop_flat_map(|p| (Just(p.clone()), matching_text_then_edited(&p)))
        ) {
            prop_assert_eq!(glob_match(&pattern, &text), pattern.eq_ignore_ascii_case(&text), "{} against {}", pattern, text);
        }
    }
}
