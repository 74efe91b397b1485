//! The validator: a clean flow has no finding; each code is produced by the smallest change
//! that should produce it, on the node it names; errors block, warnings do not.

use std::collections::BTreeSet;

use serde_json::json;

use super::*;

type Mutation = fn(&mut Flow, &mut ValidationContext);

fn codes(issues: &[FlowIssue]) -> Vec<(IssueCode, Option<String>)> {
    issues.iter().map(|i| (i.code, i.node_id.clone())).collect()
}

#[test]
fn the_support_flow_has_no_finding() {
    let issues = check(&support_flow(), &ValidationContext::default());
    assert!(issues.is_empty(), "{issues:#?}");
    assert_eq!(validate(&support_flow()), Ok(()));
}

/// (code, the node it must name ("" for the flow), the change).
fn cases() -> Vec<(IssueCode, &'static str, Mutation)> {
    use IssueCode::*;
    vec![
        (MissingName, "", |f, _| f.name = " ".into()),
        (MissingEntry, "nope", |f, _| f.entry_node_id = "nope".into()),
        (InvalidNodeId, "bad id", |f, _| {
            let n = node(NodeType::EndCall, |_| {});
            f.nodes.push("bad id", n);
            node_mut(f, "sorry").next_node = some("bad id");
        }),
        (DuplicateNodeId, "goodbye", |f, _| {
            let again = node(NodeType::EndCall, |_| {});
            f.nodes.push("goodbye", again);
        }),
        (TooManyNodes, "", |f, _| {
            for i in 0..super::flow::MAX_NODES {
                f.nodes.push(format!("extra{i}"), node(NodeType::EndCall, |_| {}));
            }
        }),
        (DanglingLink, "welcome", |f, _| node_mut(f, "welcome").next_node = some("nowhere")),
        (MissingExit, "sorry", |f, _| node_mut(f, "sorry").next_node = None),
        (UnreachableNode, "orphan", |f, _| f.nodes.insert("orphan", node(NodeType::EndCall, |_| {}))),
        (LoopWithoutInput, "pay", |f, _| node_mut(f, "pay").next_node = some("pay")),
        (InvalidTimeout, "menu", |f, _| node_mut(f, "menu").timeout_seconds = Some(0)),
        (InvalidRetries, "", |f, _| f.max_retries = 11),
        (MissingErrorBranch, "hours", |f, _| f.error_node_id = None),
        (MissingTimeoutBranch, "menu", |f, _| {
            f.error_node_id = None;
            let menu = node_mut(f, "menu");
            menu.timeout_node = None;
            menu.error_node = None;
        }),
        (MissingOptions, "menu", |f, _| {
            let menu = node_mut(f, "menu");
            menu.options = KeyedList::new();
            menu.option_phrases.clear();
        }),
        (DuplicateOptionKey, "menu", |f, _| node_mut(f, "menu").options.push("1", "sales".to_owned())),
        (InvalidOptionKey, "menu", |f, _| node_mut(f, "menu").options.insert("12345", "sales".to_owned())),
        (OptionKeyIsFinishKey, "menu", |f, _| node_mut(f, "menu").options.insert("#", "sales".to_owned())),
        (InvalidFinishKey, "account", |f, _| node_mut(f, "account").finish_on_key = "x".into()),
        (InvalidNumDigits, "account", |f, _| node_mut(f, "account").num_digits = Some(0)),
        (InvalidValidInput, "account", |f, _| node_mut(f, "account").valid_inputs = vec!["abc".into()]),
        (MissingCondition, "hours", |f, _| node_mut(f, "hours").condition = None),
        (InvalidCondition, "hours", |f, _| node_mut(f, "hours").condition = some("in_hours('office' and")),
        (UnknownSchedule, "hours", |f, _| node_mut(f, "hours").condition = some("in_hours('weekend')")),
        (InvalidTimezone, "", |f, _| f.timezone = some("Mars/Olympus")),
        (InvalidSchedule, "", |f, _| {
            let overlapping = json!({
                "timezone": "UTC",
                "hours": {"mon": [{"open": "09:00", "close": "12:00"}, {"open": "11:00", "close": "13:00"}]}
            });
            f.schedules.insert("office".into(), serde_json::from_value(overlapping).expect("hours"));
        }),
        (MissingVariableName, "pay", |f, _| node_mut(f, "pay").variable_name = None),
        (InvalidVariableName, "pay", |f, _| node_mut(f, "pay").variable_name = some("2x")),
        (VariableMaybeUnset, "check", |f, _| node_mut(f, "check").condition = some("balance > limit")),
        (MissingPrompt, "welcome", |f, _| node_mut(f, "welcome").message = None),
        (MissingTranslation, "welcome", |f, _| f.languages = vec!["en".into(), "es".into()]),
        (InvalidLanguage, "", |f, _| f.default_language = "english".into()),
        (MissingWebhookUrl, "lookup", |f, _| node_mut(f, "lookup").webhook_url = None),
        (InvalidWebhookUrl, "lookup", |f, _| {
            node_mut(f, "lookup").webhook_url = some("ftp://api.example.com/x")
        }),
        (WebhookHostNotAllowed, "lookup", |_, ctx| {
            ctx.webhooks.allowed_hosts = Some(vec!["hooks.example.org".into()])
        }),
        (WebhookPrivateAddress, "lookup", |f, _| {
            node_mut(f, "lookup").webhook_url = some("http://127.0.0.1:8080/accounts")
        }),
        (MissingTransferTarget, "sales", |f, _| node_mut(f, "sales").transfer_to = None),
        (InvalidTransferTarget, "sales", |f, _| {
            let sales = node_mut(f, "sales");
            sales.transfer_type = TransferType::Agent;
            sales.transfer_to = some("bob");
        }),
        (UnknownTransferTarget, "sales", |_, ctx| ctx.queues = Some(BTreeSet::from(["support".to_owned()]))),
        (InvalidSkillLevel, "sales", |f, _| {
            node_mut(f, "sales").required_skills.insert("billing".into(), 7);
        }),
    ]
}

