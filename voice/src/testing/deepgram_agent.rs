//! Fake Deepgram Voice Agent (`/v1/agent/converse`) and builders for its server messages.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};

use secrecy::SecretString;
use serde_json::{json, Value};

use super::{ClientFrame, FakeServer, Protocol, RequestInfo, Step};
use crate::ai::DeepgramAgentConfig;

/// Agent audio goes out in binary frames of 100 ms of μ-law.
const AUDIO_FRAME_BYTES: usize = 800;

/// A fake Deepgram Voice Agent. By itself it:
/// - refuses connections without `Authorization: Token <API_KEY>` (HTTP 401);
/// - sends `Welcome` on connect;
/// - checks the `Settings` and answers `SettingsApplied`, or an `INVALID_SETTINGS` `Error` and
///   closes (also when told to with [`reject_settings`](Self::reject_settings)); then speaks
///   the greeting, if the settings have one;
/// - speaks each `InjectAgentMessage`;
/// - checks each `FunctionCallResponse` against the client-side calls requested with
///   [`client_function_call`](Self::client_function_call), answering an `Error` when it does
///   not match one;
/// - answers an `Error` to client messages it does not know.
///
/// To "speak" it sends `ConversationText` (assistant), `AgentStartedSpeaking`, the speech
/// (see [`set_speech`](Self::set_speech)) in binary frames, then `AgentAudioDone`. Everything
/// else (caller transcripts, barge-ins, function calls, drops) comes from the script, which
/// starts once the settings are applied.
pub struct FakeDeepgramAgent {
    server: FakeServer,
    state: Arc<AgentState>,
}

impl Deref for FakeDeepgramAgent {
    type Target = FakeServer;

    fn deref(&self) -> &FakeServer {
        &self.server
    }
}

#[derive(Default)]
struct AgentState {
    /// μ-law the fake speaks for the greeting and injected messages.
    speech: Mutex<Vec<u8>>,
    /// `Error` code and description to answer `Settings` with.
    reject: Mutex<Option<(String, String)>>,
    /// Client-side function calls requested and not answered yet: id → name.
    pending: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread may poison the lock; the data stays consistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct AgentProtocol {
    state: Arc<AgentState>,
}

impl AgentProtocol {
    fn on_settings(&self, settings: &Value) -> Vec<Step> {
        let rejection = lock(&self.state.reject)
            .clone()
            .or_else(|| check_settings(settings).err().map(|e| ("INVALID_SETTINGS".to_owned(), e)));
        if let Some((code, description)) = rejection {
            return vec![
                Step::Json(FakeDeepgramAgent::error(&code, &description)),
                Step::close(1008, "invalid settings"),
            ];
        }
        let mut steps = vec![Step::Json(FakeDeepgramAgent::settings_applied())];
        if let Some(greeting) = settings.pointer("/agent/greeting").and_then(Value::as_str) {
            steps.extend(FakeDeepgramAgent::agent_turn(greeting, &lock(&self.state.speech)));
        }
        steps
    }

    fn on_function_call_response(&self, response: &Value) -> Vec<Step> {
        let id = response["id"].as_str().unwrap_or_default();
        let name = response["name"].as_str();
        let problem = {
            let mut pending = lock(&self.state.pending);
            match pending.get(id) {
                None => Some(format!("no client-side function call {id:?} is pending")),
                Some(expected) if Some(expected.as_str()) != name => {
                    Some(format!("call {id:?} is to {expected:?}, not {name:?}"))
                }
                Some(_) if !response["content"].is_string() => Some("content must be a string".to_owned()),
                Some(_) => {
                    pending.remove(id);
                    None
                }
            }
        };
        problem
            .map(|p| vec![Step::Json(FakeDeepgramAgent::error("INVALID_FUNCTION_CALL_RESPONSE", &p))])
            .unwrap_or_default()
    }
}

impl Protocol for AgentProtocol {
    fn authorized(&self, request: &RequestInfo) -> bool {
        request.header("authorization") == Some(&format!("Token {}", FakeDeepgramAgent::API_KEY))
    }

    fn on_connect(&self) -> Vec<Value> {
        vec![FakeDeepgramAgent::welcome("fake-request")]
    }

