//! The flow validator (DOMAIN.md "IVR"): every finding at once, each with a stable code, the
//! node it is about and the field. Errors block publishing; warnings do not.
//!
//! The graph it checks is the interpreter's: each node's type-specific exits plus, for nodes
//! that can fail or time out without an `error_node` / `timeout_node`, the fall-back to the
//! flow's `error_node_id`. A loop in that graph with no `menu` or `gather_input` on it would
//! spin without the caller (the runtime still stops at [`super::MAX_VISITS`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::condition::{self, is_variable_name, template_variables};
use super::flow::{ExitKind, Flow, InputType, Message, Node, NodeType, TransferType};
use crate::routing::fields::language_tag;
use crate::values::PhoneNumber;

/// Whether a finding blocks publishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IssueSeverity {
    /// Blocks publishing.
    Error,
    /// Reported; does not block.
    Warning,
}

macro_rules! issue_codes {
    ($($(#[$doc:meta])* $name:ident = $wire:literal, $sev:ident;)*) => {
        /// A finding's stable code (the wire names never change).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum IssueCode { $($(#[$doc])* $name,)* }

        impl IssueCode {
            /// Every code.
            pub const ALL: &'static [IssueCode] = &[$(Self::$name,)*];

            /// The stable wire name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$name => $wire,)* }
            }

            /// Whether it blocks publishing.
            pub fn severity(self) -> IssueSeverity {
                match self { $(Self::$name => IssueSeverity::$sev,)* }
            }
        }
    };
}

issue_codes! {
    /// The flow has no name.
    MissingName = "missing_name", Error;
    /// `entry_node_id` is empty or names no node.
    MissingEntry = "missing_entry", Error;
    /// A node id is empty, too long or has control characters or spaces.
    InvalidNodeId = "invalid_node_id", Error;
    /// Two nodes have the same id (or a node's `id` is not its key).
    DuplicateNodeId = "duplicate_node_id", Error;
    /// More than [`super::flow::MAX_NODES`] nodes.
    TooManyNodes = "too_many_nodes", Error;
    /// A link names a node that does not exist.
    DanglingLink = "dangling_link", Error;
    /// An exit the node needs is not connected (`next_node` of a prompt, a condition's branch).
    MissingExit = "missing_exit", Error;
    /// No path from the entry (or the flow's error node) reaches the node.
    UnreachableNode = "unreachable_node", Warning;
    /// A loop with no `menu` or `gather_input` on it.
    LoopWithoutInput = "loop_without_input", Error;
    /// A timeout is zero or out of range.
    InvalidTimeout = "invalid_timeout", Error;
    /// `max_retries` out of range (0–10).
    InvalidRetries = "invalid_retries", Error;
    /// A node that can fail has no `error_node` and the flow no `error_node_id`: the call ends.
    MissingErrorBranch = "missing_error_branch", Warning;
    /// A node that can time out has no `timeout_node` (nor an error branch to fall back to).
    MissingTimeoutBranch = "missing_timeout_branch", Warning;
    /// A menu without options.
    MissingOptions = "missing_options", Error;
    /// The same menu key twice.
    DuplicateOptionKey = "duplicate_option_key", Error;
    /// A menu key the caller cannot press (or say).
    InvalidOptionKey = "invalid_option_key", Error;
    /// A menu key that is (or contains) `finish_on_key`: pressing it ends input instead.
    OptionKeyIsFinishKey = "option_key_is_finish_key", Error;
    /// `finish_on_key` is not one of 0–9, `*`, `#` (or empty).
    InvalidFinishKey = "invalid_finish_key", Error;
    /// `num_digits` zero or above 32, or shorter than a `valid_inputs` entry.
    InvalidNumDigits = "invalid_num_digits", Error;
    /// A `valid_inputs` entry that keys cannot produce (digits-only gather), or empty.
    InvalidValidInput = "invalid_valid_input", Error;
    /// A `conditional` without a condition.
    MissingCondition = "missing_condition", Error;
    /// A condition that does not parse.
    InvalidCondition = "invalid_condition", Error;
    /// `in_hours('x')` names no schedule of the flow.
    UnknownSchedule = "unknown_schedule", Error;
    /// A time zone that is not an IANA zone.
    InvalidTimezone = "invalid_timezone", Error;
    /// A schedule's ranges overlap or name a day that does not exist.
    InvalidSchedule = "invalid_schedule", Error;
    /// `set_variable` or `gather_input` without `variable_name`.
    MissingVariableName = "missing_variable_name", Error;
    /// A variable name the condition language cannot read.
    InvalidVariableName = "invalid_variable_name", Error;
    /// A variable read where some path to the node has not set it.
    VariableMaybeUnset = "variable_maybe_unset", Warning;
    /// A prompt node with nothing to say or play.
    MissingPrompt = "missing_prompt", Error;
    /// A prompt without text in one of the flow's languages.
    MissingTranslation = "missing_translation", Warning;
    /// `default_language` or a `languages` entry is not a language tag.
    InvalidLanguage = "invalid_language", Error;
    /// A webhook without a URL.
    MissingWebhookUrl = "missing_webhook_url", Error;
    /// A webhook URL that is not `http(s)://host/…` (or has credentials in it).
    InvalidWebhookUrl = "invalid_webhook_url", Error;
    /// A webhook host not on the allow-list.
    WebhookHostNotAllowed = "webhook_host_not_allowed", Error;
    /// A webhook to a private, loopback or link-local address (not allowed by configuration).
    WebhookPrivateAddress = "webhook_private_address", Error;
    /// A transfer to a queue, agent or number without `transfer_to`.
    MissingTransferTarget = "missing_transfer_target", Error;
    /// `transfer_to` is not an agent id (uuid) or a phone number (E.164) as its type needs.
    InvalidTransferTarget = "invalid_transfer_target", Error;
    /// The queue or agent does not exist.
    UnknownTransferTarget = "unknown_transfer_target", Error;
    /// A skill level out of 1–5.
    InvalidSkillLevel = "invalid_skill_level", Error;
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowIssue {
    /// Stable code.
    pub code: IssueCode,
    /// Error or warning (follows from the code).
    pub severity: IssueSeverity,
    /// The node, when the finding is about one.
    pub node_id: Option<String>,
    /// The field (`options.1`, `timeout_seconds`, `entry_node_id`).
    pub field: String,
    /// For people.
    pub message: String,
}

impl FlowIssue {
    /// A finding about `node_id` (or the flow).
    pub fn new(
        code: IssueCode,
        node_id: Option<&str>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code,
            severity: code.severity(),
            node_id: node_id.map(str::to_owned),
            field: field.into(),
            message: message.into(),
        }
    }

    /// Whether it blocks publishing.
    pub fn is_error(&self) -> bool {
        self.severity == IssueSeverity::Error
    }
}

/// Which webhook hosts the tenant's configuration allows.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WebhookPolicy {
    /// Hosts (`api.example.com`) or subdomain patterns (`*.example.com`); `None`: no list
    /// configured, any public host; an empty list: none.
    pub allowed_hosts: Option<Vec<String>>,
    /// Private, loopback and link-local addresses allowed (tests, on-premises).
    pub allow_private: bool,
}

