//! What a campaign is configured with: the seed's fields plus the dialer's rules.

use chrono::{DateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::values::{clean_text, time_zone, InvalidValue, PhoneNumber};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum VoiceProvider {
    Openai,
    Gemini,
    Deepgram,
}

impl VoiceProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Gemini => "gemini",
            Self::Deepgram => "deepgram",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CampaignType {
    #[default]
    OutboundSales,
    InboundSupport,
    Survey,
    Notification,
    Marketing,
}

impl CampaignType {
    pub fn is_outbound(self) -> bool {
        !matches!(self, Self::InboundSupport)
    }
}

/// Dialer pacing (DOMAIN.md): preview (an agent clicks), progressive (idle agents − calls in
/// flight), predictive (adaptive dial level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DialingMode {
    Preview,
    #[default]
    Progressive,
    Predictive,
}

/// When contacts may be called, in each contact's own local time. Days are ISO weekdays
/// (1 = Monday … 7 = Sunday). The default is the legal 08:00–21:00 window every day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct CallingWindow {
    #[cfg_attr(feature = "openapi", schema(example = "08:00"))]
    pub start: String,
    #[cfg_attr(feature = "openapi", schema(example = "21:00"))]
    pub end: String,
    pub days: Vec<u8>,
}

impl Default for CallingWindow {
    fn default() -> Self {
        Self { start: "08:00".into(), end: "21:00".into(), days: vec![1, 2, 3, 4, 5, 6, 7] }
    }
}

impl CallingWindow {
    fn times(&self) -> (Option<NaiveTime>, Option<NaiveTime>) {
        let t = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").ok();
        (t(&self.start), t(&self.end))
    }

    /// Start and end as `HH:MM:SS` for SQL; only called on validated settings.
    pub fn bounds(&self) -> (NaiveTime, NaiveTime) {
        match self.times() {
            (Some(s), Some(e)) => (s, e),
            _ => (NaiveTime::MIN, NaiveTime::MIN),
        }
    }

    fn check(&self, problems: &mut Vec<InvalidValue>) {
        let (start, end) = self.times();
        if start.is_none() {
            problems.push(InvalidValue::new("calling_window.start", "invalid_time", "use HH:MM (24 h)"));
        }
        if end.is_none() {
            problems.push(InvalidValue::new("calling_window.end", "invalid_time", "use HH:MM (24 h)"));
        }
        if let (Some(s), Some(e)) = (start, end) {
            if s >= e {
                problems.push(InvalidValue::new("calling_window.end", "before_start", "must be after start"));
            }
            if s < NaiveTime::from_hms_opt(8, 0, 0).unwrap_or(NaiveTime::MIN)
                || e > NaiveTime::from_hms_opt(21, 0, 0).unwrap_or(NaiveTime::MIN)
            {
                problems.push(InvalidValue::new(
                    "calling_window",
                    "outside_legal_hours",
                    "must lie within 08:00–21:00 local time",
                ));
            }
        }
        if self.days.is_empty() || self.days.iter().any(|d| !(1..=7).contains(d)) {
            problems.push(InvalidValue::new(
                "calling_window.days",
                "invalid_days",
                "ISO weekdays 1 (Mon) … 7 (Sun)",
            ));
        }
    }
}

/// Minutes to wait before the next attempt, per outcome of the previous one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RetryDelays {
    pub no_answer: u32,
    pub busy: u32,
    pub failed: u32,
    pub voicemail: u32,
    /// A number dropped as abandoned is not redialled for 72 h (4,320 minutes) at least.
    pub abandoned: u32,
}

impl Default for RetryDelays {
    fn default() -> Self {
        Self { no_answer: 60, busy: 15, failed: 30, voicemail: 240, abandoned: ABANDONED_MINIMUM_MINUTES }
    }
}

pub const ABANDONED_MINIMUM_MINUTES: u32 = 72 * 60;

