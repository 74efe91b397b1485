//! Twilio and Telnyx media-stream messages: the PROTOCOLS.md samples, round trips, and
//! everything malformed the network could send.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use kraliki_voice::telephony::telnyx_media::{
    TelnyxDtmf, TelnyxInbound, TelnyxMark, TelnyxMedia, TelnyxOutbound, TelnyxStart, TelnyxStop,
    TelnyxStreamError,
};
use kraliki_voice::telephony::twilio_media::{
    Connected, TwilioDtmf, TwilioInbound, TwilioMark, TwilioMedia, TwilioOutbound, TwilioStart, TwilioStop,
};
use kraliki_voice::telephony::{MediaFormat, MediaParseError, Track};
use proptest::prelude::*;
use serde_json::{json, Value};

// The Twilio samples of PROTOCOLS.md, verbatim (only the payload placeholder differs).
const TW_CONNECTED: &str = r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#;
const TW_START: &str = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ…","start":{"streamSid":"MZ…","accountSid":"AC…","callSid":"CA…","tracks":["inbound"],"customParameters":{"tenant":"42"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#;
const TW_MEDIA_PLACEHOLDER: &str = r#"{"event":"media","sequenceNumber":"3","streamSid":"MZ…","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"<base64 μ-law>"}}"#;
const TW_DTMF: &str =
    r#"{"event":"dtmf","sequenceNumber":"5","streamSid":"MZ…","dtmf":{"track":"inbound_track","digit":"1"}}"#;
const TW_MARK: &str = r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ…","mark":{"name":"utt-7"}}"#;
const TW_STOP: &str =
    r#"{"event":"stop","sequenceNumber":"9","streamSid":"MZ…","stop":{"accountSid":"AC…","callSid":"CA…"}}"#;

fn tw_media(payload_b64: &str) -> String {
    TW_MEDIA_PLACEHOLDER.replace("<base64 μ-law>", payload_b64)
}

#[test]
fn parses_every_twilio_sample() {
    assert_eq!(
        TwilioInbound::parse(TW_CONNECTED).unwrap(),
        TwilioInbound::Connected(Connected { protocol: "Call".into(), version: "1.0.0".into() })
    );
    assert_eq!(
        TwilioInbound::parse(TW_START).unwrap(),
        TwilioInbound::Start(TwilioStart {
            sequence_number: 1,
            stream_sid: "MZ…".into(),
            account_sid: "AC…".into(),
            call_sid: "CA…".into(),
            tracks: vec!["inbound".into()],
            custom_parameters: BTreeMap::from([("tenant".into(), "42".into())]),
            media_format: MediaFormat { encoding: "audio/x-mulaw".into(), sample_rate: 8000, channels: 1 },
        })
    );
    let TwilioInbound::Start(start) = TwilioInbound::parse(TW_START).unwrap() else { unreachable!() };
    assert!(start.media_format.is_mulaw_8k_mono());

    let payload: Vec<u8> = (0..160).map(|i| (i * 7 % 256) as u8).collect();
    assert_eq!(
        TwilioInbound::parse(&tw_media(&BASE64.encode(&payload))).unwrap(),
        TwilioInbound::Media(TwilioMedia {
            sequence_number: 3,
            stream_sid: "MZ…".into(),
            track: Track::Inbound,
            chunk: 1,
            timestamp_ms: 5,
            payload,
        })
    );
    assert_eq!(
        TwilioInbound::parse(TW_DTMF).unwrap(),
        TwilioInbound::Dtmf(TwilioDtmf {
            sequence_number: 5,
            stream_sid: "MZ…".into(),
            track: "inbound_track".into(),
            digit: "1".into(),
        })
    );
    assert_eq!(
        TwilioInbound::parse(TW_MARK).unwrap(),
        TwilioInbound::Mark(TwilioMark {
            sequence_number: 4,
            stream_sid: "MZ…".into(),
            name: "utt-7".into()
        })
    );
    assert_eq!(
        TwilioInbound::parse(TW_STOP).unwrap(),
        TwilioInbound::Stop(TwilioStop {
            sequence_number: 9,
            stream_sid: "MZ…".into(),
            account_sid: "AC…".into(),
            call_sid: "CA…".into(),
        })
    );
}

#[test]
fn the_placeholder_payload_of_the_sample_is_a_base64_error() {
    let err = TwilioInbound::parse(TW_MEDIA_PLACEHOLDER).unwrap_err();
    assert!(matches!(err, MediaParseError::Base64 { event: "media", .. }), "{err:?}");
}

