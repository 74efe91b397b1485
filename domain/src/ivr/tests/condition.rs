//! The condition language: what does not parse (and where), how values compare, precedence,
//! the clock and schedule functions; templates.

use serde_json::{json, Value};

use super::*;
use crate::ivr::condition::{
    evaluate, interpolate, parse, percent_encode, template_variables, EvalContext, MAX_DEPTH,
};

fn vars(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

fn eval_at(src: &str, variables: &BTreeMap<String, Value>, now: DateTime<Utc>) -> bool {
    let schedules = BTreeMap::from([("office".to_owned(), office())]);
    let ctx = EvalContext { variables, now, zone: chrono_tz::Europe::Prague, schedules: &schedules };
    let expr = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    evaluate(&expr, &ctx).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn eval(src: &str, variables: &BTreeMap<String, Value>) -> bool {
    eval_at(src, variables, open_hours())
}

#[test]
fn what_does_not_parse_says_where() {
    let cases = [
        ("", 0, "empty"),
        ("   ", 0, "empty"),
        ("digits ==", 9, "expected a value"),
        ("digits = 1", 7, "use `==`"),
        ("(digits == 1", 12, "expected `)`"),
        ("bogus(1)", 0, "unknown function `bogus`"),
        ("in_hours(office)", 0, "schedule name in quotes"),
        ("hour('Mars/Base') > 8", 0, "not an IANA time zone"),
        ("is_set('x')", 0, "one variable name"),
        ("len()", 0, "one argument"),
        ("name == 'open", 8, "not closed"),
        ("a < b < c", 6, "do not chain"),
        ("a b", 2, "unexpected `b`"),
        ("1.2.3 == x", 0, "not a number"),
        ("x == 1 $", 7, "unexpected `$`"),
        ("[1, 2", 5, "expected `]`"),
    ];
    for (src, position, message) in cases {
        let err = parse(src).err().unwrap_or_else(|| panic!("{src:?} parsed"));
        assert_eq!(err.position, position, "{src:?}: {err}");
        assert!(err.message.contains(message), "{src:?}: {err}");
    }
}

#[test]
fn nesting_and_length_are_bounded() {
    let deep = format!("{}x{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
    assert!(parse(&deep).err().is_some_and(|e| e.message.contains("nested")));
    let nots = format!("{}x", "not ".repeat(MAX_DEPTH + 1));
    assert!(parse(&nots).is_err());
    let fine = format!("{}x{}", "(".repeat(MAX_DEPTH - 1), ")".repeat(MAX_DEPTH - 1));
    assert!(parse(&fine).is_ok());
    assert!(parse(&"x or ".repeat(500)).is_err());
}

#[test]
fn numbers_compare_as_numbers_and_text_as_text() {
    let v = vars(&[("digits", json!("0123")), ("balance", json!(12.5)), ("n", json!("7"))]);
    assert!(eval("digits == 123", &v), "one side a number: numeric");
    assert!(!eval("digits == '123'", &v), "two texts: text");
    assert!(eval("digits == '0123'", &v));
    assert!(eval("balance > 12 and balance <= 12.5", &v));
    assert!(eval("n < 10", &v), "7 < 10 numerically");
    assert!(!eval("n < '10'", &v), "'7' > '10' as text");
    assert!(eval("-3 < 0", &v));
}

#[test]
fn text_comparisons_ignore_case_except_ordering() {
    let v = vars(&[("language", json!("ES")), ("caller_number", json!("+420601123456"))]);
    assert!(eval("language == 'es'", &v));
    assert!(eval("caller_number starts_with '+420'", &v));
    assert!(eval("caller_number ends_with '456'", &v));
    assert!(eval("caller_number contains '0601'", &v));
    assert!(eval("language in ['en', 'es']", &v));
    assert!(!eval("language in ['en', 'cs']", &v));
    assert!(eval("'B' < 'a'", &v), "ordering is by code point");
}

#[test]
fn missing_variables_are_null() {
    let v = vars(&[("set", json!(1)), ("nothing", Value::Null)]);
    assert!(eval("missing == null", &v));
    assert!(!eval("missing == 0", &v));
    assert!(!eval("missing > 0", &v) && !eval("missing < 0", &v));
    assert!(eval("missing != 'x'", &v));
    assert!(!eval("is_set(missing) or is_set(nothing)", &v));
    assert!(eval("is_set(set)", &v));
    assert!(!eval("missing", &v));
}

#[test]
fn and_binds_tighter_than_or_and_not_tighter_than_both() {
    let v = vars(&[("t", json!(true)), ("f", json!(false))]);
    assert!(eval("t or f and f", &v), "t or (f and f)");
    assert!(!eval("(t or f) and f", &v));
    assert!(eval("not f and t", &v), "(not f) and t");
    assert!(!eval("!(f || t)", &v));
    assert!(eval("t && !f", &v));
    assert!(eval("TRUE AND NOT FALSE", &v), "keywords ignore case");
}

#[test]
fn truthiness_of_values() {
    let v = vars(&[("zero", json!(0)), ("empty", json!("")), ("list", json!([])), ("word", json!("no"))]);
    for falsy in ["zero", "empty", "list", "null", "false"] {
        assert!(!eval(falsy, &v), "{falsy}");
    }
    assert!(eval("word", &v));
    assert!(eval("len(word) == 2 and lower('ABC') == 'abc' and len(list) == 0", &v));
}

#[test]
fn clock_functions_read_the_zone() {
    let v = vars(&[]);
    // 09:00 UTC on Tuesday 24 November 2026 is 10:00 in Prague.
    assert!(eval("hour() == 10 and minute() == 0", &v));
    assert!(eval("hour('UTC') == 9", &v));
    assert!(eval("weekday() == 'tue' and day_of_week() == 2", &v));
    assert!(eval("time() >= '09:00' and time() < '17:00'", &v));
    assert!(eval("date() == '2026-11-24'", &v));
    // 23:30 UTC on Sunday is already Monday in Tokyo.
    let late = utc(2026, 11, 29, 23, 30);
    assert!(eval_at("weekday('Asia/Tokyo') == 'mon' and weekday('UTC') == 'sun'", &v, late));
}

#[test]
fn in_hours_reads_the_schedule() {
    let v = vars(&[]);
    assert!(eval_at("in_hours('office')", &v, open_hours()));
    assert!(!eval_at("in_hours('office')", &v, weekend()));
    assert!(!eval_at("in_hours('office')", &v, utc(2026, 12, 24, 10, 0)), "a holiday");
    let schedules = BTreeMap::new();
    let ctx = EvalContext { variables: &v, now: open_hours(), zone: chrono_tz::UTC, schedules: &schedules };
    let expr = parse("in_hours('office')").expect("parses");
    assert!(evaluate(&expr, &ctx).is_err(), "an unknown schedule is an error, not false");
}

#[test]
fn reads_and_schedules_are_listed() {
    let expr =
        parse("a > 1 and (is_set(b) or c in [d, 'x']) and in_hours('office') and lower(a) == e").expect("ok");
    assert_eq!(expr.variables(), ["a", "c", "d", "e"]);
    assert_eq!(expr.schedules(), ["office"]);
}

#[test]
fn templates_fill_variables() {
    let v = vars(&[("name", json!("Ana")), ("n", json!(3)), ("none", Value::Null)]);
    assert_eq!(
        interpolate("Hi {{name}}, you have {{ n }} new{{none}} messages{{missing}}.", &v),
        "Hi Ana, you have 3 new messages."
    );
    assert_eq!(interpolate("Open {{ brace", &v), "Open {{ brace");
    assert_eq!(template_variables("{{a}} {{ b }} {{a}} {{}}"), ["a", "b"]);
    assert_eq!(percent_encode("a b/ř"), "a%20b%2F%C5%99");
}
