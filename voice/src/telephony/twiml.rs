//! TwiML: the XML we answer Twilio's voice webhooks with.
//!
//! Only the verbs the call center uses: `<Connect><Stream>` (a bidirectional media stream to
//! our WebSocket, with `<Parameter>`s that come back in the stream's `start` message), `<Say>`,
//! `<Play>`, `<Pause>`, `<Gather>` and `<Record>` (the IVR), `<Redirect>`, `<Dial>` (transfer)
//! and `<Hangup>`. XML is written and escaped by
//! `quick-xml`; URLs are checked when a verb is built, so a response that exists is valid.

use std::io;

use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;
use url::Url;

/// Why a TwiML verb could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwimlError {
    #[error("{what} must be an absolute {expected} URL, got {url:?}")]
    InvalidUrl { what: &'static str, expected: &'static str, url: String },
}

/// The HTTP method Twilio uses for a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
}

impl HttpMethod {
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// A `<Response>`: verbs Twilio runs in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VoiceResponse {
    verbs: Vec<Verb>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verb {
    Say(Say),
    Play { url: String },
    Gather(Gather),
    Record(Record),
    Pause { length_secs: u32 },
    Connect(Connect),
    Dial(Dial),
    Redirect { url: String, method: Option<HttpMethod> },
    Enqueue { queue: String, wait_url: Option<String> },
    Hangup,
}

impl VoiceResponse {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn say(mut self, say: Say) -> Self {
        self.verbs.push(Verb::Say(say));
        self
    }

    /// `<Play>`: an audio file.
    pub fn play(mut self, url: &str) -> Result<Self, TwimlError> {
        let url = http_url("Play URL", url)?;
        self.verbs.push(Verb::Play { url });
        Ok(self)
    }

    pub fn gather(mut self, gather: Gather) -> Self {
        self.verbs.push(Verb::Gather(gather));
        self
    }

    pub fn record(mut self, record: Record) -> Self {
        self.verbs.push(Verb::Record(record));
        self
    }

    pub fn pause(mut self, length_secs: u32) -> Self {
        self.verbs.push(Verb::Pause { length_secs });
        self
    }

    pub fn connect(mut self, connect: Connect) -> Self {
        self.verbs.push(Verb::Connect(connect));
        self
    }

    pub fn dial(mut self, dial: Dial) -> Self {
        self.verbs.push(Verb::Dial(dial));
        self
    }

    /// `<Enqueue>`: puts the caller in the named queue, where a human agent's `<Dial><Queue>`
    /// picks them up.
    pub fn enqueue(mut self, queue: impl Into<String>) -> Self {
        self.verbs.push(Verb::Enqueue { queue: queue.into(), wait_url: None });
        self
    }

    /// `<Enqueue waitUrl=…>`: the same, with the TwiML the caller hears while waiting fetched
    /// from `wait_url` (Twilio fetches it again each time it has played).
    pub fn enqueue_waiting(mut self, queue: impl Into<String>, wait_url: &str) -> Result<Self, TwimlError> {
        let wait_url = http_url("Enqueue waitUrl", wait_url)?;
        self.verbs.push(Verb::Enqueue { queue: queue.into(), wait_url: Some(wait_url) });
        Ok(self)
    }

    /// Continues the call with the TwiML at `url`.
    pub fn redirect(mut self, url: &str, method: Option<HttpMethod>) -> Result<Self, TwimlError> {
        let url = http_url("Redirect URL", url)?;
        self.verbs.push(Verb::Redirect { url, method });
        Ok(self)
    }

    pub fn hangup(mut self) -> Self {
        self.verbs.push(Verb::Hangup);
        self
    }

    /// The document, with its XML declaration, as Twilio expects it.
    pub fn to_xml(&self) -> String {
        let mut writer = Writer::new(Vec::new());
        // Writing into a Vec cannot fail.
        self.write(&mut writer).expect("writing XML into memory cannot fail");
        // quick-xml writes the UTF-8 of the &strs it was given, so this never replaces anything.
        String::from_utf8_lossy(&writer.into_inner()).into_owned()
    }

