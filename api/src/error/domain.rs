//! Each domain error's code, once (meilisearch's `ErrorCode` style): routes turn a command's
//! failure into a problem with `?`, never with a mapping of their own.

use kraliki_commands::DispatchError;
use kraliki_domain::values::InvalidValue;

use super::{ApiError, Code};

/// A domain error's stable code; `problem` may add detail or per-field problems.
pub trait ErrorCode: std::error::Error {
    fn code(&self) -> Code;

    fn problem(&self) -> ApiError {
        ApiError::new(self.code()).detail(self.to_string())
    }
}

/// Every field problem as one 422 `validation_failed`.
pub fn invalid(problems: &[InvalidValue]) -> ApiError {
    let mut error = ApiError::new(Code::ValidationFailed);
    for p in problems {
        error = error.field(p.field.clone(), p.code, p.message.clone());
    }
    error
}

impl<E: ErrorCode> From<DispatchError<E>> for ApiError {
    fn from(e: DispatchError<E>) -> Self {
        match e {
            DispatchError::Rejected(broken) => broken.problem(),
            DispatchError::Conflict => ApiError::new(Code::Conflict),
            DispatchError::IdempotencyKeyReused => ApiError::new(Code::IdempotencyKeyReused),
            DispatchError::Store(e) => ApiError::internal(e),
        }
    }
}

mod impls {
    use kraliki_domain::agent::AgentError;
    use kraliki_domain::call::CallError;
    use kraliki_domain::call_list::CallListError;
    use kraliki_domain::campaign::CampaignError;
    use kraliki_domain::campaign_template::TemplateError;
    use kraliki_domain::company::CompanyError;
    use kraliki_domain::contact::ContactError;
    use kraliki_domain::contact_import::ContactImportError;
    use kraliki_domain::do_not_call::DoNotCallError;
    use kraliki_domain::ivr::{FlowIssue, IssueSeverity, IvrFlowError};
    use kraliki_domain::queue::QueueError;
    use kraliki_domain::queued_call::QueuedCallError;
    use kraliki_domain::routing_rule::RoutingRuleError;
    use kraliki_domain::service_account::ServiceAccountError;
    use kraliki_domain::team::TeamError;
    use kraliki_domain::tenant_settings::TenantSettingsError;
    use kraliki_domain::user::UserError;

    use super::{invalid, ErrorCode};
    use crate::error::{ApiError, Code};

    impl ErrorCode for AgentError {
        fn code(&self) -> Code {
            match self {
                Self::NotFound | Self::SkillNotFound(_) => Code::NotFound,
                Self::AlreadyExists => Code::AlreadyExists,
                Self::Invalid(_) | Self::NotSettableByHand { .. } => Code::ValidationFailed,
                Self::InvalidTransition { .. }
                | Self::OfflineWhileBusy { .. }
                | Self::AlreadyReserved { .. }
                | Self::NotAvailable { .. }
                | Self::NoFreeCapacity { .. }
                | Self::OfferNotCurrent { .. }
                | Self::OfferNotExpired { .. }
                | Self::CallAlreadyAssigned { .. }
                | Self::CallNotActive { .. }
                | Self::WrapUpNotOver { .. }
                | Self::InUse { .. } => Code::InvalidState,
            }
        }

        fn problem(&self) -> ApiError {
            match self {
                Self::Invalid(problems) => invalid(problems),
                Self::NotSettableByHand { .. } => {
                    ApiError::new(Code::ValidationFailed).field("status", "not_settable", self.to_string())
                }
                other => ApiError::new(other.code()).detail(other.to_string()),
            }
        }
    }

    impl ErrorCode for TeamError {
        fn code(&self) -> Code {
            match self {
                Self::NotFound | Self::NotMember(_) => Code::NotFound,
                Self::AlreadyExists | Self::AlreadyMember { .. } => Code::AlreadyExists,
                Self::InvalidSettings(_) => Code::ValidationFailed,
            }
        }

        fn problem(&self) -> ApiError {
            match self {
                Self::InvalidSettings(problems) => invalid(problems),
                other => ApiError::new(other.code()).detail(other.to_string()),
            }
        }
    }

    impl ErrorCode for QueueError {
        fn code(&self) -> Code {
            match self {
                Self::NotFound | Self::NotMember(_) => Code::NotFound,
                Self::AlreadyExists | Self::AlreadyMember(_) => Code::AlreadyExists,
                Self::InvalidSettings(_) => Code::ValidationFailed,
            }
        }

        fn problem(&self) -> ApiError {
            match self {
                Self::InvalidSettings(problems) => invalid(problems),
                other => ApiError::new(other.code()).detail(other.to_string()),
            }
        }
    }

