//! Deepgram Voice Agent adapter (Voice Agent API v1, `wss://agent.deepgram.com/v1/agent/converse`).
//!
//! Unlike [`deepgram`](super::deepgram), Deepgram runs the whole agent here: it listens
//! (speech-to-text), thinks (an LLM of the configured provider) and speaks (text-to-speech).
//! What it does:
//! - on connect Deepgram sends `Welcome`; we send `Settings` at once (μ-law 8 kHz both ways,
//!   headerless output, so audio passes through untouched; the prompt, the client-side
//!   functions, the voice and the greeting) and wait for `SettingsApplied` (an `Error` instead
//!   rejects the session);
//! - caller audio goes out as binary frames, agent audio comes back as binary frames and
//!   becomes [`AgentEvent::AudioOut`], each agent turn with its own `item_id` so the bridge can
//!   track what was played; `AgentAudioDone` ends the turn ([`AgentEvent::ResponseDone`]);
//! - `UserStartedSpeaking` is the barge-in ([`AgentEvent::SpeechStarted`]); Deepgram stops
//!   its own speech, so [`truncate`](AgentSession::truncate) is a no-op;
//! - `ConversationText` becomes final [`AgentEvent::Transcript`]s for both sides;
//! - client-side `FunctionCallRequest`s become [`AgentEvent::ToolCall`]s, answered with
//!   `FunctionCallResponse`; [`say`](AgentSession::say) is `InjectAgentMessage`;
//! - a `KeepAlive` goes out whenever nothing was sent for a while.
//!
//! Message shapes follow `deepgram-sdk`'s `deepgram.agent.v1` types, which the tests use as
//! an oracle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::link::{self, Link, Parser};
use super::{codes, error_event, AgentEvent, AgentSession, AiError, Provider, SessionConfig, Speaker};

const PROVIDER: Provider = Provider::Deepgram;

/// Credentials, endpoint and models for the Deepgram Voice Agent.
#[derive(Debug, Clone)]
pub struct DeepgramAgentConfig {
    pub api_key: SecretString,
    /// WebSocket endpoint; tests point it at a local fake.
    pub url: String,
    /// LLM provider type (`agent.think.provider.type`), e.g. `open_ai`, `anthropic`, `google`.
    pub think_provider: String,
    /// LLM model (`agent.think.provider.model`).
    pub think_model: String,
    /// Speech-to-text model (`agent.listen.provider.model`): a Nova model (listen provider v1).
    pub listen_model: String,
    /// Text-to-speech model (the voice) used when [`SessionConfig::voice`] is not set.
    pub speak_model: String,
    /// Send `KeepAlive` when nothing went out for this long.
    pub keepalive_every: Duration,
    pub connect_timeout: Duration,
}

impl DeepgramAgentConfig {
    pub const DEFAULT_URL: &'static str = "wss://agent.deepgram.com/v1/agent/converse";

