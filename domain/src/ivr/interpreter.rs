//! The IVR interpreter: pure. [`step`] takes a flow, the call's [`Session`], one [`Input`] and
//! the clock, and answers the next session, the [`Effect`]s the telephony layer must carry out
//! (say, gather, call a webhook, transfer, record, hang up) and the [`IvrStep`]s that happened
//! (each one an event on the call). It runs through nodes that need nothing from outside
//! (`play_message`, `set_variable`, `conditional`) and stops at the first that does.
//!
//! No input and wrong input at a `menu` or `gather_input` re-prompt (with `timeout_message` /
//! `invalid_input_message`, the node's or else the flow's) up to `max_retries` times (the node's
//! or else the flow's, default 3); after that no input takes `timeout_node`, wrong input
//! `error_node`. A missing `timeout_node` falls back to the error path; a missing `error_node`
//! to the flow's `error_node_id`; with neither the call ends (disposition `ivr_error`). A call
//! enters at most [`MAX_VISITS`] nodes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::condition::{self, interpolate, interpolate_with, percent_encode, EvalContext};
use super::flow::{Flow, HttpMethod, InputType, Message, Node, NodeType, TransferType};
use super::validate::normalize_speech;
use crate::call::TransferTarget;
use crate::routing::Strategy;

/// Most node visits in one call (DOMAIN.md): a runaway flow ends there.
pub const MAX_VISITS: u32 = 100;
/// A webhook's deadline when the node gives none, and the most it may give.
pub const DEFAULT_WEBHOOK_TIMEOUT_MS: u32 = 5000;
/// A voicemail's longest recording by default.
pub const DEFAULT_VOICEMAIL_SECONDS: u32 = 120;
/// Silence that ends a voicemail by default.
pub const DEFAULT_VOICEMAIL_SILENCE_SECONDS: u32 = 5;

/// Disposition of a call the IVR ended because of a failure with no error branch.
pub const DISPOSITION_ERROR: &str = "ivr_error";
/// Disposition of a call stopped at [`MAX_VISITS`].
pub const DISPOSITION_VISIT_LIMIT: &str = "ivr_visit_limit";

/// What the call is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// No `call_started` yet.
    #[default]
    NotStarted,
    /// Waiting at `node` for what `waiting` says.
    Waiting,
    /// Over (see `ended`).
    Ended,
}

/// What a waiting session needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Waiting {
    /// Digits, speech or a timeout (menu, gather).
    CallerInput,
    /// A webhook result or failure.
    Webhook,
    /// How the transfer ended.
    Transfer,
    /// The recording.
    Voicemail,
}

/// How the IVR part of a call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum EndReason {
    /// An `end_call` node.
    Completed { node_id: String, disposition: Option<String> },
    /// The transfer connected: the call left the IVR.
    Transferred { node_id: String },
    /// A voicemail was left and there was nothing after it.
    VoicemailLeft { node_id: String },
    /// The caller hung up.
    CallerHungUp { node_id: Option<String> },
    /// A failure with nowhere to go, or a node with no way on.
    Error { node_id: Option<String>, message: String },
    /// [`MAX_VISITS`] reached.
    VisitLimit { node_id: String },
}

/// The state of one call in a flow. Serde, so it can ride in the call's events.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    /// Where the call is.
    pub status: SessionStatus,
    /// The node it waits at (the last one entered).
    pub node_id: Option<String>,
    /// What it waits for.
    pub waiting: Option<Waiting>,
    /// Failed attempts (no input, wrong input) at the current node.
    pub attempts: u32,
    /// Nodes entered so far.
    pub visits: u32,
    /// The call's variables (`language` chooses the prompts' language).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub variables: BTreeMap<String, Value>,
    /// How it ended.
    pub ended: Option<EndReason>,
}

impl Session {
    /// The prompts' language.
    pub fn language<'a>(&'a self, flow: &'a Flow) -> &'a str {
        self.variables.get("language").and_then(Value::as_str).unwrap_or(&flow.default_language)
    }
}

/// What is known when a call enters the flow.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct CallStart {
    /// The call.
    pub call_id: Option<String>,
    /// Who calls.
    pub caller_number: Option<String>,
    /// The number called.
    pub called_number: Option<String>,
    /// The caller's language, if known (else the flow's default).
    pub language: Option<String>,
    /// The campaign.
    pub campaign_id: Option<Uuid>,
    /// More variables (contact fields, routing context).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub variables: BTreeMap<String, Value>,
}