#[test]
fn every_code_has_a_case() {
    let covered: BTreeSet<IssueCode> = cases().iter().map(|(c, _, _)| *c).collect();
    let missing: Vec<_> = IssueCode::ALL.iter().filter(|c| !covered.contains(c)).collect();
    assert!(missing.is_empty(), "codes without a test: {missing:?}");
}

#[test]
fn each_change_produces_its_code_on_its_node_and_blocks_only_when_an_error() {
    for (code, node_id, mutate) in cases() {
        let mut flow = support_flow();
        let mut ctx = ValidationContext::default();
        mutate(&mut flow, &mut ctx);
        let issues = check(&flow, &ctx);
        let want = (code, (!node_id.is_empty()).then(|| node_id.to_owned()));
        assert!(codes(&issues).contains(&want), "{code:?} on {node_id:?} not in {:#?}", codes(&issues));
        let result = validate_with(&flow, &ctx);
        match code.severity() {
            IssueSeverity::Error => assert!(result.is_err(), "{code:?} should block"),
            IssueSeverity::Warning => {
                assert_eq!(result, Ok(()), "{code:?} alone should not block: {issues:#?}")
            }
        }
    }
}

#[test]
fn codes_have_stable_wire_names() {
    for code in IssueCode::ALL {
        assert_eq!(serde_json::to_value(code).expect("json"), json!(code.as_str()));
    }
    let issue =
        FlowIssue::new(IssueCode::DanglingLink, Some("welcome"), "next_node", "node `x` does not exist");
    assert_eq!(
        serde_json::to_value(&issue).expect("json"),
        json!({"code": "dangling_link", "severity": "error", "node_id": "welcome", "field": "next_node",
               "message": "node `x` does not exist"})
    );
}

#[test]
fn every_finding_is_reported_at_once() {
    let mut flow = support_flow();
    node_mut(&mut flow, "welcome").next_node = some("nowhere");
    node_mut(&mut flow, "menu").options.insert("#", "sales".to_owned());
    node_mut(&mut flow, "hours").condition = some("hour( >");
    let found: Vec<IssueCode> = validate(&flow).err().unwrap_or_default().iter().map(|i| i.code).collect();
    for code in [IssueCode::DanglingLink, IssueCode::OptionKeyIsFinishKey, IssueCode::InvalidCondition] {
        assert!(found.contains(&code), "{code:?} in {found:?}");
    }
}

#[test]
fn a_dangling_link_names_its_field() {
    let mut flow = support_flow();
    node_mut(&mut flow, "menu").options.insert("2", "gone".to_owned());
    let issues = validate(&flow).err().unwrap_or_default();
    let dangling: Vec<_> = issues.iter().filter(|i| i.code == IssueCode::DanglingLink).collect();
    assert_eq!(dangling.len(), 1, "{issues:#?}");
    assert_eq!((dangling[0].node_id.as_deref(), dangling[0].field.as_str()), (Some("menu"), "options.2"));
}

