//! An IVR flow as the seed's API shapes it (`SEED_API.md`): nodes keyed by id, each a flat
//! object with a `type` and the fields its type reads (`options`, `next_node`, `timeout_node`,
//! `error_node`, `true_node`/`false_node`, …). Field names are the seed's; fields it did not
//! have are additions with defaults, so a seed flow reads as it is.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::routing::fields::{self, check_enum, parse_checked};
use crate::routing::Strategy;
use crate::schedule::BusinessHours;
use crate::values::{clean_text, InvalidValue};

/// Most nodes a flow may have.
pub const MAX_NODES: usize = 500;
/// The prompt languages the product speaks; a prompt missing one of a flow's `languages` is a
/// warning.
pub const LANGUAGES: [&str; 3] = ["en", "es", "cs"];

/// The 9 node types (DOMAIN.md "IVR: 9 node types"), by the seed's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NodeType {
    /// A prompt plus `options` {key → node}; waits for input.
    Menu,
    /// A prompt, then `next_node`.
    #[default]
    PlayMessage,
    /// Free input into `variable_name`; waits for input.
    GatherInput,
    /// `condition` → `true_node` / `false_node`.
    Conditional,
    /// `variable_name` = `variable_value` (interpolated).
    SetVariable,
    /// An HTTP call we make; response fields into variables.
    Webhook,
    /// To a queue, an agent, a number or the AI agent.
    Transfer,
    /// Records a message; creates a callback task.
    Voicemail,
    /// Optional goodbye, then hang up.
    EndCall,
}

impl NodeType {
    /// Every node type.
    pub const ALL: [NodeType; 9] = [
        Self::Menu,
        Self::PlayMessage,
        Self::GatherInput,
        Self::Conditional,
        Self::SetVariable,
        Self::Webhook,
        Self::Transfer,
        Self::Voicemail,
        Self::EndCall,
    ];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Menu => "menu",
            Self::PlayMessage => "play_message",
            Self::GatherInput => "gather_input",
            Self::Conditional => "conditional",
            Self::SetVariable => "set_variable",
            Self::Webhook => "webhook",
            Self::Transfer => "transfer",
            Self::Voicemail => "voicemail",
            Self::EndCall => "end_call",
        }
    }

    /// Whether the node waits for the caller (a loop through one cannot spin on its own).
    pub fn waits_for_caller(self) -> bool {
        matches!(self, Self::Menu | Self::GatherInput)
    }
}

impl fmt::Display for NodeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the caller answers a menu or a gather.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    /// Keypad only.
    #[default]
    Dtmf,
    /// Speech only.
    Speech,
    /// Either.
    Both,
}

impl InputType {
    /// Every input type.
    pub const ALL: [InputType; 3] = [Self::Dtmf, Self::Speech, Self::Both];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dtmf => "dtmf",
            Self::Speech => "speech",
            Self::Both => "both",
        }
    }

    /// Keys accepted.
    pub fn dtmf(self) -> bool {
        matches!(self, Self::Dtmf | Self::Both)
    }

    /// Speech accepted.
    pub fn speech(self) -> bool {
        matches!(self, Self::Speech | Self::Both)
    }
}

/// What a `transfer` node's `transfer_to` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TransferType {
    /// One of the tenant's queues (id or name).
    #[default]
    Queue,
    /// One agent (uuid).
    Agent,
    /// An outside number (E.164); `external` is the routing rules' word for it.
    #[serde(alias = "external")]
    Number,
    /// The campaign's AI voice agent, with the flow's variables.
    #[serde(alias = "ai")]
    AiAgent,
    /// Voicemail.
    Voicemail,
}