    impl ErrorCode for QueuedCallError {
        fn code(&self) -> Code {
            match self {
                Self::NotQueued => Code::NotFound,
                Self::AlreadyQueued { .. }
                | Self::NotWaiting { .. }
                | Self::OfferNotCurrent { .. }
                | Self::StaleDecision { .. } => Code::InvalidState,
                Self::Invalid(_) => Code::ValidationFailed,
            }
        }

        fn problem(&self) -> ApiError {
            match self {
                Self::Invalid(problems) => invalid(problems),
                other => ApiError::new(other.code()).detail(other.to_string()),
            }
        }
    }

    impl ErrorCode for RoutingRuleError {
        fn code(&self) -> Code {
            match self {
                Self::NotFound => Code::NotFound,
                Self::AlreadyExists => Code::AlreadyExists,
                Self::InvalidSettings(_) => Code::ValidationFailed,
            }
        }

        fn problem(&self) -> ApiError {
            match self {
                Self::InvalidSettings(problems) => invalid(problems),
                other => ApiError::new(other.code()).detail(other.to_string()),
            }
        }
    }

    impl ErrorCode for CampaignError {
        fn code(&self) -> Code {
            match self {
                Self::NotFound => Code::NotFound,
                Self::AlreadyExists => Code::AlreadyExists,
                Self::NoContacts | Self::EndTimePassed => Code::CampaignNotReady,
                Self::ProviderNotConfigured(_) => Code::ProviderNotConfigured,
                Self::InvalidTransition { .. } | Self::StillRunning => Code::InvalidState,
                Self::InvalidSettings(_) => Code::ValidationFailed,
                Self::LockedWhileActive(_) => Code::LockedWhileActive,
            }
        }

        fn problem(&self) -> ApiError {
            match self {
                Self::InvalidSettings(problems) => invalid(problems),
                Self::LockedWhileActive(fields) => {
                    let mut error =
                        ApiError::new(Code::LockedWhileActive).detail("pause the campaign to change these");
                    for f in fields {
                        error = error.field(
                            f.clone(),
                            "locked_while_active",
                            "changes only while the campaign is paused or a draft",
                        );
                    }
                    error
                }
                other => ApiError::new(other.code()).detail(other.to_string()),
            }
        }
    }

    impl ErrorCode for CallListError {
        fn code(&self) -> Code {
            match self {
                Self::NotFound => Code::NotFound,
                Self::AlreadyExists => Code::AlreadyExists,
                Self::Invalid(_) => Code::ValidationFailed,
            }
        }

        fn problem(&self) -> ApiError {
            match self {
                Self::Invalid(problems) => invalid(problems),
                other => ApiError::new(other.code()).detail(other.to_string()),
            }
        }
    }

    impl ErrorCode for TemplateError {
        fn code(&self) -> Code {
            match self {
                Self::NotFound => Code::NotFound,
                Self::AlreadyExists => Code::AlreadyExists,
                Self::InvalidSettings(_) => Code::ValidationFailed,
            }
        }

        fn problem(&self) -> ApiError {
            match self {
                Self::InvalidSettings(problems) => invalid(problems),
                other => ApiError::new(other.code()).detail(other.to_string()),
            }
        }
    }

    impl ErrorCode for ContactError {
        fn code(&self) -> Code {
            match self {
                Self::NotFound => Code::NotFound,
                Self::AlreadyExists => Code::AlreadyExists,
                Self::Invalid(_) => Code::ValidationFailed,
            }
        }

        fn problem(&self) -> ApiError {
            match self {
                Self::Invalid(problems) => invalid(problems),
                other => ApiError::new(other.code()).detail(other.to_string()),
            }
        }
    }

    impl ErrorCode for CompanyError {
        fn code(&self) -> Code {
            match self {
                Self::NotFound => Code::NotFound,
                Self::AlreadyExists => Code::AlreadyExists,
                Self::Deactivated | Self::AlreadyDeactivated | Self::NotDeactivated => Code::InvalidState,
            }
        }
    }

    impl ErrorCode for UserError {
        fn code(&self) -> Code {
            match self {
                Self::NotFound => Code::NotFound,
                Self::AlreadyExists => Code::AlreadyExists,
                Self::NoRole => Code::ValidationFailed,
                Self::Deactivated | Self::NotDeactivated | Self::LastRole => Code::InvalidState,
            }
        }
    }

    impl ErrorCode for ServiceAccountError {
        fn code(&self) -> Code {
            match self {
                Self::NotFound | Self::UnknownKey => Code::NotFound,
                Self::AlreadyExists => Code::AlreadyExists,
                Self::NoRole => Code::ValidationFailed,
                Self::Deactivated => Code::InvalidState,
            }
        }
    }

