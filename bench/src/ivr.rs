//! IVR step latency (`--only ivr`): C concurrent calls (default 200) stepping through a
//! published flow over Twilio's webhooks for S seconds (default 20). Each call enters the flow
//! (the voice webhook), presses 1 up to 40 times (a menu that plays a message and asks again:
//! two node visits per step), a key every T ms (default 1,000: the caller's time to listen and
//! press), then 2 (goodbye), and hangs up (the status callback). Each
//! webhook is signed as Twilio signs it and timed from the request to the whole TwiML answer.
//! Baseline, in the same run and the same load: after each step the same call sends a signed
//! status callback for a call we never set up (the signature check and one stream read: the
//! floor of any webhook).

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use kraliki_commands::CommandContext;
use kraliki_domain::campaign::{Campaign, CampaignCommand, CampaignOrigin, CampaignSettings, CampaignType};
use kraliki_domain::campaign::{Readiness, VoiceProvider};
use kraliki_domain::ivr::{IvrFlow, IvrFlowCommand, ValidationContext};
use kraliki_voice::twilio::TwilioValidator;
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::store::percentile;

const TOKEN: &str = "bench-twilio-token";
const PUBLIC: &str = "https://bench.example";
const NUMBER: &str = "+14155550199";
/// Presses of 1 per call before it says goodbye (two node visits each; the flow's cap is 100).
const STEPS_PER_CALL: usize = 40;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "IVR")]
pub struct IvrArgs {
    /// Concurrent calls stepping through the flow.
    #[arg(long, default_value_t = 200)]
    pub ivr_calls: usize,
    /// Seconds of stepping.
    #[arg(long, default_value_t = 20)]
    pub ivr_seconds: u64,
    /// A caller's time between hearing the prompt and pressing the key (ms): 200 calls at
    /// 1,000 ms offer 200 steps/s. 0: as fast as the server answers (a closed loop, where the
    /// latency is the queueing of 200 requests always in flight).
    #[arg(long, default_value_t = 1000)]
    pub ivr_think_ms: u64,
}

/// What the server needs to take the benchmark's webhooks.
pub fn configure(settings: &mut kraliki_api::Settings) {
    settings.providers.twilio_auth_token = Some(SecretString::from(TOKEN));
    settings.providers.public_base_url = Some(PUBLIC.into());
    if settings.providers.openai_api_key.is_none() {
        settings.providers.openai_api_key = Some(SecretString::from("bench"));
    }
}

/// One call's webhooks, timed.
#[derive(Default)]
struct Timings {
    enter: Vec<f64>,
    step: Vec<f64>,
    floor: Vec<f64>,
    failures: Vec<String>,
}

struct Twilio {
    http: reqwest::Client,
    base: String,
    signer: TwilioValidator,
}

impl Twilio {
    /// Posts a signed webhook to `path` (with its query): the status and body, and the time.
    async fn post(&self, path: &str, params: &[(&str, &str)]) -> anyhow::Result<(u16, String, f64)> {
        let signature = self.signer.sign(&format!("{PUBLIC}{path}"), params);
        let started = Instant::now();
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("x-twilio-signature", signature)
            .form(params)
            .send()
            .await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        Ok((status, body, started.elapsed().as_secs_f64() * 1000.0))
    }
}

/// The path and query of the answer's `<Gather>` action.
fn gather_action(twiml: &str) -> Option<String> {
    let action = twiml.split("<Gather action=\"").nth(1)?.split('"').next()?.replace("&amp;", "&");
    action.strip_prefix(PUBLIC).map(str::to_owned)
}