    fn write(&self, w: &mut Writer<Vec<u8>>) -> io::Result<()> {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.write_event(Event::Start(BytesStart::new("Response")))?;
        for verb in &self.verbs {
            match verb {
                Verb::Say(say) => say.write(w)?,
                Verb::Play { url } => play(w, url)?,
                Verb::Gather(gather) => gather.write(w)?,
                Verb::Record(record) => record.write(w)?,
                Verb::Pause { length_secs } => {
                    let length = length_secs.to_string();
                    empty(w, "Pause", &[("length", Some(&length))])?;
                }
                Verb::Connect(connect) => connect.write(w)?,
                Verb::Dial(dial) => dial.write(w)?,
                Verb::Redirect { url, method } => {
                    let mut start = BytesStart::new("Redirect");
                    push_attrs(&mut start, &[("method", method.map(HttpMethod::as_str))]);
                    w.write_event(Event::Start(start))?;
                    w.write_event(Event::Text(BytesText::new(&xml_chars(url))))?;
                    w.write_event(Event::End(BytesEnd::new("Redirect")))?;
                }
                Verb::Enqueue { queue, wait_url } => {
                    let mut start = BytesStart::new("Enqueue");
                    push_attrs(&mut start, &[("waitUrl", wait_url.as_deref())]);
                    w.write_event(Event::Start(start))?;
                    w.write_event(Event::Text(BytesText::new(&xml_chars(queue))))?;
                    w.write_event(Event::End(BytesEnd::new("Enqueue")))?;
                }
                Verb::Hangup => empty(w, "Hangup", &[])?,
            }
        }
        w.write_event(Event::End(BytesEnd::new("Response")))
    }
}

/// `<Say>`: text-to-speech.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Say {
    text: String,
    voice: Option<String>,
    language: Option<String>,
    loop_count: Option<u32>,
}

impl Say {
    pub fn new(text: impl Into<String>) -> Self {
        Self { text: text.into(), voice: None, language: None, loop_count: None }
    }

    /// e.g. `Polly.Joanna` or `Google.cs-CZ-Standard-A`.
    pub fn voice(mut self, voice: impl Into<String>) -> Self {
        self.voice = Some(voice.into());
        self
    }

    /// e.g. `en-US`, `es-ES`, `cs-CZ`.
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    pub fn repeat(mut self, times: u32) -> Self {
        self.loop_count = Some(times);
        self
    }

    fn write(&self, w: &mut Writer<Vec<u8>>) -> io::Result<()> {
        let loop_count = self.loop_count.map(|n| n.to_string());
        let mut start = BytesStart::new("Say");
        push_attrs(
            &mut start,
            &[
                ("voice", self.voice.as_deref()),
                ("language", self.language.as_deref()),
                ("loop", loop_count.as_deref()),
            ],
        );
        w.write_event(Event::Start(start))?;
        w.write_event(Event::Text(BytesText::new(&xml_chars(&self.text))))?;
        w.write_event(Event::End(BytesEnd::new("Say")))
    }
}

fn play(w: &mut Writer<Vec<u8>>, url: &str) -> io::Result<()> {
    w.write_event(Event::Start(BytesStart::new("Play")))?;
    w.write_event(Event::Text(BytesText::new(&xml_chars(url))))?;
    w.write_event(Event::End(BytesEnd::new("Play")))
}

/// What a `<Gather>` says or plays while it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    Say(Say),
    Play(String),
}

/// `<Gather>`: collects digits and/or speech and posts them (`Digits`, `SpeechResult`,
/// `Confidence`) to `action`; with `actionOnEmptyResult` an empty result is posted too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gather {
    action: String,
    input: &'static str,
    num_digits: Option<u32>,
    finish_on_key: Option<String>,
    timeout_secs: Option<u32>,
    speech_timeout: Option<String>,
    language: Option<String>,
    hints: Option<String>,
    prompts: Vec<Prompt>,
}

impl Gather {
    /// `input` is `dtmf`, `speech` or `dtmf speech`.
    pub fn new(action: &str, input: &'static str) -> Result<Self, TwimlError> {
        Ok(Self {
            action: http_url("Gather action", action)?,
            input,
            num_digits: None,
            finish_on_key: None,
            timeout_secs: None,
            speech_timeout: None,
            language: None,
            hints: None,
            prompts: Vec::new(),
        })
    }

