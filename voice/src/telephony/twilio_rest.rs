//! Twilio Programmable Voice REST API: place an outbound call, then redirect or end it.
//!
//! `POST /2010-04-01/Accounts/{AccountSid}/Calls.json` (form-encoded) creates a call and
//! `POST …/Calls/{CallSid}.json` updates it; both authenticate with HTTP basic auth (account
//! SID, auth token). Requests are not retried: Twilio has no idempotency key for creating a
//! call, so a retry after a timeout could ring the callee twice.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::twiml::VoiceResponse;

/// Where the real API lives; tests point the client at a local fake instead.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";
const API_VERSION: &str = "2010-04-01";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// An error Twilio answered with: `{"code", "message", "more_info", "status"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TwilioApiError {
    /// Twilio's error code (e.g. 21211 invalid `To`, 20404 not found), when the body had one.
    #[serde(default)]
    pub code: Option<u32>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub more_info: Option<String>,
    /// The HTTP status, as Twilio repeats it in the body (the response's own status if absent).
    #[serde(default)]
    pub status: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum TwilioRestError {
    #[error("Twilio answered {}: {} (code {:?})", .0.status, .0.message, .0.code)]
    Api(TwilioApiError),
    #[error("request to Twilio failed: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("unexpected Twilio response (HTTP {status}): {source}")]
    Decode {
        status: u16,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid Twilio base URL {0:?}")]
    InvalidBaseUrl(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

/// What Twilio runs when the callee answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallInstructions {
    /// Twilio fetches TwiML from this URL.
    Url(String),
    /// TwiML inline (at most 4,000 characters).
    Twiml(String),
}

impl From<&VoiceResponse> for CallInstructions {
    fn from(response: &VoiceResponse) -> Self {
        Self::Twiml(response.to_xml())
    }
}

/// A `StatusCallbackEvent` Twilio reports to `StatusCallback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallProgressEvent {
    Initiated,
    Ringing,
    Answered,
    Completed,
}

impl CallProgressEvent {
    pub const ALL: [Self; 4] = [Self::Initiated, Self::Ringing, Self::Answered, Self::Completed];

    fn as_str(self) -> &'static str {
        match self {
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::Answered => "answered",
            Self::Completed => "completed",
        }
    }
}

/// Answering machine detection for an outbound call (`MachineDetection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineDetection {
    /// Returns as soon as Twilio knows human or machine (`machine_start`).
    Enable,
    /// Waits for the end of a machine's greeting (`machine_end_beep` / `_silence` / `_other`),
    /// the moment to leave a voicemail.
    DetectMessageEnd,
}

impl MachineDetection {
    fn as_str(self) -> &'static str {
        match self {
            Self::Enable => "Enable",
            Self::DetectMessageEnd => "DetectMessageEnd",
        }
    }
}

/// Parameters of a new outbound call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateCall {
    pub to: String,
    pub from: String,
    pub instructions: CallInstructions,
    pub status_callback: Option<String>,
    pub status_callback_events: Vec<CallProgressEvent>,
    pub machine_detection: Option<MachineDetection>,
    /// With machine detection: run it asynchronously and report `AnsweredBy` to this URL, so
    /// the call is connected (and the TwiML runs) without waiting for detection.
    pub async_amd_status_callback: Option<String>,
    /// Seconds to let the phone ring (Twilio's default is 60).
    pub timeout_secs: Option<u32>,
}

impl CreateCall {
    pub fn new(to: impl Into<String>, from: impl Into<String>, instructions: CallInstructions) -> Self {
        Self {
            to: to.into(),
            from: from.into(),
            instructions,
            status_callback: None,
            status_callback_events: Vec::new(),
            machine_detection: None,
            async_amd_status_callback: None,
            timeout_secs: None,
        }
    }

    /// The form fields, in the order Twilio's own SDK sends them (repeated `StatusCallbackEvent`).
    pub fn form(&self) -> Vec<(&'static str, String)> {
        let mut form = vec![("To", self.to.clone()), ("From", self.from.clone())];
        push_instructions(&mut form, &self.instructions);
        if let Some(url) = &self.status_callback {
            form.push(("StatusCallback", url.clone()));
        }
        for event in &self.status_callback_events {
            form.push(("StatusCallbackEvent", event.as_str().to_owned()));
        }
        if let Some(amd) = self.machine_detection {
            form.push(("MachineDetection", amd.as_str().to_owned()));
        }
        if let Some(url) = &self.async_amd_status_callback {
            form.push(("AsyncAmd", "true".to_owned()));
            form.push(("AsyncAmdStatusCallback", url.clone()));
        }
        if let Some(secs) = self.timeout_secs {
            form.push(("Timeout", secs.to_string()));
        }
        form
    }
}

/// Changes to a call in progress.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateCall {
    /// New TwiML to run now (redirect).
    pub instructions: Option<CallInstructions>,
    /// End the call.
    pub status: Option<EndCall>,
}

/// How to end a call: `canceled` only ends a call that is queued or ringing; `completed`
/// hangs up any call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCall {
    Canceled,
    Completed,
}

