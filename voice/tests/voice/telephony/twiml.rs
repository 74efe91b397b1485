//! TwiML: the PROTOCOLS.md example, escaping, validation. (The Twilio SDK comparison is in
//! `oracle.rs`.)

use kraliki_voice::telephony::twiml::{
    Connect, Dial, DialTarget, HttpMethod, Say, Stream, TwimlError, VoiceResponse,
};

/// An element as (name, attributes sorted, trimmed text, children): what XML means, whatever
/// the quoting, attribute order or empty-element spelling.
#[derive(Debug, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

pub fn parse_xml(xml: &str) -> Element {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("not XML ({e}): {xml}"));
    element(doc.root_element())
}

fn element(node: roxmltree::Node) -> Element {
    let mut attributes: Vec<(String, String)> =
        node.attributes().map(|a| (a.name().to_owned(), a.value().to_owned())).collect();
    attributes.sort();
    let text: String = node.children().filter(|c| c.is_text()).filter_map(|c| c.text()).collect();
    Element {
        name: node.tag_name().name().to_owned(),
        attributes,
        text: text.trim().to_owned(),
        children: node.children().filter(|c| c.is_element()).map(element).collect(),
    }
}

fn protocols_example() -> VoiceResponse {
    let stream = Stream::new("wss://ex.com/media")
        .unwrap()
        .status_callback("https://ex.com/ss", None)
        .unwrap()
        .parameter("tenant", "42");
    VoiceResponse::new().connect(Connect::stream(stream).action("https://ex.com/after", None).unwrap())
}

#[test]
fn writes_the_protocols_example() {
    let xml = protocols_example().to_xml();
    assert_eq!(
        xml,
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<Response><Connect action="https://ex.com/after"><Stream url="wss://ex.com/media" statusCallback="https://ex.com/ss">"#,
            r#"<Parameter name="tenant" value="42"/></Stream></Connect></Response>"#
        )
    );
    let expected = r#"<Response><Connect action="https://ex.com/after"><Stream url="wss://ex.com/media"
 statusCallback="https://ex.com/ss"><Parameter name="tenant" value="42"/></Stream></Connect></Response>"#;
    assert_eq!(parse_xml(&xml), parse_xml(expected));
}

#[test]
fn escapes_quotes_ampersands_and_angle_brackets_in_attributes() {
    let nasty = r#"a "quoted" & <tagged> 'value' with &amp; already"#;
    let url = "wss://ex.com/api/telephony/twilio/media?tenant=1&call=\"x\"";
    let stream = Stream::new(url).unwrap().parameter(nasty, nasty).parameter("multi\nline\ttab", "cr\r\nlf");
    let xml = VoiceResponse::new().connect(Connect::stream(stream)).to_xml();
    assert!(xml.contains("&quot;quoted&quot; &amp; &lt;tagged&gt;"), "{xml}");
    assert!(xml.contains("&amp;amp; already"), "{xml}");
    assert!(!xml.contains("&call=\""), "{xml}");
    let root = parse_xml(&xml);
    let stream = &root.children[0].children[0];
    assert_eq!(stream.attributes, vec![("url".to_owned(), url.to_owned())]);
    let params: Vec<&Vec<(String, String)>> = stream.children.iter().map(|p| &p.attributes).collect();
    assert_eq!(
        params,
        vec![
            &vec![("name".to_owned(), nasty.to_owned()), ("value".to_owned(), nasty.to_owned())],
            // Whitespace survives as character references (a parser would turn raw ones into spaces).
            &vec![
                ("name".to_owned(), "multi\nline\ttab".to_owned()),
                ("value".to_owned(), "cr\r\nlf".to_owned())
            ],
        ]
    );
}