/// How a transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TransferOutcome {
    /// Someone (or the AI agent) took the call.
    Connected,
    /// No agent could take it.
    NoAgents,
    /// Nobody took it in time.
    Timeout,
    /// The transfer failed (busy, carrier error).
    Failed,
}

/// Something that happened to the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Input {
    /// The call enters the flow.
    CallStarted(CallStart),
    /// Keys pressed (a trailing `finish_on_key` is dropped; none: as a timeout).
    Digits { digits: String },
    /// Speech recognised.
    Speech {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        confidence: Option<f64>,
    },
    /// Nothing came before the timeout (input, or a transfer's wait).
    Timeout,
    /// The webhook answered.
    WebhookResult {
        status: u16,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        body: Value,
    },
    /// The webhook could not be called (refused host, network, deadline).
    WebhookFailed { reason: String },
    /// How the transfer ended.
    TransferEnded { outcome: TransferOutcome },
    /// The voicemail was recorded.
    VoicemailRecorded {
        #[serde(default)]
        recording_url: Option<String>,
        #[serde(default)]
        duration_seconds: Option<u32>,
    },
    /// The recording failed.
    VoicemailFailed { reason: String },
    /// The caller hung up.
    Hangup,
}

impl Input {
    /// A short, stable name (`digits`, `webhook_result`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CallStarted(_) => "call_started",
            Self::Digits { .. } => "digits",
            Self::Speech { .. } => "speech",
            Self::Timeout => "timeout",
            Self::WebhookResult { .. } => "webhook_result",
            Self::WebhookFailed { .. } => "webhook_failed",
            Self::TransferEnded { .. } => "transfer_ended",
            Self::VoicemailRecorded { .. } => "voicemail_recorded",
            Self::VoicemailFailed { .. } => "voicemail_failed",
            Self::Hangup => "hangup",
        }
    }
}

/// What to say or play.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Prompt {
    /// TTS text, variables filled in.
    pub text: Option<String>,
    /// A recording to play instead.
    pub audio_url: Option<String>,
    /// The text's language.
    pub language: String,
    /// Input may cut it short.
    pub interruptible: bool,
}

/// Where a transfer goes, with what a queue or the AI agent needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransferRequest {
    /// The target.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub target: TransferTarget,
    /// Queue: the strategy (the queue's own when absent).
    pub strategy: Option<Strategy>,
    /// Queue: skill → minimum level.
    pub required_skills: BTreeMap<String, u8>,
    /// Queue: the caller's priority.
    pub priority: Option<i32>,
    /// Queue: the longest wait.
    pub max_wait_seconds: Option<u32>,
    /// Ring or wait deadline.
    pub timeout_seconds: Option<u32>,
    /// The call's variables (the AI agent's instructions get them).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub variables: BTreeMap<String, Value>,
}

/// What the telephony layer must do, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    /// Say or play a prompt.
    Play { node_id: String, prompt: Prompt },
    /// Collect input, saying `prompt` meanwhile (input interrupts it when interruptible);
    /// answer with digits, speech or a timeout.
    Gather {
        node_id: String,
        prompt: Option<Prompt>,
        input_type: InputType,
        /// The most digits (menus: the longest key).
        num_digits: Option<u32>,
        /// Ends input (empty: none).
        finish_on_key: String,
        timeout_seconds: u32,
        inter_digit_timeout: u32,
        /// Phrases speech recognition should expect.
        speech_hints: Vec<String>,
        language: String,
        /// Which try this is (1 = first).
        attempt: u32,
    },
    /// Call a webhook (host checked against the policy first and on redirects); answer with its
    /// result or failure.
    CallWebhook {
        node_id: String,
        url: String,
        method: HttpMethod,
        headers: BTreeMap<String, String>,
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        body: Option<Value>,
        timeout_ms: u32,
    },
    /// Transfer the call; answer with how it ended.
    Transfer { node_id: String, request: TransferRequest },
    /// Record a voicemail (and create a callback task); answer when recorded.
    RecordVoicemail {
        node_id: String,
        prompt: Option<Prompt>,
        max_length_seconds: u32,
        silence_timeout_seconds: u32,
        transcribe: bool,
        create_callback: bool,
    },
    /// Hang up.
    Hangup { node_id: Option<String>, disposition: Option<String> },
}