    fn reply(&self, frame: &ClientFrame) -> Vec<Step> {
        let unparsable =
            |what: String| vec![Step::Json(FakeDeepgramAgent::error("UNPARSABLE_CLIENT_MESSAGE", &what))];
        match frame {
            ClientFrame::Json(msg) => match msg.get("type").and_then(Value::as_str) {
                Some("Settings") => self.on_settings(msg),
                Some("InjectAgentMessage") => match msg["message"].as_str() {
                    Some(text) => FakeDeepgramAgent::agent_turn(text, &lock(&self.state.speech)),
                    None => unparsable("InjectAgentMessage needs a message string".to_owned()),
                },
                Some("FunctionCallResponse") => self.on_function_call_response(msg),
                Some("KeepAlive") => Vec::new(),
                other => unparsable(format!("unknown client message type {other:?}")),
            },
            ClientFrame::Text(text) => unparsable(format!("not JSON: {text:?}")),
            ClientFrame::Binary(_) | ClientFrame::Close(_) => Vec::new(),
        }
    }

    fn awaits_handshake(&self) -> bool {
        true
    }

    fn completes_handshake(&self, frame: &ClientFrame) -> bool {
        frame.json_type() == Some("Settings")
    }

    fn unauthorized_body(&self) -> String {
        json!({ "err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.", "request_id": "fake-request" })
            .to_string()
    }
}

/// What the fake insists on in `Settings` (the SDK oracle checks the exact shapes).
fn check_settings(settings: &Value) -> Result<(), String> {
    let text = |ptr: &str| match settings.pointer(ptr) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.as_str()),
        _ => Err(format!("{ptr} must be a non-empty string")),
    };
    let optional_text = |ptr: &str| match settings.pointer(ptr) {
        None | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(format!("{ptr} must be a string")),
    };
    text("/audio/input/encoding")?;
    settings
        .pointer("/audio/input/sample_rate")
        .and_then(Value::as_u64)
        .ok_or("/audio/input/sample_rate must be an integer")?;
    if let Some(output) = settings.pointer("/audio/output") {
        text("/audio/output/encoding")?;
        if !output["sample_rate"].is_u64() {
            return Err("/audio/output/sample_rate must be an integer".to_owned());
        }
        if let Some(container) = output.get("container") {
            if !["none", "wav", "ogg"].iter().any(|c| container == c) {
                return Err(format!("unknown output container {container}"));
            }
        }
    }
    if settings.pointer("/agent/listen").is_some() && text("/agent/listen/provider/type")? != "deepgram" {
        return Err("/agent/listen/provider/type must be deepgram".to_owned());
    }
    text("/agent/think/provider/type")?;
    text("/agent/think/provider/model")?;
    optional_text("/agent/think/prompt")?;
    if let Some(functions) = settings.pointer("/agent/think/functions") {
        let functions = functions.as_array().ok_or("/agent/think/functions must be an array")?;
        for (i, f) in functions.iter().enumerate() {
            text(&format!("/agent/think/functions/{i}/name"))?;
            optional_text(&format!("/agent/think/functions/{i}/description"))?;
            if f.get("parameters").is_some_and(|p| !p.is_object()) {
                return Err(format!("/agent/think/functions/{i}/parameters must be an object"));
            }
        }
    }
    if text("/agent/speak/provider/type")? == "deepgram" {
        text("/agent/speak/provider/model")?;
    }
    optional_text("/agent/greeting")
}

impl FakeDeepgramAgent {
    /// The key the fake accepts.
    pub const API_KEY: &'static str = "test-fake-deepgram-agent-key";
    /// The path it serves.
    pub const PATH: &'static str = "/v1/agent/converse";

    /// Listens on a free local port; speaks 200 ms of silence until told otherwise.
    pub async fn start() -> std::io::Result<FakeDeepgramAgent> {
        let state = Arc::new(AgentState::default());
        *lock(&state.speech) = vec![0xFF; 1600];
        let server = FakeServer::start(AgentProtocol { state: state.clone() }).await?;
        Ok(FakeDeepgramAgent { server, state })
    }

    /// A client configuration pointing at this fake.
    pub fn config(&self) -> DeepgramAgentConfig {
        let mut cfg = DeepgramAgentConfig::new(SecretString::from(Self::API_KEY));
        cfg.url = self.ws_url(Self::PATH);
        cfg
    }

    /// Sets the μ-law the fake speaks for the greeting and injected messages from now on.
    pub fn set_speech(&self, ulaw: Vec<u8>) {
        *lock(&self.state.speech) = ulaw;
    }

    /// Answers the next `Settings` with this `Error` (and closes), whatever they hold.
    pub fn reject_settings(&self, code: &str, description: &str) {
        *lock(&self.state.reject) = Some((code.to_owned(), description.to_owned()));
    }