/// The whole configuration of a campaign. Unknown keys are refused, so a typo is an error and
/// not a silently ignored setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct CampaignSettings {
    pub name: String,
    pub description: Option<String>,
    pub campaign_type: CampaignType,
    pub primary_provider: VoiceProvider,
    pub backup_providers: Vec<VoiceProvider>,
    pub voice: Option<String>,
    pub language: String,
    pub instructions: Option<String>,
    pub script: Option<String>,
    pub dialing_mode: DialingMode,
    pub routing_strategy: Option<String>,
    /// The campaign's own zone (business hours, start and end dates shown to people).
    pub timezone: String,
    pub business_hours_only: bool,
    pub calling_window: CallingWindow,
    pub max_attempts: u32,
    pub retry_delays: RetryDelays,
    /// Dispositions that count as a success (conversion rate).
    pub success_dispositions: Vec<String>,
    pub caller_id: Option<String>,
    pub team_id: Option<Uuid>,
    pub queue_id: Option<Uuid>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub target_audience: Map<String, Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub dialing_rules: Map<String, Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub configuration: Map<String, Value>,
    pub max_concurrent_calls: u32,
    pub calls_per_hour: u32,
    pub budget_limit: Option<f64>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

impl Default for CampaignSettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: None,
            campaign_type: CampaignType::default(),
            primary_provider: VoiceProvider::Openai,
            backup_providers: Vec::new(),
            voice: None,
            language: "en".into(),
            instructions: None,
            script: None,
            dialing_mode: DialingMode::default(),
            routing_strategy: None,
            timezone: "UTC".into(),
            business_hours_only: false,
            calling_window: CallingWindow::default(),
            max_attempts: 3,
            retry_delays: RetryDelays::default(),
            success_dispositions: ["success", "sale", "converted", "appointment_set", "interested"]
                .map(String::from)
                .to_vec(),
            caller_id: None,
            team_id: None,
            queue_id: None,
            target_audience: Map::new(),
            dialing_rules: Map::new(),
            configuration: Map::new(),
            max_concurrent_calls: 10,
            calls_per_hour: 100,
            budget_limit: None,
            start_time: None,
            end_time: None,
        }
    }
}

/// Settings that shape calls already being placed: they change only while no call is being
/// dialed (draft or paused).
pub const LOCKED_WHILE_ACTIVE: &[&str] =
    &["campaign_type", "primary_provider", "dialing_mode", "caller_id", "calling_window", "start_time"];