    impl ErrorCode for TenantSettingsError {
        fn code(&self) -> Code {
            match self {
                Self::Invalid(_) => Code::ValidationFailed,
            }
        }

        fn problem(&self) -> ApiError {
            match self {
                Self::Invalid(problems) => invalid(problems),
            }
        }
    }

    impl ErrorCode for DoNotCallError {
        fn code(&self) -> Code {
            match self {
                Self::NotListed => Code::NotFound,
            }
        }
    }

    impl ErrorCode for ContactImportError {
        fn code(&self) -> Code {
            match self {
                Self::NotFound => Code::NotFound,
                Self::AlreadyStarted | Self::BatchAlreadyRecorded => Code::AlreadyExists,
                Self::AlreadyFinished | Self::NotValidated => Code::InvalidState,
            }
        }
    }

    impl ErrorCode for IvrFlowError {
        fn code(&self) -> Code {
            match self {
                // Archived is deleted: the flow is gone for the API.
                Self::NotFound | Self::Archived | Self::UnknownVersion(_) => Code::NotFound,
                Self::AlreadyExists => Code::AlreadyExists,
                Self::InvalidFlow(_) => Code::ValidationFailed,
                Self::NotPublishable(_) => Code::FlowNotPublishable,
            }
        }

        /// A refused publication lists every finding, warnings too: `field` is the node's path
        /// (`nodes.<id>.<field>`), `code` the validator's stable code.
        fn problem(&self) -> ApiError {
            match self {
                Self::InvalidFlow(problems) => invalid(problems),
                Self::NotPublishable(issues) => {
                    let mut error = ApiError::new(Code::FlowNotPublishable).detail(self.to_string());
                    for issue in issues {
                        error = error.field(issue_field(issue), issue.code.as_str(), issue_message(issue));
                    }
                    error
                }
                other => ApiError::new(other.code()).detail(other.to_string()),
            }
        }
    }

    /// Where a finding is, as one path: `nodes.<id>.<field>` for a node's, else the field.
    fn issue_field(issue: &FlowIssue) -> String {
        match (&issue.node_id, issue.field.is_empty()) {
            (Some(node), true) => format!("nodes.{node}"),
            (Some(node), false) => format!("nodes.{node}.{}", issue.field),
            (None, _) => issue.field.clone(),
        }
    }

    fn issue_message(issue: &FlowIssue) -> String {
        match issue.severity {
            IssueSeverity::Error => issue.message.clone(),
            IssueSeverity::Warning => format!("warning: {}", issue.message),
        }
    }

    impl ErrorCode for CallError {
        fn code(&self) -> Code {
            match self {
                Self::NotFound => Code::NotFound,
                Self::AlreadyExists => Code::AlreadyExists,
                Self::Ended | Self::NotInIvr | Self::IvrFlowMismatch => Code::InvalidState,
                Self::NoContactToCallBack | Self::CallbackInThePast | Self::InvalidDisposition(_) => {
                    Code::ValidationFailed
                }
            }
        }

        fn problem(&self) -> ApiError {
            match self {
                Self::InvalidDisposition(problem) => invalid(std::slice::from_ref(problem)),
                other => ApiError::new(other.code()).detail(other.to_string()),
            }
        }
    }
}

impl From<kraliki_voice::calls::CallsError> for ApiError {
    fn from(e: kraliki_voice::calls::CallsError) -> Self {
        use kraliki_voice::calls::CallsError as E;
        let detail = e.to_string();
        match e {
            E::NotConfigured(_) | E::CarrierRefused(_) => {
                ApiError::new(Code::ServiceUnavailable).detail(detail)
            }
            E::Forbidden(_) => ApiError::new(Code::Forbidden).detail(detail),
            E::InvalidWebhook(_) => ApiError::new(Code::ValidationFailed).detail(detail),
            E::CampaignNotActive(_) | E::DoNotCall | E::OutsideCallingWindow => {
                ApiError::new(Code::InvalidState).detail(detail)
            }
            E::UnknownCallerId(_) => {
                ApiError::new(Code::ValidationFailed).field("from_number", "unknown_caller_id", detail)
            }
            E::NoCallerId => ApiError::new(Code::ValidationFailed).field(
                "caller_id",
                "required",
                "the campaign has no caller id to call from",
            ),
            E::Command(command) => command.into(),
            E::Store(source) => ApiError::internal(source),
        }
    }
}

impl From<kraliki_commands::import::SubmitError> for ApiError {
    fn from(e: kraliki_commands::import::SubmitError) -> Self {
        use kraliki_commands::import::SubmitError as E;
        match e {
            E::QueueFull => ApiError::new(Code::TooManyRequests).detail(e.to_string()).retry_after(30),
            E::Command(command) => command.into(),
            E::Store(db) => db.into(),
        }
    }
}
