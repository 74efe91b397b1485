//! Tests of the IVR module: the aggregate (given/when/then), the validator (one test per
//! finding code), the interpreter (each node type, retries, no input, failures), the condition
//! language, the simulator, and properties over arbitrary flows.

mod aggregate;
mod condition;
mod interpreter;
mod props;
mod validate;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::schedule::BusinessHours;

pub(super) fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("valid time")
}

/// Tuesday 24 November 2026, 10:00 in Prague (09:00 UTC): the office is open.
pub(super) fn open_hours() -> DateTime<Utc> {
    utc(2026, 11, 24, 9, 0)
}

/// Saturday 28 November 2026, 10:00 in Prague: closed.
pub(super) fn weekend() -> DateTime<Utc> {
    utc(2026, 11, 28, 9, 0)
}

pub(super) fn text(s: &str) -> Option<Message> {
    Some(Message::Text(s.to_owned()))
}

pub(super) fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

pub(super) fn office() -> BusinessHours {
    let day = json!([{"open": "09:00", "close": "17:00"}]);
    serde_json::from_value(json!({
        "timezone": "Europe/Prague",
        "hours": {"mon": day, "tue": day, "wed": day, "thu": day, "fri": day},
        "holidays": ["2026-12-24"]
    }))
    .expect("hours")
}

pub(super) fn node(node_type: NodeType, f: impl FnOnce(&mut Node)) -> Node {
    let mut n = Node::new(node_type);
    f(&mut n);
    n
}

/// A flow with every node type and no finding at all:
///
/// ```text
/// welcome → hours ─true→ menu ─1→ account → lookup → check ─true→ pay → sales
///                 └false→ closed → vm       ├2→ sales      └false→ sales
///                                            └0→ vm (also on no input)
/// errors: sorry → goodbye (the flow's error node); menu's wrong input → goodbye
/// ```
pub(super) fn support_flow() -> Flow {
    let nodes: KeyedList<Node> = [
        (
            "welcome",
            node(NodeType::PlayMessage, |n| {
                n.message = text("Welcome to Kraliki.");
                n.next_node = some("hours");
            }),
        ),
        (
            "hours",
            node(NodeType::Conditional, |n| {
                n.condition = some("in_hours('office')");
                n.true_node = some("menu");
                n.false_node = some("closed");
            }),
        ),
        (
            "menu",
            node(NodeType::Menu, |n| {
                n.message = text("Press 1 for your account, 2 for sales, 0 for voicemail.");
                n.input_type = InputType::Both;
                n.options = [("1", "account"), ("2", "sales"), ("0", "vm")]
                    .into_iter()
                    .map(|(k, v)| (k, v.to_owned()))
                    .collect();
                n.option_phrases =
                    BTreeMap::from([("2".to_owned(), vec!["sales".to_owned(), "buy".to_owned()])]);
                n.invalid_input_message = text("That is not an option.");
                n.timeout_node = some("vm");
                n.error_node = some("goodbye");
            }),
        ),
        (
            "account",
            node(NodeType::GatherInput, |n| {
                n.message = text("Enter your account number, then hash.");
                n.variable_name = some("account");
                n.num_digits = Some(6);
                n.next_node = some("lookup");
                n.timeout_node = some("goodbye");
                n.error_node = some("goodbye");
            }),
        ),
        (
            "lookup",
            node(NodeType::Webhook, |n| {
                n.webhook_url = some("https://api.example.com/accounts/{{account}}");
                n.webhook_method = HttpMethod::Get;
                n.response_mapping = BTreeMap::from([("balance".to_owned(), "data.balance".to_owned())]);
                n.next_node = some("check");
                n.error_node = some("sorry");
            }),
        ),
        (
            "check",
            node(NodeType::Conditional, |n| {
                n.condition = some("balance > 0");
                n.true_node = some("pay");
                n.false_node = some("sales");
            }),
        ),
        (
            "pay",
            node(NodeType::SetVariable, |n| {
                n.variable_name = some("reason");
                n.variable_value = some("payment for {{account}}");
                n.next_node = some("sales");
            }),
        ),
        (
            "sales",
            node(NodeType::Transfer, |n| {
                n.transfer_type = TransferType::Queue;
                n.transfer_to = some("sales");
                n.priority = Some(5);
                n.timeout_node = some("vm");
            }),
        ),
        (
            "vm",
            node(NodeType::Voicemail, |n| {
                n.message = text("Leave a message after the tone.");
            }),
        ),
        (
            "closed",
            node(NodeType::PlayMessage, |n| {
                n.message = text("We are closed.");
                n.next_node = some("vm");
            }),
        ),
        (
            "sorry",
            node(NodeType::PlayMessage, |n| {
                n.message = text("Sorry, something went wrong.");
                n.next_node = some("goodbye");
            }),
        ),
        (
            "goodbye",
            node(NodeType::EndCall, |n| {
                n.message = text("Goodbye.");
                n.disposition = some("completed");
            }),
        ),
    ]
    .into_iter()
    .collect();
    Flow {
        name: "Support".into(),
        entry_node_id: "welcome".into(),
        nodes,
        languages: vec!["en".into()],
        error_node_id: some("sorry"),
        timezone: some("Europe/Prague"),
        schedules: BTreeMap::from([("office".to_owned(), office())]),
        ..Flow::default()
    }
}

pub(super) fn node_mut<'a>(flow: &'a mut Flow, id: &str) -> &'a mut Node {
    flow.nodes.get_mut(id).expect("node exists")
}
