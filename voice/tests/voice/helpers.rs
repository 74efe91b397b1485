//! Shared test helpers: event collection with deadlines, test tones, and the SDK oracles.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use kraliki_voice::ai::{AgentEvent, AgentSession, SessionConfig, ToolSpec};
use kraliki_voice::audio;
use serde_json::{json, Value};

/// Generous: these are local sockets, but CI machines are slow.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn session_config(greeting: Option<&str>) -> SessionConfig {
    SessionConfig {
        instructions: "You are Kraliki, a polite call-center agent for an online shop.".into(),
        voice: None,
        language: Some("cs-CZ".into()),
        tools: vec![ToolSpec {
            name: "lookup_order".into(),
            description: "Finds an order by its number.".into(),
            parameters: json!({
                "type": "object",
                "properties": { "order_id": { "type": "string", "description": "Order number" } },
                "required": ["order_id"],
                "additionalProperties": false,
            }),
        }],
        greeting: greeting.map(str::to_owned),
    }
}

/// The next event, failing the test if none comes in time.
pub async fn next_event(session: &mut dyn AgentSession) -> AgentEvent {
    match tokio::time::timeout(WAIT, session.next_event()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("the event stream ended"),
        Err(_) => panic!("no event within {WAIT:?}"),
    }
}

/// Events up to and including the first one `last` accepts.
pub async fn events_until(
    session: &mut dyn AgentSession,
    last: impl Fn(&AgentEvent) -> bool,
) -> Vec<AgentEvent> {
    let mut events = Vec::new();
    loop {
        let event = next_event(session).await;
        let done = last(&event);
        events.push(event);
        if done {
            return events;
        }
        assert!(
            !matches!(events.last(), Some(AgentEvent::Closed { .. })),
            "closed before the expected event: {events:?}"
        );
    }
}

/// Waits for `wait` while reading (and dropping) the session's events, as the call bridge
/// does: a session is driven by whoever reads it, keep-alives included.
pub async fn while_reading<T>(
    session: &mut dyn AgentSession,
    wait: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(wait);
    loop {
        tokio::select! {
            found = &mut wait => return found,
            event = session.next_event() => {
                if matches!(event, None | Some(AgentEvent::Closed { .. })) {
                    panic!("the session ended while waiting: {event:?}");
                }
            }
        }
    }
}

/// Concatenated `AudioOut` audio, checking each chunk's `item_id`.
pub fn audio_out(events: &[AgentEvent], expected_item: Option<&str>) -> Vec<u8> {
    let mut ulaw = Vec::new();
    for event in events {
        if let AgentEvent::AudioOut { ulaw_8k, item_id } = event {
            assert_eq!(item_id.as_deref(), expected_item);
            ulaw.extend_from_slice(ulaw_8k);
        }
    }
    ulaw
}

/// A sine tone as PCM16.
pub fn tone(freq_hz: f64, rate_hz: u32, samples: usize, amplitude: f64) -> Vec<i16> {
    (0..samples)
        .map(|n| {
            (amplitude * (2.0 * std::f64::consts::PI * freq_hz * n as f64 / f64::from(rate_hz)).sin()) as i16
        })
        .collect()
}

/// A sine tone as 8 kHz μ-law.
pub fn tone_ulaw(freq_hz: f64, ms: usize) -> Vec<u8> {
    audio::encode_ulaw(&tone(freq_hz, 8_000, ms * 8, 8_000.0))
}

/// Frequency estimated from zero crossings, skipping `skip` samples of filter settling.
pub fn frequency(pcm: &[i16], rate_hz: u32, skip: usize) -> f64 {
    let pcm = &pcm[skip.min(pcm.len())..];
    let crossings = pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f64 / 2.0 / (pcm.len() as f64 / f64::from(rate_hz))
}

pub fn rms(pcm: &[i16]) -> f64 {
    (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len().max(1) as f64).sqrt()
}

/// Which SDK checks a recording with.
#[derive(Debug, Clone, Copy)]
pub enum Oracle {
    OpenAi,
    Gemini,
    Deepgram,
    DeepgramAgent,
}

/// The Python with the provider SDKs. Unset is a failure, as in the e2e tests: an oracle that
/// skips itself silently proves nothing (`scripts/test` sets it).
pub fn test_python() -> String {
    match std::env::var("KRALIKI_TEST_PYTHON") {
        Ok(python) if !python.trim().is_empty() => python,
        _ => panic!(
            "KRALIKI_TEST_PYTHON is not set: run scripts/test, or point it at a Python with openai, google-genai, deepgram-sdk, twilio and telnyx"
        ),
    }
}

/// Runs the SDK oracle script over JSON-line records: whether the script accepted everything,
/// with its output.
pub fn run_oracle(oracle: Oracle, records: &[Value]) -> (bool, String) {
    let python = test_python();
    let script = match oracle {
        Oracle::OpenAi => "check_openai.py",
        Oracle::Gemini => "check_gemini.py",
        Oracle::Deepgram => "check_deepgram.py",
        Oracle::DeepgramAgent => "check_deepgram_agent.py",
    };
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/voice/oracles");
    let mut child = Command::new(&python)
        .arg("-B")
        .arg(format!("{dir}/{script}"))
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let mut input = String::new();
    for record in records {
        input.push_str(&record.to_string());
        input.push('\n');
    }
    child.stdin.take().expect("stdin is piped").write_all(input.as_bytes()).expect("write to the oracle");
    let output = child.wait_with_output().expect("oracle output");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Asserts the oracle accepts `records`, and, to prove it is strict, that it rejects `bad`.
pub fn assert_oracle_accepts(oracle: Oracle, records: &[Value], bad: Value) {
    let (ok, output) = run_oracle(oracle, records);
    assert!(ok, "{oracle:?} SDK oracle rejected our messages:\n{output}");
    let (ok, output) = run_oracle(oracle, &[bad]);
    assert!(!ok, "{oracle:?} SDK oracle accepted a message it should reject:\n{output}");
}

/// Records for the oracle: `direction` + `message`.
pub fn tagged(direction: &str, messages: impl IntoIterator<Item = Value>) -> Vec<Value> {
    messages.into_iter().map(|m| json!({ "direction": direction, "message": m })).collect()
}
