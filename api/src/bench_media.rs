//! `kraliki bench --only media`: N concurrent calls through the media bridge, audio both ways.
//!
//! Three processes: the server (this one, serving `/api/telephony/twilio/media`), a load
//! generator (`kraliki bench-phones`: N Twilio Media Stream legs over real WebSockets, each
//! sending a 20 ms μ-law frame every 20 ms and reading what comes back) and an echo provider
//! (`kraliki bench-echo`). Each call is bridged by [`kraliki_voice::bridge::Bridge`] to a
//! voice-AI session over a real WebSocket to the echo provider: an OpenAI Realtime echo (μ-law passed
//! through both ways) or a Gemini Live echo (8 kHz μ-law → 16 kHz PCM in, 24 kHz PCM → 8 kHz
//! μ-law out, so both resamplers run). Every call is a real Call aggregate: the bridge records
//! its stream start, stop and end in the event store.
//!
//! Reported: the latency the bridge adds per frame (reading a phone frame → audio handed to
//! the agent session; agent audio event → phone frame queued), the phone-to-phone round trip
//! through the echo, frames that missed real time, and calls per core = calls / cores used by
//! the server process alone (the other two report their CPU apart; on this 2-core machine all
//! three share the cores).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use base64::Engine;
use chrono::Utc;
use kraliki_commands::CommandContext;
use kraliki_domain::call::{Call, CallCommand, CallDirection};
use kraliki_voice::telephony::twilio_media::{
    Connected, TwilioInbound, TwilioMedia, TwilioOutbound, TwilioStart, TwilioStop,
};
use kraliki_voice::telephony::{MediaFormat, Track};
use secrecy::SecretString;
use serde_json::{json, Value};
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

/// The value of the first `"key":"…"` string in a JSON text (base64 and ids only: no escapes).
fn json_str<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(key)? + key.len();
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

