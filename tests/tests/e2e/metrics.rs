//! Metrics as an operator's tools see them: a live server's `/metrics` after real traffic passes
//! `promtool check metrics` and carries every family with the catalog's type and labels (route
//! templates, never raw ids); the alert rules pass `promtool check rules` and their own
//! `promtool test rules`; every query of the Grafana dashboard parses; the README's table, the
//! dashboard and the rules name exactly the catalog's metrics. `promtool` is
//! `KRALIKI_TEST_PROMTOOL` (scripts/test installs Debian's `prometheus` package for it).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use kraliki_projections::metrics_catalog::{self as catalog, Kind};
use kraliki_tests::{spawn_app_with, TestApp};
use kraliki_voice::telephony::testing::api::FakeTwilioApi;
use kraliki_voice::telephony::testing::media::{Pace, ServerFrame};
use kraliki_voice::testing::{FakeOpenAi, Step};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::telephony::{
    events_until, inbound_twilio_call, voice_campaign, zone_where_it_is, ACCOUNT, PUBLIC, TOKEN,
};

fn promtool() -> String {
    match std::env::var("KRALIKI_TEST_PROMTOOL") {
        Ok(p) if !p.trim().is_empty() => p,
        _ => panic!(
            "KRALIKI_TEST_PROMTOOL is not set: run the tests with scripts/test, which installs Debian's prometheus package for promtool"
        ),
    }
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Runs promtool with `args` (and `stdin`, if given) in `dir`: whether it succeeded, and what
/// it said.
fn run_promtool(dir: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

/// One sample line of the text format: name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses a sample line (label values may hold `{`, `}`, `,` and escaped quotes).
fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).expect("a sample line");
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let (mut key, mut value, mut in_value, mut escaped) = (String::new(), String::new(), false, false);
        let mut end = body.len();
        while let Some((i, c)) = chars.next() {
            if in_value {
                if escaped {
                    value.push(if c == 'n' { '\n' } else { c });
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_value = false;
                    labels.insert(std::mem::take(&mut key), std::mem::take(&mut value));
                } else {
                    value.push(c);
                }
            } else {
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                        in_value = true;
                    }
                    c => key.push(c),
                }
            }
        }
        rest = &body[end..];
    }
    let value = rest.trim().split(' ').next().unwrap();
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("value of {line}")),
    };
    Sample { name, labels, value }
}

/// The families (`# TYPE`) and the samples of a scrape.
fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let (name, kind) = t.split_once(' ').unwrap();
            types.insert(name.to_owned(), kind.to_owned());
        } else if !line.starts_with('#') {
            samples.push(parse_sample(line));
        }
    }
    (types, samples)
}

/// The family a sample belongs to (a histogram's `_bucket`, `_sum` and `_count` are its own).
fn family_of<'a>(types: &BTreeMap<String, String>, sample: &'a str) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix) {
            if types.get(base).is_some_and(|k| k == "histogram") {
                return base;
            }
        }
    }
    sample
}

fn value_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map_or(0.0, |s| s.value)
}

async fn scrape(app: &TestApp) -> String {
    let r = app.anon.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    r.text().await.unwrap()
}

/// Metric names a PromQL text or a table mentions (histogram series folded to their family).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("kraliki_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase() || bytes[end].is_ascii_digit() || bytes[end] == b'_')
        {
            end += 1;
        }
        let name = &text[start..end];
        let folded = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s).filter(|b| catalog::find(b).is_some_and(|m| m.kind == Kind::Histogram))
            })
            .unwrap_or(name);
        names.insert(folded.to_owned());
        i = end;
    }
    names
}

fn catalog_names() -> BTreeSet<String> {
    catalog::ALL.iter().map(|m| m.name.to_owned()).collect()
}

/// A server that places calls through `twilio`, bridges them to `openai`'s agent, and has a
/// Gemini key for an endpoint where nothing listens.
async fn spawn(twilio: &FakeTwilioApi, openai: &FakeOpenAi) -> TestApp {
    let (twilio_url, openai_url) = (twilio.base_url(), openai.config().base_url);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    spawn_app_with(
        move |s| {
            s.providers.openai_api_key = Some(SecretString::from(FakeOpenAi::API_KEY));
            s.providers.openai_realtime_url = Some(openai_url);
            s.providers.gemini_api_key = Some(SecretString::from("gemini-test-key"));
            s.providers.gemini_live_url = Some(format!("ws://{closed}/live"));
            s.providers.twilio_account_sid = Some(ACCOUNT.into());
            s.providers.twilio_auth_token = Some(SecretString::from(TOKEN));
            s.providers.twilio_api_url = Some(twilio_url);
            s.providers.public_base_url = Some(PUBLIC.into());
        },
        Vec::new(),
    )
    .await
}