    pub fn new(api_key: SecretString) -> Self {
        Self {
            api_key,
            url: Self::DEFAULT_URL.to_owned(),
            think_provider: "open_ai".to_owned(),
            think_model: "gpt-4o-mini".to_owned(),
            listen_model: "nova-3".to_owned(),
            speak_model: "aura-2-thalia-en".to_owned(),
            keepalive_every: Duration::from_secs(5),
            connect_timeout: super::DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// The `Settings` message that configures a call: μ-law 8 kHz in and out (no container), the
/// listen / think / speak providers, the prompt, the client-side functions and the greeting.
///
/// The language goes to `agent.listen.provider.language`: the SDK marks `agent.language`
/// deprecated in favour of the providers' own fields, and Deepgram's TTS voices imply theirs.
pub fn settings(cfg: &DeepgramAgentConfig, session: &SessionConfig) -> Value {
    let mut listen = json!({ "version": "v1", "type": "deepgram", "model": cfg.listen_model });
    if let Some(language) = &session.language {
        listen["language"] = json!(language);
    }
    let mut think = json!({ "provider": { "type": cfg.think_provider, "model": cfg.think_model } });
    if !session.instructions.is_empty() {
        think["prompt"] = json!(session.instructions);
    }
    if !session.tools.is_empty() {
        // No `endpoint`: Deepgram asks us to run them (`client_side: true`).
        let functions: Vec<Value> = session
            .tools
            .iter()
            .map(|t| json!({ "name": t.name, "description": t.description, "parameters": t.parameters }))
            .collect();
        think["functions"] = json!(functions);
    }
    let voice = session.voice.as_deref().unwrap_or(&cfg.speak_model);
    let mut agent = json!({
        "listen": { "provider": listen },
        "think": think,
        "speak": { "provider": { "type": "deepgram", "model": voice } },
    });
    if let Some(greeting) = &session.greeting {
        agent["greeting"] = json!(greeting);
    }
    json!({
        "type": "Settings",
        "audio": {
            "input": { "encoding": "mulaw", "sample_rate": 8000 },
            "output": { "encoding": "mulaw", "sample_rate": 8000, "container": "none" },
        },
        "agent": agent,
    })
}

/// Function names by call id: `FunctionCallResponse` repeats the name.
type PendingCalls = Arc<Mutex<HashMap<String, String>>>;

/// A live Deepgram Voice Agent conversation.
pub struct DeepgramAgentSession {
    link: Link,
    pending_calls: PendingCalls,
}

impl DeepgramAgentSession {
    /// Connects, sends `Settings` and waits for `SettingsApplied`. Deepgram speaks the greeting
    /// (part of the settings) by itself.
    pub async fn connect(cfg: &DeepgramAgentConfig, session: &SessionConfig) -> Result<Self, AiError> {
        let auth = format!("Token {}", cfg.api_key.expose_secret());
        let mut ws = link::open(PROVIDER, &cfg.url, &[("authorization", &auth)], cfg.connect_timeout).await?;
        link::send_json_raw(PROVIDER, &mut ws, &settings(cfg, session)).await?;
        let earlier = link::handshake(PROVIDER, &mut ws, cfg.connect_timeout, |frame| {
            let msg: Value = serde_json::from_slice(frame).ok()?;
            match msg.get("type").and_then(Value::as_str)? {
                "SettingsApplied" => Some(Ok(())),
                "Error" => {
                    let code = msg["code"].as_str().unwrap_or("error");
                    let description = msg["description"].as_str().unwrap_or("unknown error");
                    Some(Err(format!("{code}: {description}")))
                }
                _ => None, // Welcome; warnings become error events once the call runs
            }
        })
        .await?;
        let pending_calls = PendingCalls::default();
        let parser = AgentParser { turns: 0, speaking: None, pending_calls: pending_calls.clone() };
        let keepalive = Message::text(json!({ "type": "KeepAlive" }).to_string());
        let link = Link::spawn(PROVIDER, ws, earlier, parser, Some((cfg.keepalive_every, keepalive)));
        Ok(Self { link, pending_calls })
    }
}

#[async_trait]
impl AgentSession for DeepgramAgentSession {
    fn provider(&self) -> Provider {
        self.link.provider()
    }

    async fn send_audio(&mut self, ulaw_8k: &[u8]) -> Result<(), AiError> {
        if ulaw_8k.is_empty() {
            return Ok(());
        }
        self.link.send(Message::binary(ulaw_8k.to_vec())).await
    }

    /// `InjectAgentMessage`: the agent says `text` as is. Deepgram refuses it while the caller
    /// or the agent is mid-turn; that arrives as an `injection_refused` error event.
    async fn say(&mut self, text: &str) -> Result<(), AiError> {
        self.link.send_json(&json!({ "type": "InjectAgentMessage", "message": text })).await
    }

    /// `FunctionCallResponse` with the result as a JSON string (a string result as is).
    async fn send_tool_result(&mut self, call_id: &str, result: Value) -> Result<(), AiError> {
        let name = self.pending_calls.lock().ok().and_then(|mut calls| calls.remove(call_id));
        let Some(name) = name else {
            return Err(AiError::Unsupported {
                provider: PROVIDER,
                what: "answer a function call that is not pending (unknown, answered or cancelled)",
            });
        };
        let content = match result {
            Value::String(s) => s,
            other => other.to_string(),
        };
        self.link
            .send_json(
                &json!({ "type": "FunctionCallResponse", "id": call_id, "name": name, "content": content }),
            )
            .await
    }

    async fn truncate(&mut self, _item_id: &str, _audio_end_ms: u32) -> Result<(), AiError> {
        // Deepgram stops its own speech when it reports `UserStartedSpeaking`.
        Ok(())
    }

    async fn next_event(&mut self) -> Option<AgentEvent> {
        self.link.next_event().await
    }

    async fn close(&mut self) -> Result<(), AiError> {
        self.link.close(Vec::new(), false).await;
        Ok(())
    }
}

/// The server messages we act on; `Welcome`, `SettingsApplied`, `AgentThinking`, `History`,
/// the `…Updated` confirmations, latency reports and anything new are ignored.
#[derive(Deserialize)]
#[serde(tag = "type")]
enum ServerMessage {
    UserStartedSpeaking {},
    AgentStartedSpeaking {},
    AgentAudioDone {},
    ConversationText {
        role: String,
        content: String,
    },
    FunctionCallRequest {
        functions: Vec<FunctionCall>,
    },
    FunctionCallCancelled {
        functions: Vec<CancelledCall>,
    },
    InjectionRefused {
        message: Option<String>,
    },
    Error {
        code: Option<String>,
        description: Option<String>,
    },
    Warning {
        code: Option<String>,
        description: Option<String>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct FunctionCall {
    id: String,
    name: String,
    arguments: String,
    client_side: bool,
}

#[derive(Deserialize)]
struct CancelledCall {
    id: String,
}

struct AgentParser {
    /// Agent turns started so far; turn `n` is item `agent_turn_n`.
    turns: u64,
    /// The item of the turn being spoken, if any.
    speaking: Option<String>,
    pending_calls: PendingCalls,
}

impl AgentParser {
    fn start_turn(&mut self) -> String {
        self.turns += 1;
        let item = format!("agent_turn_{}", self.turns);
        self.speaking = Some(item.clone());
        item
    }

    fn function_calls(&mut self, functions: Vec<FunctionCall>, out: &mut Vec<AgentEvent>) {
        for call in functions {
            if !call.client_side {
                continue; // Deepgram runs server-side functions itself
            }
            // A function without parameters may come with no arguments at all.
            let raw = if call.arguments.trim().is_empty() { "{}" } else { call.arguments.as_str() };
            match serde_json::from_str::<Value>(raw) {
                Ok(arguments @ Value::Object(_)) => {
                    if let Ok(mut calls) = self.pending_calls.lock() {
                        calls.insert(call.id.clone(), call.name.clone());
                    }
                    out.push(AgentEvent::ToolCall { call_id: call.id, name: call.name, arguments });
                }
                _ => out.push(error_event(
                    codes::BAD_TOOL_ARGUMENTS,
                    format!(
                        "call {} to {}: arguments are not a JSON object: {}",
                        call.id, call.name, call.arguments
                    ),
                )),
            }
        }
    }
}

impl Parser for AgentParser {
    fn text(&mut self, text: &str, out: &mut Vec<AgentEvent>) {
        let msg: ServerMessage = match serde_json::from_str(text) {
            Ok(msg) => msg,
            Err(e) => {
                out.push(error_event(
                    codes::MALFORMED_FRAME,
                    format!("unusable Deepgram agent message: {e}"),
                ));
                return;
            }
        };
        match msg {
            ServerMessage::UserStartedSpeaking {} => {
                self.speaking = None;
                out.push(AgentEvent::SpeechStarted);
            }
            ServerMessage::AgentStartedSpeaking {} => {
                self.start_turn();
            }
            ServerMessage::AgentAudioDone {} => {
                self.speaking = None;
                out.push(AgentEvent::ResponseDone);
            }
            ServerMessage::ConversationText { role, content } => {
                let speaker = match role.as_str() {
                    "user" => Speaker::Caller,
                    "assistant" => Speaker::Agent,
                    _ => return,
                };
                out.push(AgentEvent::Transcript { speaker, text: content, is_final: true });
            }
            ServerMessage::FunctionCallRequest { functions } => self.function_calls(functions, out),
            ServerMessage::FunctionCallCancelled { functions } => {
                let call_ids: Vec<String> = functions.into_iter().map(|f| f.id).collect();
                if let Ok(mut calls) = self.pending_calls.lock() {
                    for id in &call_ids {
                        calls.remove(id);
                    }
                }
                out.push(AgentEvent::ToolCallsCancelled { call_ids });
            }
            ServerMessage::InjectionRefused { message } => out.push(error_event(
                codes::INJECTION_REFUSED,
                message.unwrap_or_else(|| "the agent message was not spoken".to_owned()),
            )),
            ServerMessage::Error { code, description } => out.push(AgentEvent::Error {
                code: code.unwrap_or_else(|| "error".to_owned()),
                message: description.unwrap_or_default(),
            }),
            ServerMessage::Warning { code, description } => out.push(AgentEvent::Error {
                code: code.unwrap_or_else(|| "warning".to_owned()),
                message: description.unwrap_or_default(),
            }),
            ServerMessage::Other => {}
        }
    }

    /// Agent speech: headerless 8 kHz μ-law, as the settings asked.
    fn binary(&mut self, data: &[u8], out: &mut Vec<AgentEvent>) {
        if data.is_empty() {
            return;
        }
        let item = match &self.speaking {
            Some(item) => item.clone(),
            None => self.start_turn(), // audio without `AgentStartedSpeaking` first
        };
        out.push(AgentEvent::AudioOut { ulaw_8k: data.to_vec(), item_id: Some(item) });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ai::ToolSpec;

    fn parser() -> AgentParser {
        AgentParser { turns: 0, speaking: None, pending_calls: PendingCalls::default() }
    }

    fn parse(p: &mut AgentParser, frame: &str) -> Vec<AgentEvent> {
        let mut out = Vec::new();
        p.text(frame, &mut out);
        out
    }

    fn audio(p: &mut AgentParser, data: &[u8]) -> Vec<AgentEvent> {
        let mut out = Vec::new();
        p.binary(data, &mut out);
        out
    }

    #[test]
    fn settings_ask_for_mulaw_8k_both_ways_and_carry_the_agent() {
        let cfg = DeepgramAgentConfig::new(SecretString::from("k"));
        let session = SessionConfig {
            instructions: "Be brief.".into(),
            voice: Some("aura-2-odysseus-en".into()),
            language: Some("en".into()),
            tools: vec![ToolSpec {
                name: "f".into(),
                description: "d".into(),
                parameters: json!({ "type": "object" }),
            }],
            greeting: Some("Hi".into()),
        };
        assert_eq!(
            settings(&cfg, &session),
            json!({
                "type": "Settings",
                "audio": {
                    "input": { "encoding": "mulaw", "sample_rate": 8000 },
                    "output": { "encoding": "mulaw", "sample_rate": 8000, "container": "none" },
                },
                "agent": {
                    "listen": { "provider": { "version": "v1", "type": "deepgram", "model": "nova-3", "language": "en" } },
                    "think": {
                        "provider": { "type": "open_ai", "model": "gpt-4o-mini" },
                        "prompt": "Be brief.",
                        "functions": [{ "name": "f", "description": "d", "parameters": { "type": "object" } }],
                    },
                    "speak": { "provider": { "type": "deepgram", "model": "aura-2-odysseus-en" } },
                    "greeting": "Hi",
                },
            })
        );
        let bare = settings(&cfg, &SessionConfig::default());
        assert_eq!(
            bare["agent"]["think"],
            json!({ "provider": { "type": "open_ai", "model": "gpt-4o-mini" } })
        );
        assert_eq!(bare["agent"]["speak"]["provider"]["model"], "aura-2-thalia-en");
        assert!(bare["agent"].get("greeting").is_none());
        assert!(bare["agent"]["listen"]["provider"].get("language").is_none());
    }

    #[test]
    fn each_agent_turn_gets_its_own_item() {
        let mut p = parser();
        assert!(parse(
            &mut p,
            r#"{"type":"AgentStartedSpeaking","total_latency":0.5,"tts_latency":0.1,"ttt_latency":0.4}"#
        )
        .is_empty());
        assert_eq!(
            audio(&mut p, &[0xFF, 0x7F]),
            [AgentEvent::AudioOut { ulaw_8k: vec![0xFF, 0x7F], item_id: Some("agent_turn_1".into()) }]
        );
        assert!(audio(&mut p, &[]).is_empty());
        assert_eq!(parse(&mut p, r#"{"type":"UserStartedSpeaking"}"#), [AgentEvent::SpeechStarted]);
        // Audio after a barge-in without a new `AgentStartedSpeaking` is a new turn too.
        assert_eq!(
            audio(&mut p, &[1]),
            [AgentEvent::AudioOut { ulaw_8k: vec![1], item_id: Some("agent_turn_2".into()) }]
        );
        assert_eq!(parse(&mut p, r#"{"type":"AgentAudioDone"}"#), [AgentEvent::ResponseDone]);
        assert_eq!(
            audio(&mut p, &[2]),
            [AgentEvent::AudioOut { ulaw_8k: vec![2], item_id: Some("agent_turn_3".into()) }]
        );
    }

    #[test]
    fn client_side_function_calls_become_tool_calls() {
        let mut p = parser();
        let events = parse(
            &mut p,
            r#"{"type":"FunctionCallRequest","functions":[
                {"id":"a","name":"f","arguments":"{\"x\":1}","client_side":true},
                {"id":"b","name":"server","arguments":"{}","client_side":false},
                {"id":"c","name":"g","arguments":"","client_side":true},
                {"id":"d","name":"h","arguments":"[1","client_side":true}]}"#,
        );
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(
            events[0],
            AgentEvent::ToolCall { call_id: "a".into(), name: "f".into(), arguments: json!({ "x": 1 }) }
        );
        assert_eq!(
            events[1],
            AgentEvent::ToolCall { call_id: "c".into(), name: "g".into(), arguments: json!({}) }
        );
        assert!(matches!(&events[2], AgentEvent::Error { code, .. } if code == codes::BAD_TOOL_ARGUMENTS));
        let pending = p.pending_calls.lock().unwrap().clone();
        assert_eq!(pending, HashMap::from([("a".into(), "f".into()), ("c".into(), "g".into())]));
        assert_eq!(
            parse(&mut p, r#"{"type":"FunctionCallCancelled","functions":[{"id":"a","name":"f"}]}"#),
            [AgentEvent::ToolCallsCancelled { call_ids: vec!["a".into()] }]
        );
        assert!(!p.pending_calls.lock().unwrap().contains_key("a"));
    }

    #[test]
    fn bad_frames_become_error_events_and_unknown_ones_are_ignored() {
        let mut p = parser();
        let code = |events: Vec<AgentEvent>| match events.as_slice() {
            [AgentEvent::Error { code, .. }] => code.clone(),
            other => panic!("expected one error, got {other:?}"),
        };
        assert_eq!(code(parse(&mut p, "{not json")), codes::MALFORMED_FRAME);
        assert_eq!(
            code(parse(&mut p, r#"{"type":"ConversationText","role":"user"}"#)),
            codes::MALFORMED_FRAME
        );
        assert_eq!(code(parse(&mut p, r#"{"type":"FunctionCallRequest"}"#)), codes::MALFORMED_FRAME);
        assert_eq!(code(parse(&mut p, r#"{"no_type":1}"#)), codes::MALFORMED_FRAME);
        assert_eq!(
            code(parse(&mut p, r#"{"type":"InjectionRefused","message":"busy"}"#)),
            codes::INJECTION_REFUSED
        );
        assert_eq!(
            parse(&mut p, r#"{"type":"Warning","code":"SLOW","description":"d"}"#),
            [AgentEvent::Error { code: "SLOW".into(), message: "d".into() }]
        );
        for ignored in [
            r#"{"type":"Welcome","request_id":"r"}"#,
            r#"{"type":"SettingsApplied"}"#,
            r#"{"type":"AgentThinking","content":"hmm"}"#,
            r#"{"type":"History","role":"user","content":"x"}"#,
            r#"{"type":"PromptUpdated"}"#,
            r#"{"type":"SpeakUpdated"}"#,
            r#"{"type":"ConversationText","role":"narrator","content":"x"}"#,
            r#"{"type":"SomethingNew","x":[1]}"#,
        ] {
            assert!(parse(&mut p, ignored).is_empty(), "{ignored}");
        }
    }
}