#[test]
fn a_loop_through_a_menu_is_allowed() {
    let mut flow = support_flow();
    // "9" repeats the menu; "sorry" plays and goes back to it.
    node_mut(&mut flow, "menu").options.insert("9", "menu".to_owned());
    node_mut(&mut flow, "sorry").next_node = some("menu");
    assert_eq!(validate(&flow), Ok(()));
}

#[test]
fn a_loop_beside_a_menu_is_found() {
    // menu → account → lookup → check → menu waits for the caller, but check ⇄ pay does not
    // (found by the property test: a component that contains a menu can still spin).
    let mut flow = support_flow();
    node_mut(&mut flow, "check").false_node = some("menu");
    node_mut(&mut flow, "pay").next_node = some("check");
    let issues = validate(&flow).err().unwrap_or_default();
    let loops: Vec<_> = issues.iter().filter(|i| i.code == IssueCode::LoopWithoutInput).collect();
    assert_eq!(loops.len(), 1, "{issues:#?}");
    assert_eq!(loops[0].message, "loop with no menu or gather_input through: check, pay");
}

#[test]
fn a_loop_through_the_flow_error_node_is_found() {
    let mut flow = support_flow();
    // The webhook has no error node: it falls back to the flow's, which calls it again.
    node_mut(&mut flow, "lookup").error_node = None;
    flow.error_node_id = some("retry");
    flow.nodes.insert(
        "retry",
        node(NodeType::PlayMessage, |n| {
            n.message = text("Trying again.");
            n.next_node = some("lookup");
        }),
    );
    let issues = validate(&flow).err().unwrap_or_default();
    let loops: Vec<_> = issues.iter().filter(|i| i.code == IssueCode::LoopWithoutInput).collect();
    assert_eq!(loops.len(), 1, "{issues:#?}");
    assert!(
        loops[0].message.contains("lookup") && loops[0].message.contains("retry"),
        "{}",
        loops[0].message
    );
}

#[test]
fn a_variable_set_on_one_branch_only_is_maybe_unset() {
    let mut flow = support_flow();
    // "sales" reads `reason`, which only the "pay" branch sets.
    node_mut(&mut flow, "sales").message = text("Connecting you about {{reason}}.");
    let issues = check(&flow, &ValidationContext::default());
    assert!(
        issues
            .iter()
            .any(|i| i.code == IssueCode::VariableMaybeUnset && i.node_id.as_deref() == Some("sales")),
        "{issues:#?}"
    );
    // Read only after it is set on every path: no warning.
    let mut flow = support_flow();
    node_mut(&mut flow, "lookup").message = text("Looking up {{account}}.");
    assert!(check(&flow, &ValidationContext::default()).is_empty());
}

#[test]
fn speech_menus_take_words_and_dtmf_menus_keys() {
    let mut flow = support_flow();
    let menu = node_mut(&mut flow, "menu");
    menu.input_type = InputType::Speech;
    menu.options.insert("billing", "sales".to_owned());
    assert_eq!(validate(&flow), Ok(()));
    node_mut(&mut flow, "menu").input_type = InputType::Dtmf;
    let issues = validate(&flow).err().unwrap_or_default();
    assert!(issues.iter().any(|i| i.code == IssueCode::InvalidOptionKey && i.field == "options.billing"));
}

#[test]
fn the_webhook_policy_matches_hosts_and_refuses_private_addresses() {
    let policy = WebhookPolicy {
        allowed_hosts: Some(vec!["*.example.com".into(), "api.other.org".into()]),
        ..Default::default()
    };
    assert!(policy.check("https://hooks.example.com/x").is_ok());
    assert!(policy.check("https://API.other.org./x").is_ok());
    assert!(matches!(policy.check("https://example.com/x"), Err(WebhookRefusal::HostNotAllowed(_))));
    assert!(matches!(policy.check("https://evil.com/x"), Err(WebhookRefusal::HostNotAllowed(_))));
    // The host is what the client connects to, not what a userinfo prefix pretends.
    assert!(matches!(
        policy.check("https://hooks.example.com@evil.com/"),
        Err(WebhookRefusal::InvalidUrl(_) | WebhookRefusal::HostNotAllowed(_))
    ));
    let open = WebhookPolicy::default();
    for private in [
        "http://10.0.0.5/",
        "http://[::1]/",
        "http://169.254.169.254/",
        "http://localhost:8080/",
        "http://[::ffff:192.168.1.1]/",
        "http://100.64.0.1/",
    ] {
        assert!(matches!(open.check(private), Err(WebhookRefusal::PrivateAddress(_))), "{private}");
    }
    assert!(open.check("https://93.184.216.34/").is_ok());
    let lab = WebhookPolicy { allowed_hosts: Some(vec!["127.0.0.1".into()]), allow_private: true };
    assert!(lab.check("http://127.0.0.1:9000/hook").is_ok());
    assert!(!open.address_allowed("192.168.0.1".parse().expect("ip")));
    assert!(lab.address_allowed("192.168.0.1".parse().expect("ip")));
}

