use super::*;

#[test]
fn sort_keys_outcomes_and_zones_are_checked() {
    let spec = CallListSpec {
        name: "Hot leads".into(),
        filter: ContactFilter {
            last_outcomes: vec!["maybe".into()],
            timezones: vec!["Nowhere".into()],
            tags_any: vec![" VIP ".into(), "".into()],
            ..Default::default()
        },
        order: vec![SortKey { field: "custom.score'; drop".into(), direction: Direction::Desc }],
    };
    let problems = spec.validated().expect_err("invalid");
    let codes: Vec<&str> = problems.iter().map(|p| p.code).collect();
    assert_eq!(codes, ["invalid_outcome", "invalid_timezone", "invalid_sort_field"]);
    let ok = CallListSpec {
        name: "Hot leads".into(),
        filter: ContactFilter { tags_any: vec![" VIP ".into(), "".into()], ..Default::default() },
        order: vec![SortKey { field: "custom.score".into(), direction: Direction::Desc }],
    }
    .validated()
    .expect("valid");
    assert_eq!(ok.filter.tags_any, vec!["vip"]);
}
