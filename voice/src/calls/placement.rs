//! Placing an outbound call: the checks every dial passes, the request recorded before the
//! carrier is asked, the carrier's answer recorded after.

use base64::Engine;
use chrono::Utc;
use kraliki_commands::CommandContext;
use kraliki_domain::call::{Call, CallCommand};
use kraliki_projections::campaign::CampaignRow;
use kraliki_projections::contact::ContactRow;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{CallService, CallsError, Target};
use crate::telephony::telnyx_control::{
    AnsweringMachineDetection, ClientState, CommandId, Dial as TelnyxDial,
};
use crate::telephony::twilio_rest::{CallInstructions, CallProgressEvent, CreateCall, MachineDetection};

/// A telephony provider that places calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Carrier {
    Twilio,
    Telnyx,
}

impl Carrier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Twilio => "twilio",
            Self::Telnyx => "telnyx",
        }
    }
}

/// Who is called: a contact, or a number (an ad-hoc call).
pub enum Callee<'a> {
    Contact(&'a ContactRow),
    Number {
        /// E.164.
        number: String,
        /// Every zone the number may be in (the calling window must hold in all of them).
        zones: Vec<String>,
    },
}

impl Callee<'_> {
    fn number(&self) -> &str {
        match self {
            Self::Contact(c) => &c.phone_number,
            Self::Number { number, .. } => number,
        }
    }

    fn zones(&self) -> &[String] {
        match self {
            Self::Contact(c) => &c.timezones,
            Self::Number { zones, .. } => zones,
        }
    }
}

/// An outbound call to place.
pub struct Dial<'a> {
    /// The call's id, chosen by the caller (a process manager derives it from its key).
    pub call_id: Uuid,
    pub tenant: Uuid,
    /// A campaign's call (its settings, window and caller id), or an ad-hoc one (the
    /// defaults: 08:00–21:00 in the callee's zones, one of the tenant's caller ids).
    pub campaign: Option<&'a CampaignRow>,
    pub callee: Callee<'a>,
    /// The caller id; it must be one of the tenant's (the caller ids of its campaigns). Else
    /// the campaign's, else the tenant's first.
    pub from: Option<String>,
    pub detect_machine: bool,
    /// Else the campaign's `configuration.telephony_provider`, else Twilio when configured,
    /// else Telnyx.
    pub carrier: Option<Carrier>,
    /// Kept with the call as given (the seed's `metadata`).
    pub metadata: Option<serde_json::Value>,
}

/// A call the carrier took.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlacedCall {
    pub call_id: Uuid,
    pub provider: String,
    /// The carrier's id (Twilio `CallSid`, Telnyx `call_control_id`); empty while not placed.
    pub provider_call_id: String,
    pub status: String,
    pub to: String,
    pub from: String,
    /// True when this request had been placed before (a repeat): nothing was dialled now.
    #[serde(skip)]
    pub repeated: bool,
    /// Where in the log the call's last step went (for read-your-writes).
    #[serde(skip)]
    pub position: Option<i64>,
}

impl CallService {
    /// The carrier a call goes out through when the request names none: the `preferred` one
    /// (a campaign's or the company's choice), else Twilio when configured, else Telnyx when
    /// configured; `None` when neither is.
    pub fn default_carrier(&self, preferred: Option<&str>) -> Option<Carrier> {
        match preferred {
            Some("telnyx") => Some(Carrier::Telnyx),
            Some("twilio") => Some(Carrier::Twilio),
            _ if self.inner.twilio.is_some() => Some(Carrier::Twilio),
            _ if self.inner.telnyx.is_some() => Some(Carrier::Telnyx),
            _ => None,
        }
    }

