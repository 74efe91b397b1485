//! Properties over arbitrary flows and input scripts: the validator and the interpreter never
//! panic, a call never passes [`MAX_VISITS`], and the validator's loop check is the
//! interpreter's truth: when it finds no loop without input (nor a dangling link), no single
//! input makes the interpreter enter a node twice.

use proptest::prelude::{any, prop_assert, prop_assert_eq, prop_oneof, proptest, Just, ProptestConfig};
use proptest::sample::select;
use proptest::strategy::Strategy as Gen;
use serde_json::json;

use super::*;

const IDS: [&str; 6] = ["n0", "n1", "n2", "n3", "n4", "n5"];

fn link() -> impl Gen<Value = Option<String>> {
    // A node that may exist, or nothing (one flow in four gets a dangling link, below).
    prop_oneof![
        3 => (0usize..IDS.len()).prop_map(|i| Some(IDS[i].to_owned())),
        1 => Just(None),
    ]
}

fn condition() -> impl Gen<Value = Option<String>> {
    prop_oneof![
        Just(Some("x == 1".to_owned())),
        Just(Some("in_hours('office') and not (y > 2)".to_owned())),
        Just(Some("in_hours('nowhere')".to_owned())),
        Just(Some("weekday() in ['sat', 'sun'] or hour('UTC') < 8".to_owned())),
        Just(Some("x ==".to_owned())),
        Just(None),
    ]
}

fn options() -> impl Gen<Value = KeyedList<String>> {
    proptest::collection::vec((select(&["1", "2", "#", "12", "a"][..]), 0usize..IDS.len()), 0..4)
        .prop_map(|pairs| pairs.into_iter().map(|(k, i)| (k, IDS[i].to_owned())).collect())
}

fn node_gen() -> impl Gen<Value = Node> {
    let types = (0usize..NodeType::ALL.len()).prop_map(|i| NodeType::ALL[i]);
    let links = (link(), link(), link(), link(), link());
    let inputs = (
        (0usize..3).prop_map(|i| InputType::ALL[i]),
        proptest::option::of(0u32..4),
        prop_oneof![Just("#".to_owned()), Just(String::new()), Just("*".to_owned())],
        proptest::option::of(0u32..8),
    );
    let rest = (
        condition(),
        options(),
        proptest::option::of(select(&["x", "y", "language", "2bad"][..]).prop_map(str::to_owned)),
        (0usize..5).prop_map(|i| TransferType::ALL[i]),
        proptest::option::of(
            select(&["sales", "{{x}}", "+420601123456", "not-a-uuid"][..]).prop_map(str::to_owned),
        ),
        any::<bool>(),
        proptest::option::of(
            select(&["https://api.example.com/{{x}}", "http://127.0.0.1/", "nonsense"][..])
                .prop_map(str::to_owned),
        ),
    );
    (types, links, inputs, rest).prop_map(
        |(node_type, (next, timeout, error, t, f), (input_type, max_retries, finish, num_digits), rest)| {
            let (condition, options, variable_name, transfer_type, transfer_to, has_message, webhook_url) =
                rest;
            Node {
                node_type,
                message: has_message.then(|| Message::Text("Hello {{x}}".into())),
                input_type,
                max_retries,
                finish_on_key: finish,
                num_digits,
                options,
                condition,
                true_node: t,
                false_node: f,
                variable_name,
                variable_value: Some("{{y}}1".into()),
                transfer_type,
                transfer_to,
                webhook_url,
                response_mapping: BTreeMap::from([("x".to_owned(), "a".to_owned())]),
                next_node: next,
                timeout_node: timeout,
                error_node: error,
                ..Node::default()
            }
        },
    )
}

