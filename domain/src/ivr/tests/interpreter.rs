//! The interpreter, given a flow and a call so far, when an input arrives, then these effects,
//! steps and session. Each node type, retries, no input, and every failure path.

use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::call::TransferTarget;

/// A call in progress through a flow.
struct Call {
    flow: Flow,
    session: Session,
    now: DateTime<Utc>,
}

impl Call {
    /// Given this flow, when a call starts at `now`.
    fn start(flow: Flow, now: DateTime<Utc>) -> (Self, StepOutcome) {
        Self::start_with(
            flow,
            now,
            CallStart { caller_number: some("+420601123456"), ..CallStart::default() },
        )
    }

    fn start_with(flow: Flow, now: DateTime<Utc>, start: CallStart) -> (Self, StepOutcome) {
        let mut call = Self { flow, session: Session::default(), now };
        let out = call.send(Input::CallStarted(start));
        (call, out)
    }

    /// When this input arrives.
    fn send(&mut self, input: Input) -> StepOutcome {
        let out = step(&self.flow, &self.session, input, self.now);
        self.session = out.session.clone();
        out
    }

    fn digits(&mut self, d: &str) -> StepOutcome {
        self.send(Input::Digits { digits: d.into() })
    }

    fn waits_at(&self) -> (Option<&str>, Option<Waiting>) {
        (self.session.node_id.as_deref(), self.session.waiting)
    }
}

fn entered(out: &StepOutcome) -> Vec<&str> {
    out.steps
        .iter()
        .filter_map(|s| match s {
            IvrStep::NodeEntered { node_id, .. } => Some(node_id.as_str()),
            _ => None,
        })
        .collect()
}

fn said(out: &StepOutcome) -> Vec<String> {
    out.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Play { prompt, .. } => prompt.text.clone(),
            Effect::Gather { prompt: Some(p), .. } => p.text.clone().map(|t| format!("[gather] {t}")),
            _ => None,
        })
        .collect()
}

fn hangup(out: &StepOutcome) -> Option<Option<String>> {
    out.effects.iter().find_map(|e| match e {
        Effect::Hangup { disposition, .. } => Some(disposition.clone()),
        _ => None,
    })
}

fn gather_attempt(out: &StepOutcome) -> Option<u32> {
    out.effects.iter().find_map(|e| match e {
        Effect::Gather { attempt, .. } => Some(*attempt),
        _ => None,
    })
}

/// At the menu, in office hours.
fn at_menu() -> Call {
    let (call, _) = Call::start(support_flow(), open_hours());
    assert_eq!(call.waits_at(), (Some("menu"), Some(Waiting::CallerInput)));
    call
}

// ---- play_message, conditional, menu on entry ----

#[test]
fn a_call_plays_the_welcome_checks_the_hours_and_waits_at_the_menu() {
    let (call, out) = Call::start(support_flow(), open_hours());
    assert_eq!(entered(&out), ["welcome", "hours", "menu"]);
    assert_eq!(
        said(&out),
        ["Welcome to Kraliki.", "[gather] Press 1 for your account, 2 for sales, 0 for voicemail."]
    );
    let gather = out.effects.iter().find(|e| matches!(e, Effect::Gather { .. })).cloned();
    assert_eq!(
        gather,
        Some(Effect::Gather {
            node_id: "menu".into(),
            prompt: Some(Prompt {
                text: some("Press 1 for your account, 2 for sales, 0 for voicemail."),
                audio_url: None,
                language: "en".into(),
                interruptible: true,
            }),
            input_type: InputType::Both,
            num_digits: Some(1),
            finish_on_key: "#".into(),
            timeout_seconds: 10,
            inter_digit_timeout: 5,
            speech_hints: vec!["0".into(), "1".into(), "2".into(), "sales".into(), "buy".into()],
            language: "en".into(),
            attempt: 1,
        })
    );
    assert!(out.steps.contains(&IvrStep::ConditionEvaluated {
        node_id: "hours".into(),
        result: Some(true),
        error: None
    }));
    assert_eq!(call.session.variables.get("caller_number"), Some(&json!("+420601123456")));
    assert_eq!(call.session.visits, 3);
}