    /// Places `dial` after the checks every dial passes (an active campaign, do-not-call, the
    /// calling window in every zone of the contact, a caller id): `CallRequested` is recorded
    /// first with `ctx` — so a repeated request (the same idempotency key) finds it and dials
    /// nobody — then the carrier is asked, and its answer recorded (`CallPlaced`) or the call
    /// failed with the carrier's reason.
    pub async fn place(&self, dial: Dial<'_>, ctx: &CommandContext) -> Result<PlacedCall, CallsError> {
        let tenant = dial.tenant;
        let number = dial.callee.number().to_owned();
        if let Some(campaign) = dial.campaign {
            if !campaign.is_active() {
                return Err(CallsError::CampaignNotActive(campaign.status.clone()));
            }
        }
        let listed_on_contact = matches!(dial.callee, Callee::Contact(c) if c.do_not_call);
        if listed_on_contact
            || kraliki_projections::do_not_call::is_dnc(&self.inner.pool, tenant, &number).await?
        {
            return Err(CallsError::DoNotCall);
        }
        let settings = match dial.campaign {
            Some(campaign) => campaign.settings().map_err(CallsError::Store)?,
            None => kraliki_domain::campaign::CampaignSettings::default(),
        };
        if !settings.may_call_at(dial.callee.zones(), Utc::now()) {
            return Err(CallsError::OutsideCallingWindow);
        }
        let caller_ids = kraliki_projections::campaign::caller_ids(&self.inner.pool, tenant).await?;
        let from = match dial.from.clone() {
            Some(from) if caller_ids.contains(&from) || settings.caller_id.as_ref() == Some(&from) => from,
            Some(from) => return Err(CallsError::UnknownCallerId(from)),
            None => settings
                .caller_id
                .clone()
                .or_else(|| caller_ids.first().cloned())
                .ok_or(CallsError::NoCallerId)?,
        };
        let contact_id = match dial.callee {
            Callee::Contact(c) => Some(c.id),
            Callee::Number { .. } => None,
        };
        let campaign_id = dial.campaign.map(|c| c.id);
        let carrier = match dial.carrier {
            Some(carrier) => carrier,
            None => {
                let preferred = match dial.campaign {
                    Some(_) => settings
                        .configuration
                        .get("telephony_provider")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned),
                    None => {
                        kraliki_projections::tenant_settings::get(&self.inner.pool, tenant)
                            .await?
                            .provider
                            .telephony_provider
                    }
                };
                self.default_carrier(preferred.as_deref()).unwrap_or(Carrier::Twilio)
            }
        };
        // The carrier must be usable before anything is recorded.
        match carrier {
            Carrier::Twilio => {
                self.twilio()?;
            }
            Carrier::Telnyx => {
                self.telnyx()?;
                if self.inner.settings.telnyx_connection_id.is_none() {
                    return Err(CallsError::NotConfigured("TELNYX_CONNECTION_ID is not configured".into()));
                }
            }
        }
        let call_id = dial.call_id;
        let request = CallCommand::RequestCall {
            provider: carrier.as_str().into(),
            from: from.clone(),
            to: number.clone(),
            campaign_id,
            contact_id,
            detect_machine: dial.detect_machine,
            metadata: dial.metadata.clone(),
            at: Utc::now(),
        };
        let requested = self.inner.dispatcher.execute::<Call>(&call_id.to_string(), request, ctx).await?;
        let mut answer = PlacedCall {
            call_id,
            provider: carrier.as_str().into(),
            provider_call_id: String::new(),
            status: "requested".into(),
            to: number.clone(),
            from: from.clone(),
            repeated: requested.replayed,
            position: requested.position,
        };
        if requested.replayed {
            // Placed (or being placed) by the first request: never dial twice. Answer with that
            // call as it stands.
            answer.call_id = requested.aggregate_id.parse().unwrap_or(call_id);
            if let Some(row) =
                kraliki_projections::call::get(&self.inner.pool, tenant, answer.call_id).await?
            {
                answer.provider_call_id = row.provider_call_id.unwrap_or_default();
                answer.status = row.status;
            }
            return Ok(answer);
        }
        let target = Target { tenant, campaign: campaign_id, contact: contact_id };
        let asked = std::time::Instant::now();
        let placed = match carrier {
            Carrier::Twilio => self.dial_twilio(call_id, &target, &number, &from, dial.detect_machine).await,
            Carrier::Telnyx => self.dial_telnyx(call_id, &number, &from, dial.detect_machine).await,
        };
        match &placed {
            Ok(_) => self.health().success(carrier.as_str(), asked.elapsed()),
            Err(reason) => {
                self.health().failure(carrier.as_str(), reason);
                metrics::counter!(
                    kraliki_projections::metrics_catalog::CARRIER_DIAL_FAILURES.name,
                    "carrier" => carrier.as_str()
                )
                .increment(1);
            }
        }
        let plain = CommandContext::new(tenant.to_string(), format!("system:{}", carrier.as_str()))
            .with_correlation(ctx.correlation_id.clone());
        match placed {
            Ok((provider_call_id, status)) => {
                let command = CallCommand::RecordPlacement {
                    provider_call_id: provider_call_id.clone(),
                    at: Utc::now(),
                };
                let recorded =
                    self.inner.dispatcher.execute::<Call>(&call_id.to_string(), command, &plain).await?;
                answer.position = recorded.position.or(answer.position);
                answer.provider_call_id = provider_call_id;
                answer.status = status;
                Ok(answer)
            }
            Err(reason) => {
                let command = CallCommand::FailCall { reason: reason.clone(), at: Utc::now() };
                self.inner.dispatcher.execute::<Call>(&call_id.to_string(), command, &plain).await?;
                Err(CallsError::CarrierRefused(reason))
            }
        }
    }

    /// Twilio's REST API: our voice URL (signed by Twilio with its query) carries the call and
    /// its target; status callbacks carry the call.
    async fn dial_twilio(
        &self,
        call_id: Uuid,
        target: &Target,
        to: &str,
        from: &str,
        detect_machine: bool,
    ) -> Result<(String, String), String> {
        let client = self.twilio().map_err(|e| e.to_string())?;
        let mut query = format!("call_id={call_id}&tenant={}", target.tenant);
        if let Some(c) = target.campaign {
            query.push_str(&format!("&campaign_id={c}"));
        }
        if let Some(c) = target.contact {
            query.push_str(&format!("&contact_id={c}"));
        }
        let voice =
            self.public_url(&format!("/api/telephony/twilio/voice?{query}")).map_err(|e| e.to_string())?;
        let status = self
            .public_url(&format!("/api/telephony/twilio/status?call_id={call_id}"))
            .map_err(|e| e.to_string())?;
        let mut create = CreateCall::new(to.to_owned(), from.to_owned(), CallInstructions::Url(voice));
        create.status_callback = Some(status.clone());
        create.status_callback_events = CallProgressEvent::ALL.to_vec();
        if detect_machine {
            create.machine_detection = Some(MachineDetection::Enable);
            create.async_amd_status_callback = Some(status);
        }
        let placed =
            client.create_call(&create).await.map_err(|e| format!("Twilio refused the call: {e}"))?;
        Ok((placed.sid, placed.status))
    }

    /// Telnyx Call Control: `client_state` carries the call in every webhook; the command id
    /// is the call's, so Telnyx itself places a repeated dial once.
    async fn dial_telnyx(
        &self,
        call_id: Uuid,
        to: &str,
        from: &str,
        detect_machine: bool,
    ) -> Result<(String, String), String> {
        let client = self.telnyx().map_err(|e| e.to_string())?;
        let connection = self
            .inner
            .settings
            .telnyx_connection_id
            .clone()
            .ok_or_else(|| "TELNYX_CONNECTION_ID is not configured".to_owned())?;
        let mut dial = TelnyxDial::new(connection, to, from);
        if detect_machine {
            dial.answering_machine_detection = Some(AnsweringMachineDetection::Detect);
        }
        dial.client_state = Some(ClientState::from_bytes(call_id.to_string().as_bytes()));
        let id = CommandId::parse(format!("dial-{call_id}")).map_err(|e| e.to_string())?;
        let dialed = client.dial(&dial, &id).await.map_err(|e| format!("Telnyx refused the call: {e}"))?;
        Ok((dialed.call_control_id, "initiated".into()))
    }
}

/// The call id in a Telnyx `client_state`, if it holds one of ours.
pub(crate) fn call_from_client_state(raw: &str) -> Option<Uuid> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw.trim()).ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}