async fn setup(app: &kraliki_api::Application) -> anyhow::Result<()> {
    let state = app.state();
    let tenant = Uuid::now_v7();
    let ctx = CommandContext::new(tenant.to_string(), "system:bench");
    let campaign = Uuid::now_v7();
    let settings = CampaignSettings {
        name: "bench IVR".into(),
        campaign_type: CampaignType::InboundSupport,
        caller_id: Some(NUMBER.into()),
        primary_provider: VoiceProvider::Openai,
        ..CampaignSettings::default()
    };
    let fail = |e: kraliki_commands::DispatchError<_>| anyhow::anyhow!("{e}");
    let create = CampaignCommand::CreateCampaign { settings, origin: CampaignOrigin::Blank, at: Utc::now() };
    state.dispatcher.execute::<Campaign>(&campaign.to_string(), create, &ctx).await.map_err(fail)?;
    let readiness = Readiness { dialable_contacts: 0, configured_providers: vec![VoiceProvider::Openai] };
    let start = CampaignCommand::StartCampaign { readiness, at: Utc::now() };
    let started =
        state.dispatcher.execute::<Campaign>(&campaign.to_string(), start, &ctx).await.map_err(fail)?;
    let flow = serde_json::from_value(json!({
        "name": "bench front desk",
        "campaign_id": campaign,
        "entry_node_id": "menu",
        "languages": ["en"],
        "nodes": {
            "menu": {"type": "menu", "message": "Press 1 to hear our hours, 2 to leave.", "input_type": "both",
                     "options": {"1": "hours", "2": "bye"}, "timeout_node": "bye", "error_node": "bye"},
            "hours": {"type": "play_message", "message": "We are open from nine to five.", "next_node": "menu"},
            "bye": {"type": "end_call", "message": "Goodbye.", "disposition": "bench"}
        }
    }))?;
    let id = Uuid::now_v7().to_string();
    let fail = |e: kraliki_commands::DispatchError<_>| anyhow::anyhow!("{e}");
    let create = IvrFlowCommand::CreateIvrFlow { flow, at: Utc::now() };
    state.dispatcher.execute::<IvrFlow>(&id, create, &ctx).await.map_err(fail)?;
    let publish = IvrFlowCommand::PublishIvrFlow { context: ValidationContext::default(), at: Utc::now() };
    let published = state.dispatcher.execute::<IvrFlow>(&id, publish, &ctx).await.map_err(fail)?;
    // The voice webhook finds the campaign and its flow in their read models.
    for (view, position) in [
        (kraliki_projections::campaign::NAME, started.position),
        (kraliki_projections::ivr_flow::NAME, published.position),
    ] {
        state.wait_for(view, position).await.map_err(|e| anyhow::anyhow!("{view}: {:?}", e.code))?;
    }
    Ok(())
}

/// One caller: calls after calls until the deadline, the first after its share of one think
/// time (so the callers' steps spread over it).
async fn caller(twilio: &Twilio, worker: usize, deadline: Instant, think: Duration, calls: usize) -> Timings {
    let mut t = Timings::default();
    let mut n = 0u64;
    tokio::time::sleep(think.mul_f64(worker as f64 / calls.max(1) as f64)).await;
    while Instant::now() < deadline {
        n += 1;
        let sid = format!("CA{worker:08}{n:024}");
        if let Err(e) = one_call(twilio, &sid, (deadline, think), &mut t).await {
            t.failures.push(format!("{sid}: {e:#}"));
            return t;
        }
    }
    t
}