#[test]
fn escapes_text_and_replaces_characters_xml_cannot_carry() {
    let xml = VoiceResponse::new()
        .say(
            Say::new("Tom & Jerry say <hi> \u{7} ring\u{0}")
                .voice("Polly.Joanna")
                .language("en-US")
                .repeat(2),
        )
        .to_xml();
    let root = parse_xml(&xml);
    let say = &root.children[0];
    assert_eq!(say.name, "Say");
    assert_eq!(say.text, "Tom & Jerry say <hi> \u{FFFD} ring\u{FFFD}");
    assert_eq!(
        say.attributes,
        vec![
            ("language".to_owned(), "en-US".to_owned()),
            ("loop".to_owned(), "2".to_owned()),
            ("voice".to_owned(), "Polly.Joanna".to_owned())
        ]
    );
}

#[test]
fn writes_transfer_hangup_pause_and_redirect() {
    let xml = VoiceResponse::new()
        .say(Say::new("Connecting you to an agent."))
        .dial(
            Dial::new(DialTarget::Number("+420123456789".into()))
                .caller_id("+12025550100")
                .timeout(20)
                .time_limit(3600)
                .answer_on_bridge(true)
                .action("https://ex.com/dial-done?x=1&y=2", Some(HttpMethod::Post))
                .unwrap(),
        )
        .pause(1)
        .redirect("https://ex.com/next", Some(HttpMethod::Get))
        .unwrap()
        .hangup()
        .to_xml();
    let root = parse_xml(&xml);
    let names: Vec<&str> = root.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Say", "Dial", "Pause", "Redirect", "Hangup"]);
    let dial = &root.children[1];
    assert_eq!(
        dial.attributes,
        vec![
            ("action".to_owned(), "https://ex.com/dial-done?x=1&y=2".to_owned()),
            ("answerOnBridge".to_owned(), "true".to_owned()),
            ("callerId".to_owned(), "+12025550100".to_owned()),
            ("method".to_owned(), "POST".to_owned()),
            ("timeLimit".to_owned(), "3600".to_owned()),
            ("timeout".to_owned(), "20".to_owned()),
        ]
    );
    assert_eq!(dial.children[0].name, "Number");
    assert_eq!(dial.children[0].text, "+420123456789");
    assert_eq!(root.children[2].attributes, vec![("length".to_owned(), "1".to_owned())]);
    assert_eq!(root.children[3].text, "https://ex.com/next");
    assert!(root.children[4].attributes.is_empty() && root.children[4].children.is_empty());
    for (target, noun) in [
        (DialTarget::Sip("sip:agent@pbx.example.com;transport=tls".into()), "Sip"),
        (DialTarget::Client("agent_7".into()), "Client"),
    ] {
        let root = parse_xml(&VoiceResponse::new().dial(Dial::new(target)).to_xml());
        assert_eq!(root.children[0].children[0].name, noun);
    }
}

#[test]
fn a_stream_without_parameters_is_an_empty_element() {
    let xml = VoiceResponse::new()
        .connect(Connect::stream(Stream::new("wss://ex.com/m").unwrap().name("ai")))
        .to_xml();
    assert!(xml.contains(r#"<Stream url="wss://ex.com/m" name="ai"/>"#), "{xml}");
}

#[test]
fn rejects_urls_twilio_would_not_take() {
    for url in ["ws://ex.com/media", "https://ex.com/media", "/api/telephony/twilio/media", "", "wss://"] {
        assert!(matches!(Stream::new(url), Err(TwimlError::InvalidUrl { .. })), "{url}");
    }
    let stream = Stream::new("wss://ex.com/m").unwrap();
    assert!(stream.clone().status_callback("ftp://ex.com/x", None).is_err());
    assert!(Connect::stream(stream).action("after", None).is_err());
    assert!(VoiceResponse::new().redirect("javascript:alert(1)", None).is_err());
    assert!(Dial::new(DialTarget::Number("+1".into())).action("", None).is_err());
    let err = Stream::new("http://ex.com").unwrap_err();
    assert!(err.to_string().contains("wss://"), "{err}");
}