impl CampaignSettings {
    /// Reads settings from JSON (a request body, a template, a merge result) and checks every
    /// rule, reporting all problems at once.
    pub fn from_json(value: Value) -> Result<Self, Vec<InvalidValue>> {
        let settings: Self = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "body".to_owned() } else { path };
            vec![InvalidValue::new(field, "invalid", e.into_inner().to_string())]
        })?;
        settings.validated()
    }

    pub fn to_json(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// Applies a JSON merge patch (RFC 7396: `null` clears, objects merge) and checks the result.
    pub fn patched(&self, patch: &Map<String, Value>) -> Result<Self, Vec<InvalidValue>> {
        let mut current = Value::Object(self.to_json());
        merge_patch(&mut current, &Value::Object(patch.clone()));
        Self::from_json(current)
    }

    /// Top-level fields whose value differs.
    pub fn changed_fields(&self, other: &Self) -> Vec<String> {
        let (a, b) = (self.to_json(), other.to_json());
        a.iter().filter(|(k, v)| b.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect()
    }

    pub fn validated(mut self) -> Result<Self, Vec<InvalidValue>> {
        let mut problems = Vec::new();
        match clean_text("name", &self.name, 200) {
            Ok(name) => self.name = name,
            Err(e) => problems.push(e),
        }
        for (field, value, max) in [
            ("description", &mut self.description, 2000),
            ("instructions", &mut self.instructions, 20_000),
            ("script", &mut self.script, 50_000),
            ("voice", &mut self.voice, 100),
            ("routing_strategy", &mut self.routing_strategy, 50),
        ] {
            if let Some(v) = value.as_deref() {
                let trimmed = v.trim();
                if trimmed.is_empty() {
                    *value = None;
                } else if trimmed.chars().count() > max {
                    problems.push(InvalidValue::new(field, "too_long", format!("at most {max} characters")));
                } else {
                    *value = Some(trimmed.to_owned());
                }
            }
        }
        if self.language.trim().is_empty() || self.language.len() > 35 {
            problems.push(InvalidValue::new(
                "language",
                "invalid_language",
                "a BCP 47 tag such as en or cs-CZ",
            ));
        }
        match time_zone("timezone", &self.timezone) {
            Ok(tz) => self.timezone = tz,
            Err(e) => problems.push(e),
        }
        if self.backup_providers.contains(&self.primary_provider) {
            problems.push(InvalidValue::new(
                "backup_providers",
                "duplicate_provider",
                "must not repeat the primary provider",
            ));
        }
        self.calling_window.check(&mut problems);
        if !(1..=20).contains(&self.max_attempts) {
            problems.push(InvalidValue::new("max_attempts", "out_of_range", "between 1 and 20"));
        }
        if self.retry_delays.abandoned < ABANDONED_MINIMUM_MINUTES {
            problems.push(InvalidValue::new(
                "retry_delays.abandoned",
                "below_minimum",
                "an abandoned number is not redialled for 72 h (4320 minutes)",
            ));
        }
        if let Some(raw) = self.caller_id.as_deref() {
            match PhoneNumber::parse_field("caller_id", raw, None) {
                Ok(n) => self.caller_id = Some(n.as_str().to_owned()),
                Err(e) => problems.push(e),
            }
        }
        if !(1..=10_000).contains(&self.max_concurrent_calls) {
            problems.push(InvalidValue::new("max_concurrent_calls", "out_of_range", "between 1 and 10000"));
        }
        if !(1..=1_000_000).contains(&self.calls_per_hour) {
            problems.push(InvalidValue::new("calls_per_hour", "out_of_range", "between 1 and 1000000"));
        }
        if self.budget_limit.is_some_and(|b| !b.is_finite() || b < 0.0) {
            problems.push(InvalidValue::new("budget_limit", "out_of_range", "a non-negative amount"));
        }
        if let (Some(start), Some(end)) = (self.start_time, self.end_time) {
            if end <= start {
                problems.push(InvalidValue::new("end_time", "before_start", "must be after start_time"));
            }
        }
        for d in &mut self.success_dispositions {
            *d = d.trim().to_ascii_lowercase();
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }
}

impl CampaignSettings {
    /// The window this campaign calls in: the calling window, narrowed to 09:00–17:00 on
    /// weekdays when `business_hours_only`.
    pub fn effective_window(&self) -> (NaiveTime, NaiveTime, Vec<u8>) {
        let (mut start, mut end) = self.calling_window.bounds();
        let mut days = self.calling_window.days.clone();
        if self.business_hours_only {
            start = start.max(NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(start));
            end = end.min(NaiveTime::from_hms_opt(17, 0, 0).unwrap_or(end));
            days.retain(|d| *d <= 5);
        }
        (start, end, days)
    }

    /// Whether `now` is inside the window in every one of `zones` (a contact whose number spans
    /// zones may be in any of them). An unknown zone never allows a call.
    pub fn may_call_at(&self, zones: &[String], now: DateTime<Utc>) -> bool {
        use chrono::{Datelike, Timelike};
        let (start, end, days) = self.effective_window();
        !zones.is_empty()
            && zones.iter().all(|zone| match zone.parse::<chrono_tz::Tz>() {
                Ok(tz) => {
                    let local = now.with_timezone(&tz);
                    let time = NaiveTime::from_hms_opt(local.hour(), local.minute(), local.second());
                    let day = local.weekday().number_from_monday() as u8;
                    time.is_some_and(|t| t >= start && t < end) && days.contains(&day)
                }
                Err(_) => false,
            })
    }
}

/// RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}