impl UpdateCall {
    pub fn form(&self) -> Vec<(&'static str, String)> {
        let mut form = Vec::new();
        if let Some(instructions) = &self.instructions {
            push_instructions(&mut form, instructions);
        }
        if let Some(status) = self.status {
            let status = match status {
                EndCall::Canceled => "canceled",
                EndCall::Completed => "completed",
            };
            form.push(("Status", status.to_owned()));
        }
        form
    }
}

fn push_instructions(form: &mut Vec<(&'static str, String)>, instructions: &CallInstructions) {
    match instructions {
        CallInstructions::Url(url) => form.push(("Url", url.clone())),
        CallInstructions::Twiml(twiml) => form.push(("Twiml", twiml.clone())),
    }
}

/// A call as Twilio describes it (the fields we use; the rest are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallResource {
    pub sid: String,
    pub account_sid: String,
    /// queued, ringing, in-progress, completed, busy, failed, no-answer, canceled.
    pub status: String,
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub parent_call_sid: Option<String>,
    #[serde(default)]
    pub answered_by: Option<String>,
}

/// A client for one Twilio account.
#[derive(Clone)]
pub struct TwilioRestClient {
    http: reqwest::Client,
    base: Url,
    account_sid: String,
    auth_token: SecretString,
}

impl std::fmt::Debug for TwilioRestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioRestClient")
            .field("base", &self.base.as_str())
            .field("account_sid", &self.account_sid)
            .finish_non_exhaustive()
    }
}

impl TwilioRestClient {
    pub fn new(account_sid: impl Into<String>, auth_token: SecretString) -> Result<Self, TwilioRestError> {
        let account_sid = account_sid.into();
        if account_sid.is_empty() {
            return Err(TwilioRestError::InvalidArgument("account SID is empty"));
        }
        let http = reqwest::Client::builder()
            .timeout(DEFAULT_TIMEOUT)
            .build()
            .map_err(TwilioRestError::Transport)?;
        let base = parse_base(DEFAULT_BASE_URL)?;
        Ok(Self { http, base, account_sid, auth_token })
    }

    /// Sends requests to `base_url` instead of [`DEFAULT_BASE_URL`] (tests, regional edges).
    pub fn with_base_url(mut self, base_url: &str) -> Result<Self, TwilioRestError> {
        self.base = parse_base(base_url)?;
        Ok(self)
    }

    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    pub fn account_sid(&self) -> &str {
        &self.account_sid
    }

    /// Places an outbound call.
    pub async fn create_call(&self, call: &CreateCall) -> Result<CallResource, TwilioRestError> {
        if call.to.is_empty() || call.from.is_empty() {
            return Err(TwilioRestError::InvalidArgument("To and From are required"));
        }
        let url = self.url(&["Calls.json"]);
        self.post(url, &call.form()).await
    }

    /// Redirects or ends a call in progress.
    pub async fn update_call(
        &self,
        call_sid: &str,
        update: &UpdateCall,
    ) -> Result<CallResource, TwilioRestError> {
        if call_sid.is_empty() {
            return Err(TwilioRestError::InvalidArgument("call SID is empty"));
        }
        let form = update.form();
        if form.is_empty() {
            return Err(TwilioRestError::InvalidArgument("nothing to update"));
        }
        let url = self.url(&["Calls", &format!("{call_sid}.json")]);
        self.post(url, &form).await
    }

    /// Runs new TwiML on the call now (e.g. a transfer `<Dial>`, or back to the AI stream).
    pub async fn redirect_call(
        &self,
        call_sid: &str,
        instructions: CallInstructions,
    ) -> Result<CallResource, TwilioRestError> {
        self.update_call(call_sid, &UpdateCall { instructions: Some(instructions), status: None }).await
    }

    /// Hangs up (`Status=completed`).
    pub async fn hangup_call(&self, call_sid: &str) -> Result<CallResource, TwilioRestError> {
        self.update_call(call_sid, &UpdateCall { instructions: None, status: Some(EndCall::Completed) }).await
    }

    fn url(&self, tail: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `parse_base` only accepts URLs that can have paths, so this is always `Ok`.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend([API_VERSION, "Accounts", &self.account_sid]).extend(tail);
        }
        url
    }

    async fn post(&self, url: Url, form: &[(&'static str, String)]) -> Result<CallResource, TwilioRestError> {
        let response = self
            .http
            .post(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form)
            .send()
            .await
            .map_err(TwilioRestError::Transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(TwilioRestError::Transport)?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body)
                .map_err(|source| TwilioRestError::Decode { status, source });
        }
        Err(TwilioRestError::Api(api_error(status, &body)))
    }
}

/// Twilio's error body, or what we can say about a body that is not one (a proxy's HTML page).
fn api_error(status: u16, body: &[u8]) -> TwilioApiError {
    match serde_json::from_slice::<TwilioApiError>(body) {
        Ok(mut error) => {
            if error.status == 0 {
                error.status = status;
            }
            error
        }
        Err(_) => TwilioApiError {
            code: None,
            message: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
            more_info: None,
            status,
        },
    }
}

fn parse_base(base: &str) -> Result<Url, TwilioRestError> {
    match Url::parse(base) {
        Ok(url) if matches!(url.scheme(), "https" | "http") && !url.cannot_be_a_base() => Ok(url),
        _ => Err(TwilioRestError::InvalidBaseUrl(base.to_owned())),
    }
}