#[test]
fn out_of_hours_the_caller_is_told_and_sent_to_voicemail() {
    let (call, out) = Call::start(support_flow(), weekend());
    assert_eq!(entered(&out), ["welcome", "hours", "closed", "vm"]);
    assert!(out.steps.contains(&IvrStep::BranchTaken {
        node_id: "hours".into(),
        branch: "false".into(),
        to: some("closed")
    }));
    assert_eq!(call.waits_at(), (Some("vm"), Some(Waiting::Voicemail)));
    assert!(matches!(
        out.effects.last(),
        Some(Effect::RecordVoicemail {
            max_length_seconds: 120,
            silence_timeout_seconds: 5,
            transcribe: true,
            create_callback: true,
            ..
        })
    ));
}

#[test]
fn business_hours_follow_dst_and_holidays() {
    // Friday 27 March 2026 (CET, UTC+1): 09:00 local is 08:00 UTC.
    let cases = [
        (utc(2026, 3, 27, 7, 59), "closed"),
        (utc(2026, 3, 27, 8, 0), "menu"),
        // Monday 30 March 2026, after the change to CEST (UTC+2): 09:00 local is 07:00 UTC.
        (utc(2026, 3, 30, 6, 59), "closed"),
        (utc(2026, 3, 30, 7, 0), "menu"),
        (utc(2026, 3, 30, 14, 59), "menu"),
        (utc(2026, 3, 30, 15, 0), "closed"),
        // Thursday 24 December 2026 is a holiday; the 23rd is not.
        (utc(2026, 12, 24, 10, 0), "closed"),
        (utc(2026, 12, 23, 10, 0), "menu"),
    ];
    for (now, third) in cases {
        let (_, out) = Call::start(support_flow(), now);
        assert_eq!(entered(&out).get(2), Some(&third), "at {now}");
    }
}

// ---- menu: options, speech, retries, no input ----

#[test]
fn a_menu_key_takes_its_option() {
    let mut call = at_menu();
    let out = call.digits("2");
    assert_eq!(entered(&out), ["sales"]);
    assert!(out.steps.contains(&IvrStep::BranchTaken {
        node_id: "menu".into(),
        branch: "option:2".into(),
        to: some("sales")
    }));
    assert!(out.steps.contains(&IvrStep::InputReceived {
        node_id: "menu".into(),
        kind: "digits".into(),
        value: "2".into()
    }));
}

#[test]
fn a_spoken_phrase_chooses_its_option() {
    let mut call = at_menu();
    let out = call.send(Input::Speech { text: "I'd like to BUY something.".into(), confidence: Some(0.9) });
    assert_eq!(entered(&out), ["sales"]);
}

#[test]
fn speech_at_a_keys_only_menu_is_wrong_input() {
    let mut flow = support_flow();
    node_mut(&mut flow, "menu").input_type = InputType::Dtmf;
    let (mut call, _) = Call::start(flow, open_hours());
    let out = call.send(Input::Speech { text: "sales".into(), confidence: None });
    assert!(out.steps.contains(&IvrStep::InputRejected {
        node_id: "menu".into(),
        kind: "speech".into(),
        value: "sales".into(),
        attempt: 1
    }));
    assert_eq!(call.waits_at(), (Some("menu"), Some(Waiting::CallerInput)));
}

