//! `kraliki bench --only media`: N concurrent calls through the media bridge, audio both ways.
//!
//! Each call is a Twilio-dialect phone leg (a task sending a 20 ms μ-law frame every 20 ms and
//! reading what comes back) bridged by [`kraliki_voice::bridge::Bridge`] to a voice-AI session
//! over a real WebSocket to a local echo provider: an OpenAI Realtime echo (μ-law passed
//! through both ways) or a Gemini Live echo (8 kHz μ-law → 16 kHz PCM in, 24 kHz PCM → 8 kHz
//! μ-law out, so both resamplers run). Every call is a real Call aggregate: the bridge records
//! its stream start, stop and end in the event store.
//!
//! Reported: the latency the bridge adds per frame (reading a phone frame → audio handed to
//! the agent session; agent audio event → phone frame queued), the phone-to-phone round trip
//! through the echo, frames that missed real time, and calls per core = calls / cores used by
//! the whole process (which also runs the phone legs and the echo provider, so the figure is
//! conservative).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use base64::Engine;
use chrono::Utc;
use kraliki_commands::CommandContext;
use kraliki_domain::call::{Call, CallCommand, CallDirection};
use kraliki_voice::ai::{self, GeminiConfig, OpenAiConfig, ProviderConfig, SessionConfig};
use kraliki_voice::bridge::{Bridge, CallSetup, Dialect};
use kraliki_voice::telephony::twilio_media::{
    Connected, TwilioInbound, TwilioMedia, TwilioStart, TwilioStop,
};
use kraliki_voice::telephony::{MediaFormat, Track};
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use uuid::Uuid;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

async fn openai_echo(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        let Message::Text(text) = message else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
        let reply = match v["type"].as_str() {
            Some("session.update") => {
                json!({"type": "session.updated", "event_id": "e", "session": v["session"]})
            }
            Some("input_audio_buffer.append") => {
                json!({"type": "response.output_audio.delta", "event_id": "e",
                "response_id": "r", "item_id": "i", "output_index": 0, "content_index": 0, "delta": v["audio"]})
            }
            _ => continue,
        };
        if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
            break;
        }
    }
}

async fn gemini_echo(mut socket: WebSocket) {
    // 20 ms of a 24 kHz tone, as PCM16 LE: what a model answers with.
    let pcm: Vec<u8> = (0..480)
        .flat_map(|i| {
            (((i as f64 * 440.0 * std::f64::consts::TAU / 24_000.0).sin() * 8000.0) as i16).to_le_bytes()
        })
        .collect();
    let audio = json!({"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": B64.encode(pcm)}}]}}}).to_string();
    while let Some(Ok(message)) = socket.recv().await {
        let text = match message {
            Message::Text(t) => t.to_string(),
            Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
            _ => continue,
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
        let reply = if v.get("setup").is_some() {
            json!({"setupComplete": {}}).to_string()
        } else if v.get("realtimeInput").is_some() {
            audio.clone()
        } else {
            continue;
        };
        if socket.send(Message::Text(reply.into())).await.is_err() {
            break;
        }
    }
}