/// Why a webhook URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRefusal {
    /// Not an absolute `http(s)` URL with a host, or it carries credentials.
    #[error("not a webhook URL: {0}")]
    InvalidUrl(String),
    /// The host is not on the allow-list.
    #[error("host {0} is not on the webhook allow-list")]
    HostNotAllowed(String),
    /// A private, loopback or link-local address.
    #[error("{0} is a private address")]
    PrivateAddress(String),
}

impl WebhookPolicy {
    /// Checks a URL as the HTTP client will read it: scheme, host on the list, no literal
    /// private address (a name that resolves to one is for the caller to check with
    /// [`WebhookPolicy::address_allowed`] after resolving, and again on each redirect).
    pub fn check(&self, raw: &str) -> Result<url::Url, WebhookRefusal> {
        let parsed = url::Url::parse(raw.trim()).map_err(|e| WebhookRefusal::InvalidUrl(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(WebhookRefusal::InvalidUrl(format!(
                "scheme {} (use http or https)",
                parsed.scheme()
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(WebhookRefusal::InvalidUrl("credentials in the URL".into()));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => d.trim_end_matches('.').to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(WebhookRefusal::InvalidUrl("no host".into())),
        };
        if let Some(list) = &self.allowed_hosts {
            if !list.iter().any(|pattern| host_matches(pattern, &host)) {
                return Err(WebhookRefusal::HostNotAllowed(host));
            }
        }
        if !self.allow_private {
            let private = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => is_private(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => is_private(IpAddr::V6(ip)),
                _ => host == "localhost" || host.ends_with(".localhost"),
            };
            if private {
                return Err(WebhookRefusal::PrivateAddress(host));
            }
        }
        Ok(parsed)
    }

    /// Whether a resolved address may be called.
    pub fn address_allowed(&self, ip: IpAddr) -> bool {
        self.allow_private || !is_private(ip)
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(&format!(".{suffix}")),
        None => pattern == host,
    }
}

/// Loopback, private, link-local, shared (CGNAT), unspecified, broadcast, unique-local, and
/// IPv4-mapped forms of them.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// What the validator knows beyond the flow: the webhook policy and, when given, the queues and
/// agents that exist (transfers to others are findings).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ValidationContext {
    /// The tenant's webhook configuration.
    pub webhooks: WebhookPolicy,
    /// Queue ids and names that exist; `None`: not checked.
    pub queues: Option<BTreeSet<String>>,
    /// Agent ids that exist; `None`: not checked.
    pub agents: Option<BTreeSet<Uuid>>,
}

/// Every finding, errors and warnings, in a stable order (flow-level first, then by node).
pub fn check(flow: &Flow, ctx: &ValidationContext) -> Vec<FlowIssue> {
    let mut v = Validator { flow, ctx, out: Vec::new() };
    v.flow_fields();
    v.node_ids();
    for (id, node) in flow.nodes.iter() {
        v.node(id, node);
    }
    let graph = Graph::of(flow);
    v.reachability(&graph);
    v.loops(&graph);
    v.unset_variables(&graph);
    v.out
}

/// `Ok` when nothing blocks publishing; else every finding (warnings too).
pub fn validate_with(flow: &Flow, ctx: &ValidationContext) -> Result<(), Vec<FlowIssue>> {
    let issues = check(flow, ctx);
    if issues.iter().any(FlowIssue::is_error) {
        Err(issues)
    } else {
        Ok(())
    }
}

/// [`validate_with`] without configuration: any public webhook host, transfer targets not
/// looked up.
pub fn validate(flow: &Flow) -> Result<(), Vec<FlowIssue>> {
    validate_with(flow, &ValidationContext::default())
}

/// Variables every call has.
pub const BUILTIN_VARIABLES: [&str; 5] =
    ["caller_number", "called_number", "call_id", "language", "campaign_id"];

const MAX_TIMEOUT_SECONDS: u32 = 120;
const MAX_RETRIES: u32 = 10;
const MAX_WEBHOOK_MS: u32 = 5000;
const MAX_NODE_ID: usize = 100;

struct Validator<'a> {
    flow: &'a Flow,
    ctx: &'a ValidationContext,
    out: Vec<FlowIssue>,
}

fn is_dtmf_key(c: char) -> bool {
    c.is_ascii_digit() || c == '*' || c == '#'
}

impl Validator<'_> {
    fn push(
        &mut self,
        code: IssueCode,
        node: Option<&str>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.out.push(FlowIssue::new(code, node, field, message));
    }

    fn flow_fields(&mut self) {
        let f = self.flow;
        if f.name.trim().is_empty() {
            self.push(IssueCode::MissingName, None, "name", "the flow needs a name");
        }
        if f.entry_node_id.trim().is_empty() {
            self.push(IssueCode::MissingEntry, None, "entry_node_id", "no entry node");
        } else if f.node(&f.entry_node_id).is_none() {
            let msg = format!("entry node `{}` does not exist", f.entry_node_id);
            self.push(IssueCode::MissingEntry, Some(&f.entry_node_id), "entry_node_id", msg);
        }
        if let Some(err) = &f.error_node_id {
            if f.node(err).is_none() {
                self.push(
                    IssueCode::DanglingLink,
                    None,
                    "error_node_id",
                    format!("node `{err}` does not exist"),
                );
            }
        }
        if f.nodes.len() > super::flow::MAX_NODES {
            let msg = format!("at most {} nodes", super::flow::MAX_NODES);
            self.push(IssueCode::TooManyNodes, None, "nodes", msg);
        }
        self.timeout(None, "timeout_seconds", Some(f.timeout_seconds), 1, MAX_TIMEOUT_SECONDS);
        self.timeout(None, "inter_digit_timeout", Some(f.inter_digit_timeout), 1, MAX_TIMEOUT_SECONDS);
        if f.max_retries > MAX_RETRIES {
            self.push(IssueCode::InvalidRetries, None, "max_retries", format!("0 to {MAX_RETRIES}"));
        }
        if language_tag("default_language", &f.default_language).is_err() {
            self.push(IssueCode::InvalidLanguage, None, "default_language", "a language tag such as en");
        }
        for (i, lang) in f.languages.iter().enumerate() {
            if language_tag("languages", lang).is_err() {
                self.push(
                    IssueCode::InvalidLanguage,
                    None,
                    format!("languages[{i}]"),
                    "a language tag such as es",
                );
            }
        }
        if let Some(zone) = &f.timezone {
            if zone.parse::<chrono_tz::Tz>().is_err() {
                self.push(
                    IssueCode::InvalidTimezone,
                    None,
                    "timezone",
                    format!("`{zone}` is not an IANA time zone"),
                );
            }
        }
        for (name, hours) in &f.schedules {
            if let Err(problems) = hours.validate(&format!("schedules.{name}")) {
                for p in problems {
                    let code = if p.code == "invalid_timezone" {
                        IssueCode::InvalidTimezone
                    } else {
                        IssueCode::InvalidSchedule
                    };
                    self.push(code, None, p.field.to_string(), p.message);
                }
            }
        }
        for name in f.variables.keys() {
            if !is_variable_name(name) {
                self.push(
                    IssueCode::InvalidVariableName,
                    None,
                    format!("variables.{name}"),
                    "not a variable name",
                );
            }
        }
        for (field, msg) in
            [("invalid_input_message", &f.invalid_input_message), ("timeout_message", &f.timeout_message)]
        {
            if let Some(m) = msg {
                self.translations(None, field, m);
            }
        }
    }

    fn node_ids(&mut self) {
        for key in self.flow.nodes.repeated_keys() {
            self.push(
                IssueCode::DuplicateNodeId,
                Some(key),
                "nodes",
                format!("node id `{key}` is used twice"),
            );
        }
        for (key, node) in self.flow.nodes.iter() {
            let ok = !key.is_empty()
                && key.chars().count() <= MAX_NODE_ID
                && !key.chars().any(|c| c.is_control() || c.is_whitespace());
            if !ok {
                let msg = format!("1–{MAX_NODE_ID} characters, no spaces or control characters");
                self.push(IssueCode::InvalidNodeId, Some(key), "nodes", msg);
            }
            if let Some(id) = &node.id {
                if id != key {
                    let msg = format!("the node under `{key}` says its id is `{id}`");
                    self.push(IssueCode::DuplicateNodeId, Some(key), "id", msg);
                }
            }
        }
    }

    fn timeout(&mut self, node: Option<&str>, field: &str, value: Option<u32>, min: u32, max: u32) {
        if let Some(v) = value {
            if v < min || v > max {
                self.push(IssueCode::InvalidTimeout, node, field, format!("{v} is outside {min}–{max}"));
            }
        }
    }

    fn translations(&mut self, node: Option<&str>, field: &str, message: &Message) {
        let f = self.flow;
        let missing: Vec<&str> = f
            .languages
            .iter()
            .map(String::as_str)
            .filter(|l| !message.has_language(l, &f.default_language))
            .collect();
        if !missing.is_empty() && !message.is_blank() {
            let msg = format!("no text in {}", missing.join(", "));
            self.push(IssueCode::MissingTranslation, node, field, msg);
        }
    }

    fn node(&mut self, id: &str, node: &Node) {
        let f = self.flow;
        // Every link that is set must resolve, whatever the type reads.
        for link in node.all_links() {
            if f.node(link.target).is_none() {
                let msg = format!("node `{}` does not exist", link.target);
                self.push(IssueCode::DanglingLink, Some(id), link.field, msg);
            }
        }
        let has = |kind: ExitKind| node.links().iter().any(|l| l.kind == kind);
        let required: &[(ExitKind, &str)] = match node.node_type {
            NodeType::PlayMessage | NodeType::SetVariable | NodeType::GatherInput | NodeType::Webhook => {
                &[(ExitKind::Next, "next_node")]
            }
            NodeType::Conditional => &[(ExitKind::True, "true_node"), (ExitKind::False, "false_node")],
            _ => &[],
        };
        for (kind, field) in required {
            if !has(*kind) {
                let msg = format!("a {} node needs `{field}`", node.node_type);
                self.push(IssueCode::MissingExit, Some(id), *field, msg);
            }
        }
        let has_error_fallback = node.error_node.is_some() || f.error_node_id.is_some();
        if node.can_fail() && !has_error_fallback {
            let msg = "on failure the call ends: set `error_node` (or the flow's `error_node_id`)";
            self.push(IssueCode::MissingErrorBranch, Some(id), "error_node", msg);
        }
        if node.can_time_out() && node.timeout_node.is_none() && !has_error_fallback {
            let msg = "on no input the call ends: set `timeout_node` or an error branch";
            self.push(IssueCode::MissingTimeoutBranch, Some(id), "timeout_node", msg);
        }
        if let Some(r) = node.max_retries {
            if r > MAX_RETRIES {
                self.push(IssueCode::InvalidRetries, Some(id), "max_retries", format!("0 to {MAX_RETRIES}"));
            }
        }
        for (field, msg) in [
            ("message", &node.message),
            ("invalid_input_message", &node.invalid_input_message),
            ("timeout_message", &node.timeout_message),
        ] {
            if let Some(m) = msg {
                if node.use_tts || field != "message" {
                    self.translations(Some(id), field, m);
                }
            }
        }
        match node.node_type {
            NodeType::PlayMessage | NodeType::Menu => self.prompt_required(id, node),
            _ => {}
        }
        match node.node_type {
            NodeType::Menu => self.menu(id, node),
            NodeType::GatherInput => self.gather(id, node),
            NodeType::Conditional => self.conditional(id, node),
            NodeType::SetVariable => self.variable_name(id, node, true),
            NodeType::Webhook => self.webhook(id, node),
            NodeType::Transfer => self.transfer(id, node),
            NodeType::Voicemail => {
                self.timeout(Some(id), "max_length_seconds", node.max_length_seconds, 1, 600);
                self.timeout(Some(id), "silence_timeout_seconds", node.silence_timeout_seconds, 1, 60);
            }
            NodeType::PlayMessage | NodeType::EndCall => {}
        }
    }

    fn prompt_required(&mut self, id: &str, node: &Node) {
        let text = node.message.as_ref().is_some_and(|m| !m.is_blank());
        let audio = node.audio_url.as_ref().is_some_and(|a| !a.trim().is_empty());
        let says_something = if node.use_tts { text || audio } else { audio };
        if !says_something {
            let msg = if node.use_tts {
                "no message or audio_url"
            } else {
                "use_tts is off and there is no audio_url"
            };
            self.push(IssueCode::MissingPrompt, Some(id), "message", msg);
        }
    }

    fn input_timeouts(&mut self, id: &str, node: &Node) {
        self.timeout(Some(id), "timeout_seconds", node.timeout_seconds, 1, MAX_TIMEOUT_SECONDS);
        self.timeout(Some(id), "inter_digit_timeout", node.inter_digit_timeout, 1, MAX_TIMEOUT_SECONDS);
    }

    fn finish_key(&mut self, id: &str, node: &Node) -> Option<char> {
        let key = node.finish_on_key.trim();
        let mut chars = key.chars();
        match (chars.next(), chars.next()) {
            (None, _) => None,
            (Some(c), None) if is_dtmf_key(c) => Some(c),
            _ => {
                self.push(
                    IssueCode::InvalidFinishKey,
                    Some(id),
                    "finish_on_key",
                    "one of 0–9, *, # or empty",
                );
                None
            }
        }
    }

    fn menu(&mut self, id: &str, node: &Node) {
        self.input_timeouts(id, node);
        if node.options.is_empty() {
            self.push(IssueCode::MissingOptions, Some(id), "options", "a menu needs at least one option");
        }
        let finish = if node.input_type.dtmf() { self.finish_key(id, node) } else { None };
        let mut seen: Vec<String> = Vec::new();
        for (key, _) in node.options.iter() {
            let field = format!("options.{key}");
            let norm = key.trim().to_lowercase();
            if seen.contains(&norm) {
                self.push(
                    IssueCode::DuplicateOptionKey,
                    Some(id),
                    field.clone(),
                    format!("key `{key}` twice"),
                );
            } else {
                seen.push(norm.clone());
            }
            let pressable = !norm.is_empty() && norm.len() <= 4 && norm.chars().all(is_dtmf_key);
            let sayable = !norm.is_empty() && norm.chars().count() <= 100;
            let ok = match node.input_type {
                InputType::Dtmf | InputType::Both => pressable,
                InputType::Speech => sayable,
            };
            if !ok {
                let msg = if node.input_type.dtmf() {
                    "a key of 1–4 characters from 0–9, *, #"
                } else {
                    "a word or phrase of 1–100 characters"
                };
                self.push(IssueCode::InvalidOptionKey, Some(id), field.clone(), msg);
            } else if finish.is_some_and(|f| norm.contains(f)) {
                let msg = format!("`{key}` uses `{}`, the key that ends input", node.finish_on_key.trim());
                self.push(IssueCode::OptionKeyIsFinishKey, Some(id), field, msg);
            }
        }
        for key in node.option_phrases.keys() {
            if !node.options.contains_key(key) {
                let msg = format!("phrases for `{key}`, which is not an option");
                self.push(IssueCode::InvalidOptionKey, Some(id), format!("option_phrases.{key}"), msg);
            }
        }
        // Two options with the same phrase: the first would always win.
        let mut phrases: BTreeMap<String, &str> = BTreeMap::new();
        for (key, list) in &node.option_phrases {
            for p in list {
                let norm = normalize_speech(p);
                match phrases.get(&norm) {
                    Some(other) if other != key => {
                        let msg = format!("phrase `{p}` is also an option `{other}` phrase");
                        self.push(
                            IssueCode::DuplicateOptionKey,
                            Some(id),
                            format!("option_phrases.{key}"),
                            msg,
                        );
                    }
                    _ => {
                        phrases.insert(norm, key);
                    }
                }
            }
        }
        if let Some(name) = &node.variable_name {
            if !is_variable_name(name) {
                self.push(IssueCode::InvalidVariableName, Some(id), "variable_name", "not a variable name");
            }
        }
    }

    fn gather(&mut self, id: &str, node: &Node) {
        self.input_timeouts(id, node);
        self.variable_name(id, node, false);
        let finish = if node.input_type.dtmf() { self.finish_key(id, node) } else { None };
        if let Some(n) = node.num_digits {
            if n == 0 || n > 32 {
                self.push(IssueCode::InvalidNumDigits, Some(id), "num_digits", "1 to 32");
            }
        }
        for (i, input) in node.valid_inputs.iter().enumerate() {
            let field = format!("valid_inputs[{i}]");
            let t = input.trim();
            let keys_only = node.input_type == InputType::Dtmf;
            if t.is_empty() || (keys_only && !t.chars().all(is_dtmf_key)) {
                self.push(IssueCode::InvalidValidInput, Some(id), field, "keys from 0–9, *, #");
            } else if keys_only && finish.is_some_and(|f| t.contains(f)) {
                let msg = format!("`{t}` uses `{}`, the key that ends input", node.finish_on_key.trim());
                self.push(IssueCode::OptionKeyIsFinishKey, Some(id), field, msg);
            } else if keys_only && node.num_digits.is_some_and(|n| n > 0 && t.chars().count() > n as usize) {
                let msg = format!("`{t}` is longer than num_digits");
                self.push(IssueCode::InvalidNumDigits, Some(id), field, msg);
            }
        }
    }

    fn variable_name(&mut self, id: &str, node: &Node, required: bool) {
        match node.variable_name.as_deref().map(str::trim) {
            None | Some("") if required || node.node_type == NodeType::GatherInput => {
                let msg = format!("a {} node needs `variable_name`", node.node_type);
                self.push(IssueCode::MissingVariableName, Some(id), "variable_name", msg);
            }
            Some(name) if !name.is_empty() && !is_variable_name(name) => {
                self.push(
                    IssueCode::InvalidVariableName,
                    Some(id),
                    "variable_name",
                    format!("`{name}` is not a variable name"),
                );
            }
            _ => {}
        }
    }

    fn conditional(&mut self, id: &str, node: &Node) {
        let Some(src) = node.condition.as_deref().filter(|c| !c.trim().is_empty()) else {
            self.push(IssueCode::MissingCondition, Some(id), "condition", "a conditional needs a condition");
            return;
        };
        match condition::parse(src) {
            Err(e) => self.push(IssueCode::InvalidCondition, Some(id), "condition", e.to_string()),
            Ok(expr) => {
                for name in expr.schedules() {
                    if !self.flow.schedules.contains_key(name) {
                        let msg = format!("no schedule named `{name}` in the flow's schedules");
                        self.push(IssueCode::UnknownSchedule, Some(id), "condition", msg);
                    }
                }
            }
        }
    }

    fn webhook(&mut self, id: &str, node: &Node) {
        if let Some(ms) = node.webhook_timeout_ms {
            if ms == 0 || ms > MAX_WEBHOOK_MS {
                let msg = format!("{ms} ms is outside 1–{MAX_WEBHOOK_MS} ms");
                self.push(IssueCode::InvalidTimeout, Some(id), "webhook_timeout_ms", msg);
            }
        }
        for name in node.response_mapping.keys() {
            if !is_variable_name(name) {
                let msg = format!("`{name}` is not a variable name");
                self.push(IssueCode::InvalidVariableName, Some(id), format!("response_mapping.{name}"), msg);
            }
        }
        let Some(raw) = node.webhook_url.as_deref().filter(|u| !u.trim().is_empty()) else {
            self.push(IssueCode::MissingWebhookUrl, Some(id), "webhook_url", "a webhook needs a URL");
            return;
        };
        // Variables may fill the path and query, never the host: check the URL with them blank.
        let url = condition::interpolate(raw, &BTreeMap::new());
        match self.ctx.webhooks.check(&url) {
            Ok(_) => {}
            Err(WebhookRefusal::InvalidUrl(m)) => {
                self.push(IssueCode::InvalidWebhookUrl, Some(id), "webhook_url", m)
            }
            Err(e @ WebhookRefusal::HostNotAllowed(_)) => {
                self.push(IssueCode::WebhookHostNotAllowed, Some(id), "webhook_url", e.to_string())
            }
            Err(e @ WebhookRefusal::PrivateAddress(_)) => {
                self.push(IssueCode::WebhookPrivateAddress, Some(id), "webhook_url", e.to_string())
            }
        }
        if let Some(scheme_end) = raw.find("://") {
            let authority_end =
                raw[scheme_end + 3..].find('/').map(|i| i + scheme_end + 3).unwrap_or(raw.len());
            if raw[..authority_end].contains("{{") {
                let msg = "variables may not fill the webhook's host";
                self.push(IssueCode::InvalidWebhookUrl, Some(id), "webhook_url", msg);
            }
        }
    }

    fn transfer(&mut self, id: &str, node: &Node) {
        self.timeout(Some(id), "timeout_seconds", node.timeout_seconds, 1, 600);
        self.timeout(Some(id), "max_wait_seconds", node.max_wait_seconds, 1, 7200);
        for (skill, level) in &node.required_skills {
            if !(1..=5).contains(level) {
                let msg = "a level from 1 to 5";
                self.push(IssueCode::InvalidSkillLevel, Some(id), format!("required_skills.{skill}"), msg);
            }
        }
        let target = node.transfer_to.as_deref().map(str::trim).filter(|t| !t.is_empty());
        let Some(target) = target else {
            if node.transfer_type.needs_target() {
                let msg = format!("a transfer to a {} needs `transfer_to`", node.transfer_type.as_str());
                self.push(IssueCode::MissingTransferTarget, Some(id), "transfer_to", msg);
            }
            return;
        };
        if !template_variables(target).is_empty() {
            return; // Decided at run time.
        }
        match node.transfer_type {
            TransferType::Agent => match Uuid::parse_str(target) {
                Err(_) => {
                    self.push(IssueCode::InvalidTransferTarget, Some(id), "transfer_to", "an agent id (uuid)")
                }
                Ok(agent) => {
                    if self.ctx.agents.as_ref().is_some_and(|known| !known.contains(&agent)) {
                        let msg = format!("no agent {agent}");
                        self.push(IssueCode::UnknownTransferTarget, Some(id), "transfer_to", msg);
                    }
                }
            },
            TransferType::Number => {
                if let Err(e) = PhoneNumber::parse(target, None) {
                    self.push(IssueCode::InvalidTransferTarget, Some(id), "transfer_to", e.message);
                }
            }
            TransferType::Queue => {
                if self.ctx.queues.as_ref().is_some_and(|known| !known.contains(target)) {
                    let msg = format!("no queue `{target}`");
                    self.push(IssueCode::UnknownTransferTarget, Some(id), "transfer_to", msg);
                }
            }
            TransferType::AiAgent | TransferType::Voicemail => {}
        }
    }

    fn reachability(&mut self, g: &Graph) {
        let reached = g.reachable_from_roots();
        for (i, id) in g.ids.iter().enumerate() {
            if !reached[i] {
                self.push(IssueCode::UnreachableNode, Some(id), "nodes", "no path from the entry reaches it");
            }
        }
    }

    /// A loop that avoids every menu and gather is a cycle among the other nodes alone (a
    /// component that merely contains a menu may still hold such a cycle).
    fn loops(&mut self, g: &Graph) {
        for scc in g.cyclic_components(&g.waits) {
            let names: Vec<&str> = scc.iter().map(|&i| g.ids[i].as_str()).collect();
            let msg = format!("loop with no menu or gather_input through: {}", names.join(", "));
            self.push(IssueCode::LoopWithoutInput, Some(names[0]), "nodes", msg);
        }
    }

    fn unset_variables(&mut self, g: &Graph) {
        let sets = g.definitely_set(self.flow);
        for (i, id) in g.ids.iter().enumerate() {
            let Some(known) = &sets[i] else { continue };
            let Some(node) = self.flow.node(id) else { continue };
            for name in reads(node) {
                let known_here = known.contains(name.as_str()) || self.flow.variables.contains_key(&name);
                if !known_here && !BUILTIN_VARIABLES.contains(&name.as_str()) {
                    let msg = format!("`{name}` may be read before any path sets it");
                    self.push(IssueCode::VariableMaybeUnset, Some(id), "variables", msg);
                }
            }
        }
    }
}

/// Speech as compared with phrases: lower-case, letters and digits, single spaces.
pub fn normalize_speech(s: &str) -> String {
    let cleaned: String =
        s.to_lowercase().chars().map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Variables a node reads when entered.
fn reads(node: &Node) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !out.iter().any(|o| o == name) {
            out.push(name.to_owned())
        }
    };
    if node.node_type == NodeType::Conditional {
        if let Some(expr) = node.condition.as_deref().and_then(|c| condition::parse(c).ok()) {
            expr.variables().into_iter().for_each(&mut add);
        }
    }
    let mut texts: Vec<&str> = Vec::new();
    if let Some(m) = &node.message {
        texts.extend(m.texts());
    }
    match node.node_type {
        NodeType::SetVariable => texts.extend(node.variable_value.as_deref()),
        NodeType::Webhook => {
            texts.extend(node.webhook_url.as_deref());
            texts.extend(node.webhook_headers.values().map(String::as_str));
        }
        NodeType::Transfer => texts.extend(node.transfer_to.as_deref()),
        _ => {}
    }
    for t in texts {
        template_variables(t).into_iter().for_each(&mut add);
    }
    if node.node_type == NodeType::Webhook {
        if let Some(body) = &node.webhook_body {
            let mut stack = vec![body];
            while let Some(v) = stack.pop() {
                match v {
                    serde_json::Value::String(s) => template_variables(s).into_iter().for_each(&mut add),
                    serde_json::Value::Array(a) => stack.extend(a.iter()),
                    serde_json::Value::Object(o) => stack.extend(o.values()),
                    _ => {}
                }
            }
        }
    }
    out
}