/// One thing that happened, for the call's events and the flow's analytics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IvrStep {
    /// A node was entered (`visit` counts from 1 over the call).
    NodeEntered { node_id: String, node_type: NodeType, visit: u32 },
    /// A prompt was said or played.
    PromptPlayed { node_id: String, text: Option<String>, audio_url: Option<String>, language: String },
    /// Input arrived and was accepted.
    InputReceived { node_id: String, kind: String, value: String },
    /// Input arrived and matched nothing (`attempt` counts failures at the node).
    InputRejected { node_id: String, kind: String, value: String, attempt: u32 },
    /// No input before the timeout.
    InputTimedOut { node_id: String, attempt: u32 },
    /// The flow left a node by an exit (`option:1`, `next`, `true`, `false`, `timeout`,
    /// `error`, `flow_error`); `to` is where it went (none: the call ends).
    BranchTaken { node_id: String, branch: String, to: Option<String> },
    /// A variable was set.
    VariableSet {
        node_id: String,
        name: String,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        value: Value,
    },
    /// A condition was evaluated (or could not be).
    ConditionEvaluated { node_id: String, result: Option<bool>, error: Option<String> },
    /// A webhook answered or failed.
    WebhookCompleted { node_id: String, ok: bool, status: Option<u16>, error: Option<String> },
    /// A transfer ended without connecting, or connected.
    TransferCompleted { node_id: String, outcome: TransferOutcome },
    /// A voicemail was recorded, or failed.
    VoicemailCompleted { node_id: String, recording_url: Option<String>, error: Option<String> },
    /// An input that the session was not waiting for (kept for the record, changes nothing).
    InputIgnored { node_id: Option<String>, kind: String },
    /// The IVR part of the call ended.
    FlowEnded { reason: EndReason },
}

/// What a step produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepOutcome {
    /// The session after it.
    pub session: Session,
    /// What to do, in order.
    pub effects: Vec<Effect>,
    /// What happened, in order.
    pub steps: Vec<IvrStep>,
}

/// Decides what one input does to a call in a flow.
pub fn step(flow: &Flow, session: &Session, input: Input, now: DateTime<Utc>) -> StepOutcome {
    let mut run = Run { flow, s: session.clone(), effects: Vec::new(), steps: Vec::new(), now };
    run.input(input);
    StepOutcome { session: run.s, effects: run.effects, steps: run.steps }
}

struct Run<'f> {
    flow: &'f Flow,
    s: Session,
    effects: Vec<Effect>,
    steps: Vec<IvrStep>,
    now: DateTime<Utc>,
}

enum Failure {
    NoInput,
    NoMatch(&'static str, String),
}

impl<'f> Run<'f> {
    fn input(&mut self, input: Input) {
        match (self.s.status, input) {
            (SessionStatus::NotStarted, Input::CallStarted(start)) => self.start(start),
            (SessionStatus::Waiting, Input::Hangup) => {
                let node_id = self.s.node_id.clone();
                self.end(EndReason::CallerHungUp { node_id }, false);
            }
            (SessionStatus::Waiting, input) => {
                let node_id = self.s.node_id.clone().unwrap_or_default();
                let node = self.flow.node(&node_id);
                match (self.s.waiting, node) {
                    (Some(waiting), Some(node)) => self.resume(&node_id, node, waiting, input),
                    _ => self.end(
                        EndReason::Error {
                            node_id: Some(node_id),
                            message: "the node the call waited at is gone".into(),
                        },
                        true,
                    ),
                }
            }
            (_, input) => self.ignore(input.kind()),
        }
    }

    fn ignore(&mut self, kind: &str) {
        self.steps.push(IvrStep::InputIgnored { node_id: self.s.node_id.clone(), kind: kind.to_owned() });
    }

