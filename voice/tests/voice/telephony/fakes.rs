//! The fake provider media clients against small media servers written here with the
//! library's own parsers: what the fakes send is what Twilio / Telnyx send, and what they
//! collect and echo is what our server sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use axum::Router;
use kraliki_voice::telephony::telnyx_media::{MediaReorderer, OrderedMedia, TelnyxInbound, TelnyxOutbound};
use kraliki_voice::telephony::testing::media::{
    FakeTelnyxMediaClient, FakeTwilioMediaClient, FrameOrder, Pace, Playout, ServerFrame, TelnyxDialect,
    TwilioDialect,
};
use kraliki_voice::telephony::twilio_media::{TwilioInbound, TwilioOutbound};

use super::{ulaw_pattern, WAIT};

type Log<T> = Arc<Mutex<Vec<T>>>;

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("ws://{addr}")
}

async fn send(socket: &mut WebSocket, text: String) {
    socket.send(Message::Text(text.into())).await.unwrap();
}

/// A stand-in for our Twilio media endpoint: echoes audio with a mark per frame, and plays
/// scripted audio when keys are pressed.
async fn twilio_server() -> (String, Log<TwilioInbound>) {
    let log: Log<TwilioInbound> = Arc::default();
    let router = Router::new().route(
        "/api/telephony/twilio/media",
        get({
            let log = log.clone();
            move |ws: WebSocketUpgrade| async move { ws.on_upgrade(move |socket| twilio_session(socket, log)) }
        }),
    );
    (format!("{}/api/telephony/twilio/media", serve(router).await), log)
}

async fn twilio_session(mut socket: WebSocket, log: Log<TwilioInbound>) {
    let mut stream_sid = String::new();
    while let Some(Ok(message)) = socket.recv().await {
        let Message::Text(text) = message else { continue };
        let inbound = TwilioInbound::parse(text.as_str()).unwrap();
        log.lock().unwrap().push(inbound.clone());
        match inbound {
            TwilioInbound::Start(start) => stream_sid = start.stream_sid,
            TwilioInbound::Media(media) => {
                send(&mut socket, TwilioOutbound::media(&stream_sid, media.payload).to_json()).await;
                send(
                    &mut socket,
                    TwilioOutbound::mark(&stream_sid, format!("echo-{}", media.chunk)).to_json(),
                )
                .await;
            }
            TwilioInbound::Dtmf(dtmf) => match dtmf.digit.as_str() {
                "9" => {
                    send(&mut socket, TwilioOutbound::media(&stream_sid, vec![0xFF; 16_000]).to_json()).await;
                    send(&mut socket, TwilioOutbound::mark(&stream_sid, "long").to_json()).await;
                }
                "8" => {
                    send(&mut socket, TwilioOutbound::media(&stream_sid, vec![0xFF; 800]).to_json()).await;
                    send(&mut socket, TwilioOutbound::mark(&stream_sid, "short").to_json()).await;
                }
                "0" => {
                    send(&mut socket, "nonsense".to_owned()).await;
                    send(&mut socket, TwilioOutbound::clear("MZ-someone-else").to_json()).await;
                    socket.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
                    send(&mut socket, TwilioOutbound::mark(&stream_sid, "after-garbage").to_json()).await;
                }
                "#" => send(&mut socket, TwilioOutbound::clear(&stream_sid).to_json()).await,
                _ => {}
            },
            TwilioInbound::Stop(_) => break,
            TwilioInbound::Connected(_) | TwilioInbound::Mark(_) => {}
        }
    }
}