#[test]
fn wrong_keys_re_prompt_up_to_max_retries_then_take_the_error_node() {
    let mut call = at_menu();
    for attempt in 1..=3 {
        let out = call.digits("7");
        assert_eq!(said(&out)[0], "That is not an option.", "attempt {attempt}");
        assert_eq!(gather_attempt(&out), Some(attempt + 1));
        assert_eq!(call.session.attempts, attempt);
        assert!(entered(&out).is_empty(), "a re-prompt enters no node");
    }
    let out = call.digits("7");
    assert!(out.steps.contains(&IvrStep::InputRejected {
        node_id: "menu".into(),
        kind: "digits".into(),
        value: "7".into(),
        attempt: 4
    }));
    assert_eq!(entered(&out), ["goodbye"]);
    assert_eq!(said(&out), ["Goodbye."]);
    assert_eq!(hangup(&out), Some(some("completed")));
    assert_eq!(call.session.status, SessionStatus::Ended);
}

#[test]
fn no_input_re_prompts_with_the_timeout_message_then_takes_the_timeout_node() {
    let mut flow = support_flow();
    flow.timeout_message = text("We did not hear you.");
    flow.max_retries = 2;
    let (mut call, _) = Call::start(flow, open_hours());
    for attempt in 1..=2 {
        let out = call.send(Input::Timeout);
        assert!(out.steps.contains(&IvrStep::InputTimedOut { node_id: "menu".into(), attempt }));
        assert_eq!(said(&out)[0], "We did not hear you.");
    }
    // An empty key press is no input too.
    let out = call.digits("#");
    assert_eq!(entered(&out), ["vm"]);
    assert!(out.steps.contains(&IvrStep::BranchTaken {
        node_id: "menu".into(),
        branch: "timeout".into(),
        to: some("vm")
    }));
}

#[test]
fn a_node_without_retries_exits_on_the_first_failure() {
    let mut flow = support_flow();
    node_mut(&mut flow, "menu").max_retries = Some(0);
    let (mut call, _) = Call::start(flow, open_hours());
    assert_eq!(entered(&call.send(Input::Timeout)), ["vm"]);
}

#[test]
fn without_a_timeout_node_no_input_takes_the_error_path() {
    let mut flow = support_flow();
    let menu = node_mut(&mut flow, "menu");
    menu.timeout_node = None;
    menu.max_retries = Some(0);
    let (mut call, _) = Call::start(flow, open_hours());
    let out = call.send(Input::Timeout);
    assert_eq!(entered(&out), ["goodbye"]);
}

// ---- gather_input ----

fn at_account() -> Call {
    let mut call = at_menu();
    call.digits("1");
    assert_eq!(call.waits_at(), (Some("account"), Some(Waiting::CallerInput)));
    call
}

#[test]
fn gathered_digits_go_into_the_variable_and_fill_the_webhook_url() {
    let mut call = at_account();
    let out = call.digits("123456#");
    assert!(out.steps.contains(&IvrStep::VariableSet {
        node_id: "account".into(),
        name: "account".into(),
        value: json!("123456")
    }));
    assert_eq!(entered(&out), ["lookup"]);
    assert_eq!(
        out.effects,
        vec![Effect::CallWebhook {
            node_id: "lookup".into(),
            url: "https://api.example.com/accounts/123456".into(),
            method: HttpMethod::Get,
            headers: Default::default(),
            body: None,
            timeout_ms: 5000,
        }]
    );
    assert_eq!(call.waits_at(), (Some("lookup"), Some(Waiting::Webhook)));
}

#[test]
fn a_gather_refuses_too_many_digits_and_inputs_not_listed() {
    let mut call = at_account();
    let out = call.digits("1234567");
    assert!(matches!(out.steps.first(), Some(IvrStep::InputRejected { attempt: 1, .. })), "{:?}", out.steps);
    let mut flow = support_flow();
    node_mut(&mut flow, "account").valid_inputs = vec!["111111".into(), "222222".into()];
    let (mut call, _) = Call::start(flow, open_hours());
    call.digits("1");
    assert!(matches!(call.digits("333333").steps.first(), Some(IvrStep::InputRejected { .. })));
    assert_eq!(entered(&call.digits("222222")), ["lookup"]);
}