#[test]
fn twilio_outbound_messages_are_the_protocol_shapes() {
    let json_of = |m: &TwilioOutbound| serde_json::from_str::<Value>(&m.to_json()).unwrap();
    assert_eq!(
        json_of(&TwilioOutbound::media("MZ1", vec![0xFF, 0x7F, 0x00])),
        json!({"event":"media","streamSid":"MZ1","media":{"payload":"/38A"}})
    );
    assert_eq!(
        json_of(&TwilioOutbound::mark("MZ1", "utt-7")),
        json!({"event":"mark","streamSid":"MZ1","mark":{"name":"utt-7"}})
    );
    assert_eq!(json_of(&TwilioOutbound::clear("MZ1")), json!({"event":"clear","streamSid":"MZ1"}));
}

#[test]
fn twilio_messages_round_trip() {
    let inbound = [
        TwilioInbound::parse(TW_CONNECTED).unwrap(),
        TwilioInbound::parse(TW_START).unwrap(),
        TwilioInbound::parse(&tw_media(&BASE64.encode(b"\x01\x02\x03"))).unwrap(),
        TwilioInbound::parse(TW_DTMF).unwrap(),
        TwilioInbound::parse(TW_MARK).unwrap(),
        TwilioInbound::parse(TW_STOP).unwrap(),
    ];
    for message in inbound {
        assert_eq!(TwilioInbound::parse(&message.to_json()).unwrap(), message);
        assert_eq!(TwilioInbound::parse_bytes(message.to_json().as_bytes()).unwrap(), message);
    }
    for message in [
        TwilioOutbound::media("MZ1", (0..=255).collect::<Vec<u8>>()),
        TwilioOutbound::media("MZ1", Vec::new()),
        TwilioOutbound::mark("MZ1", "a \"quoted\" \\ name ✓"),
        TwilioOutbound::clear("MZ1"),
    ] {
        assert_eq!(TwilioOutbound::parse(&message.to_json()).unwrap(), message);
    }
}

#[test]
fn counters_may_also_be_numbers() {
    let numeric = r#"{"event":"media","sequenceNumber":3,"streamSid":"MZ1","media":{"track":"outbound","chunk":2,"timestamp":40,"payload":""}}"#;
    let TwilioInbound::Media(media) = TwilioInbound::parse(numeric).unwrap() else { panic!() };
    assert_eq!((media.sequence_number, media.chunk, media.timestamp_ms), (3, 2, 40));
    assert_eq!(media.track, Track::Outbound);
    assert!(media.payload.is_empty());
}