    pub fn num_digits(mut self, n: u32) -> Self {
        self.num_digits = Some(n);
        self
    }

    /// The key that ends input; empty: none.
    pub fn finish_on_key(mut self, key: impl Into<String>) -> Self {
        self.finish_on_key = Some(key.into());
        self
    }

    /// Seconds of silence before Twilio gives up waiting for input.
    pub fn timeout(mut self, secs: u32) -> Self {
        self.timeout_secs = Some(secs);
        self
    }

    /// Seconds of silence that end speech, or `auto`.
    pub fn speech_timeout(mut self, value: impl Into<String>) -> Self {
        self.speech_timeout = Some(value.into());
        self
    }

    /// The speech recognition language (`en-US`).
    pub fn language(mut self, tag: impl Into<String>) -> Self {
        self.language = Some(tag.into());
        self
    }

    /// Words and phrases recognition should expect.
    pub fn hints(mut self, hints: &[String]) -> Self {
        if !hints.is_empty() {
            self.hints = Some(hints.join(", "));
        }
        self
    }

    pub fn prompt(mut self, prompt: Prompt) -> Self {
        self.prompts.push(prompt);
        self
    }

    fn write(&self, w: &mut Writer<Vec<u8>>) -> io::Result<()> {
        let num_digits = self.num_digits.map(|n| n.to_string());
        let timeout = self.timeout_secs.map(|n| n.to_string());
        let mut start = BytesStart::new("Gather");
        push_attrs(
            &mut start,
            &[
                ("action", Some(&self.action)),
                ("method", Some("POST")),
                ("input", Some(self.input)),
                ("numDigits", num_digits.as_deref()),
                ("finishOnKey", self.finish_on_key.as_deref()),
                ("timeout", timeout.as_deref()),
                ("speechTimeout", self.speech_timeout.as_deref()),
                ("language", self.language.as_deref()),
                ("hints", self.hints.as_deref()),
                ("actionOnEmptyResult", Some("true")),
            ],
        );
        w.write_event(Event::Start(start))?;
        for prompt in &self.prompts {
            match prompt {
                Prompt::Say(say) => say.write(w)?,
                Prompt::Play(url) => play(w, url)?,
            }
        }
        w.write_event(Event::End(BytesEnd::new("Gather")))
    }
}

/// `<Record>`: records the caller (a voicemail) and posts `RecordingUrl` and
/// `RecordingDuration` to `action` when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    action: String,
    max_length_secs: Option<u32>,
    timeout_secs: Option<u32>,
    finish_on_key: Option<String>,
    play_beep: bool,
    recording_status_callback: Option<String>,
}

impl Record {
    pub fn new(action: &str) -> Result<Self, TwimlError> {
        Ok(Self {
            action: http_url("Record action", action)?,
            max_length_secs: None,
            timeout_secs: None,
            finish_on_key: None,
            play_beep: true,
            recording_status_callback: None,
        })
    }

    pub fn max_length(mut self, secs: u32) -> Self {
        self.max_length_secs = Some(secs);
        self
    }

    /// Seconds of silence that end the recording.
    pub fn timeout(mut self, secs: u32) -> Self {
        self.timeout_secs = Some(secs);
        self
    }

    pub fn finish_on_key(mut self, key: impl Into<String>) -> Self {
        self.finish_on_key = Some(key.into());
        self
    }

    /// Where Twilio says the recording is stored and ready.
    pub fn recording_status_callback(mut self, url: &str) -> Result<Self, TwimlError> {
        self.recording_status_callback = Some(http_url("Record recordingStatusCallback", url)?);
        Ok(self)
    }

    fn write(&self, w: &mut Writer<Vec<u8>>) -> io::Result<()> {
        let max_length = self.max_length_secs.map(|n| n.to_string());
        let timeout = self.timeout_secs.map(|n| n.to_string());
        empty(
            w,
            "Record",
            &[
                ("action", Some(&self.action)),
                ("method", Some("POST")),
                ("maxLength", max_length.as_deref()),
                ("timeout", timeout.as_deref()),
                ("finishOnKey", self.finish_on_key.as_deref()),
                ("playBeep", Some(if self.play_beep { "true" } else { "false" })),
                ("recordingStatusCallback", self.recording_status_callback.as_deref()),
            ],
        )
    }
}

