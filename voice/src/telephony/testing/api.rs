//! Fake Twilio REST and Telnyx Call Control APIs: axum servers on `127.0.0.1:0` that record
//! every request and answer like the real ones (status codes, bodies, error shapes), or with a
//! scripted answer first.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// The body as form fields, in order (repeated names kept).
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// Every value of form field `name`.
    pub fn form_values(&self, name: &str) -> Vec<String> {
        self.form().into_iter().filter(|(k, _)| k == name).map(|(_, v)| v).collect()
    }

    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// An answer to give instead of the normal one.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedResponse {
    pub status: u16,
    pub body: Value,
}

struct Shared<S> {
    requests: Vec<RecordedRequest>,
    script: VecDeque<ScriptedResponse>,
    state: S,
}

type SharedState<S> = Arc<Mutex<Shared<S>>>;

fn lock<S>(shared: &Mutex<Shared<S>>) -> MutexGuard<'_, Shared<S>> {
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running fake server; stops when dropped.
struct Server<S> {
    addr: SocketAddr,
    shared: SharedState<S>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl<S: Send + 'static> Server<S> {
    async fn start(state: S, handle: fn(&mut S, &RecordedRequest) -> (u16, Value)) -> std::io::Result<Self> {
        let shared = Arc::new(Mutex::new(Shared { requests: Vec::new(), script: VecDeque::new(), state }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = Router::new()
            .fallback(
                move |State(shared): State<SharedState<S>>,
                      method: Method,
                      uri: Uri,
                      headers: HeaderMap,
                      body: Bytes| async move {
                    let request = RecordedRequest {
                        method: method.as_str().to_owned(),
                        path: uri.path().to_owned(),
                        query: uri.query().map(str::to_owned),
                        headers: headers
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())
                            })
                            .collect(),
                        body: body.to_vec(),
                    };
                    let mut guard = lock(&shared);
                    guard.requests.push(request.clone());
                    let (status, body) = match guard.script.pop_front() {
                        Some(scripted) => (scripted.status, scripted.body),
                        None => handle(&mut guard.state, &request),
                    };
                    respond(status, body)
                },
            )
            .with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self { addr, shared, shutdown: Some(tx) })
    }

    fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared).requests.clone()
    }

    fn script(&self, status: u16, body: Value) {
        lock(&self.shared).script.push_back(ScriptedResponse { status, body });
    }
}

impl<S> Drop for Server<S> {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn respond(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if body.is_null() {
        return status.into_response();
    }
    (status, Json(body)).into_response()
}

// ---------------------------------------------------------------------------------------------
// Twilio
// ---------------------------------------------------------------------------------------------

/// A call the fake Twilio knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTwilioCall {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub status: String,
    /// Every field of the create request.
    pub params: Vec<(String, String)>,
}

struct TwilioState {
    account_sid: String,
    auth_token: String,
    calls: BTreeMap<String, FakeTwilioCall>,
    next_call: u64,
}

/// A fake `https://api.twilio.com` for one account.
pub struct FakeTwilioApi {
    server: Server<TwilioState>,
}

impl FakeTwilioApi {
    pub async fn start(account_sid: &str, auth_token: &str) -> std::io::Result<Self> {
        let state = TwilioState {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            calls: BTreeMap::new(),
            next_call: 1,
        };
        Ok(Self { server: Server::start(state, twilio_handle).await? })
    }

    /// The base URL to give [`crate::telephony::twilio_rest::TwilioRestClient::with_base_url`].
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// Answers the next request with `status` and `body` (e.g. a Twilio error) instead.
    pub fn respond_next(&self, status: u16, body: Value) {
        self.server.script(status, body);
    }

    pub fn calls(&self) -> Vec<FakeTwilioCall> {
        lock(&self.server.shared).state.calls.values().cloned().collect()
    }

    /// A call arriving at one of the account's numbers: Twilio knows it (and it can be
    /// redirected) before our voice webhook is asked.
    pub fn incoming_call(&self, call_sid: &str, from: &str, to: &str) {
        let call = FakeTwilioCall {
            sid: call_sid.to_owned(),
            to: to.to_owned(),
            from: from.to_owned(),
            status: "in-progress".to_owned(),
            params: Vec::new(),
        };
        lock(&self.server.shared).state.calls.insert(call_sid.to_owned(), call);
    }

    /// Moves a call along, as the network would (e.g. to `in-progress`).
    pub fn set_call_status(&self, call_sid: &str, status: &str) {
        if let Some(call) = lock(&self.server.shared).state.calls.get_mut(call_sid) {
            call.status = status.to_owned();
        }
    }
}

/// Twilio's error body.
pub fn twilio_error(status: u16, code: u32, message: &str) -> (u16, Value) {
    (
        status,
        json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    )
}