#[test]
fn malformed_twilio_messages_are_typed_errors() {
    let json_errors = [
        "",
        "not json",
        "[1,2]",
        "{}",
        r#"{"event":7}"#,
        r#"{"event":"media""#,
        r#"{"Event":"media"}"#,
        "null",
    ];
    for text in json_errors {
        let err = TwilioInbound::parse(text).unwrap_err();
        assert!(matches!(err, MediaParseError::Json(_)), "{text:?}: {err:?}");
    }
    for (text, unknown) in
        [(r#"{"event":"closed"}"#, "closed"), (r#"{"event":"clear","streamSid":"MZ"}"#, "clear")]
    {
        match TwilioInbound::parse(text).unwrap_err() {
            MediaParseError::UnknownEvent(event) => assert_eq!(event, unknown),
            other => panic!("{text}: {other:?}"),
        }
    }
    let invalid = [
        (r#"{"event":"media","sequenceNumber":"3","streamSid":"MZ"}"#, "media"),
        (
            r#"{"event":"media","sequenceNumber":"x3","streamSid":"MZ","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":""}}"#,
            "media",
        ),
        (
            r#"{"event":"media","sequenceNumber":"-3","streamSid":"MZ","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":""}}"#,
            "media",
        ),
        (
            r#"{"event":"media","sequenceNumber":-3,"streamSid":"MZ","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":""}}"#,
            "media",
        ),
        (
            r#"{"event":"media","sequenceNumber":"3","streamSid":"MZ","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":17}}"#,
            "media",
        ),
        (
            r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ","start":{"accountSid":"AC","callSid":"CA"}}"#,
            "start",
        ),
        (
            r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ","start":{"accountSid":"AC","callSid":"CA","customParameters":{"n":1},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#,
            "start",
        ),
        (r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ","mark":{}}"#, "mark"),
        (r#"{"event":"dtmf","sequenceNumber":"5","streamSid":"MZ"}"#, "dtmf"),
        (r#"{"event":"stop","sequenceNumber":"9"}"#, "stop"),
        (r#"{"event":"connected"}"#, "connected"),
    ];
    for (text, expected) in invalid {
        match TwilioInbound::parse(text).unwrap_err() {
            MediaParseError::Invalid { event, .. } => assert_eq!(event, expected, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    for payload in ["!!!!", "AAA", "A===", "ü"] {
        let err = TwilioInbound::parse(&tw_media(payload)).unwrap_err();
        assert!(matches!(err, MediaParseError::Base64 { .. }), "{payload}: {err:?}");
    }
    assert!(matches!(TwilioInbound::parse_bytes(&[0xFF, 0xFE, b'{']).unwrap_err(), MediaParseError::Json(_)));
    // What we send is not what Twilio sends, and the other way round.
    assert!(TwilioOutbound::parse(TW_START).is_err());
    assert!(matches!(
        TwilioOutbound::parse(r#"{"event":"clear"}"#).unwrap_err(),
        MediaParseError::Invalid { .. }
    ));
}

// Telnyx: PROTOCOLS.md gives the shapes; the samples are the Telnyx documentation's.
const TX_CONNECTED: &str = r#"{"event":"connected","version":"1.0.0"}"#;
const TX_START: &str = r#"{"event":"start","sequence_number":"1","start":{"user_id":"3E6F995F-85F7-4705-9741-53B116D28237","call_control_id":"v3:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ","call_session_id":"ff55a038-6f5d-11ef-9692-02420aeffb1f","from":"+13122010094","to":"+13122123456","tags":["TAG1","TAG2"],"client_state":"aGF2ZSBhIG5pY2UgZGF5ID1d","media_format":{"encoding":"PCMU","sample_rate":8000,"channels":1}},"stream_id":"32DE0DEA-53CB-4B21-89A4-9E1819C043BC"}"#;
const TX_MEDIA: &str = r#"{"event":"media","sequence_number":"4","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"no+JhoaJjpzSHxAKBgYJDhtEopGKh4aIjZm7JhILBwYIDRg1qZSLh4aIjJevLBUMBwYHDBUsr5eMiIaHi5SpNRgNCAYHCxImu5mNiIaHipGiRBsOCQYGChAf0pyOiYaGiY+e/x4PCQYGCQ4cUp+QioaGiY6bxCIRCgcGCA0ZO6aSi4eGiI2YtSkUCwcGCAwXL6yVjIeGh4yVrC8XDAgGBwsUKbWYjYiGh4uSpjsZDQgGBwoRIsSbjomGhoqQn1IcDgkGBgkPHv+ej4mGhomOnNIfEAoGBgkOG0SikYqHhoiNmbsmEgsHBggNGDWplIuHhoiMl68sFQwHBgcMFSyvl4yIhoeLlKk1GA0IBgcLEia7mY2IhoeKkaJEGw4JBgYKEB/SnI6JhoaJj57/Hg8JBgYJDhxSn5CKhoaJjpvEIhEKBwYIDRk7ppKLh4aIjZi1KRQLBwYIDBcvrJWMh4aHjJWsLxcMCAYHCxQptZiNiIaHi5KmOxkNCAYHChEixJuOiYaGipCfUhwOCQYGCQ8e/56PiYaGiY6c0h8QCgYGCQ4bRKKRioeGiI2ZuyYSCwcGCA0YNamUi4eGiIyXrywVDAcGBwwVLK+XjIiGh4uUqTUYDQgGBwsSJruZjYiGh4qRokQbDgkGBgoQH9KcjomGhomPnv8eDwkGBgkOHFKfkIqGhomOm8QiEQoHBggNGTumkouHhoiNmLUpFAsHBggMFy+slYyHhoeMlawvFwwIBgcL"},"stream_id":"32DE0DEA-53CB-4B21-89A4-9E1819C043BC"}"#;
const TX_DTMF: &str = r#"{"event":"dtmf","stream_id":"32DE0DEA-53CB-4B21-89A4-9E1819C043BC","occurred_at":"2025-06-05T08:54:19.698408Z","sequence_number":"5","dtmf":{"digit":"1"}}"#;
const TX_MARK: &str = r#"{"event":"mark","stream_id":"32DE0DEA-53CB-4B21-89A4-9E1819C043BC","sequence_number":"5","mark":{"name":"some_mark_name"}}"#;
const TX_ERROR: &str = r#"{"event":"error","payload":{"code":100002,"title":"unknown_error","detail":"An unknown error occurred on the stream"},"stream_id":"uuid"}"#;
const TX_STOP: &str = r#"{"event":"stop","sequence_number":"5","stop":{"user_id":"3E6F995F-85F7-4705-9741-53B116D28237","call_control_id":"v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ"},"stream_id":"32DE0DEA-53CB-4B21-89A4-9E1819C043BC"}"#;
const STREAM: &str = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC";

#[test]
fn parses_every_telnyx_sample() {
    assert_eq!(
        TelnyxInbound::parse(TX_CONNECTED).unwrap(),
        TelnyxInbound::Connected { version: Some("1.0.0".into()) }
    );
    assert_eq!(
        TelnyxInbound::parse(TX_START).unwrap(),
        TelnyxInbound::Start(TelnyxStart {
            sequence_number: 1,
            stream_id: STREAM.into(),
            call_control_id: "v3:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ".into(),
            call_session_id: Some("ff55a038-6f5d-11ef-9692-02420aeffb1f".into()),
            user_id: Some("3E6F995F-85F7-4705-9741-53B116D28237".into()),
            from: Some("+13122010094".into()),
            to: Some("+13122123456".into()),
            client_state: Some("aGF2ZSBhIG5pY2UgZGF5ID1d".into()),
            tags: vec!["TAG1".into(), "TAG2".into()],
            custom_parameters: BTreeMap::new(),
            media_format: MediaFormat { encoding: "PCMU".into(), sample_rate: 8000, channels: 1 },
        })
    );
    let TelnyxInbound::Media(media) = TelnyxInbound::parse(TX_MEDIA).unwrap() else { panic!() };
    assert_eq!((media.sequence_number, media.chunk, media.timestamp_ms), (4, 2, 5));
    assert_eq!(media.track, Track::Inbound);
    assert_eq!(media.stream_id, STREAM);
    // 748 base64 characters (checked with Python's base64 module).
    assert_eq!(media.payload.len(), 561);
    assert_eq!(&media.payload[..4], &[0x9e, 0x8f, 0x89, 0x86]);
    assert_eq!(
        TelnyxInbound::parse(TX_DTMF).unwrap(),
        TelnyxInbound::Dtmf(TelnyxDtmf {
            sequence_number: Some(5),
            stream_id: STREAM.into(),
            occurred_at: Some("2025-06-05T08:54:19.698408Z".into()),
            digit: "1".into(),
        })
    );
    assert_eq!(
        TelnyxInbound::parse(TX_MARK).unwrap(),
        TelnyxInbound::Mark(TelnyxMark {
            sequence_number: Some(5),
            stream_id: STREAM.into(),
            name: "some_mark_name".into()
        })
    );
    assert_eq!(
        TelnyxInbound::parse(TX_ERROR).unwrap(),
        TelnyxInbound::Error(TelnyxStreamError {
            stream_id: Some("uuid".into()),
            code: 100002,
            title: "unknown_error".into(),
            detail: Some("An unknown error occurred on the stream".into()),
        })
    );
    assert_eq!(
        TelnyxInbound::parse(TX_STOP).unwrap(),
        TelnyxInbound::Stop(TelnyxStop {
            sequence_number: Some(5),
            stream_id: STREAM.into(),
            call_control_id: Some("v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ".into()),
            user_id: Some("3E6F995F-85F7-4705-9741-53B116D28237".into()),
        })
    );
}

#[test]
fn telnyx_custom_parameters_come_as_an_object_or_a_list() {
    let object = TX_START.replace(r#""tags""#, r#""custom_parameters":{"tenant":"42"},"tags""#);
    let list =
        TX_START.replace(r#""tags""#, r#""custom_parameters":[{"name":"tenant","value":"42"}],"tags""#);
    for text in [object, list] {
        let TelnyxInbound::Start(start) = TelnyxInbound::parse(&text).unwrap() else { panic!() };
        assert_eq!(start.custom_parameters, BTreeMap::from([("tenant".to_owned(), "42".to_owned())]));
    }
}

#[test]
fn telnyx_outbound_messages_are_the_protocol_shapes() {
    let json_of = |m: &TelnyxOutbound| serde_json::from_str::<Value>(&m.to_json()).unwrap();
    assert_eq!(
        json_of(&TelnyxOutbound::Media { payload: vec![0xFF, 0x7F, 0x00] }),
        json!({"event":"media","media":{"payload":"/38A"}})
    );
    assert_eq!(
        json_of(&TelnyxOutbound::Mark { name: "x".into() }),
        json!({"event":"mark","mark":{"name":"x"}})
    );
    assert_eq!(json_of(&TelnyxOutbound::Clear), json!({"event":"clear"}));
}

#[test]
fn telnyx_messages_round_trip() {
    for text in [TX_CONNECTED, TX_START, TX_MEDIA, TX_DTMF, TX_MARK, TX_ERROR, TX_STOP] {
        let message = TelnyxInbound::parse(text).unwrap();
        assert_eq!(TelnyxInbound::parse(&message.to_json()).unwrap(), message, "{text}");
        // Same fields as the sample, nothing added or lost.
        assert_eq!(
            serde_json::from_str::<Value>(&message.to_json()).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }
    let minimal = TelnyxInbound::Media(TelnyxMedia {
        sequence_number: 9,
        stream_id: "s".into(),
        track: Track::Other("both".into()),
        chunk: 7,
        timestamp_ms: 120,
        payload: vec![1, 2, 3],
    });
    assert_eq!(TelnyxInbound::parse(&minimal.to_json()).unwrap(), minimal);
    for message in [
        TelnyxOutbound::Media { payload: (0..=255).collect() },
        TelnyxOutbound::Mark { name: "m&<\"".into() },
        TelnyxOutbound::Clear,
    ] {
        assert_eq!(TelnyxOutbound::parse(&message.to_json()).unwrap(), message);
    }
}

#[test]
fn malformed_telnyx_messages_are_typed_errors() {
    for text in ["", "{", "42", r#"{"evt":"media"}"#] {
        assert!(matches!(TelnyxInbound::parse(text).unwrap_err(), MediaParseError::Json(_)), "{text}");
    }
    assert!(matches!(
        TelnyxInbound::parse(r#"{"event":"transcription"}"#).unwrap_err(),
        MediaParseError::UnknownEvent(e) if e == "transcription"
    ));
    let invalid = [
        r#"{"event":"media","sequence_number":"4","media":{"track":"inbound","timestamp":"5","payload":""},"stream_id":"s"}"#,
        r#"{"event":"media","sequence_number":"4","media":{"track":"inbound","chunk":"two","timestamp":"5","payload":""},"stream_id":"s"}"#,
        r#"{"event":"start","sequence_number":"1","start":{"media_format":{"encoding":"PCMU","sample_rate":8000,"channels":1}},"stream_id":"s"}"#,
        r#"{"event":"error","payload":{"code":"E1","title":"x"}}"#,
        r#"{"event":"dtmf","stream_id":"s","dtmf":{}}"#,
        r#"{"event":"stop","sequence_number":"5"}"#,
    ];
    for text in invalid {
        assert!(matches!(TelnyxInbound::parse(text).unwrap_err(), MediaParseError::Invalid { .. }), "{text}");
    }
    let bad_payload = TX_MEDIA.replace("no+JhoaJ", "no+Jho*J");
    assert!(matches!(
        TelnyxInbound::parse(&bad_payload).unwrap_err(),
        MediaParseError::Base64 { event: "media", .. }
    ));
    assert!(matches!(
        TelnyxOutbound::parse(r#"{"event":"media","media":{"payload":"%%%"}}"#).unwrap_err(),
        MediaParseError::Base64 { .. }
    ));
}

#[test]
fn errors_explain_themselves() {
    let err = TwilioInbound::parse(r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ","mark":{}}"#)
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("mark") && text.contains("name"), "{text}");
}

proptest! {
    #[test]
    fn parsing_anything_never_panics(text in "\\PC{0,200}") {
        let _ = TwilioInbound::parse(&text);
        let _ = TwilioOutbound::parse(&text);
        let _ = TelnyxInbound::parse(&text);
        let _ = TelnyxOutbound::parse(&text);
    }

    #[test]
    fn parsing_mangled_samples_never_panics(cut in 0usize..400, junk in "[\\[\\]{}\":,a-z0-9]{0,8}") {
        for sample in [TW_START, TW_DTMF, TX_START, TX_MEDIA, TX_ERROR] {
            let cut = sample.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(sample.len());
            let mangled = format!("{}{junk}{}", &sample[..cut], &sample[cut..]);
            let _ = TwilioInbound::parse(&mangled);
            let _ = TelnyxInbound::parse(&mangled);
            let _ = TwilioInbound::parse_bytes(&mangled.as_bytes()[..cut]);
        }
    }

    #[test]
    fn any_audio_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..400), seq in any::<u64>(), chunk in any::<u64>()) {
        let twilio = TwilioInbound::Media(TwilioMedia {
            sequence_number: seq, stream_sid: "MZ".into(), track: Track::Inbound, chunk, timestamp_ms: chunk, payload: payload.clone(),
        });
        prop_assert_eq!(TwilioInbound::parse(&twilio.to_json()).unwrap(), twilio);
        let telnyx = TelnyxOutbound::Media { payload };
        prop_assert_eq!(TelnyxOutbound::parse(&telnyx.to_json()).unwrap(), telnyx);
    }
}