    /// A step requesting a client-side function call, which the fake then expects a matching
    /// `FunctionCallResponse` for.
    pub fn client_function_call(&self, id: &str, name: &str, arguments: &Value) -> Step {
        lock(&self.state.pending).insert(id.to_owned(), name.to_owned());
        Step::Json(Self::function_call_request(id, name, &arguments.to_string(), true))
    }

    /// Client-side calls requested and not answered yet: id → name.
    pub fn pending_function_calls(&self) -> HashMap<String, String> {
        lock(&self.state.pending).clone()
    }

    /// The first `Settings` the client sent.
    pub fn settings(&self) -> Option<Value> {
        self.received_json().into_iter().find(|m| m["type"] == "Settings")
    }

    /// All binary audio the client sent, joined.
    pub fn audio_received(&self) -> Vec<u8> {
        self.received()
            .into_iter()
            .filter_map(|f| match f {
                ClientFrame::Binary(b) => Some(b),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The `message` of every `InjectAgentMessage`, in order.
    pub fn injected(&self) -> Vec<String> {
        self.received_json()
            .iter()
            .filter(|m| m["type"] == "InjectAgentMessage")
            .filter_map(|m| m["message"].as_str().map(str::to_owned))
            .collect()
    }

    /// Every `FunctionCallResponse`, in order.
    pub fn function_call_responses(&self) -> Vec<Value> {
        self.received_json().into_iter().filter(|m| m["type"] == "FunctionCallResponse").collect()
    }

    /// The agent saying `text`: `ConversationText`, `AgentStartedSpeaking`, `ulaw` in 100 ms
    /// binary frames, `AgentAudioDone`.
    pub fn agent_turn(text: &str, ulaw: &[u8]) -> Vec<Step> {
        let mut steps = vec![
            Step::Json(Self::conversation_text("assistant", text)),
            Step::Json(Self::agent_started_speaking()),
        ];
        steps.extend(ulaw.chunks(AUDIO_FRAME_BYTES).map(|c| Step::Binary(c.to_vec())));
        steps.push(Step::Json(Self::agent_audio_done()));
        steps
    }

    pub fn welcome(request_id: &str) -> Value {
        json!({ "type": "Welcome", "request_id": request_id })
    }

    pub fn settings_applied() -> Value {
        json!({ "type": "SettingsApplied" })
    }

    /// `role`: `user` or `assistant`.
    pub fn conversation_text(role: &str, content: &str) -> Value {
        json!({ "type": "ConversationText", "role": role, "content": content, "conversational_behavior": "default" })
    }

    pub fn user_started_speaking() -> Value {
        json!({ "type": "UserStartedSpeaking" })
    }

    pub fn agent_thinking(content: &str) -> Value {
        json!({ "type": "AgentThinking", "content": content })
    }

    pub fn agent_started_speaking() -> Value {
        json!({ "type": "AgentStartedSpeaking", "total_latency": 0.75, "tts_latency": 0.25, "ttt_latency": 0.5 })
    }

    pub fn agent_audio_done() -> Value {
        json!({ "type": "AgentAudioDone" })
    }

    /// One function call; `arguments` is the raw JSON string (so tests can send bad ones).
    pub fn function_call_request(id: &str, name: &str, arguments: &str, client_side: bool) -> Value {
        json!({
            "type": "FunctionCallRequest",
            "functions": [{ "id": id, "name": name, "arguments": arguments, "client_side": client_side }],
        })
    }

    pub fn function_call_cancelled(id: &str, name: &str) -> Value {
        json!({ "type": "FunctionCallCancelled", "functions": [{ "id": id, "name": name }] })
    }

    pub fn history(role: &str, content: &str) -> Value {
        json!({ "type": "History", "role": role, "content": content })
    }

    pub fn prompt_updated() -> Value {
        json!({ "type": "PromptUpdated" })
    }

    pub fn speak_updated() -> Value {
        json!({ "type": "SpeakUpdated" })
    }

    pub fn injection_refused(message: &str) -> Value {
        json!({ "type": "InjectionRefused", "message": message })
    }

    pub fn error(code: &str, description: &str) -> Value {
        json!({ "type": "Error", "code": code, "description": description })
    }

    pub fn warning(code: &str, description: &str) -> Value {
        json!({ "type": "Warning", "code": code, "description": description })
    }
}