fn twilio_handle(state: &mut TwilioState, request: &RecordedRequest) -> (u16, Value) {
    let expected = format!("Basic {}", BASE64.encode(format!("{}:{}", state.account_sid, state.auth_token)));
    if request.header("authorization") != Some(expected.as_str()) {
        return twilio_error(401, 20003, "Authenticate");
    }
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    let not_found =
        || twilio_error(404, 20404, &format!("The requested resource {} was not found", request.path));
    let ["2010-04-01", "Accounts", account, rest @ ..] = segments.as_slice() else {
        return not_found();
    };
    if *account != state.account_sid {
        return not_found();
    }
    match (request.method.as_str(), rest) {
        ("POST", ["Calls.json"]) => twilio_create_call(state, request),
        (method @ ("POST" | "GET"), ["Calls", file]) => {
            let Some(sid) = file.strip_suffix(".json") else { return not_found() };
            let account_sid = state.account_sid.clone();
            let Some(call) = state.calls.get_mut(sid) else { return not_found() };
            if method == "POST" {
                let form = request.form();
                let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
                match field("Status") {
                    Some("completed") => call.status = "completed".to_owned(),
                    Some("canceled") if matches!(call.status.as_str(), "queued" | "ringing") => {
                        call.status = "canceled".to_owned();
                    }
                    Some("canceled") => {}
                    Some(other) => {
                        return twilio_error(400, 21218, &format!("Invalid 'Status' value: {other}"));
                    }
                    None if field("Url").is_none() && field("Twiml").is_none() => {
                        return twilio_error(400, 21205, "Url parameter is required.");
                    }
                    None => {}
                }
            }
            (200, twilio_call_json(&account_sid, call))
        }
        _ => not_found(),
    }
}

fn twilio_create_call(state: &mut TwilioState, request: &RecordedRequest) -> (u16, Value) {
    let form = request.form();
    let field =
        |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    let Some(to) = field("To") else { return twilio_error(400, 21201, "No 'To' number is specified") };
    let Some(from) = field("From") else { return twilio_error(400, 21213, "No 'From' number is specified") };
    if field("Url").is_none() && field("Twiml").is_none() && field("ApplicationSid").is_none() {
        return twilio_error(400, 21205, "Url parameter is required.");
    }
    let sid = format!("CA{:032x}", state.next_call);
    state.next_call += 1;
    let call = FakeTwilioCall { sid: sid.clone(), to, from, status: "queued".to_owned(), params: form };
    let body = twilio_call_json(&state.account_sid, &call);
    state.calls.insert(sid, call);
    (201, body)
}

fn twilio_call_json(account_sid: &str, call: &FakeTwilioCall) -> Value {
    json!({
        "sid": call.sid,
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "to": call.to,
        "to_formatted": call.to,
        "from": call.from,
        "from_formatted": call.from,
        "status": call.status,
        "direction": "outbound-api",
        "parent_call_sid": null,
        "answered_by": null,
        "price": null,
        "uri": format!("/2010-04-01/Accounts/{account_sid}/Calls/{}.json", call.sid),
    })
}

// ---------------------------------------------------------------------------------------------
// Telnyx
// ---------------------------------------------------------------------------------------------

/// A call the fake Telnyx knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTelnyxCall {
    pub call_control_id: String,
    pub call_leg_id: String,
    pub call_session_id: String,
    pub answered: bool,
    pub ended: bool,
}

/// A command the fake Telnyx received for a call.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCommand {
    pub call_control_id: String,
    pub action: String,
    pub command_id: Option<String>,
    pub body: Value,
    /// Telnyx ignores a repeated `command_id` on the same call: this one was ignored.
    pub duplicate: bool,
}

struct TelnyxState {
    api_key: String,
    calls: BTreeMap<String, FakeTelnyxCall>,
    commands: Vec<RecordedCommand>,
    seen: HashSet<(String, String)>,
    next_call: u64,
}

impl TelnyxState {
    fn new_call(&mut self) -> FakeTelnyxCall {
        let n = self.next_call;
        self.next_call += 1;
        let call = FakeTelnyxCall {
            call_control_id: format!("v3:fake-call-{n:08}"),
            call_leg_id: format!("00000000-0000-4000-8000-{n:012}"),
            call_session_id: format!("00000000-0000-4000-9000-{n:012}"),
            answered: false,
            ended: false,
        };
        self.calls.insert(call.call_control_id.clone(), call.clone());
        call
    }
}

/// A fake `https://api.telnyx.com/v2` for one API key.
pub struct FakeTelnyxApi {
    server: Server<TelnyxState>,
}

impl FakeTelnyxApi {
    pub async fn start(api_key: &str) -> std::io::Result<Self> {
        let state = TelnyxState {
            api_key: api_key.to_owned(),
            calls: BTreeMap::new(),
            commands: Vec::new(),
            seen: HashSet::new(),
            next_call: 1,
        };
        Ok(Self { server: Server::start(state, telnyx_handle).await? })
    }