#[test]
fn interpolated_url_values_are_percent_encoded() {
    let mut flow = support_flow();
    let account = node_mut(&mut flow, "account");
    account.input_type = InputType::Speech;
    account.num_digits = None;
    let (mut call, _) = Call::start(flow, open_hours());
    call.digits("1");
    let out = call.send(Input::Speech { text: "../admin?x=1".into(), confidence: None });
    let url = out.effects.iter().find_map(|e| match e {
        Effect::CallWebhook { url, .. } => Some(url.clone()),
        _ => None,
    });
    assert_eq!(url.as_deref(), Some("https://api.example.com/accounts/..%2Fadmin%3Fx%3D1"));
}

// ---- webhook, set_variable, transfer ----

fn at_lookup() -> Call {
    let mut call = at_account();
    call.digits("123456");
    call
}

#[test]
fn a_webhook_result_sets_variables_and_the_flow_goes_on() {
    let mut call = at_lookup();
    let out = call.send(Input::WebhookResult { status: 200, body: json!({"data": {"balance": 12.5}}) });
    assert!(out.steps.contains(&IvrStep::WebhookCompleted {
        node_id: "lookup".into(),
        ok: true,
        status: Some(200),
        error: None
    }));
    assert!(out.steps.contains(&IvrStep::VariableSet {
        node_id: "lookup".into(),
        name: "balance".into(),
        value: json!(12.5)
    }));
    assert_eq!(entered(&out), ["check", "pay", "sales"]);
    assert!(out.steps.contains(&IvrStep::VariableSet {
        node_id: "pay".into(),
        name: "reason".into(),
        value: json!("payment for 123456")
    }));
    let Some(Effect::Transfer { request, .. }) = out.effects.last() else { panic!("{:?}", out.effects) };
    assert_eq!(request.target, TransferTarget::Queue { queue: "sales".into() });
    assert_eq!(request.priority, Some(5));
    assert_eq!(request.variables.get("reason"), Some(&json!("payment for 123456")));
    assert_eq!(call.waits_at(), (Some("sales"), Some(Waiting::Transfer)));
}

#[test]
fn a_zero_balance_skips_the_payment() {
    let mut call = at_lookup();
    let out = call.send(Input::WebhookResult { status: 200, body: json!({"data": {"balance": "0"}}) });
    assert_eq!(entered(&out), ["check", "sales"]);
}

#[test]
fn a_failed_webhook_takes_its_error_node() {
    for failure in [
        Input::WebhookFailed { reason: "connection refused".into() },
        Input::WebhookResult { status: 503, body: json!({}) },
        Input::Timeout,
    ] {
        let mut call = at_lookup();
        let out = call.send(failure.clone());
        assert!(
            matches!(out.steps.first(), Some(IvrStep::WebhookCompleted { ok: false, .. })),
            "{failure:?}"
        );
        assert_eq!(entered(&out), ["sorry", "goodbye"], "{failure:?}");
        assert_eq!(said(&out), ["Sorry, something went wrong.", "Goodbye."]);
        assert_eq!(hangup(&out), Some(some("completed")));
        assert!(!call.session.variables.contains_key("balance"));
    }
}

#[test]
fn a_post_webhook_sends_the_variables_or_its_body_template() {
    let mut flow = support_flow();
    let lookup = node_mut(&mut flow, "lookup");
    lookup.webhook_method = HttpMethod::Post;
    lookup.webhook_url = some("https://api.example.com/lookup");
    lookup.webhook_headers.insert("X-Caller".into(), "{{caller_number}}".into());
    lookup.webhook_body = Some(json!({"account": "{{account}}", "note": "from {{caller_number}}", "n": 1}));
    let (mut call, _) = Call::start(flow, open_hours());
    call.digits("1");
    let out = call.digits("123456");
    let Some(Effect::CallWebhook { body, headers, .. }) = out.effects.last() else {
        panic!("{:?}", out.effects)
    };
    assert_eq!(body, &Some(json!({"account": "123456", "note": "from +420601123456", "n": 1})));
    assert_eq!(headers.get("X-Caller").map(String::as_str), Some("+420601123456"));
}