/// The interpreter's graph over node indexes (first node of a repeated id).
pub(crate) struct Graph {
    pub ids: Vec<String>,
    /// Edges: (to, variables set on the way).
    pub edges: Vec<Vec<(usize, Vec<String>)>>,
    pub waits: Vec<bool>,
    pub roots: Vec<usize>,
}

impl Graph {
    pub fn of(flow: &Flow) -> Self {
        let mut ids: Vec<String> = Vec::new();
        for k in flow.nodes.keys() {
            if !ids.iter().any(|i| i == k) {
                ids.push(k.to_owned());
            }
        }
        let index = |id: &str| ids.iter().position(|i| i == id);
        let flow_error = flow.error_node_id.as_deref().and_then(index);
        let mut edges = Vec::with_capacity(ids.len());
        let mut waits = Vec::with_capacity(ids.len());
        for id in &ids {
            let node = flow.node(id).cloned().unwrap_or_default();
            let mut out: Vec<(usize, Vec<String>)> = Vec::new();
            for link in node.links() {
                if let Some(to) = index(link.target) {
                    out.push((to, sets_on(&node, link.kind)));
                }
            }
            // The interpreter's fall-backs to the flow's error node.
            let falls_back = (node.can_fail() && node.error_node.is_none())
                || (node.can_time_out() && node.timeout_node.is_none() && node.error_node.is_none());
            if let (true, Some(e)) = (falls_back, flow_error) {
                out.push((e, Vec::new()));
            }
            edges.push(out);
            waits.push(node.node_type.waits_for_caller());
        }
        let mut roots: Vec<usize> = index(&flow.entry_node_id).into_iter().collect();
        roots.extend(flow_error);
        Self { ids, edges, waits, roots }
    }