#[tokio::test]
async fn a_live_servers_metrics_pass_promtool_with_every_family_labelled_by_route_template() {
    let twilio = FakeTwilioApi::start(ACCOUNT, TOKEN).await.unwrap();
    let openai = FakeOpenAi::start().await.unwrap();
    // The bridged call: a greeting (agent to caller), then the caller's audio (caller to agent);
    // the call stays up until the phone hangs up.
    openai.push_all(FakeOpenAi::greeting_script("resp_1", "item_greet", &[0x55u8; 800], "Hello."));
    openai.push(Step::wait_for_type("input_audio_buffer.append"));
    let app = spawn(&twilio, &openai).await;
    let before = parse(&scrape(&app).await).1;
    let count = value_of;

    // Requests: a campaign read by its id, and a path no route matches (with an id in it too).
    let r =
        app.post_json("/api/v1/campaigns", json!({"name": "Outbound", "caller_id": "+14155550199"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let campaign = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let r = app.client.get(app.url(&format!("/api/v1/campaigns/{campaign}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let stray = uuid::Uuid::now_v7().to_string();
    let r = app.client.get(app.url(&format!("/api/v1/nothing-here/{stray}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // An outbound campaign with a contact to dial.
    let contact = json!({"phone_number": "+420603100019", "timezone": zone_where_it_is(12)});
    assert_eq!(app.post_json("/api/v1/contacts", contact).await.status(), StatusCode::CREATED);
    let r = app.post_json("/api/v1/call-lists", json!({"campaign_id": campaign, "name": "all"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app.client.post(app.url(&format!("/api/v1/campaigns/{campaign}/start"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A campaign whose voice provider does not answer: its caller's stream cannot be bridged.
    voice_campaign(&app, "+14155550177", "gemini", "Hi.").await;
    let (refused_call, _refused_phone) = inbound_twilio_call(&app, "CA0901", "+14155550177").await;
    events_until(&app, &refused_call, "CallFailed").await;

    // A bridged call, audio both ways; counted as active while it lasts.
    voice_campaign(&app, "+14155550100", "openai", "Hello.").await;
    // The round dials the outbound campaign and none of the two inbound ones.
    let state = app.app().state();
    let round = uuid::Uuid::now_v7().to_string();
    assert_eq!(state.dialer.round_now(&state.managers, &round).await.unwrap(), 1);
    let (call_id, mut phone) = inbound_twilio_call(&app, "CA0900", "+14155550100").await;
    assert!(phone.wait_for(Duration::from_secs(10), |f| matches!(f, ServerFrame::Mark(_))).await.is_some());
    phone.send_audio(&[0xffu8; 800], Pace::AsFastAsPossible).await.unwrap();
    openai
        .wait_for_json(Duration::from_secs(10), |v| v["type"] == "input_audio_buffer.append")
        .await
        .expect("caller audio reached the agent");
    let live = parse(&scrape(&app).await).1;
    let active = [("provider", "openai"), ("carrier", "twilio")];
    assert!(count(&live, catalog::VOICE_ACTIVE_CALLS.name, &active) >= 1.0, "the call is active");
    phone.stop().unwrap();
    events_until(&app, &call_id, "CallCompleted").await;
    app.caught_up().await;

    let text = scrape(&app).await;
    let (ok, said) = run_promtool(Path::new("."), &["check", "metrics"], Some(&text));
    assert!(ok, "promtool check metrics failed:\n{said}\n--- /metrics ---\n{text}");
    assert!(said.trim().is_empty(), "promtool had remarks: {said}");

    let (types, samples) = parse(&text);
    // Every family is the catalog's, with its type and exactly its labels.
    for (family, kind) in &types {
        let m = catalog::find(family).unwrap_or_else(|| panic!("{family} is not in the metrics catalog"));
        assert_eq!(kind, m.kind.as_str(), "{family}");
    }
    for s in &samples {
        let family = family_of(&types, &s.name);
        let m = catalog::find(family).unwrap_or_else(|| panic!("sample {} of no described family", s.name));
        let keys: BTreeSet<&str> = s.labels.keys().map(String::as_str).filter(|k| *k != "le").collect();
        let wanted: BTreeSet<&str> = m.labels.iter().copied().collect();
        assert_eq!(keys, wanted, "labels of {}", s.name);
    }
    // What this traffic produces is there.
    for m in [
        catalog::HTTP_REQUESTS,
        catalog::HTTP_REQUEST_DURATION,
        catalog::HTTP_IN_FLIGHT,
        catalog::COMMAND_DURATION,
        catalog::EVENTS_APPENDED,
        catalog::PROJECTION_EVENTS,
        catalog::PROJECTION_BATCH_DURATION,
        catalog::PROJECTION_APPLY_LAG,
        catalog::PROJECTION_LAG_EVENTS,
        catalog::PROJECTION_LAG_SECONDS,
        catalog::BARRIER_AGE,
        catalog::VOICE_ACTIVE_CALLS,
        catalog::BRIDGE_FRAME_LATENCY,
        catalog::VOICE_PROVIDER_CONNECT_FAILURES,
        catalog::CARRIER_DIAL_FAILURES,
        catalog::DIALER_CALLS_PLACED,
        catalog::DIALER_DIAL_REFUSALS,
        catalog::DIALER_ROUNDS,
        catalog::DIALER_CAMPAIGNS_ACTIVE,
    ] {
        assert!(types.contains_key(m.name), "{} missing from /metrics", m.name);
    }

    // Routes are templates: the campaign's id and the stray path are nowhere.
    assert!(!text.contains(&campaign), "a raw campaign id became a label");
    assert!(!text.contains(&stray) && !text.contains("nothing-here"), "an unmatched path became a label");
    let read = [("route", "/api/v1/campaigns/{id}"), ("method", "GET"), ("status_class", "2xx")];
    assert!(
        count(&samples, catalog::HTTP_REQUESTS.name, &read)
            > count(&before, catalog::HTTP_REQUESTS.name, &read)
    );
    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status_class", "4xx")];
    assert!(
        count(&samples, catalog::HTTP_REQUESTS.name, &unmatched)
            > count(&before, catalog::HTTP_REQUESTS.name, &unmatched)
    );
    for s in samples.iter().filter(|s| s.name.starts_with("kraliki_http_")) {
        let route = &s.labels["route"];
        assert!(route == "unmatched" || route.starts_with('/'), "{route}");
        for segment in route.split('/') {
            assert!(segment.parse::<uuid::Uuid>().is_err(), "a raw id in route {route}");
            assert!(
                segment.is_empty() || !segment.chars().all(|c| c.is_ascii_digit()),
                "a raw number in {route}"
            );
        }
    }
    let created = [("route", "/api/v1/campaigns"), ("method", "POST"), ("status_class", "2xx")];
    let timed = count(&samples, &format!("{}_count", catalog::HTTP_REQUEST_DURATION.name), &created);
    assert!(timed >= 1.0, "the campaign's creation was timed");
    // This very scrape was in flight while it rendered.
    let scraping = [("route", "/metrics"), ("method", "GET")];
    assert!(count(&samples, catalog::HTTP_IN_FLIGHT.name, &scraping) >= 1.0);

    // The call: frames timed both ways; the failed connect and the dialer round counted.
    let frames = format!("{}_count", catalog::BRIDGE_FRAME_LATENCY.name);
    for direction in ["caller_to_agent", "agent_to_caller"] {
        let d = [("direction", direction)];
        assert!(count(&samples, &frames, &d) > count(&before, &frames, &d), "no {direction} frame timed");
    }
    let refused = [("provider", "gemini"), ("reason", "connect")];
    let failures = catalog::VOICE_PROVIDER_CONNECT_FAILURES.name;
    assert!(count(&samples, failures, &refused) > count(&before, failures, &refused));
    let placed = [("outcome", "placed")];
    assert!(
        count(&samples, catalog::DIALER_ROUNDS.name, &placed)
            > count(&before, catalog::DIALER_ROUNDS.name, &placed)
    );
    let not_dialing = [("outcome", "not_dialing")];
    assert!(
        count(&samples, catalog::DIALER_ROUNDS.name, &not_dialing)
            > count(&before, catalog::DIALER_ROUNDS.name, &not_dialing),
        "the inbound campaigns' rounds dial nobody"
    );
    let calls_placed = catalog::DIALER_CALLS_PLACED.name;
    assert!(count(&samples, calls_placed, &[]) > count(&before, calls_placed, &[]));
    // Projection batches ran for the read models this traffic fed.
    let applied = [("projection", "call_view")];
    assert!(
        count(&samples, catalog::PROJECTION_EVENTS.name, &applied)
            > count(&before, catalog::PROJECTION_EVENTS.name, &applied)
    );
    app.cleanup().await;
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_own_unit_tests() {
    let dir = repo("ops/prometheus");
    let (ok, said) = run_promtool(&dir, &["check", "rules", "kraliki-alerts.yml"], None);
    assert!(ok, "promtool check rules:\n{said}");
    assert!(said.contains("SUCCESS"), "{said}");
    let (ok, said) = run_promtool(&dir, &["test", "rules", "kraliki-alerts.test.yml"], None);
    assert!(ok, "promtool test rules:\n{said}");
    // The rules cover the cases the README promises.
    let rules = std::fs::read_to_string(dir.join("kraliki-alerts.yml")).unwrap();
    for alert in [
        "KralikiProjectionLagGrowing",
        "KralikiHttpErrorRate",
        "KralikiNoCallsPlaced",
        "KralikiVoiceProviderConnectFailures",
    ] {
        assert!(rules.contains(&format!("alert: {alert}\n")), "{alert} missing");
    }
}

#[test]
fn every_dashboard_query_parses_and_names_catalog_metrics() {
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("ops/grafana/kraliki-dashboard.json")).unwrap())
            .expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "kraliki-voice");
    let mut panels: Vec<&Value> = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        panels.push(p);
        panels.extend(p["panels"].as_array().into_iter().flatten());
    }
    let mut ids = BTreeSet::new();
    let mut rules = Vec::new();
    let mut named = BTreeSet::new();
    for p in panels {
        let id = p["id"].as_i64().unwrap();
        assert!(ids.insert(id), "panel id {id} twice");
        for k in ["h", "w", "x", "y"] {
            assert!(p["gridPos"][k].is_i64(), "panel {id} has no gridPos.{k}");
        }
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("panel {id} has no targets"));
        assert!(!targets.is_empty(), "panel {id}");
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            named.extend(metric_names(expr));
            // Grafana's variables as a Prometheus would see them once Grafana has filled them in.
            let expr = expr.replace("$__rate_interval", "5m").replace("$instance", ".*");
            assert!(!expr.contains('$'), "panel {id}: an unknown variable in {expr}");
            rules.push(json!({"record": format!("dashboard:panel_{id}_{}", t["refId"].as_str().unwrap()), "expr": expr}));
        }
    }
    // promtool parses every query as a recording rule (JSON is YAML).
    let file = std::env::temp_dir().join(format!("kraliki-dashboard-{}.yml", uuid::Uuid::now_v7()));
    std::fs::write(&file, json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string()).unwrap();
    let (ok, said) = run_promtool(Path::new("."), &["check", "rules", file.to_str().unwrap()], None);
    let _ = std::fs::remove_file(&file);
    assert!(ok, "a dashboard query does not parse:\n{said}");
    let unknown: Vec<_> = named.difference(&catalog_names()).cloned().collect();
    assert!(unknown.is_empty(), "the dashboard queries metrics the server does not export: {unknown:?}");
    // Every metric has a panel.
    let missing: Vec<_> = catalog_names().into_iter().filter(|n| !named.contains(n)).collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}");
}

#[test]
fn the_readme_table_and_the_rules_name_exactly_the_catalogs_metrics() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let section =
        readme.split("\n## Metrics\n").nth(1).expect("a Metrics section").split("\n## ").next().unwrap();
    let rows: Vec<&str> = section.lines().filter(|l| l.starts_with("| `kraliki_")).collect();
    let listed: Vec<String> =
        rows.iter().map(|r| r.trim_start_matches("| `").split('`').next().unwrap().to_owned()).collect();
    let unique: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(unique.len(), listed.len(), "a metric is listed twice");
    assert_eq!(unique, catalog_names(), "the README's table and the catalog differ");
    for (row, name) in rows.iter().zip(&listed) {
        let m = catalog::find(name).unwrap();
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[2], m.kind.as_str(), "{name}'s type in the README");
        assert_eq!(cells[3], m.labels.join(", "), "{name}'s labels in the README");
    }
    let rules = std::fs::read_to_string(repo("ops/prometheus/kraliki-alerts.yml")).unwrap();
    let rules: String =
        rules.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    let unknown: Vec<_> = metric_names(&rules).difference(&catalog_names()).cloned().collect();
    assert!(unknown.is_empty(), "the alert rules name metrics the server does not export: {unknown:?}");
}

#[test]
fn the_sample_parser_reads_templates_and_escapes() {
    let s = parse_sample(
        r#"kraliki_http_requests_total{method="GET",route="/api/v1/calls/{id}",status_class="2xx"} 3"#,
    );
    assert_eq!(s.name, "kraliki_http_requests_total");
    assert_eq!(s.labels["route"], "/api/v1/calls/{id}");
    assert_eq!(s.labels.len(), 3);
    assert_eq!(s.value, 3.0);
    let s = parse_sample(r#"x_bucket{a="q\"uo,te}",le="+Inf"} 7"#);
    assert_eq!(s.labels["a"], "q\"uo,te}");
    assert_eq!(s.labels["le"], "+Inf");
    assert_eq!(parse_sample("kraliki_barrier_age_seconds 0.25").value, 0.25);
}