fn at_sales() -> Call {
    let mut call = at_menu();
    call.digits("2");
    call
}

#[test]
fn a_connected_transfer_ends_the_ivr_without_hanging_up() {
    let mut call = at_sales();
    let out = call.send(Input::TransferEnded { outcome: TransferOutcome::Connected });
    assert_eq!(hangup(&out), None);
    assert_eq!(call.session.ended, Some(EndReason::Transferred { node_id: "sales".into() }));
}

#[test]
fn a_transfer_that_times_out_takes_the_timeout_node_and_one_without_agents_the_error_path() {
    let mut call = at_sales();
    assert_eq!(entered(&call.send(Input::TransferEnded { outcome: TransferOutcome::Timeout })), ["vm"]);
    let mut call = at_sales();
    let out = call.send(Input::TransferEnded { outcome: TransferOutcome::NoAgents });
    // No error node on the transfer: the flow's error node.
    assert!(out.steps.contains(&IvrStep::BranchTaken {
        node_id: "sales".into(),
        branch: "flow_error".into(),
        to: some("sorry")
    }));
    assert_eq!(entered(&out), ["sorry", "goodbye"]);
}

#[test]
fn transfers_reach_agents_numbers_and_the_ai_agent() {
    let agent = Uuid::from_u128(42);
    let cases = [
        (TransferType::Agent, Some(agent.to_string()), TransferTarget::Agent { agent_id: agent }),
        (
            TransferType::Number,
            some("+420601000111"),
            TransferTarget::Number { number: "+420601000111".into() },
        ),
        (TransferType::AiAgent, None, TransferTarget::AiAgent),
        (TransferType::Voicemail, None, TransferTarget::Voicemail),
    ];
    for (transfer_type, to, want) in cases {
        let mut flow = support_flow();
        let sales = node_mut(&mut flow, "sales");
        sales.transfer_type = transfer_type;
        sales.transfer_to = to;
        let (mut call, _) = Call::start(flow, open_hours());
        let out = call.digits("2");
        let Some(Effect::Transfer { request, .. }) = out.effects.last() else { panic!("{:?}", out.effects) };
        assert_eq!(request.target, want);
    }
}

#[test]
fn a_transfer_to_a_bad_agent_id_fails_at_once() {
    let mut flow = support_flow();
    let sales = node_mut(&mut flow, "sales");
    sales.transfer_type = TransferType::Agent;
    sales.transfer_to = some("{{agent}}");
    let (mut call, _) = Call::start(flow, open_hours());
    let out = call.digits("2");
    assert!(out
        .steps
        .contains(&IvrStep::TransferCompleted { node_id: "sales".into(), outcome: TransferOutcome::Failed }));
    assert_eq!(entered(&out), ["sales", "sorry", "goodbye"]);
}

// ---- voicemail, end_call ----

#[test]
fn a_recorded_voicemail_ends_the_call() {
    let mut call = at_menu();
    call.digits("0");
    let out = call.send(Input::VoicemailRecorded {
        recording_url: some("https://rec.example/1.wav"),
        duration_seconds: Some(20),
    });
    assert_eq!(hangup(&out), Some(some("voicemail")));
    assert_eq!(call.session.variables.get("voicemail_url"), Some(&json!("https://rec.example/1.wav")));
    assert_eq!(call.session.ended, Some(EndReason::VoicemailLeft { node_id: "vm".into() }));
}

#[test]
fn a_failed_recording_takes_the_error_path() {
    let mut call = at_menu();
    call.digits("0");
    let out = call.send(Input::VoicemailFailed { reason: "carrier error".into() });
    assert_eq!(entered(&out), ["sorry", "goodbye"]);
}

#[test]
fn a_voicemail_with_a_next_node_goes_on() {
    let mut flow = support_flow();
    node_mut(&mut flow, "vm").next_node = some("goodbye");
    let (mut call, _) = Call::start(flow, weekend());
    let out = call.send(Input::VoicemailRecorded { recording_url: None, duration_seconds: None });
    assert_eq!(entered(&out), ["goodbye"]);
    assert_eq!(hangup(&out), Some(some("completed")));
}