/// `<Connect>` with one bidirectional `<Stream>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    stream: Stream,
    action: Option<String>,
    method: Option<HttpMethod>,
}

impl Connect {
    pub fn stream(stream: Stream) -> Self {
        Self { stream, action: None, method: None }
    }

    /// Where Twilio asks for the next TwiML once the stream ends.
    pub fn action(mut self, url: &str, method: Option<HttpMethod>) -> Result<Self, TwimlError> {
        self.action = Some(http_url("Connect action", url)?);
        self.method = method;
        Ok(self)
    }

    fn write(&self, w: &mut Writer<Vec<u8>>) -> io::Result<()> {
        let mut start = BytesStart::new("Connect");
        push_attrs(
            &mut start,
            &[("action", self.action.as_deref()), ("method", self.method.map(HttpMethod::as_str))],
        );
        w.write_event(Event::Start(start))?;
        self.stream.write(w)?;
        w.write_event(Event::End(BytesEnd::new("Connect")))
    }
}

/// `<Stream>`: a media stream to a `wss://` URL, with custom parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    url: String,
    name: Option<String>,
    status_callback: Option<String>,
    status_callback_method: Option<HttpMethod>,
    parameters: Vec<(String, String)>,
}

impl Stream {
    /// `url` must be an absolute `wss://` URL: Twilio streams only over TLS.
    pub fn new(url: &str) -> Result<Self, TwimlError> {
        let parsed = Url::parse(url).ok().filter(|u| u.scheme() == "wss" && u.has_host());
        if parsed.is_none() {
            return Err(TwimlError::InvalidUrl {
                what: "Stream url",
                expected: "wss://",
                url: url.to_owned(),
            });
        }
        Ok(Self {
            url: url.to_owned(),
            name: None,
            status_callback: None,
            status_callback_method: None,
            parameters: Vec::new(),
        })
    }

    /// A name unique within the call, to stop the stream by later.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn status_callback(mut self, url: &str, method: Option<HttpMethod>) -> Result<Self, TwimlError> {
        self.status_callback = Some(http_url("Stream statusCallback", url)?);
        self.status_callback_method = method;
        Ok(self)
    }

    /// A `<Parameter>`: comes back in the `start` message's `customParameters`.
    pub fn parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.push((name.into(), value.into()));
        self
    }

    fn write(&self, w: &mut Writer<Vec<u8>>) -> io::Result<()> {
        let mut start = BytesStart::new("Stream");
        push_attrs(
            &mut start,
            &[
                ("url", Some(&self.url)),
                ("name", self.name.as_deref()),
                ("statusCallback", self.status_callback.as_deref()),
                ("statusCallbackMethod", self.status_callback_method.map(HttpMethod::as_str)),
            ],
        );
        if self.parameters.is_empty() {
            return w.write_event(Event::Empty(start));
        }
        w.write_event(Event::Start(start))?;
        for (name, value) in &self.parameters {
            empty(w, "Parameter", &[("name", Some(name)), ("value", Some(value))])?;
        }
        w.write_event(Event::End(BytesEnd::new("Stream")))
    }
}

/// Who a `<Dial>` calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// A phone number (E.164).
    Number(String),
    /// A SIP URI, e.g. an agent's softphone.
    Sip(String),
    /// A Twilio Client identity.
    Client(String),
    /// A caller waiting in a Twilio queue (`<Enqueue>`d): dialing it bridges them.
    Queue(String),
}

/// `<Dial>`: transfers the caller to another party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    target: DialTarget,
    caller_id: Option<String>,
    timeout_secs: Option<u32>,
    time_limit_secs: Option<u32>,
    answer_on_bridge: Option<bool>,
    action: Option<String>,
    method: Option<HttpMethod>,
}

impl Dial {
    pub fn new(target: DialTarget) -> Self {
        Self {
            target,
            caller_id: None,
            timeout_secs: None,
            time_limit_secs: None,
            answer_on_bridge: None,
            action: None,
            method: None,
        }
    }