/// The baseline: the least a bridge can do with the same sockets and frames. One task per call
/// copies the phone's payload into an OpenAI `append` and the echo's `delta` into a Twilio
/// `media`, with string search instead of JSON parsing, and no marks, events or bookkeeping.
async fn relay(mut phone: WebSocket, echo_url: String) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(kraliki_voice::ai::MEDIA_READ_BUFFER);
    let Ok((mut echo, _)) =
        tokio_tungstenite::connect_async_with_config(echo_url.as_str(), Some(config), true).await
    else {
        return;
    };
    let mut stream_sid = String::new();
    loop {
        tokio::select! {
            message = phone.recv() => {
                let Some(Ok(Message::Text(text))) = message else { break };
                if text.contains("\"event\":\"media\"") {
                    let Some(payload) = json_str(&text, "\"payload\"") else { continue };
                    let append = format!(r#"{{"type":"input_audio_buffer.append","audio":"{payload}"}}"#);
                    if echo.send(Ws::text(append)).await.is_err() {
                        break;
                    }
                } else if text.contains("\"event\":\"start\"") {
                    stream_sid = json_str(&text, "\"streamSid\"").unwrap_or_default().to_owned();
                } else if text.contains("\"event\":\"stop\"") {
                    break;
                }
            }
            message = echo.next() => {
                let Some(Ok(Ws::Text(text))) = message else { break };
                let Some(delta) = json_str(&text, "\"delta\"") else { continue };
                let media = format!(r#"{{"event":"media","streamSid":"{stream_sid}","media":{{"payload":"{delta}"}}}}"#);
                if phone.send(Message::Text(media.into())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = echo.close(None).await;
}

/// Serves the bare relay (in this process, so its CPU is measured like the bridge's).
async fn start_relay(echo_url: String) -> anyhow::Result<std::net::SocketAddr> {
    let app = axum::Router::new().route(
        "/relay",
        get(move |ws: WebSocketUpgrade| {
            let echo_url = echo_url.clone();
            async move {
                ws.read_buffer_size(kraliki_voice::ai::MEDIA_READ_BUFFER)
                    .on_upgrade(move |socket| relay(socket, echo_url))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// How long after the load generator starts every call is taken to be up.
const WARM_UP: Duration = Duration::from_secs(2);

fn cpu_of(pid: u32) -> f64 {
    // utime + stime, in clock ticks (100 per second on Linux).
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
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

/// `kraliki bench-echo`: serves both echo providers on a free port, prints it, runs until
/// killed.
pub async fn serve_echo() -> anyhow::Result<()> {
    let echo = axum::Router::new()
        .route(
            "/v1/realtime",
            get(|ws: WebSocketUpgrade| async move { ws.read_buffer_size(8192).on_upgrade(openai_echo) }),
        )
        .route(
            "/gemini",
            get(|ws: WebSocketUpgrade| async move { ws.read_buffer_size(8192).on_upgrade(gemini_echo) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, echo).await?;
    Ok(())
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Leg {
    pub call_sid: String,
    pub parameters: BTreeMap<String, String>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct PhoneSpec {
    pub url: String,
    pub seconds: u64,
    pub legs: Vec<Leg>,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PhoneFigures {
    pub failed: u64,
    pub sent: u64,
    pub received: u64,
    pub late: u64,
    pub rtt_us: Vec<u32>,
}

/// One phone leg: Twilio's side of a Media Stream, over a real WebSocket.
async fn leg(url: String, leg: Leg, seconds: u64, index: usize) -> anyhow::Result<PhoneFigures> {
    use tokio_tungstenite::tungstenite::Message as Ws;
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(kraliki_voice::ai::MEDIA_READ_BUFFER);
    let (socket, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true).await?;
    let (mut tx, mut rx) = futures::StreamExt::split(socket);
    use futures::{SinkExt, StreamExt};
    let stream_sid = format!("MZ{index:032}");
    tx.send(Ws::text(
        TwilioInbound::Connected(Connected { protocol: "Call".into(), version: "1.0.0".into() }).to_json(),
    ))
    .await?;
    let start = TwilioInbound::Start(TwilioStart {
        sequence_number: 1,
        stream_sid: stream_sid.clone(),
        account_sid: "AC0".into(),
        call_sid: leg.call_sid.clone(),
        tracks: vec!["inbound".into()],
        custom_parameters: leg.parameters,
        media_format: MediaFormat { encoding: "audio/x-mulaw".into(), sample_rate: 8000, channels: 1 },
    });
    tx.send(Ws::text(start.to_json())).await?;
    let mut figures = PhoneFigures::default();
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
                tx.send(Ws::text(media.to_json())).await?;
            }
            message = rx.next() => {
                let Some(Ok(Ws::Text(text))) = message else {
                    if message.is_none() { break } else { continue }
                };
                if let Ok(TwilioOutbound::Media { payload, .. }) = TwilioOutbound::parse(&text) {
                    figures.received += 1;
                    if payload.len() >= 2 {
                        if let Some(at) = sent_at.remove(&u16::from_be_bytes([payload[0], payload[1]])) {
                            figures.rtt_us.push(at.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        }
                    }
                }
            }
        }
    }
    seq += 1;
    let stop =
        TwilioStop { sequence_number: seq, stream_sid, account_sid: "AC0".into(), call_sid: leg.call_sid };
    let _ = tx.send(Ws::text(TwilioInbound::Stop(stop).to_json())).await;
    let _ = tx.close().await;
    Ok(figures)
}

/// `kraliki bench-phones`: the load generator. Reads a [`PhoneSpec`] on stdin, runs every leg
/// at once in real time, prints [`PhoneFigures`] as JSON.
pub async fn serve_phones() -> anyhow::Result<()> {
    let spec: PhoneSpec = serde_json::from_reader(std::io::stdin())?;
    let seconds = spec.seconds;
    let tasks =
        spec.legs.into_iter().enumerate().map(|(i, l)| tokio::spawn(leg(spec.url.clone(), l, seconds, i)));
    let mut all = PhoneFigures::default();
    for result in futures::future::join_all(tasks).await {
        match result {
            Ok(Ok(f)) => {
                all.sent += f.sent;
                all.received += f.received;
                all.late += f.late;
                all.rtt_us.extend(f.rtt_us);
            }
            _ => all.failed += 1,
        }
    }
    println!("{}", serde_json::to_string(&all)?);
    Ok(())
}

fn spawn_child(arg: &str) -> anyhow::Result<std::process::Child> {
    Ok(std::process::Command::new(std::env::current_exe()?)
        .arg(arg)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?)
}

/// Starts the echo provider; returns it and its address (set the provider URLs to it before
/// the server starts).
pub fn start_echo() -> anyhow::Result<(std::process::Child, std::net::SocketAddr)> {
    use std::io::BufRead;
    let mut child = spawn_child("bench-echo")?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("echo provider has no stdout"))?;
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let addr = line.trim().parse().map_err(|_| anyhow::anyhow!("echo provider said {line:?}"))?;
    Ok((child, addr))
}

pub fn echo_settings(settings: &mut crate::Settings, echo: std::net::SocketAddr) {
    settings.providers.openai_api_key = Some(SecretString::from("bench"));
    settings.providers.openai_realtime_url = Some(format!("ws://{echo}/v1/realtime"));
    settings.providers.gemini_api_key = Some(SecretString::from("bench"));
    settings.providers.gemini_live_url = Some(format!("ws://{echo}/gemini"));
}

pub async fn run(app: &crate::Application, calls: usize, seconds: u64, echo_pid: u32) -> anyhow::Result<()> {
    use kraliki_domain::campaign::VoiceProvider;
    let state = app.state();
    let tenant = Uuid::now_v7();
    let ctx = CommandContext::new(tenant.to_string(), "system:bench");
    let echo_url = state
        .settings
        .providers
        .openai_realtime_url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the echo provider's URL is not set"))?;
    let relay = start_relay(echo_url).await?;
    let mut per_core_by_label = Vec::new();
    for (label, provider, goal) in [
        ("passthrough", Some(VoiceProvider::Openai), "goal >= 1,000 calls per core"),
        ("resampling", Some(VoiceProvider::Gemini), "goal >= 300 calls per core"),
        ("bare relay (baseline)", None, "the same sockets and frames, nothing else"),
    ] {
        let (url, legs) = match provider {
            Some(provider) => (
                format!("ws://{}/api/telephony/twilio/media", app.addr()),
                bench_calls(state, &ctx, tenant, label, provider, calls).await?,
            ),
            None => (
                format!("ws://{relay}/relay"),
                (0..calls)
                    .map(|i| Leg { call_sid: format!("CArelay{i:026}"), parameters: BTreeMap::new() })
                    .collect(),
            ),
        };
        if let Ok(mut s) = state.bridge_stats.lock() {
            *s = Some(Default::default());
        }
        let spec = PhoneSpec { url, seconds, legs };
        let out_path = std::env::temp_dir().join(format!(
            "kraliki-bench-phones-{}-{}.json",
            std::process::id(),
            &label[..4]
        ));
        let mut phones = std::process::Command::new(std::env::current_exe()?)
            .arg("bench-phones")
            .stdin(std::process::Stdio::piped())
            .stdout(std::fs::File::create(&out_path)?)
            .spawn()?;
        let phones_pid = phones.id();
        let streams_started = || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM events WHERE event_type = 'MediaStreamStarted'",
            )
            .fetch_one(&state.pool)
            .await
            .unwrap_or(0)
        };
        let streams_before = streams_started().await;
        let cpu = || [cpu_of(std::process::id()), cpu_of(echo_pid), cpu_of(phones_pid)];
        let whole_before = cpu();
        let started = Instant::now();
        {
            use std::io::Write;
            let mut stdin = phones.stdin.take().ok_or_else(|| anyhow::anyhow!("no stdin"))?;
            stdin.write_all(&serde_json::to_vec(&spec)?)?;
        }
        // Concurrent calls cost what they cost while they run: CPU is measured over a window
        // after every call has been set up and before any ends (WARM_UP in, 1 s before the
        // end). (Setting a call up and ending it cost about 0.5 ms of server CPU a call.)
        let window = (started + WARM_UP, started + Duration::from_secs(seconds.saturating_sub(1)));
        let steady = if window.1 > window.0 + Duration::from_secs(1) {
            tokio::time::sleep_until(window.0.into()).await;
            if provider.is_some() {
                // Every bridged call records its stream's start: wait for all of them.
                while streams_started().await - streams_before < calls as i64 && Instant::now() < window.1 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            let (before, at) = (cpu(), Instant::now());
            tokio::time::sleep_until(window.1.into()).await;
            let (after, wall) = (cpu(), at.elapsed().as_secs_f64());
            Some([0, 1, 2].map(|i| (after[i] - before[i]) / wall))
        } else {
            None
        };
        // Sample the generator's CPU just before it exits.
        let mut phones_last = f64::NAN;
        while phones.try_wait()?.is_none() {
            let c = cpu_of(phones_pid);
            if c.is_finite() {
                phones_last = c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let wall = started.elapsed().as_secs_f64();
        let whole = [
            (cpu_of(std::process::id()) - whole_before[0]) / wall,
            (cpu_of(echo_pid) - whole_before[1]) / wall,
            (phones_last - whole_before[2]) / wall,
        ];
        let [server_cores, echo_cores, phones_cores] = steady.unwrap_or(whole);
        phones.wait()?;
        let output = std::fs::read_to_string(&out_path)?;
        let _ = std::fs::remove_file(&out_path);
        // The figures are its last line (logs may precede them).
        let mut figures: PhoneFigures = output
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| anyhow::anyhow!("no figures from the load generator: {output}"))?;
        // Let the bridges record their ends before reading their figures.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut bridge = state.bridge_stats.lock().ok().and_then(|mut s| s.take()).unwrap_or_default();
        let per_core = calls as f64 / server_cores.max(0.01);
        per_core_by_label.push((label, per_core));
        println!(
            "media {label}: {calls} calls x {seconds} s over WebSockets, {} failed; {} frames in, {} out ({} sent late); while all ran the server used {server_cores:.2} cores (load generator {phones_cores:.2}, echo provider {echo_cores:.2}) -> {per_core:.0} calls per server core ({goal})",
            figures.failed, figures.sent, figures.received, figures.late
        );
        if provider.is_none() {
            if let Some((_, bridge)) = per_core_by_label.first() {
                println!(
                    "  the bridge's passthrough calls per core are {:.2} of the bare relay's (same sockets and frames, nothing else)",
                    bridge / per_core
                );
            }
            continue;
        }
        println!(
            "  bridge latency per frame: in p50 {:.3} ms p99 {:.3} ms; out p50 {:.3} ms p99 {:.3} ms (goal p99 <= 2 ms); phone round trip via echo p50 {:.2} ms p99 {:.2} ms",
            percentile(&mut bridge.inbound_us, 50.0), percentile(&mut bridge.inbound_us, 99.0),
            percentile(&mut bridge.outbound_us, 50.0), percentile(&mut bridge.outbound_us, 99.0),
            percentile(&mut figures.rtt_us, 50.0), percentile(&mut figures.rtt_us, 99.0),
        );
    }
    Ok(())
}

/// A campaign of `provider` and `calls` initiated calls for it: the legs the phones dial.
async fn bench_calls(
    state: &crate::state::AppState,
    ctx: &CommandContext,
    tenant: Uuid,
    label: &str,
    provider: kraliki_domain::campaign::VoiceProvider,
    calls: usize,
) -> anyhow::Result<Vec<Leg>> {
    use kraliki_domain::campaign::{Campaign, CampaignCommand, CampaignOrigin, CampaignSettings};
    let campaign = Uuid::now_v7();
    let settings = CampaignSettings {
        name: format!("bench {label}"),
        primary_provider: provider,
        ..CampaignSettings::default()
    };
    let created = state
        .dispatcher
        .execute::<Campaign>(
            &campaign.to_string(),
            CampaignCommand::CreateCampaign { settings, origin: CampaignOrigin::Blank, at: Utc::now() },
            ctx,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    state
        .wait_for(kraliki_projections::campaign::NAME, created.position)
        .await
        .map_err(|e| anyhow::anyhow!("{:?}", e.code))?;
    let target = kraliki_voice::calls::Target { tenant, campaign: Some(campaign), contact: None };
    let mut legs = Vec::with_capacity(calls);
    for i in 0..calls {
        let call_sid = format!("CA{}{i:026}", &label[..2]);
        let call_id = kraliki_voice::calls::call_uuid("twilio", &call_sid);
        let initiate = CallCommand::InitiateCall {
            direction: CallDirection::Inbound,
            provider: "twilio".into(),
            provider_call_id: Some(call_sid.clone()),
            from: "+14155550123".into(),
            to: "+14155550100".into(),
            campaign_id: Some(campaign),
            contact_id: None,
            at: Utc::now(),
        };
        state
            .dispatcher
            .execute::<Call>(&call_id.to_string(), initiate, ctx)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let parameters = state
            .calls
            .stream_parameters(call_id, &target)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        legs.push(Leg { call_sid, parameters });
    }
    Ok(legs)
}