impl TransferType {
    /// Every transfer type (wire names; aliases not listed).
    pub const ALL: [TransferType; 5] =
        [Self::Queue, Self::Agent, Self::Number, Self::AiAgent, Self::Voicemail];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::Agent => "agent",
            Self::Number => "number",
            Self::AiAgent => "ai_agent",
            Self::Voicemail => "voicemail",
        }
    }

    /// Whether `transfer_to` must name something.
    pub fn needs_target(self) -> bool {
        matches!(self, Self::Queue | Self::Agent | Self::Number)
    }
}

/// A webhook's HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[serde(alias = "get")]
    Get,
    #[default]
    #[serde(alias = "post")]
    Post,
    #[serde(alias = "put")]
    Put,
    #[serde(alias = "patch")]
    Patch,
    #[serde(alias = "delete")]
    Delete,
}

impl HttpMethod {
    /// Every method.
    pub const ALL: [HttpMethod; 5] = [Self::Get, Self::Post, Self::Put, Self::Patch, Self::Delete];

    /// The method's name (`POST`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

/// A prompt's text: one string (the flow's default language, as the seed stores it) or one per
/// language (`{"en": "…", "es": "…", "cs": "…"}`). Text may interpolate `{{variable}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Message {
    /// In the flow's default language.
    Text(String),
    /// Language → text.
    Translations(BTreeMap<String, String>),
}

impl Message {
    /// The text for `language`, else the default language's, else any (first by language).
    pub fn text_for<'a>(&'a self, language: &str, default_language: &str) -> Option<&'a str> {
        match self {
            Self::Text(t) => Some(t.as_str()),
            Self::Translations(map) => map
                .get(language)
                .or_else(|| map.get(default_language))
                .or_else(|| map.values().next())
                .map(String::as_str),
        }
        .filter(|t| !t.trim().is_empty())
    }

    /// Whether there is text for `language` itself (a plain string counts as the default
    /// language's).
    pub fn has_language(&self, language: &str, default_language: &str) -> bool {
        match self {
            Self::Text(t) => language == default_language && !t.trim().is_empty(),
            Self::Translations(map) => map.get(language).is_some_and(|t| !t.trim().is_empty()),
        }
    }

    /// Every text, for checks over templates.
    pub fn texts(&self) -> Vec<&str> {
        match self {
            Self::Text(t) => vec![t.as_str()],
            Self::Translations(map) => map.values().map(String::as_str).collect(),
        }
    }

    /// Nothing to say.
    pub fn is_blank(&self) -> bool {
        self.texts().iter().all(|t| t.trim().is_empty())
    }
}

/// A JSON object with repeated keys kept, so that a flow whose `nodes` repeats an id, or a
/// menu whose `options` repeats a key, is reported instead of silently keeping one. Entries are
/// kept sorted by key (repeats in the order given): a JSON object's order means nothing, and
/// the event store (jsonb) does not keep it, so the same flow reads back equal. Lookups take
/// the first entry with the key. Written as a JSON object.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyedList<T>(Vec<(String, T)>);

impl<T> KeyedList<T> {
    /// An empty list.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// The first value under `key`.
    pub fn get(&self, key: &str) -> Option<&T> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The first value under `key`, mutable.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut T> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Replaces the first value under `key`, or adds it.
    pub fn insert(&mut self, key: impl Into<String>, value: T) {
        let key = key.into();
        match self.get_mut(&key) {
            Some(v) => *v = value,
            None => self.push(key, value),
        }
    }

    /// Adds an entry even when the key is there already (after its repeats).
    pub fn push(&mut self, key: impl Into<String>, value: T) {
        let key = key.into();
        let at = self.0.partition_point(|(k, _)| *k <= key);
        self.0.insert(at, (key, value));
    }

    /// Removes every entry under `key`.
    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    /// Entries by key (repeats included).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Keys in order (repeats included).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// Number of entries (repeats included).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keys that appear more than once, each once.
    pub fn repeated_keys(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for pair in self.0.windows(2) {
            if pair[0].0 == pair[1].0 && !out.contains(&pair[1].0.as_str()) {
                out.push(&pair[1].0);
            }
        }
        out
    }
}