// ---- languages, hang-ups, ignored inputs, limits, runtime errors ----

#[test]
fn prompts_speak_the_callers_language_else_the_default() {
    let mut flow = support_flow();
    flow.languages = vec!["en".into(), "es".into(), "cs".into()];
    let welcome = node_mut(&mut flow, "welcome");
    welcome.message = Some(Message::Translations(BTreeMap::from([
        ("en".to_owned(), "Welcome.".to_owned()),
        ("es".to_owned(), "Bienvenido.".to_owned()),
        ("cs".to_owned(), "Vítejte.".to_owned()),
    ])));
    let start = |lang: &str| CallStart { language: some(lang), ..CallStart::default() };
    let (_, out) = Call::start_with(flow.clone(), open_hours(), start("ES"));
    assert_eq!(said(&out)[0], "Bienvenido.");
    let (call, out) = Call::start_with(flow, open_hours(), start("de"));
    assert_eq!(said(&out)[0], "Welcome.");
    assert_eq!(call.session.variables.get("language"), Some(&json!("en")));
}

#[test]
fn a_language_menu_switches_the_prompts() {
    let mut flow = support_flow();
    flow.languages = vec!["en".into(), "es".into()];
    flow.nodes.insert(
        "lang",
        node(NodeType::Menu, |n| {
            n.message = Some(Message::Translations(BTreeMap::from([
                ("en".to_owned(), "For Spanish press 2.".to_owned()),
                ("es".to_owned(), "Para español pulse 2.".to_owned()),
            ])));
            n.options = [("2", "to_es".to_owned())].into_iter().collect();
            n.timeout_node = some("welcome");
        }),
    );
    flow.nodes.insert(
        "to_es",
        node(NodeType::SetVariable, |n| {
            n.variable_name = some("language");
            n.variable_value = some("es");
            n.next_node = some("lang");
        }),
    );
    flow.entry_node_id = "lang".into();
    let (mut call, out) = Call::start(flow, open_hours());
    assert_eq!(said(&out), ["[gather] For Spanish press 2."]);
    let out = call.digits("2");
    assert_eq!(said(&out), ["[gather] Para español pulse 2."]);
}

#[test]
fn a_hang_up_ends_the_session_without_effects() {
    let mut call = at_menu();
    let out = call.send(Input::Hangup);
    assert!(out.effects.is_empty());
    assert_eq!(call.session.ended, Some(EndReason::CallerHungUp { node_id: some("menu") }));
    // Anything after the end is ignored.
    let ended = call.session.clone();
    let out = call.digits("1");
    assert_eq!(out.steps, vec![IvrStep::InputIgnored { node_id: some("menu"), kind: "digits".into() }]);
    assert_eq!(out.session, ended);
}

#[test]
fn inputs_the_session_does_not_wait_for_are_ignored() {
    let mut call = at_lookup();
    let before = call.session.clone();
    let out = call.digits("5");
    assert_eq!(out.steps, vec![IvrStep::InputIgnored { node_id: some("lookup"), kind: "digits".into() }]);
    assert_eq!(out.session, before);
    let out = step(&support_flow(), &Session::default(), Input::Timeout, open_hours());
    assert!(matches!(out.steps.as_slice(), [IvrStep::InputIgnored { .. }]));
    assert_eq!(out.session.status, SessionStatus::NotStarted);
}