    fn reachable_from_roots(&self) -> Vec<bool> {
        let mut seen = vec![false; self.ids.len()];
        let mut stack = self.roots.clone();
        while let Some(n) = stack.pop() {
            if !seen[n] {
                seen[n] = true;
                stack.extend(self.edges[n].iter().map(|(t, _)| *t));
            }
        }
        seen
    }

    /// Strongly connected components with a cycle (more than one node, or a self-loop) of the
    /// graph without the `left_out` nodes, each in node order, by first node (iterative Tarjan).
    pub fn cyclic_components(&self, left_out: &[bool]) -> Vec<Vec<usize>> {
        let n = self.ids.len();
        let mut index = vec![usize::MAX; n];
        let mut low = vec![0; n];
        let mut on_stack = vec![false; n];
        let mut stack = Vec::new();
        let mut next = 0;
        let mut out = Vec::new();
        let kept = |i: usize| !left_out.get(i).copied().unwrap_or(false);
        let edges: Vec<Vec<usize>> = (0..n)
            .map(|v| {
                if !kept(v) {
                    return Vec::new();
                }
                self.edges[v].iter().map(|(t, _)| *t).filter(|&t| kept(t)).collect()
            })
            .collect();
        for start in 0..n {
            if index[start] != usize::MAX || !kept(start) {
                continue;
            }
            let mut work: Vec<(usize, usize)> = vec![(start, 0)];
            while let Some(&mut (v, ref mut ei)) = work.last_mut() {
                if *ei == 0 && index[v] == usize::MAX {
                    index[v] = next;
                    low[v] = next;
                    next += 1;
                    stack.push(v);
                    on_stack[v] = true;
                }
                if let Some(&w) = edges[v].get(*ei) {
                    *ei += 1;
                    if index[w] == usize::MAX {
                        work.push((w, 0));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                    continue;
                }
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    let self_loop = comp.len() == 1 && edges[v].contains(&v);
                    if comp.len() > 1 || self_loop {
                        comp.sort_unstable();
                        out.push(comp);
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// For each node, the variables set on every path from a root to it (`None`: unreached).
    fn definitely_set(&self, flow: &Flow) -> Vec<Option<BTreeSet<String>>> {
        let mut start: BTreeSet<String> = BUILTIN_VARIABLES.iter().map(|s| (*s).to_owned()).collect();
        start.extend(flow.variables.keys().cloned());
        let mut state: Vec<Option<BTreeSet<String>>> = vec![None; self.ids.len()];
        let mut work: Vec<usize> = Vec::new();
        for &r in &self.roots {
            state[r] = Some(start.clone());
            work.push(r);
        }
        // Sets only shrink once assigned, so this ends.
        while let Some(n) = work.pop() {
            let Some(here) = state[n].clone() else { continue };
            for (to, sets) in &self.edges[n] {
                let mut out = here.clone();
                out.extend(sets.iter().cloned());
                let merged = match &state[*to] {
                    None => out,
                    Some(existing) => existing.intersection(&out).cloned().collect(),
                };
                if state[*to].as_ref() != Some(&merged) {
                    state[*to] = Some(merged);
                    work.push(*to);
                }
            }
        }
        state
    }
}

/// Variables a node sets when it leaves by an exit of this kind.
fn sets_on(node: &Node, kind: ExitKind) -> Vec<String> {
    let var = node.variable_name.iter().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    match (node.node_type, kind) {
        (NodeType::SetVariable | NodeType::GatherInput, ExitKind::Next) => var.collect(),
        (NodeType::Menu, ExitKind::Option) => var.collect(),
        (NodeType::Webhook, ExitKind::Next) => node.response_mapping.keys().cloned().collect(),
        _ => Vec::new(),
    }
}