impl<K: Into<String>, T> FromIterator<(K, T)> for KeyedList<T> {
    fn from_iter<I: IntoIterator<Item = (K, T)>>(iter: I) -> Self {
        let mut entries: Vec<(String, T)> = iter.into_iter().map(|(k, v)| (k.into(), v)).collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Self(entries)
    }
}

impl<T: Serialize> Serialize for KeyedList<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for KeyedList<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
            type Value = KeyedList<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, T)> = Vec::new();
                while let Some((k, v)) = access.next_entry::<String, T>()? {
                    entries.push((k, v));
                }
                Ok(entries.into_iter().collect())
            }
            // `null` reads as empty: the seed's optional objects.
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(KeyedList(Vec::new()))
            }
        }
        deserializer.deserialize_any(ListVisitor(PhantomData))
    }
}

fn default_true() -> bool {
    true
}

fn default_finish_key() -> String {
    "#".to_owned()
}

/// One node: the seed's flat shape. Which fields a node reads depends on its `type`; the others
/// are kept as given (a builder may switch a node's type back and forth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Node {
    /// The node type.
    #[serde(rename = "type")]
    pub node_type: NodeType,
    /// Shown in the builder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// When given, must equal the node's key in `nodes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The prompt (TTS), per language or in the default one. `end_call`: the goodbye.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// A recording to play instead of TTS (when `use_tts` is false or there is no text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_url: Option<String>,
    /// Speak `message` (default true); false plays `audio_url`.
    #[serde(default = "default_true")]
    pub use_tts: bool,
    /// The caller may cut the prompt short with input (default true).
    #[serde(default = "default_true")]
    pub interruptible: bool,
    /// Keys, speech or both.
    pub input_type: InputType,
    /// `gather_input`: the most digits taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_digits: Option<u32>,
    /// `gather_input`: the key that ends input (default `#`; empty: none).
    #[serde(default = "default_finish_key")]
    pub finish_on_key: String,
    /// `gather_input`: the only inputs accepted (none: any).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub valid_inputs: Vec<String>,
    /// `menu`: key → node.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, String>))]
    pub options: KeyedList<String>,
    /// `menu`: spoken phrases that choose an option (option key → phrases), for speech input.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub option_phrases: BTreeMap<String, Vec<String>>,
    /// Seconds to wait for input (menu, gather), for the transfer (transfer); the flow's
    /// `timeout_seconds` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// Seconds between digits; the flow's when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inter_digit_timeout: Option<u32>,
    /// Re-prompts after a timeout or a wrong input; the flow's `max_retries` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Said after a wrong input; the flow's when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid_input_message: Option<Message>,
    /// Said after no input; the flow's when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_message: Option<Message>,
    /// `transfer`: the queue, agent or number (may interpolate variables).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_to: Option<String>,
    /// `transfer`: what `transfer_to` names.
    pub transfer_type: TransferType,
    /// `transfer` to a queue: the strategy to pick agents by (the queue's when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// `transfer` to a queue: skill → minimum level (1–5).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub required_skills: BTreeMap<String, u8>,
    /// `transfer` to a queue: the caller's priority (higher first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// `transfer` to a queue: the longest wait before `timeout_node`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_wait_seconds: Option<u32>,
    /// `conditional`: the expression (see [`super::condition`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// `conditional`: where a true condition goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub true_node: Option<String>,
    /// `conditional`: where a false condition goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub false_node: Option<String>,
    /// `set_variable`, `gather_input`, `menu` (the chosen key): the variable set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variable_name: Option<String>,
    /// `set_variable`: the value, interpolating `{{variable}}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variable_value: Option<String>,
    /// `webhook`: the URL (host on the allow-list; may interpolate variables, URL-encoded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// `webhook`: the method.
    pub webhook_method: HttpMethod,
    /// `webhook`: request headers (values interpolated).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub webhook_headers: BTreeMap<String, String>,
    /// `webhook`: the JSON body, strings interpolated; absent: `{"variables": {…}}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub webhook_body: Option<Value>,
    /// `webhook`: the deadline in milliseconds (default and most: 5000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_timeout_ms: Option<u32>,
    /// `webhook`: variable → path in the JSON response (`data.balance`, `items.0.id`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub response_mapping: BTreeMap<String, String>,
    /// `voicemail`: the longest recording (default 120 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length_seconds: Option<u32>,
    /// `voicemail`: silence that ends the recording (default 5 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silence_timeout_seconds: Option<u32>,
    /// `voicemail`: transcribe the recording (default true).
    #[serde(default = "default_true")]
    pub transcribe: bool,
    /// `end_call`: the call's disposition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disposition: Option<String>,
    /// Where the flow goes next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_node: Option<String>,
    /// Where no input (after the retries) or a transfer's timeout goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_node: Option<String>,
    /// Where a failure goes (wrong input after the retries, a failed webhook or transfer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_node: Option<String>,
    /// The builder's layout (kept as given).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub position: Option<Value>,
}