    fn start(&mut self, start: CallStart) {
        let mut vars = self.flow.variables.clone();
        vars.extend(start.variables);
        let mut set = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                vars.insert(k.to_owned(), Value::String(v));
            }
        };
        set("call_id", start.call_id);
        set("caller_number", start.caller_number);
        set("called_number", start.called_number);
        set("campaign_id", start.campaign_id.map(|c| c.to_string()));
        let lang = start
            .language
            .map(|l| l.trim().to_ascii_lowercase())
            .filter(|l| self.flow.languages.contains(l) || *l == self.flow.default_language)
            .unwrap_or_else(|| self.flow.default_language.clone());
        vars.insert("language".into(), Value::String(lang));
        self.s.variables = vars;
        let entry = self.flow.entry_node_id.clone();
        self.goto(Some(entry));
    }

    fn end(&mut self, reason: EndReason, hang_up: bool) {
        if hang_up {
            let (node_id, disposition) = match &reason {
                EndReason::Completed { node_id, disposition } => (Some(node_id.clone()), disposition.clone()),
                EndReason::VoicemailLeft { node_id } => (Some(node_id.clone()), Some("voicemail".into())),
                EndReason::VisitLimit { node_id } => {
                    (Some(node_id.clone()), Some(DISPOSITION_VISIT_LIMIT.into()))
                }
                EndReason::Error { node_id, .. } => (node_id.clone(), Some(DISPOSITION_ERROR.into())),
                EndReason::Transferred { .. } | EndReason::CallerHungUp { .. } => (None, None),
            };
            self.effects.push(Effect::Hangup { node_id, disposition });
        }
        self.s.status = SessionStatus::Ended;
        self.s.waiting = None;
        self.s.ended = Some(reason.clone());
        self.steps.push(IvrStep::FlowEnded { reason });
    }

    fn branch(&mut self, node_id: &str, branch: impl Into<String>, to: Option<&String>) -> Option<String> {
        self.steps.push(IvrStep::BranchTaken {
            node_id: node_id.to_owned(),
            branch: branch.into(),
            to: to.cloned(),
        });
        to.cloned()
    }

    /// The error path out of a node: its `error_node`, else the flow's `error_node_id`, else
    /// the end of the call.
    fn fail(&mut self, node_id: &str, node: &Node, message: String) {
        let next = if node.error_node.is_some() {
            self.branch(node_id, "error", node.error_node.as_ref())
        } else if self.flow.error_node_id.is_some() {
            self.branch(node_id, "flow_error", self.flow.error_node_id.as_ref())
        } else {
            self.branch(node_id, "error", None)
        };
        match next {
            Some(_) => self.goto(next),
            None => self.end(EndReason::Error { node_id: Some(node_id.to_owned()), message }, true),
        }
    }

    /// The timeout path: `timeout_node`, else the error path.
    fn time_out(&mut self, node_id: &str, node: &Node, message: String) {
        if node.timeout_node.is_some() {
            let next = self.branch(node_id, "timeout", node.timeout_node.as_ref());
            self.goto(next);
        } else {
            self.fail(node_id, node, message);
        }
    }

    fn prompt(&self, node: &Node, message: Option<&Message>) -> Option<Prompt> {
        let language = self.s.language(self.flow).to_owned();
        let text = message
            .and_then(|m| m.text_for(&language, &self.flow.default_language))
            .map(|t| interpolate(t, &self.s.variables));
        let audio_url = node.audio_url.clone().filter(|a| !a.trim().is_empty());
        let (text, audio_url) = match (node.use_tts, text, audio_url) {
            (true, Some(t), _) => (Some(t), None),
            (_, _, Some(a)) => (None, Some(a)),
            (false, Some(t), None) => (Some(t), None),
            (_, None, None) => return None,
        };
        Some(Prompt { text, audio_url, language, interruptible: node.interruptible })
    }

    fn say(&mut self, node_id: &str, prompt: Prompt) {
        self.steps.push(IvrStep::PromptPlayed {
            node_id: node_id.to_owned(),
            text: prompt.text.clone(),
            audio_url: prompt.audio_url.clone(),
            language: prompt.language.clone(),
        });
        self.effects.push(Effect::Play { node_id: node_id.to_owned(), prompt });
    }

    fn set_var(&mut self, node_id: &str, name: &str, value: Value) {
        self.s.variables.insert(name.to_owned(), value.clone());
        self.steps.push(IvrStep::VariableSet { node_id: node_id.to_owned(), name: name.to_owned(), value });
    }

    /// Enters nodes from `next` until one waits or the call ends.
    fn goto(&mut self, mut next: Option<String>) {
        while let Some(id) = next.take() {
            let Some(node) = self.flow.node(&id) else {
                let message = format!("node `{id}` does not exist");
                self.end(EndReason::Error { node_id: Some(id), message }, true);
                return;
            };
            if self.s.visits >= MAX_VISITS {
                self.end(EndReason::VisitLimit { node_id: id }, true);
                return;
            }
            self.s.visits += 1;
            self.s.node_id = Some(id.clone());
            self.s.waiting = None;
            self.s.attempts = 0;
            self.s.status = SessionStatus::Waiting;
            self.steps.push(IvrStep::NodeEntered {
                node_id: id.clone(),
                node_type: node.node_type,
                visit: self.s.visits,
            });
            match node.node_type {
                NodeType::PlayMessage => {
                    if let Some(p) = self.prompt(node, node.message.as_ref()) {
                        self.say(&id, p);
                    }
                    next = self.follow_next(&id, node);
                }
                NodeType::SetVariable => {
                    if let Some(name) = node.variable_name.as_deref().map(str::trim).filter(|n| !n.is_empty())
                    {
                        let value = interpolate(
                            node.variable_value.as_deref().unwrap_or_default(),
                            &self.s.variables,
                        );
                        self.set_var(&id, name, Value::String(value));
                    }
                    next = self.follow_next(&id, node);
                }
                NodeType::Conditional => {
                    let result = node
                        .condition
                        .as_deref()
                        .ok_or_else(|| "no condition".to_owned())
                        .and_then(|src| condition::parse(src).map_err(|e| e.to_string()))
                        .and_then(|expr| {
                            let ctx = EvalContext {
                                variables: &self.s.variables,
                                now: self.now,
                                zone: self.flow.zone(),
                                schedules: &self.flow.schedules,
                            };
                            condition::evaluate(&expr, &ctx).map_err(|e| e.to_string())
                        });
                    match result {
                        Ok(value) => {
                            self.steps.push(IvrStep::ConditionEvaluated {
                                node_id: id.clone(),
                                result: Some(value),
                                error: None,
                            });
                            let (branch, to) = if value {
                                ("true", node.true_node.as_ref())
                            } else {
                                ("false", node.false_node.as_ref())
                            };
                            next = self.branch(&id, branch, to);
                            if next.is_none() {
                                let message = format!("no `{branch}_node`");
                                self.end(EndReason::Error { node_id: Some(id), message }, true);
                                return;
                            }
                        }
                        Err(error) => {
                            self.steps.push(IvrStep::ConditionEvaluated {
                                node_id: id.clone(),
                                result: None,
                                error: Some(error.clone()),
                            });
                            self.fail(&id, node, error);
                            return;
                        }
                    }
                }
                NodeType::Menu | NodeType::GatherInput => {
                    self.gather(&id, node);
                    return;
                }
                NodeType::Webhook => {
                    self.webhook(&id, node);
                    return;
                }
                NodeType::Transfer => {
                    self.transfer(&id, node);
                    return;
                }
                NodeType::Voicemail => {
                    let prompt = self.prompt(node, node.message.as_ref());
                    self.s.waiting = Some(Waiting::Voicemail);
                    self.effects.push(Effect::RecordVoicemail {
                        node_id: id.clone(),
                        prompt,
                        max_length_seconds: node.max_length_seconds.unwrap_or(DEFAULT_VOICEMAIL_SECONDS),
                        silence_timeout_seconds: node
                            .silence_timeout_seconds
                            .unwrap_or(DEFAULT_VOICEMAIL_SILENCE_SECONDS),
                        transcribe: node.transcribe,
                        create_callback: true,
                    });
                    return;
                }
                NodeType::EndCall => {
                    if let Some(p) = self.prompt(node, node.message.as_ref()) {
                        self.say(&id, p);
                    }
                    self.end(
                        EndReason::Completed { node_id: id, disposition: node.disposition.clone() },
                        true,
                    );
                    return;
                }
            }
        }
    }

    fn follow_next(&mut self, id: &str, node: &Node) -> Option<String> {
        let next = self.branch(id, "next", node.next_node.as_ref());
        if next.is_none() {
            let message = "no `next_node`".to_owned();
            self.end(EndReason::Error { node_id: Some(id.to_owned()), message }, true);
        }
        next
    }

    /// Prompts for input at a menu or gather (on entry and on each retry).
    fn gather(&mut self, id: &str, node: &Node) {
        let prompt = self.prompt(node, node.message.as_ref());
        if let Some(p) = &prompt {
            self.steps.push(IvrStep::PromptPlayed {
                node_id: id.to_owned(),
                text: p.text.clone(),
                audio_url: p.audio_url.clone(),
                language: p.language.clone(),
            });
        }
        let (num_digits, speech_hints) = if node.node_type == NodeType::Menu {
            let longest = node.options.keys().map(|k| k.trim().chars().count() as u32).max();
            let mut hints: Vec<String> = node.options.keys().map(str::to_owned).collect();
            hints.extend(node.option_phrases.values().flatten().cloned());
            (longest, hints)
        } else {
            (node.num_digits, node.valid_inputs.clone())
        };
        self.s.waiting = Some(Waiting::CallerInput);
        self.effects.push(Effect::Gather {
            node_id: id.to_owned(),
            prompt,
            input_type: node.input_type,
            num_digits,
            finish_on_key: node.finish_on_key.trim().to_owned(),
            timeout_seconds: node.timeout_seconds.unwrap_or(self.flow.timeout_seconds),
            inter_digit_timeout: node.inter_digit_timeout.unwrap_or(self.flow.inter_digit_timeout),
            speech_hints: if node.input_type.speech() { speech_hints } else { Vec::new() },
            language: self.s.language(self.flow).to_owned(),
            attempt: self.s.attempts + 1,
        });
    }

    fn webhook(&mut self, id: &str, node: &Node) {
        let vars = &self.s.variables;
        let url = interpolate_with(node.webhook_url.as_deref().unwrap_or_default(), vars, percent_encode);
        let headers = node.webhook_headers.iter().map(|(k, v)| (k.clone(), interpolate(v, vars))).collect();
        let body = match node.webhook_method {
            HttpMethod::Get | HttpMethod::Delete => None,
            _ => Some(match &node.webhook_body {
                Some(template) => fill_json(template, vars),
                None => {
                    let mut m = Map::new();
                    m.insert("variables".into(), Value::Object(vars.clone().into_iter().collect()));
                    Value::Object(m)
                }
            }),
        };
        self.s.waiting = Some(Waiting::Webhook);
        self.effects.push(Effect::CallWebhook {
            node_id: id.to_owned(),
            url,
            method: node.webhook_method,
            headers,
            body,
            timeout_ms: node
                .webhook_timeout_ms
                .unwrap_or(DEFAULT_WEBHOOK_TIMEOUT_MS)
                .clamp(1, DEFAULT_WEBHOOK_TIMEOUT_MS),
        });
    }

    fn transfer(&mut self, id: &str, node: &Node) {
        let to =
            interpolate(node.transfer_to.as_deref().unwrap_or_default(), &self.s.variables).trim().to_owned();
        let target = match node.transfer_type {
            TransferType::Queue if !to.is_empty() => Ok(TransferTarget::Queue { queue: to }),
            TransferType::Agent => Uuid::parse_str(&to)
                .map(|agent_id| TransferTarget::Agent { agent_id })
                .map_err(|_| format!("`{to}` is not an agent id")),
            TransferType::Number if !to.is_empty() => Ok(TransferTarget::Number { number: to }),
            TransferType::AiAgent => Ok(TransferTarget::AiAgent),
            TransferType::Voicemail => Ok(TransferTarget::Voicemail),
            _ => Err("no transfer target".to_owned()),
        };
        match target {
            Ok(target) => {
                self.s.waiting = Some(Waiting::Transfer);
                if let Some(p) = self.prompt(node, node.message.as_ref()) {
                    self.say(id, p);
                }
                let request = TransferRequest {
                    target,
                    strategy: node.strategy,
                    required_skills: node.required_skills.clone(),
                    priority: node.priority,
                    max_wait_seconds: node.max_wait_seconds,
                    timeout_seconds: node.timeout_seconds,
                    variables: self.s.variables.clone(),
                };
                self.effects.push(Effect::Transfer { node_id: id.to_owned(), request });
            }
            Err(message) => {
                self.steps.push(IvrStep::TransferCompleted {
                    node_id: id.to_owned(),
                    outcome: TransferOutcome::Failed,
                });
                self.fail(id, node, message);
            }
        }
    }

    fn resume(&mut self, id: &str, node: &'f Node, waiting: Waiting, input: Input) {
        match (waiting, input) {
            (Waiting::CallerInput, Input::Digits { digits }) => {
                let finish = node.finish_on_key.trim();
                let d = digits.trim();
                let d = if finish.is_empty() { d } else { d.strip_suffix(finish).unwrap_or(d) };
                if d.is_empty() {
                    self.caller_failed(id, node, Failure::NoInput);
                } else if !node.input_type.dtmf() {
                    self.caller_failed(id, node, Failure::NoMatch("digits", d.to_owned()));
                } else {
                    self.caller_input(id, node, "digits", d.to_owned());
                }
            }
            (Waiting::CallerInput, Input::Speech { text, .. }) => {
                let t = text.trim();
                if t.is_empty() {
                    self.caller_failed(id, node, Failure::NoInput);
                } else if !node.input_type.speech() {
                    self.caller_failed(id, node, Failure::NoMatch("speech", t.to_owned()));
                } else {
                    self.caller_input(id, node, "speech", t.to_owned());
                }
            }
            (Waiting::CallerInput, Input::Timeout) => self.caller_failed(id, node, Failure::NoInput),
            (Waiting::Webhook, Input::WebhookResult { status, body }) => {
                let ok = (200..300).contains(&status);
                self.steps.push(IvrStep::WebhookCompleted {
                    node_id: id.to_owned(),
                    ok,
                    status: Some(status),
                    error: (!ok).then(|| format!("status {status}")),
                });
                if ok {
                    for (var, path) in &node.response_mapping {
                        let value = lookup(&body, path).cloned().unwrap_or(Value::Null);
                        self.set_var(id, var, value);
                    }
                    let next = self.follow_next(id, node);
                    self.goto(next);
                } else {
                    self.fail(id, node, format!("webhook answered {status}"));
                }
            }
            (Waiting::Webhook, Input::WebhookFailed { reason }) => {
                self.webhook_failed(id, node, reason);
            }
            (Waiting::Webhook, Input::Timeout) => self.webhook_failed(id, node, "timeout".into()),
            (Waiting::Transfer, Input::TransferEnded { outcome }) => self.transfer_ended(id, node, outcome),
            (Waiting::Transfer, Input::Timeout) => self.transfer_ended(id, node, TransferOutcome::Timeout),
            (Waiting::Voicemail, Input::VoicemailRecorded { recording_url, .. }) => {
                self.voicemail_done(id, node, recording_url)
            }
            (Waiting::Voicemail, Input::Timeout) => self.voicemail_done(id, node, None),
            (Waiting::Voicemail, Input::VoicemailFailed { reason }) => {
                self.steps.push(IvrStep::VoicemailCompleted {
                    node_id: id.to_owned(),
                    recording_url: None,
                    error: Some(reason.clone()),
                });
                self.fail(id, node, reason);
            }
            (_, input) => self.ignore(input.kind()),
        }
    }

    fn webhook_failed(&mut self, id: &str, node: &Node, reason: String) {
        self.steps.push(IvrStep::WebhookCompleted {
            node_id: id.to_owned(),
            ok: false,
            status: None,
            error: Some(reason.clone()),
        });
        self.fail(id, node, format!("webhook failed: {reason}"));
    }

    fn transfer_ended(&mut self, id: &str, node: &Node, outcome: TransferOutcome) {
        self.steps.push(IvrStep::TransferCompleted { node_id: id.to_owned(), outcome });
        match outcome {
            TransferOutcome::Connected => self.end(EndReason::Transferred { node_id: id.to_owned() }, false),
            TransferOutcome::Timeout => self.time_out(id, node, "the transfer timed out".into()),
            TransferOutcome::NoAgents => self.fail(id, node, "no agents".into()),
            TransferOutcome::Failed => self.fail(id, node, "the transfer failed".into()),
        }
    }

    fn voicemail_done(&mut self, id: &str, node: &Node, recording_url: Option<String>) {
        self.steps.push(IvrStep::VoicemailCompleted {
            node_id: id.to_owned(),
            recording_url: recording_url.clone(),
            error: None,
        });
        if let Some(url) = recording_url {
            self.set_var(id, "voicemail_url", Value::String(url));
        }
        if node.next_node.is_some() {
            let next = self.branch(id, "next", node.next_node.as_ref());
            self.goto(next);
        } else {
            self.end(EndReason::VoicemailLeft { node_id: id.to_owned() }, true);
        }
    }

    /// Accepted or rejected input at a menu or gather.
    fn caller_input(&mut self, id: &str, node: &Node, kind: &'static str, value: String) {
        match node.node_type {
            NodeType::Menu => {
                let choice = match kind {
                    "digits" => node.options.iter().find(|(k, _)| k.trim() == value),
                    _ => match_speech(node, &value),
                };
                let Some((key, target)) = choice else {
                    return self.caller_failed(id, node, Failure::NoMatch(kind, value));
                };
                let key = key.trim().to_owned();
                let target = target.clone();
                self.steps.push(IvrStep::InputReceived { node_id: id.to_owned(), kind: kind.into(), value });
                if let Some(name) = node.variable_name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
                    self.set_var(id, name, Value::String(key.clone()));
                }
                let next = self.branch(id, format!("option:{key}"), Some(&target));
                self.goto(next);
            }
            _ => {
                let too_long =
                    kind == "digits" && node.num_digits.is_some_and(|n| value.chars().count() > n as usize);
                let not_keys =
                    kind == "digits" && !value.chars().all(|c| c.is_ascii_digit() || c == '*' || c == '#');
                let listed = node.valid_inputs.is_empty()
                    || node.valid_inputs.iter().any(|v| {
                        if kind == "digits" {
                            v.trim() == value
                        } else {
                            normalize_speech(v) == normalize_speech(&value)
                        }
                    });
                if too_long || not_keys || !listed {
                    return self.caller_failed(id, node, Failure::NoMatch(kind, value));
                }
                self.steps.push(IvrStep::InputReceived {
                    node_id: id.to_owned(),
                    kind: kind.into(),
                    value: value.clone(),
                });
                if let Some(name) = node.variable_name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
                    self.set_var(id, name, Value::String(value));
                }
                let next = self.follow_next(id, node);
                self.goto(next);
            }
        }
    }

    fn caller_failed(&mut self, id: &str, node: &Node, failure: Failure) {
        self.s.attempts += 1;
        let attempt = self.s.attempts;
        let max = node.max_retries.unwrap_or(self.flow.max_retries);
        let retry_message = match &failure {
            Failure::NoInput => {
                self.steps.push(IvrStep::InputTimedOut { node_id: id.to_owned(), attempt });
                node.timeout_message.as_ref().or(self.flow.timeout_message.as_ref())
            }
            Failure::NoMatch(kind, value) => {
                self.steps.push(IvrStep::InputRejected {
                    node_id: id.to_owned(),
                    kind: (*kind).to_owned(),
                    value: value.clone(),
                    attempt,
                });
                node.invalid_input_message.as_ref().or(self.flow.invalid_input_message.as_ref())
            }
        };
        if attempt <= max {
            let language = self.s.language(self.flow).to_owned();
            let text = retry_message
                .and_then(|m| m.text_for(&language, &self.flow.default_language))
                .map(|t| interpolate(t, &self.s.variables));
            if let Some(text) = text {
                // Spoken whatever the node plays, and never cut short: the caller must hear
                // what went wrong.
                self.say(id, Prompt { text: Some(text), audio_url: None, language, interruptible: false });
            }
            self.gather(id, node);
            return;
        }
        match failure {
            Failure::NoInput => self.time_out(id, node, "no input".into()),
            Failure::NoMatch(..) => self.fail(id, node, "no valid input".into()),
        }
    }
}