#[test]
fn a_call_stops_at_the_visit_limit() {
    // An invalid flow that spins on its own stops inside one step.
    let mut flow = support_flow();
    node_mut(&mut flow, "welcome").next_node = some("welcome");
    let (call, out) = Call::start(flow, open_hours());
    assert_eq!(entered(&out).len(), MAX_VISITS as usize);
    assert_eq!(hangup(&out), Some(some(crate::ivr::interpreter::DISPOSITION_VISIT_LIMIT)));
    assert_eq!(call.session.ended, Some(EndReason::VisitLimit { node_id: "welcome".into() }));
    // A valid loop through a menu is stopped the same way across inputs.
    let mut flow = support_flow();
    node_mut(&mut flow, "menu").options.insert("9", "welcome".to_owned());
    let (mut call, _) = Call::start(flow, open_hours());
    let mut presses = 0;
    while call.session.status != SessionStatus::Ended {
        call.digits("9");
        presses += 1;
        assert!(presses <= MAX_VISITS, "never stopped");
    }
    assert_eq!(call.session.visits, MAX_VISITS);
    assert!(matches!(call.session.ended, Some(EndReason::VisitLimit { .. })));
}

#[test]
fn a_condition_that_cannot_be_evaluated_takes_the_error_path() {
    let mut flow = support_flow();
    node_mut(&mut flow, "hours").condition = some("in_hours('gone')");
    let (_, out) = Call::start(flow, open_hours());
    assert!(matches!(
        out.steps.iter().find(|s| matches!(s, IvrStep::ConditionEvaluated { .. })),
        Some(IvrStep::ConditionEvaluated { result: None, error: Some(_), .. })
    ));
    assert_eq!(entered(&out), ["welcome", "hours", "sorry", "goodbye"]);
}

#[test]
fn with_no_error_branch_at_all_a_failure_hangs_up() {
    let mut flow = support_flow();
    flow.error_node_id = None;
    node_mut(&mut flow, "hours").condition = some("in_hours('gone')");
    let (call, out) = Call::start(flow, open_hours());
    assert_eq!(hangup(&out), Some(some(crate::ivr::interpreter::DISPOSITION_ERROR)));
    assert!(matches!(call.session.ended, Some(EndReason::Error { .. })));
}

#[test]
fn a_missing_entry_ends_the_call_with_an_error() {
    let mut flow = support_flow();
    flow.entry_node_id = "gone".into();
    let (call, out) = Call::start(flow, open_hours());
    assert_eq!(hangup(&out), Some(some(crate::ivr::interpreter::DISPOSITION_ERROR)));
    assert_eq!(call.session.status, SessionStatus::Ended);
}

#[test]
fn audio_plays_when_tts_is_off() {
    let mut flow = support_flow();
    let welcome = node_mut(&mut flow, "welcome");
    welcome.use_tts = false;
    welcome.audio_url = some("https://cdn.example/welcome.mp3");
    let (_, out) = Call::start(flow, open_hours());
    let Some(Effect::Play { prompt, .. }) = out.effects.first() else { panic!("{:?}", out.effects) };
    assert_eq!(
        (prompt.text.as_deref(), prompt.audio_url.as_deref()),
        (None, Some("https://cdn.example/welcome.mp3"))
    );
}

#[test]
fn sessions_and_effects_survive_json() {
    let mut call = at_lookup();
    let out = call.send(Input::WebhookResult { status: 200, body: json!({"data": {"balance": 3}}) });
    let back: StepOutcome = serde_json::from_value(serde_json::to_value(&out).expect("json")).expect("reads");
    assert_eq!(back, out);
    let input: Input = serde_json::from_value(json!({"type": "digits", "digits": "12"})).expect("reads");
    assert_eq!(input, Input::Digits { digits: "12".into() });
}

// ---- the simulator ----