impl Default for Node {
    fn default() -> Self {
        Self {
            node_type: NodeType::default(),
            label: None,
            id: None,
            message: None,
            audio_url: None,
            use_tts: true,
            interruptible: true,
            input_type: InputType::default(),
            num_digits: None,
            finish_on_key: default_finish_key(),
            valid_inputs: Vec::new(),
            options: KeyedList::new(),
            option_phrases: BTreeMap::new(),
            timeout_seconds: None,
            inter_digit_timeout: None,
            max_retries: None,
            invalid_input_message: None,
            timeout_message: None,
            transfer_to: None,
            transfer_type: TransferType::default(),
            strategy: None,
            required_skills: BTreeMap::new(),
            priority: None,
            max_wait_seconds: None,
            condition: None,
            true_node: None,
            false_node: None,
            variable_name: None,
            variable_value: None,
            webhook_url: None,
            webhook_method: HttpMethod::default(),
            webhook_headers: BTreeMap::new(),
            webhook_body: None,
            webhook_timeout_ms: None,
            response_mapping: BTreeMap::new(),
            max_length_seconds: None,
            silence_timeout_seconds: None,
            transcribe: true,
            disposition: None,
            next_node: None,
            timeout_node: None,
            error_node: None,
            position: None,
        }
    }
}

/// Why the interpreter leaves a node: each kind of exit and the link field it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitKind {
    /// `next_node`.
    Next,
    /// A menu option.
    Option,
    /// `true_node`.
    True,
    /// `false_node`.
    False,
    /// `timeout_node`.
    Timeout,
    /// `error_node`.
    Error,
}

/// One link out of a node: the field it is in (`options.1`, `next_node`), what kind of exit it
/// is, and the node it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link<'a> {
    /// The field (`next_node`, `options.1`).
    pub field: String,
    /// The kind of exit.
    pub kind: ExitKind,
    /// The node named.
    pub target: &'a str,
}

impl Node {
    /// A node of this type, everything else default.
    pub fn new(node_type: NodeType) -> Self {
        Self { node_type, ..Self::default() }
    }