async fn one_call(
    twilio: &Twilio,
    sid: &str,
    (deadline, think): (Instant, Duration),
    t: &mut Timings,
) -> anyhow::Result<()> {
    let voice = [("CallSid", sid), ("From", "+420603123456"), ("To", NUMBER), ("Direction", "inbound")];
    let (status, twiml, ms) = twilio.post("/api/telephony/twilio/voice", &voice).await?;
    anyhow::ensure!(status == 200, "voice webhook {status}: {twiml}");
    t.enter.push(ms);
    let mut action = gather_action(&twiml).with_context(|| format!("no <Gather>: {twiml}"))?;
    let unknown = format!("CA{}", &sid[2..].replace(|c: char| c.is_ascii_digit(), "f"));
    for i in 0..=STEPS_PER_CALL {
        // The caller listens and presses a key.
        tokio::time::sleep(think).await;
        let last = i == STEPS_PER_CALL || Instant::now() >= deadline;
        let digits = if last { "2" } else { "1" };
        let (status, twiml, ms) = twilio.post(&action, &[("CallSid", sid), ("Digits", digits)]).await?;
        anyhow::ensure!(status == 200, "gather webhook {status}: {twiml}");
        t.step.push(ms);
        let floor = [("CallSid", unknown.as_str()), ("CallStatus", "ringing"), ("SequenceNumber", "0")];
        let (status, body, ms) = twilio.post("/api/telephony/twilio/status", &floor).await?;
        anyhow::ensure!(status == 204, "status callback {status}: {body}");
        t.floor.push(ms);
        if last {
            anyhow::ensure!(twiml.contains("<Hangup/>"), "no goodbye: {twiml}");
            break;
        }
        action = gather_action(&twiml).with_context(|| format!("no <Gather>: {twiml}"))?;
    }
    let done =
        [("CallSid", sid), ("CallStatus", "completed"), ("SequenceNumber", "1"), ("CallDuration", "30")];
    let (status, body, _) = twilio.post("/api/telephony/twilio/status", &done).await?;
    anyhow::ensure!(status == 204, "status callback {status}: {body}");
    Ok(())
}

pub async fn run(app: &kraliki_api::Application, args: &IvrArgs) -> anyhow::Result<()> {
    setup(app).await?;
    let twilio = std::sync::Arc::new(Twilio {
        http: reqwest::Client::builder().pool_max_idle_per_host(args.ivr_calls).build()?,
        base: format!("http://{}", app.addr()),
        signer: TwilioValidator::new(SecretString::from(TOKEN)),
    });
    let deadline = Instant::now() + Duration::from_secs(args.ivr_seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..args.ivr_calls)
        .map(|w| {
            let twilio = twilio.clone();
            let (think, calls) = (Duration::from_millis(args.ivr_think_ms), args.ivr_calls);
            tokio::spawn(async move { caller(&twilio, w, deadline, think, calls).await })
        })
        .collect();
    let mut all = Timings::default();
    for w in workers {
        let t = w.await?;
        all.enter.extend(t.enter);
        all.step.extend(t.step);
        all.floor.extend(t.floor);
        all.failures.extend(t.failures);
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(first) = all.failures.first() {
        anyhow::bail!("{} calls failed; the first: {first}", all.failures.len());
    }
    for v in [&mut all.enter, &mut all.step, &mut all.floor] {
        v.sort_by(f64::total_cmp);
    }
    let p = |v: &[f64], q| percentile(v, q);
    println!(
        "IVR steps over Twilio webhooks, {} concurrent calls pressing a key every {} ms for {:.0} s ({} calls, {} steps, {:.0} steps/s):",
        args.ivr_calls,
        args.ivr_think_ms,
        elapsed,
        all.enter.len(),
        all.step.len(),
        all.step.len() as f64 / elapsed
    );
    println!(
        "  enter (voice webhook → first TwiML)  p50 {:>7.1} ms  p99 {:>7.1} ms",
        p(&all.enter, 50.0),
        p(&all.enter, 99.0)
    );
    println!(
        "  step (<Gather> action → TwiML)       p50 {:>7.1} ms  p99 {:>7.1} ms",
        p(&all.step, 50.0),
        p(&all.step, 99.0)
    );
    println!(
        "  floor: a signed webhook, no call      p50 {:>7.1} ms  p99 {:>7.1} ms   step p99 ÷ floor p99 = {:.1}",
        p(&all.floor, 50.0),
        p(&all.floor, 99.0),
        p(&all.step, 99.0) / p(&all.floor, 99.0)
    );
    let goal = p(&all.step, 99.0) <= 20.0;
    println!("  goal: step p99 ≤ 20 ms — {}", if goal { "met" } else { "not met" });
    Ok(())
}