/// The five-node flow: menu → gather → conditional → webhook → transfer to the AI agent.
fn five_nodes() -> Flow {
    let nodes: KeyedList<Node> = [
        (
            "menu",
            node(NodeType::Menu, |n| {
                n.message = text("Press 1 to check an order.");
                n.options = [("1", "order".to_owned())].into_iter().collect();
                n.error_node = some("ai");
                n.timeout_node = some("ai");
            }),
        ),
        (
            "order",
            node(NodeType::GatherInput, |n| {
                n.message = text("Say or key your order number.");
                n.input_type = InputType::Both;
                n.variable_name = some("order");
                n.next_node = some("big");
                n.error_node = some("ai");
            }),
        ),
        (
            "big",
            node(NodeType::Conditional, |n| {
                n.condition = some("order >= 1000 and weekday() in ['mon', 'tue', 'wed', 'thu', 'fri']");
                n.true_node = some("status");
                n.false_node = some("ai");
            }),
        ),
        (
            "status",
            node(NodeType::Webhook, |n| {
                n.webhook_url = some("https://orders.example.com/status");
                n.response_mapping = BTreeMap::from([("order_status".to_owned(), "status".to_owned())]);
                n.next_node = some("ai");
                n.error_node = some("ai");
            }),
        ),
        (
            "ai",
            node(NodeType::Transfer, |n| {
                n.transfer_type = TransferType::AiAgent;
                n.error_node = some("menu");
                n.timeout_node = some("menu");
            }),
        ),
    ]
    .into_iter()
    .collect();
    Flow {
        name: "Orders".into(),
        entry_node_id: "menu".into(),
        nodes,
        languages: vec!["en".into()],
        ..Flow::default()
    }
}

#[test]
fn a_simulation_returns_the_path_and_the_variables() {
    assert_eq!(validate(&five_nodes()), Ok(()));
    let simulation = Simulation {
        call: CallStart { caller_number: some("+15551230000"), ..CallStart::default() },
        start_at: Some(open_hours()),
        inputs: vec![
            Input::Digits { digits: "1".into() }.into(),
            ScriptedInput {
                input: Input::Speech { text: "4711".into(), confidence: None },
                after_seconds: 4,
            },
            Input::WebhookResult { status: 200, body: json!({"status": "shipped"}) }.into(),
            Input::TransferEnded { outcome: TransferOutcome::Connected }.into(),
            Input::Digits { digits: "9".into() }.into(),
        ],
    };
    let trace = simulate(&five_nodes(), &simulation, weekend());
    assert_eq!(trace.path, ["menu", "order", "big", "status", "ai"]);
    assert_eq!(trace.variables.get("order_status"), Some(&json!("shipped")));
    assert_eq!(trace.variables.get("order"), Some(&json!("4711")));
    assert_eq!(trace.status, SessionStatus::Ended);
    assert_eq!(trace.ended, Some(EndReason::Transferred { node_id: "ai".into() }));
    assert_eq!(trace.unused_inputs, 1);
    assert_eq!(trace.steps.len(), 5);
    assert_eq!(trace.steps[2].at, open_hours() + chrono::Duration::seconds(4));
    let Some(Effect::Transfer { request, .. }) = trace.steps[3].effects.last() else {
        panic!("{:?}", trace.steps[3])
    };
    assert_eq!(request.target, TransferTarget::AiAgent);
    assert_eq!(request.variables.get("order_status"), Some(&json!("shipped")));
}

#[test]
fn a_simulation_that_runs_out_of_inputs_says_what_it_waits_for() {
    let simulation = Simulation {
        start_at: Some(weekend()),
        inputs: vec![
            Input::Digits { digits: "1".into() }.into(),
            Input::Digits { digits: "1200".into() }.into(),
        ],
        ..Simulation::default()
    };
    // Saturday: the conditional is false, straight to the AI agent.
    let trace = simulate(&five_nodes(), &simulation, open_hours());
    assert_eq!(trace.path, ["menu", "order", "big", "ai"]);
    assert_eq!((trace.status, trace.waiting_for), (SessionStatus::Waiting, Some(Waiting::Transfer)));
    assert_eq!(trace.unused_inputs, 0);
    let request: Simulation = serde_json::from_value(json!({
        "call": {"caller_number": "+15551230000"},
        "inputs": [{"type": "digits", "digits": "1"}, {"type": "timeout", "after_seconds": 10}]
    }))
    .expect("reads");
    assert_eq!(request.inputs[1], ScriptedInput { input: Input::Timeout, after_seconds: 10 });
}