fn dialect() -> TwilioDialect {
    TwilioDialect::new("CA0000000000000000000000000000000a", "MZ0000000000000000000000000000000b")
        .parameter("tenant", "42")
        .parameter("campaign", "a&b \"c\"")
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_fake_twilio_streams_a_call_and_collects_what_the_server_plays() {
    let (url, log) = twilio_server().await;
    let mut call = FakeTwilioMediaClient::connect(&url, dialect(), Playout::Instant).await.unwrap();
    let audio = ulaw_pattern(1_550); // 9 full frames and a partial one
    assert_eq!(call.send_audio(&audio, Pace::AsFastAsPossible).await.unwrap(), 10);
    call.send_dtmf("5").unwrap();

    // The server echoed every frame and a mark after each; the fake echoed every mark.
    let mut marks = Vec::new();
    while marks.len() < 10 {
        match call.next_frame(WAIT).await.expect("a frame from the server") {
            ServerFrame::Mark(name) => marks.push(name),
            ServerFrame::Media(_) => {}
            other => panic!("{other:?}"),
        }
    }
    let expected_marks: Vec<String> = (1..=10).map(|i| format!("echo-{i}")).collect();
    assert_eq!(marks, expected_marks);
    let mut padded = audio.clone();
    padded.resize(1_600, 0xFF);
    assert_eq!(call.received_audio(), padded, "frames of 160 bytes, the last padded with silence");
    eventually("the mark echoes", || {
        log.lock().unwrap().iter().filter(|m| matches!(m, TwilioInbound::Mark(_))).count() == 10
    })
    .await;
    assert_eq!(call.echoed_marks(), expected_marks);

    call.stop().unwrap();
    eventually("the server to close", || call.closed_by_server()).await;

    let log = log.lock().unwrap();
    assert!(matches!(&log[0], TwilioInbound::Connected(c) if c.protocol == "Call"));
    let TwilioInbound::Start(start) = &log[1] else { panic!("{:?}", log[1]) };
    assert_eq!(start.sequence_number, 1);
    assert_eq!(start.call_sid, "CA0000000000000000000000000000000a");
    assert_eq!(start.custom_parameters.get("campaign").map(String::as_str), Some("a&b \"c\""));
    assert!(start.media_format.is_mulaw_8k_mono());
    let media: Vec<(u64, u64, u64)> = log
        .iter()
        .filter_map(|m| match m {
            TwilioInbound::Media(m) => Some((m.sequence_number, m.chunk, m.timestamp_ms)),
            _ => None,
        })
        .collect();
    let expected: Vec<(u64, u64, u64)> = (1..=10).map(|c| (c + 1, c, (c - 1) * 20)).collect();
    assert_eq!(media, expected);
    assert!(log
        .iter()
        .any(|m| matches!(m, TwilioInbound::Dtmf(d) if d.digit == "5" && d.track == "inbound_track")));
    assert!(
        matches!(log.last(), Some(TwilioInbound::Stop(s)) if s.call_sid == "CA0000000000000000000000000000000a")
    );
    // Sequence numbers are unique across every message the fake sent.
    let mut seqs: Vec<u64> = log
        .iter()
        .filter_map(|m| match m {
            TwilioInbound::Connected(_) => None,
            TwilioInbound::Start(s) => Some(s.sequence_number),
            TwilioInbound::Media(m) => Some(m.sequence_number),
            TwilioInbound::Dtmf(d) => Some(d.sequence_number),
            TwilioInbound::Mark(m) => Some(m.sequence_number),
            TwilioInbound::Stop(s) => Some(s.sequence_number),
        })
        .collect();
    let count = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), count);
}

#[tokio::test]
async fn real_time_pace_sends_a_frame_every_20_ms() {
    let (url, log) = twilio_server().await;
    let mut call = FakeTwilioMediaClient::connect(&url, dialect(), Playout::Instant).await.unwrap();
    let started = Instant::now();
    call.send_audio(&ulaw_pattern(160 * 10), Pace::RealTime).await.unwrap();
    // The first frame goes at once, each later one 20 ms after the one before.
    assert!(started.elapsed() >= Duration::from_millis(180), "{:?}", started.elapsed());
    eventually("ten frames", || {
        log.lock().unwrap().iter().filter(|m| matches!(m, TwilioInbound::Media(_))).count() == 10
    })
    .await;
}

#[tokio::test]
async fn real_time_playout_returns_marks_after_the_audio_or_on_clear() {
    let (url, log) = twilio_server().await;
    let mut call = FakeTwilioMediaClient::connect(&url, dialect(), Playout::RealTime).await.unwrap();

    // 100 ms of audio, then a mark: it comes back once that audio has played.
    let asked = Instant::now();
    call.send_dtmf("8").unwrap();
    call.wait_for(WAIT, |f| *f == ServerFrame::Mark("short".into())).await.unwrap();
    eventually("the short mark", || call.echoed_marks() == ["short"]).await;
    assert!(asked.elapsed() >= Duration::from_millis(90), "{:?}", asked.elapsed());

    // Two seconds of audio, then a mark: still playing, so no echo yet...
    call.send_dtmf("9").unwrap();
    call.wait_for(WAIT, |f| *f == ServerFrame::Mark("long".into())).await.unwrap();
    assert_eq!(call.echoed_marks(), ["short"]);
    // ...until `clear` drops the audio and returns the pending mark at once.
    let cleared = Instant::now();
    call.send_dtmf("#").unwrap();
    call.wait_for(WAIT, |f| *f == ServerFrame::Clear).await.unwrap();
    eventually("the long mark", || call.echoed_marks() == ["short", "long"]).await;
    assert!(cleared.elapsed() < Duration::from_millis(1_500), "{:?}", cleared.elapsed());
    eventually("the server to see both echoes", || {
        let names: Vec<String> = log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|m| match m {
                TwilioInbound::Mark(m) => Some(m.name.clone()),
                _ => None,
            })
            .collect();
        names == ["short", "long"]
    })
    .await;
}

#[tokio::test]
async fn the_fake_reports_what_twilio_would_reject() {
    let (url, _log) = twilio_server().await;
    let mut call = FakeTwilioMediaClient::connect(&url, dialect(), Playout::Instant).await.unwrap();
    call.send_dtmf("0").unwrap();
    call.wait_for(WAIT, |f| *f == ServerFrame::Mark("after-garbage".into())).await.unwrap();
    let received = call.received();
    assert!(matches!(&received[0], ServerFrame::Invalid { text, .. } if text == "nonsense"), "{received:?}");
    assert!(
        matches!(&received[1], ServerFrame::Invalid { error, .. } if error.contains("MZ-someone-else")),
        "{received:?}"
    );
    assert_eq!(received[2], ServerFrame::Binary(vec![1, 2, 3]));
}

