use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::flow::Flow;
use super::validate::ValidationContext;
use crate::CommandPolicy;

/// What can be asked of an IVR flow. The draft is edited freely (an invalid draft is saved);
/// publishing validates it and makes the next immutable version.
// A command lives for one decision; boxing its flow would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum IvrFlowCommand {
    /// Creates the flow with its first draft.
    CreateIvrFlow {
        /// The draft (name and size checked; the logic only at publishing).
        flow: Flow,
        /// When.
        at: DateTime<Utc>,
    },
    /// Replaces the draft (`PUT` with the whole flow).
    ReplaceIvrFlowDraft {
        /// The new draft.
        flow: Flow,
        /// When.
        at: DateTime<Utc>,
    },
    /// An RFC 7396 merge patch over the draft (`{"nodes": {"n3": null}}` removes a node).
    UpdateIvrFlowDraft {
        /// The patch.
        patch: Map<String, Value>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Validates the draft and publishes it as the next version (refused with the findings
    /// when any is an error).
    PublishIvrFlow {
        /// The webhook policy and the transfer targets that exist.
        context: ValidationContext,
        /// When.
        at: DateTime<Utc>,
    },
    /// Makes an earlier published version the live one again (rollback).
    RepublishIvrFlowVersion {
        /// The version (1, 2, …).
        version: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// Archives the flow: no calls run it, nothing changes it.
    ArchiveIvrFlow {
        /// When.
        at: DateTime<Utc>,
    },
}

impl CommandPolicy for IvrFlowCommand {
    /// Every rule is re-checked against the newer state (publishing validates the newer draft),
    /// so each command is safe to re-decide.
    fn name(&self) -> &'static str {
        match self {
            Self::CreateIvrFlow { .. } => "CreateIvrFlow",
            Self::ReplaceIvrFlowDraft { .. } => "ReplaceIvrFlowDraft",
            Self::UpdateIvrFlowDraft { .. } => "UpdateIvrFlowDraft",
            Self::PublishIvrFlow { .. } => "PublishIvrFlow",
            Self::RepublishIvrFlowVersion { .. } => "RepublishIvrFlowVersion",
            Self::ArchiveIvrFlow { .. } => "ArchiveIvrFlow",
        }
    }
}