#[derive(Default)]
struct CallFigures {
    sent: u64,
    received_frames: u64,
    rtt_us: Vec<u32>,
    late: u64,
    inbound_us: Vec<u32>,
    outbound_us: Vec<u32>,
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 per second on Linux).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
            Some((fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn percentile(values: &mut [u32], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_unstable();
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    f64::from(values[rank.min(values.len() - 1)]) / 1000.0
}

async fn one_call(
    app: &crate::Application,
    provider: ProviderConfig,
    seconds: u64,
    index: usize,
) -> anyhow::Result<CallFigures> {
    let state = app.state();
    let tenant = Uuid::nil().to_string();
    let call_id = Uuid::now_v7();
    let ctx = CommandContext::new(tenant.clone(), "system:bench");
    let initiate = CallCommand::InitiateCall {
        direction: CallDirection::Inbound,
        provider: "twilio".into(),
        provider_call_id: Some(format!("CA{index:032}")),
        from: "+14155550123".into(),
        to: "+14155550100".into(),
        campaign_id: None,
        contact_id: None,
        at: Utc::now(),
    };
    state
        .dispatcher
        .execute::<Call>(&call_id.to_string(), initiate, &ctx)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (in_tx, in_rx) = mpsc::channel::<String>(512);
    let (out_tx, mut out_rx) = mpsc::channel::<String>(512);
    let mut bridge = Bridge::new(state.dispatcher.clone());
    bridge.measure = true;
    let session_config = SessionConfig {
        instructions: "echo".into(),
        voice: None,
        language: Some("en".into()),
        tools: vec![],
        greeting: None,
    };
    let running = tokio::spawn(async move {
        bridge
            .run(Dialect::Twilio, in_rx, out_tx, move |_start| async move {
                let session = ai::connect(&provider, &session_config).await.map_err(|e| e.to_string())?;
                Ok(CallSetup { call_id, tenant_id: tenant, contact: None, session })
            })
            .await
    });
    let stream_sid = format!("MZ{index:032}");
    in_tx
        .send(
            TwilioInbound::Connected(Connected { protocol: "Call".into(), version: "1.0.0".into() })
                .to_json(),
        )
        .await?;
    in_tx
        .send(
            TwilioInbound::Start(TwilioStart {
                sequence_number: 1,
                stream_sid: stream_sid.clone(),
                account_sid: "AC0".into(),
                call_sid: format!("CA{index:032}"),
                tracks: vec!["inbound".into()],
                custom_parameters: BTreeMap::new(),
                media_format: MediaFormat {
                    encoding: "audio/x-mulaw".into(),
                    sample_rate: 8000,
                    channels: 1,
                },
            })
            .to_json(),
        )
        .await?;
    let mut figures = CallFigures::default();
    let mut sent_at: HashMap<u16, Instant> = HashMap::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut seq = 1u64;
    loop {
        tokio::select! {
            tick = ticks.tick() => {
                if Instant::now() >= end {
                    break;
                }
                if tick.elapsed() > Duration::from_millis(20) {
                    figures.late += 1;
                }
                seq += 1;
                let frame = (figures.sent % 60_000) as u16;
                let mut payload = vec![0xffu8; 160];
                payload[..2].copy_from_slice(&frame.to_be_bytes());
                let media = TwilioInbound::Media(TwilioMedia {
                    sequence_number: seq, stream_sid: stream_sid.clone(), track: Track::Inbound,
                    chunk: figures.sent + 1, timestamp_ms: figures.sent * 20, payload,
                });
                sent_at.insert(frame, Instant::now());
                figures.sent += 1;
                if in_tx.send(media.to_json()).await.is_err() {
                    break;
                }
            }
            Some(text) = out_rx.recv() => {
                if let Ok(v) = serde_json::from_str::<Value>(&text) {
                    if v["event"] == "media" {
                        figures.received_frames += 1;
                        if let Some(bytes) = v["media"]["payload"].as_str().and_then(|p| B64.decode(p).ok()) {
                            if bytes.len() >= 2 {
                                let frame = u16::from_be_bytes([bytes[0], bytes[1]]);
                                if let Some(at) = sent_at.remove(&frame) {
                                    figures.rtt_us.push(at.elapsed().as_micros().min(u32::MAX as u128) as u32);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    seq += 1;
    let _ = in_tx
        .send(
            TwilioInbound::Stop(TwilioStop {
                sequence_number: seq,
                stream_sid,
                account_sid: "AC0".into(),
                call_sid: String::new(),
            })
            .to_json(),
        )
        .await;
    drop(in_tx);
    while out_rx.recv().await.is_some() {}
    let (_, stats) = running.await?.map_err(|e| anyhow::anyhow!(e))?;
    figures.inbound_us = stats.inbound_us;
    figures.outbound_us = stats.outbound_us;
    Ok(figures)
}

pub async fn run(app: &crate::Application, calls: usize, seconds: u64) -> anyhow::Result<()> {
    let echo = axum::Router::new()
        .route("/v1/realtime", get(|ws: WebSocketUpgrade| async move { ws.on_upgrade(openai_echo) }))
        .route("/gemini", get(|ws: WebSocketUpgrade| async move { ws.on_upgrade(gemini_echo) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, echo).await });
    for (label, goal) in
        [("passthrough", "goal >= 1,000 calls per core"), ("resampling", "goal >= 300 calls per core")]
    {
        let provider = if label == "passthrough" {
            let mut c = OpenAiConfig::new(SecretString::from("bench"));
            c.base_url = format!("ws://{addr}/v1/realtime");
            ProviderConfig::OpenAi(c)
        } else {
            let mut c = GeminiConfig::new(SecretString::from("bench"));
            c.url = format!("ws://{addr}/gemini");
            ProviderConfig::Gemini(c)
        };
        let cpu_before = cpu_seconds();
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(calls);
        let app = Arc::new(app);
        for i in 0..calls {
            let provider = provider.clone();
            let app = app.clone();
            tasks.push(async move { one_call(&app, provider, seconds, i).await });
        }
        let results = futures::future::join_all(tasks).await;
        let wall = started.elapsed().as_secs_f64();
        let cores = (cpu_seconds() - cpu_before) / wall;
        let mut all = CallFigures::default();
        let mut failed = 0;
        for r in results {
            match r {
                Ok(f) => {
                    all.sent += f.sent;
                    all.received_frames += f.received_frames;
                    all.late += f.late;
                    all.rtt_us.extend(f.rtt_us);
                    all.inbound_us.extend(f.inbound_us);
                    all.outbound_us.extend(f.outbound_us);
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(error = %e, "bench call failed");
                }
            }
        }
        println!(
            "media {label}: {calls} calls x {seconds} s, {failed} failed; {} frames in, {} frames out ({} sent late); process used {cores:.2} cores -> {:.0} calls per core ({goal})",
            all.sent, all.received_frames, all.late, calls as f64 / cores.max(0.01)
        );
        println!(
            "  bridge latency per frame: in p50 {:.3} ms p99 {:.3} ms; out p50 {:.3} ms p99 {:.3} ms (goal p99 <= 2 ms); phone round trip via echo p50 {:.2} ms p99 {:.2} ms",
            percentile(&mut all.inbound_us, 50.0), percentile(&mut all.inbound_us, 99.0),
            percentile(&mut all.outbound_us, 50.0), percentile(&mut all.outbound_us, 99.0),
            percentile(&mut all.rtt_us, 50.0), percentile(&mut all.rtt_us, 99.0),
        );
    }
    Ok(())
}