    pub fn caller_id(mut self, caller_id: impl Into<String>) -> Self {
        self.caller_id = Some(caller_id.into());
        self
    }

    /// Seconds to ring before giving up.
    pub fn timeout(mut self, secs: u32) -> Self {
        self.timeout_secs = Some(secs);
        self
    }

    pub fn time_limit(mut self, secs: u32) -> Self {
        self.time_limit_secs = Some(secs);
        self
    }

    /// Keeps the caller hearing ringback until the callee answers.
    pub fn answer_on_bridge(mut self, on: bool) -> Self {
        self.answer_on_bridge = Some(on);
        self
    }

    /// Where Twilio reports the outcome (`DialCallStatus`) and asks for the next TwiML.
    pub fn action(mut self, url: &str, method: Option<HttpMethod>) -> Result<Self, TwimlError> {
        self.action = Some(http_url("Dial action", url)?);
        self.method = method;
        Ok(self)
    }

    fn write(&self, w: &mut Writer<Vec<u8>>) -> io::Result<()> {
        let timeout = self.timeout_secs.map(|n| n.to_string());
        let time_limit = self.time_limit_secs.map(|n| n.to_string());
        let answer_on_bridge = self.answer_on_bridge.map(|b| if b { "true" } else { "false" });
        let mut start = BytesStart::new("Dial");
        push_attrs(
            &mut start,
            &[
                ("action", self.action.as_deref()),
                ("method", self.method.map(HttpMethod::as_str)),
                ("callerId", self.caller_id.as_deref()),
                ("timeout", timeout.as_deref()),
                ("timeLimit", time_limit.as_deref()),
                ("answerOnBridge", answer_on_bridge),
            ],
        );
        w.write_event(Event::Start(start))?;
        let (noun, value) = match &self.target {
            DialTarget::Number(n) => ("Number", n),
            DialTarget::Sip(s) => ("Sip", s),
            DialTarget::Client(c) => ("Client", c),
            DialTarget::Queue(q) => ("Queue", q),
        };
        w.write_event(Event::Start(BytesStart::new(noun)))?;
        w.write_event(Event::Text(BytesText::new(&xml_chars(value))))?;
        w.write_event(Event::End(BytesEnd::new(noun)))?;
        w.write_event(Event::End(BytesEnd::new("Dial")))
    }
}

fn http_url(what: &'static str, url: &str) -> Result<String, TwimlError> {
    match Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.has_host() => Ok(url.to_owned()),
        _ => Err(TwimlError::InvalidUrl { what, expected: "http(s)://", url: url.to_owned() }),
    }
}

fn empty(w: &mut Writer<Vec<u8>>, name: &str, attrs: &[(&str, Option<&str>)]) -> io::Result<()> {
    let mut start = BytesStart::new(name);
    push_attrs(&mut start, attrs);
    w.write_event(Event::Empty(start))
}

fn push_attrs(start: &mut BytesStart<'_>, attrs: &[(&str, Option<&str>)]) {
    for (name, value) in attrs {
        if let Some(value) = value {
            start.push_attribute(attribute(name, value));
        }
    }
}

/// An attribute escaped by quick-xml, with tab, newline and carriage return written as
/// character references: a parser normalizes literal ones in attribute values to spaces.
fn attribute<'a>(name: &'a str, value: &str) -> Attribute<'a> {
    let escaped = quick_xml::escape::escape(xml_chars(value).as_ref()).into_owned();
    let escaped = escaped.replace('\t', "&#9;").replace('\n', "&#10;").replace('\r', "&#13;");
    Attribute { key: quick_xml::name::QName(name.as_bytes()), value: escaped.into_bytes().into() }
}

/// `text` with the characters XML 1.0 cannot carry at all (most C0 controls, lone surrogates
/// cannot occur in a `str`, U+FFFE/U+FFFF) replaced by U+FFFD, so the document stays well-formed.
fn xml_chars(text: &str) -> std::borrow::Cow<'_, str> {
    let allowed = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
    if text.chars().all(allowed) {
        std::borrow::Cow::Borrowed(text)
    } else {
        std::borrow::Cow::Owned(text.chars().map(|c| if allowed(c) { c } else { '\u{FFFD}' }).collect())
    }
}