    /// Every link field that is set, whatever the type reads.
    pub fn all_links(&self) -> Vec<Link<'_>> {
        let mut out = Vec::new();
        for (key, target) in self.options.iter() {
            out.push(Link { field: format!("options.{key}"), kind: ExitKind::Option, target });
        }
        let singles = [
            ("next_node", ExitKind::Next, &self.next_node),
            ("true_node", ExitKind::True, &self.true_node),
            ("false_node", ExitKind::False, &self.false_node),
            ("timeout_node", ExitKind::Timeout, &self.timeout_node),
            ("error_node", ExitKind::Error, &self.error_node),
        ];
        for (field, kind, target) in singles {
            if let Some(t) = target {
                out.push(Link { field: field.to_owned(), kind, target: t });
            }
        }
        out
    }

    /// The links this node's type follows.
    pub fn links(&self) -> Vec<Link<'_>> {
        let kinds = self.exit_kinds();
        self.all_links().into_iter().filter(|l| kinds.contains(&l.kind)).collect()
    }

    /// The exits this node's type has.
    pub fn exit_kinds(&self) -> &'static [ExitKind] {
        use ExitKind::*;
        match self.node_type {
            NodeType::Menu => &[Option, Timeout, Error],
            NodeType::PlayMessage | NodeType::SetVariable => &[Next],
            NodeType::GatherInput => &[Next, Timeout, Error],
            NodeType::Conditional => &[True, False, Error],
            NodeType::Webhook | NodeType::Voicemail => &[Next, Error],
            NodeType::Transfer => &[Timeout, Error],
            NodeType::EndCall => &[],
        }
    }

    /// Whether the node can fail (and so falls back to the flow's `error_node_id` without an
    /// `error_node`): wrong input after the retries, a condition that cannot be evaluated, a
    /// failed webhook, transfer or recording.
    pub fn can_fail(&self) -> bool {
        self.exit_kinds().contains(&ExitKind::Error)
    }

    /// Whether no input can happen (menu, gather, transfer): after the retries it takes
    /// `timeout_node`, else the error path.
    pub fn can_time_out(&self) -> bool {
        self.exit_kinds().contains(&ExitKind::Timeout)
    }
}

fn default_language() -> String {
    "en".to_owned()
}

fn default_languages() -> Vec<String> {
    LANGUAGES.iter().map(|l| (*l).to_owned()).collect()
}

/// A flow: the seed's shape plus time zone, named schedules for `in_hours(...)`, the prompt
/// languages, and variables with their starting values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Flow {
    /// 1–200 characters.
    pub name: String,
    /// Up to 2000 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where a call starts.
    pub entry_node_id: String,
    /// Id → node, in the order given.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, Node>))]
    pub nodes: KeyedList<Node>,
    /// The seed's switch; calls run only active flows.
    #[serde(default = "default_true")]
    pub is_active: bool,
    /// Prompts' language unless the caller chose another (default `en`).
    #[serde(default = "default_language")]
    pub default_language: String,
    /// The languages prompts should exist in (default en, es, cs).
    #[serde(default = "default_languages")]
    pub languages: Vec<String>,
    /// Re-prompts after a timeout or a wrong input (default 3).
    pub max_retries: u32,
    /// Seconds to wait for input (default 10).
    pub timeout_seconds: u32,
    /// Seconds between digits (default 5).
    pub inter_digit_timeout: u32,
    /// Said after a wrong input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid_input_message: Option<Message>,
    /// Said after no input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_message: Option<Message>,
    /// Where a failure goes when the failing node has no `error_node`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_node_id: Option<String>,
    /// The campaign it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<Uuid>,
    /// The team it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<Uuid>,
    /// IANA zone for the time functions of conditions (`hour()`, `weekday()`; default UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Named business hours for `in_hours('name')`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub schedules: BTreeMap<String, BusinessHours>,
    /// Variables and their values when a call starts.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, Value>,
}

impl Default for Flow {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: None,
            entry_node_id: String::new(),
            nodes: KeyedList::new(),
            is_active: true,
            default_language: default_language(),
            languages: default_languages(),
            max_retries: 3,
            timeout_seconds: 10,
            inter_digit_timeout: 5,
            invalid_input_message: None,
            timeout_message: None,
            error_node_id: None,
            campaign_id: None,
            team_id: None,
            timezone: None,
            schedules: BTreeMap::new(),
            variables: BTreeMap::new(),
        }
    }
}