#[test]
fn a_variable_may_not_fill_the_webhook_host() {
    let mut flow = support_flow();
    node_mut(&mut flow, "lookup").webhook_url = some("https://{{account}}.example.com/x");
    let issues = validate(&flow).err().unwrap_or_default();
    assert!(issues.iter().any(|i| i.code == IssueCode::InvalidWebhookUrl), "{issues:#?}");
}

#[test]
fn known_transfer_targets_pass() {
    let ctx = ValidationContext { queues: Some(BTreeSet::from(["sales".to_owned()])), ..Default::default() };
    assert_eq!(validate_with(&support_flow(), &ctx), Ok(()));
    let agent = uuid::Uuid::from_u128(7);
    let mut flow = support_flow();
    let sales = node_mut(&mut flow, "sales");
    sales.transfer_type = TransferType::Agent;
    sales.transfer_to = Some(agent.to_string());
    let ctx = ValidationContext { agents: Some(BTreeSet::from([agent])), ..Default::default() };
    assert_eq!(validate_with(&flow, &ctx), Ok(()));
    let sales = node_mut(&mut flow, "sales");
    sales.transfer_type = TransferType::Number;
    sales.transfer_to = some("+420 601 123 456");
    assert_eq!(validate(&flow), Ok(()));
}

#[test]
fn a_seed_shaped_flow_reads_and_writes_back() {
    let seed = json!({
        "name": "Main line",
        "entry_node_id": "start",
        "is_active": true,
        "default_language": "en",
        "max_retries": 3,
        "timeout_seconds": 10,
        "inter_digit_timeout": 5,
        "nodes": {
            "start": {"type": "menu", "label": "Main", "message": "Press 1", "use_tts": true,
                      "input_type": "dtmf", "finish_on_key": "#", "valid_inputs": [],
                      "options": {"1": "bye"}, "transfer_type": "queue", "webhook_method": "POST",
                      "timeout_node": "bye", "error_node": "bye"},
            "bye": {"type": "end_call", "message": {"en": "Bye", "es": "Adiós", "cs": "Nashle"}}
        }
    });
    let flow = Flow::from_json(seed).expect("reads");
    assert_eq!(flow.node("start").map(|n| n.options.get("1").cloned()), Some(Some("bye".into())));
    let back = serde_json::to_value(&flow).expect("json");
    assert_eq!(back["nodes"]["start"]["options"], json!({"1": "bye"}));
    assert_eq!(back["nodes"]["bye"]["type"], json!("end_call"));
    assert_eq!(Flow::from_json(back).expect("reads again"), flow);
    // Only the plain-string prompt lacks es and cs.
    let issues = check(&flow, &ValidationContext::default());
    assert_eq!(codes(&issues), vec![(IssueCode::MissingTranslation, Some("start".into()))]);
}

#[test]
fn reading_json_reports_every_unknown_type_and_keeps_repeated_ids() {
    let bad =
        json!({"name": "x", "nodes": {"a": {"type": "ask"}, "b": {"type": "menu", "input_type": "voice"}}});
    let problems = Flow::from_json(bad).err().unwrap_or_default();
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_ref()).collect();
    assert_eq!(fields, ["nodes.a.type", "nodes.b.input_type"]);
    let text = r#"{"name": "x", "entry_node_id": "a",
        "nodes": {"a": {"type": "end_call"}, "a": {"type": "end_call"}}}"#;
    let flow: Flow = serde_json::from_str(text).expect("reads");
    assert_eq!(flow.nodes.len(), 2);
    let issues = validate(&flow).err().unwrap_or_default();
    assert!(issues.iter().any(|i| i.code == IssueCode::DuplicateNodeId && i.node_id.as_deref() == Some("a")));
}