/// A stand-in for our Telnyx media endpoint: puts frames back in order, and at `stop` plays
/// the whole call back in one message followed by a mark.
async fn telnyx_server() -> (String, Log<OrderedMedia>, Log<TelnyxInbound>) {
    let ordered: Log<OrderedMedia> = Arc::default();
    let log: Log<TelnyxInbound> = Arc::default();
    let router = Router::new().route(
        "/api/telephony/telnyx/media",
        get({
            let (ordered, log) = (ordered.clone(), log.clone());
            move |ws: WebSocketUpgrade| async move {
                ws.on_upgrade(move |socket| telnyx_session(socket, ordered, log))
            }
        }),
    );
    (format!("{}/api/telephony/telnyx/media", serve(router).await), ordered, log)
}

async fn telnyx_session(mut socket: WebSocket, ordered: Log<OrderedMedia>, log: Log<TelnyxInbound>) {
    let mut reorderer = MediaReorderer::new(8);
    while let Some(Ok(message)) = socket.recv().await {
        let Message::Text(text) = message else { continue };
        let inbound = TelnyxInbound::parse(text.as_str()).unwrap();
        log.lock().unwrap().push(inbound.clone());
        match inbound {
            TelnyxInbound::Media(media) => ordered.lock().unwrap().extend(reorderer.push(media)),
            TelnyxInbound::Stop(_) => {
                let audio: Vec<u8> = {
                    let mut ordered = ordered.lock().unwrap();
                    ordered.extend(reorderer.flush());
                    ordered
                        .iter()
                        .filter_map(|o| match o {
                            OrderedMedia::Frame(f) => Some(f.payload.clone()),
                            _ => None,
                        })
                        .flatten()
                        .collect()
                };
                send(&mut socket, TelnyxOutbound::Media { payload: audio }.to_json()).await;
                send(&mut socket, TelnyxOutbound::Mark { name: "done".into() }.to_json()).await;
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn the_fake_telnyx_shuffles_frames_and_the_reorderer_restores_them() {
    let (url, ordered, log) = telnyx_server().await;
    let mut dialect = TelnyxDialect::new("v3:fake-call-1", "32DE0DEA-53CB-4B21-89A4-9E1819C043BC");
    dialect.client_state = Some("dGVuYW50PTQy".into());
    let mut call = FakeTelnyxMediaClient::connect(&url, dialect, Playout::Instant).await.unwrap();
    let audio = ulaw_pattern(160 * 50);
    let sent = call
        .send_audio_ordered(&audio, Pace::AsFastAsPossible, FrameOrder::Shuffled { block: 6, seed: 7 })
        .await
        .unwrap();
    assert_eq!(sent, 50);
    call.send_dtmf("3").unwrap();
    call.stop().unwrap();

    // The server played the call back after putting it in order: exactly what was sent.
    let ServerFrame::Media(played) = call.next_frame(WAIT).await.unwrap() else { panic!() };
    assert_eq!(played, audio);
    assert_eq!(call.next_frame(WAIT).await, Some(ServerFrame::Mark("done".into())));
    let ordered = ordered.lock().unwrap();
    assert_eq!(ordered.len(), 50);
    assert!(ordered.iter().all(|o| matches!(o, OrderedMedia::Frame(_))), "no gaps or drops");

    let log = log.lock().unwrap();
    assert!(matches!(&log[0], TelnyxInbound::Connected { .. }));
    let TelnyxInbound::Start(start) = &log[1] else { panic!() };
    assert_eq!(start.call_control_id, "v3:fake-call-1");
    assert_eq!(start.client_state.as_deref(), Some("dGVuYW50PTQy"));
    assert!(start.media_format.is_mulaw_8k_mono());
    let chunks: Vec<u64> = log
        .iter()
        .filter_map(|m| match m {
            TelnyxInbound::Media(m) => Some(m.chunk),
            _ => None,
        })
        .collect();
    assert_ne!(chunks, (1..=50).collect::<Vec<u64>>(), "the fake really shuffled");
    let mut sorted = chunks.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=50).collect::<Vec<u64>>());
    assert!(log.iter().any(|m| matches!(m, TelnyxInbound::Dtmf(d) if d.digit == "3")));
    assert!(
        matches!(log.last(), Some(TelnyxInbound::Stop(s)) if s.call_control_id.as_deref() == Some("v3:fake-call-1"))
    );
}

#[tokio::test]
async fn connecting_to_nothing_is_an_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let result =
        FakeTwilioMediaClient::connect(&format!("ws://127.0.0.1:{port}/x"), dialect(), Playout::Instant)
            .await;
    assert!(result.is_err());
}