fn flow_gen() -> impl Gen<Value = Flow> {
    let shape = (0usize..IDS.len(), link(), 0u32..4, 0u8..8);
    (proptest::collection::vec(node_gen(), 1..=IDS.len()), shape).prop_map(
        |(nodes, (entry, error, max_retries, oddity))| {
            let mut list: KeyedList<Node> = nodes.into_iter().enumerate().map(|(i, n)| (IDS[i], n)).collect();
            match oddity {
                0 => {
                    if let Some(first) = list.get("n0").cloned() {
                        list.push("n0", first);
                    }
                }
                1 => {
                    if let Some(first) = list.get_mut("n0") {
                        first.next_node = Some("gone".into());
                    }
                }
                _ => {}
            }
            Flow {
                name: "Arbitrary".into(),
                entry_node_id: IDS[entry].into(),
                nodes: list,
                error_node_id: error,
                max_retries,
                schedules: BTreeMap::from([("office".to_owned(), office())]),
                ..Flow::default()
            }
        },
    )
}

fn input_gen() -> impl Gen<Value = ScriptedInput> {
    let input = prop_oneof![
        select(&["1", "2", "#", "12", "", "9*", "1#"][..])
            .prop_map(|d| Input::Digits { digits: d.to_owned() }),
        select(&["sales", "", "one", "12"][..])
            .prop_map(|t| Input::Speech { text: t.to_owned(), confidence: None }),
        Just(Input::Timeout),
        prop_oneof![Just(200u16), Just(500)]
            .prop_map(|status| Input::WebhookResult { status, body: json!({"a": 1}) }),
        Just(Input::WebhookFailed { reason: "down".into() }),
        (0usize..4).prop_map(|i| Input::TransferEnded {
            outcome: [
                TransferOutcome::Connected,
                TransferOutcome::NoAgents,
                TransferOutcome::Timeout,
                TransferOutcome::Failed
            ][i],
        }),
        Just(Input::VoicemailRecorded { recording_url: None, duration_seconds: None }),
        Just(Input::VoicemailFailed { reason: "x".into() }),
        Just(Input::CallStarted(CallStart::default())),
        Just(Input::Hangup),
    ];
    (input, 0u32..100_000).prop_map(|(input, after_seconds)| ScriptedInput { input, after_seconds })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn the_validator_never_panics_and_its_severities_follow_the_codes(flow in flow_gen()) {
        let issues = check(&flow, &ValidationContext::default());
        for issue in &issues {
            prop_assert_eq!(issue.severity, issue.code.severity());
        }
        prop_assert_eq!(validate(&flow).is_err(), issues.iter().any(FlowIssue::is_error));
    }

    #[test]
    fn the_interpreter_never_panics_and_stays_within_bounds(
        flow in flow_gen(),
        inputs in proptest::collection::vec(input_gen(), 0..40),
    ) {
        let simulation = Simulation { start_at: Some(open_hours()), inputs: inputs.clone(), ..Simulation::default() };
        let trace = simulate(&flow, &simulation, open_hours());
        prop_assert!(trace.visits <= MAX_VISITS);
        prop_assert_eq!(trace.path.len(), trace.visits as usize);
        prop_assert!(trace.steps.len() <= inputs.len() + 1);
        prop_assert_eq!(trace.steps.len() + trace.unused_inputs, inputs.len() + 1);
        if trace.status == SessionStatus::Ended {
            prop_assert!(trace.ended.is_some());
            prop_assert!(trace.waiting_for.is_none());
        } else {
            prop_assert_eq!(trace.unused_inputs, 0);
        }

        let issues = check(&flow, &ValidationContext::default());
        let graph_sound = !issues.iter().any(|i| matches!(
            i.code,
            IssueCode::LoopWithoutInput | IssueCode::DanglingLink | IssueCode::DuplicateNodeId | IssueCode::MissingEntry
        ));
        if graph_sound {
            for s in &trace.steps {
                let mut entered: Vec<&str> = s.steps.iter().filter_map(|e| match e {
                    IvrStep::NodeEntered { node_id, .. } => Some(node_id.as_str()),
                    _ => None,
                }).collect();
                let total = entered.len();
                entered.sort_unstable();
                entered.dedup();
                prop_assert_eq!(entered.len(), total, "a node entered twice in one step: {:?}", s);
            }
        }
    }
}