    /// The base URL (with `/v2`) to give
    /// [`crate::telephony::telnyx_control::TelnyxClient::with_base_url`].
    pub fn base_url(&self) -> String {
        format!("http://{}/v2", self.server.addr)
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// Answers the next request with `status` and `body` instead.
    pub fn respond_next(&self, status: u16, body: Value) {
        self.server.script(status, body);
    }

    /// An incoming call, as if `call.initiated` had just been sent for it.
    pub fn incoming_call(&self) -> FakeTelnyxCall {
        lock(&self.server.shared).state.new_call()
    }

    pub fn call(&self, call_control_id: &str) -> Option<FakeTelnyxCall> {
        lock(&self.server.shared).state.calls.get(call_control_id).cloned()
    }

    /// The caller hangs up.
    pub fn end_call(&self, call_control_id: &str) {
        if let Some(call) = lock(&self.server.shared).state.calls.get_mut(call_control_id) {
            call.ended = true;
        }
    }

    pub fn commands(&self) -> Vec<RecordedCommand> {
        lock(&self.server.shared).state.commands.clone()
    }
}

/// Telnyx's error body.
pub fn telnyx_error(status: u16, code: &str, title: &str, detail: &str) -> (u16, Value) {
    (status, json!({ "errors": [{ "code": code, "title": title, "detail": detail }] }))
}

/// Fields each action needs, as the real API validates them.
fn required_fields(action: &str) -> Option<&'static [&'static str]> {
    Some(match action {
        "answer" | "hangup" | "gather" | "streaming_stop" | "record_stop" | "reject" => &[],
        "speak" | "gather_using_speak" => &["payload", "voice"],
        "gather_using_audio" => &["audio_url"],
        "transfer" => &["to"],
        "enqueue" => &["queue_name"],
        "bridge" => &["call_control_id"],
        "record_start" => &["channels", "format"],
        "streaming_start" => &["stream_url"],
        _ => return None,
    })
}

fn missing(object: &Map<String, Value>, fields: &[&str]) -> Option<String> {
    fields
        .iter()
        .find(|f| object.get(**f).is_none_or(|v| v.is_null() || v.as_str().is_some_and(str::is_empty)))
        .map(|f| (*f).to_owned())
}

fn telnyx_handle(state: &mut TelnyxState, request: &RecordedRequest) -> (u16, Value) {
    if request.header("authorization") != Some(format!("Bearer {}", state.api_key).as_str()) {
        return telnyx_error(
            401,
            "10009",
            "Authentication failed",
            "The required authentication headers were either invalid or not included in the request.",
        );
    }
    let not_found = || {
        telnyx_error(404, "10005", "Resource not found", "The requested resource or URL could not be found.")
    };
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    let (method, rest) = match segments.as_slice() {
        ["v2", rest @ ..] => (request.method.as_str(), rest),
        _ => return not_found(),
    };
    if method != "POST" {
        return not_found();
    }
    let Value::Object(body) = request.json() else {
        return telnyx_error(
            400,
            "10015",
            "Bad Request",
            "The request failed because it was not well-formed.",
        );
    };
    let missing_parameter = |field: String| {
        let (status, mut value) = telnyx_error(
            422,
            "10004",
            "Missing required parameter",
            &format!("The '{field}' parameter is required."),
        );
        value["errors"][0]["source"] = json!({ "pointer": format!("/{field}") });
        (status, value)
    };
    match rest {
        ["calls"] => {
            if let Some(field) = missing(&body, &["connection_id", "to", "from"]) {
                return missing_parameter(field);
            }
            let call = state.new_call();
            (
                200,
                json!({ "data": {
                    "call_control_id": call.call_control_id,
                    "call_leg_id": call.call_leg_id,
                    "call_session_id": call.call_session_id,
                    "is_alive": false,
                    "record_type": "call",
                    "client_state": body.get("client_state").cloned().unwrap_or(Value::Null),
                }}),
            )
        }
        ["calls", call_control_id, "actions", action] => {
            let Some(required) = required_fields(action) else { return not_found() };
            let Some(call) = state.calls.get(*call_control_id).cloned() else {
                return telnyx_error(
                    422,
                    "90015",
                    "Invalid Call Control ID",
                    "The call_control_id provided was not valid.",
                );
            };
            if call.ended {
                return telnyx_error(
                    422,
                    "90018",
                    "Call has already ended",
                    "This call is no longer active and can't receive commands.",
                );
            }
            if let Some(field) = missing(&body, required) {
                return missing_parameter(field);
            }
            let command_id = body.get("command_id").and_then(Value::as_str).map(str::to_owned);
            let duplicate = command_id
                .as_ref()
                .is_some_and(|id| !state.seen.insert(((*call_control_id).to_owned(), id.clone())));
            state.commands.push(RecordedCommand {
                call_control_id: (*call_control_id).to_owned(),
                action: (*action).to_owned(),
                command_id,
                body: Value::Object(body.clone()),
                duplicate,
            });
            if !duplicate {
                if let Some(call) = state.calls.get_mut(*call_control_id) {
                    match *action {
                        "answer" => call.answered = true,
                        "hangup" | "reject" => call.ended = true,
                        _ => {}
                    }
                }
            }
            (200, json!({ "data": { "result": "ok" } }))
        }
        _ => not_found(),
    }
}
