use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use cqrs_es::test::TestFramework;
use serde_json::json;

use super::*;

fn headers(h: &[&str]) -> Vec<String> {
    h.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn columns_are_matched_by_name_alias_or_mapping_and_the_rest_are_custom_fields() {
    let layout = CsvLayout::new(
        &headers(&["\u{feff}Phone", "First Name", "plan", "skip me"]),
        &ColumnMapping(BTreeMap::from([("skip me".to_owned(), "ignore".to_owned())])),
    )
    .expect("layout");
    let input = layout.input(2, ["+14155550123", "Ada", "gold", "x"].into_iter()).expect("row");
    assert_eq!(input.phone_number.as_deref(), Some("+14155550123"));
    assert_eq!(input.first_name.as_deref(), Some("Ada"));
    assert_eq!(input.custom_fields.get("plan"), Some(&json!("gold")));
    assert_eq!(input.custom_fields.len(), 1);
}

#[test]
fn a_file_without_a_phone_column_or_with_a_bad_mapping_is_refused() {
    let e = CsvLayout::new(&headers(&["name", "email"]), &ColumnMapping::default()).expect_err("no phone");
    assert_eq!(e.code, "missing_column");
    let bad = ColumnMapping(BTreeMap::from([("tel".to_owned(), "telephone_number".to_owned())]));
    assert_eq!(CsvLayout::new(&headers(&["tel"]), &bad).expect_err("bad").code, "unknown_field");
    let absent = ColumnMapping(BTreeMap::from([("mobile".to_owned(), "phone_number".to_owned())]));
    assert_eq!(CsvLayout::new(&headers(&["tel"]), &absent).expect_err("absent").code, "unknown_column");
    assert_eq!(
        CsvLayout::new(&headers(&["phone", "tel"]), &ColumnMapping::default()).expect_err("twice").code,
        "duplicate_column"
    );
}

#[test]
fn typed_columns_report_their_row_and_field() {
    let layout =
        CsvLayout::new(&headers(&["phone_number", "max_attempts", "do_not_call"]), &ColumnMapping::default())
            .expect("layout");
    let problems = layout.input(7, ["+14155550123", "three", "maybe"].into_iter()).expect_err("bad row");
    assert_eq!(problems.len(), 2);
    assert_eq!((problems[0].row, problems[0].field.as_deref()), (7, Some("max_attempts")));
    assert_eq!(problems[1].code, "invalid_flag");
    let ok = layout.input(8, ["+14155550123", "5", "yes"].into_iter()).expect("good row");
    assert_eq!((ok.max_attempts, ok.do_not_call), (Some(5), Some(true)));
}

#[test]
fn json_rows_take_known_fields_and_keep_the_rest() {
    let input =
        json_input(3, json!({"phone_number": 14155550123u64, "tags": "vip;west", "score": 7})).expect("row");
    assert_eq!(input.phone_number.as_deref(), Some("14155550123"));
    assert_eq!(input.tags, vec!["vip", "west"]);
    assert_eq!(input.custom_fields.get("score"), Some(&json!(7)));
    assert_eq!(json_input(4, json!([1, 2])).expect_err("array")[0].code, "not_an_object");
}

#[test]
fn an_import_runs_started_validated_completed_and_finishes_once() {
    let at = Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().expect("time");
    let started = ContactImportEvent::ContactImportStarted {
        format: ImportFormat::Csv,
        file_name: None,
        size_bytes: 10,
        contact_list: None,
        default_region: None,
        mapping: ColumnMapping::default(),
        at,
    };
    TestFramework::<ContactImport>::with(())
        .given(vec![started.clone()])
        .when(ContactImportCommand::CompleteImport { totals: ImportTotals::default(), at })
        .then_expect_error(ContactImportError::NotValidated);
    let done = ContactImportEvent::ContactImportCompleted { totals: ImportTotals::default(), at };
    TestFramework::<ContactImport>::with(())
        .given(vec![started.clone(), ContactImportEvent::ContactImportValidated { total_rows: 0, at }])
        .when(ContactImportCommand::CompleteImport { totals: ImportTotals::default(), at })
        .then_expect_events(vec![done.clone()]);
    TestFramework::<ContactImport>::with(())
        .given(vec![started, ContactImportEvent::ContactImportValidated { total_rows: 0, at }, done])
        .when(ContactImportCommand::FailImport { code: "x".into(), message: "y".into(), row: None, at })
        .then_expect_error(ContactImportError::AlreadyFinished);
}