fn match_speech<'n>(node: &'n Node, text: &str) -> Option<(&'n str, &'n String)> {
    let said = format!(" {} ", normalize_speech(text));
    let hit = |phrase: &str| {
        let p = normalize_speech(phrase);
        !p.is_empty() && said.contains(&format!(" {p} "))
    };
    node.options.iter().find(|(key, _)| {
        hit(key) || node.option_phrases.get(*key).is_some_and(|phrases| phrases.iter().any(|p| hit(p)))
    })
}

/// A value at a dotted path (`data.items.0.id`) in JSON.
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    let path = path.trim().trim_start_matches('$').trim_start_matches('.');
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, |v, part| match v {
        Value::Object(m) => m.get(part),
        Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn fill_json(template: &Value, vars: &BTreeMap<String, Value>) -> Value {
    match template {
        Value::String(s) => {
            // A string that is exactly one `{{var}}` keeps the variable's JSON type.
            let names = condition::template_variables(s);
            let whole = s.trim().strip_prefix("{{").and_then(|r| r.strip_suffix("}}")).map(str::trim);
            match (names.as_slice(), whole) {
                ([one], Some(w)) if *one == w => vars.get(w).cloned().unwrap_or(Value::Null),
                _ => Value::String(interpolate(s, vars)),
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| fill_json(i, vars)).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), fill_json(v, vars))).collect()),
        other => other.clone(),
    }
}