impl Flow {
    /// A node by id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id)
    }

    /// The zone for time functions (UTC when absent or not a zone; the validator reports that).
    pub fn zone(&self) -> chrono_tz::Tz {
        self.timezone.as_deref().and_then(|z| z.parse().ok()).unwrap_or(chrono_tz::Tz::UTC)
    }

    /// Reads a flow from JSON, reporting every unknown node type, input type, transfer type
    /// and method at once, then the first shape problem serde finds, then [`Flow::checked`].
    pub fn from_json(value: Value) -> Result<Self, Vec<InvalidValue>> {
        let mut pre = Vec::new();
        let types: Vec<&str> = NodeType::ALL.iter().map(|t| t.as_str()).collect();
        let inputs: Vec<&str> = InputType::ALL.iter().map(|t| t.as_str()).collect();
        let mut transfers: Vec<&str> = TransferType::ALL.iter().map(|t| t.as_str()).collect();
        transfers.extend(["external", "ai"]);
        let methods: Vec<&str> =
            HttpMethod::ALL.iter().flat_map(|m| [m.as_str(), lower_method(*m)]).collect();
        if let Some(nodes) = value.get("nodes").and_then(Value::as_object) {
            for (id, node) in nodes {
                let at = |f: &str| format!("nodes.{id}.{f}");
                check_enum(&at("type"), node.get("type"), &types, false, &mut pre);
                check_enum(&at("input_type"), node.get("input_type"), &inputs, false, &mut pre);
                check_enum(&at("transfer_type"), node.get("transfer_type"), &transfers, false, &mut pre);
                check_enum(&at("webhook_method"), node.get("webhook_method"), &methods, false, &mut pre);
            }
        }
        let parsed: Self = parse_checked(value, pre)?;
        parsed.checked()
    }

    /// This flow with an RFC 7396 merge patch applied (`{"nodes": {"n3": null}}` removes a node,
    /// `{"nodes": {"n1": {"message": "Hi"}}}` edits one), read and checked as a whole.
    pub fn patched(&self, patch: &Map<String, Value>) -> Result<Self, Vec<InvalidValue>> {
        Self::from_json(fields::patched_json(self, patch))
    }

    /// Top-level fields whose value differs.
    pub fn changed_fields(&self, other: &Self) -> Vec<String> {
        fields::changed_fields(self, other)
    }

    /// What a draft must satisfy to be saved at all (a name, bounded size); the flow's logic is
    /// [`super::validate`]'s, which only publishing requires.
    pub fn checked(mut self) -> Result<Self, Vec<InvalidValue>> {
        let mut problems = Vec::new();
        match clean_text("name", &self.name, 200) {
            Ok(name) => self.name = name,
            Err(e) => problems.push(e),
        }
        fields::optional_text("description", &mut self.description, 2000, &mut problems);
        if self.nodes.len() > MAX_NODES {
            problems.push(InvalidValue::new("nodes", "too_many", format!("at most {MAX_NODES} nodes")));
        }
        // A repeated key cannot be stored (the event store keeps one of them), so it is refused
        // here; the validator still names it for a flow that was never saved.
        for id in self.nodes.repeated_keys() {
            let msg = format!("node id `{id}` is used twice");
            problems.push(InvalidValue::new(format!("nodes.{id}"), "duplicate_key", msg));
        }
        for (id, node) in self.nodes.iter() {
            for key in node.options.repeated_keys() {
                let msg = format!("option `{key}` is given twice");
                problems.push(InvalidValue::new(format!("nodes.{id}.options.{key}"), "duplicate_key", msg));
            }
        }
        self.entry_node_id = self.entry_node_id.trim().to_owned();
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }
}

fn lower_method(m: HttpMethod) -> &'static str {
    match m {
        HttpMethod::Get => "get",
        HttpMethod::Post => "post",
        HttpMethod::Put => "put",
        HttpMethod::Patch => "patch",
        HttpMethod::Delete => "delete",
    }
}
