//! The campaign cloner: when a campaign is created as a clone that includes call lists, its
//! source's call lists are copied onto it. Each list's id is derived from the new campaign and
//! the source list, and each command carries the manager's exactly-once key, so a copy cut
//! short (a crash, a restart) is finished by the replay and nothing is copied twice.

use async_trait::async_trait;
use chrono::Utc;
use kraliki_domain::call_list::{CallList, CallListCommand, CallListSpec};
use kraliki_domain::campaign::{CampaignEvent, CampaignOrigin};
use kraliki_projections::{EventFilter, StoredEvent};
use uuid::Uuid;

use super::{Effects, ProcessManager};

pub const NAME: &str = "campaign_cloner";

pub struct CampaignCloner;

#[async_trait]
impl ProcessManager for CampaignCloner {
    fn name(&self) -> &'static str {
        NAME
    }

    fn reads(&self) -> EventFilter {
        EventFilter::events("Campaign", &["CampaignCreated"])
    }

    async fn handle(&self, e: &StoredEvent, effects: &mut Effects<'_>) -> anyhow::Result<()> {
        let CampaignEvent::CampaignCreated {
            origin: CampaignOrigin::Clone { campaign_id: source, include_call_lists: true },
            ..
        } = e.decode::<CampaignEvent>()?
        else {
            return Ok(());
        };
        let clone: Uuid = e.aggregate_id.parse()?;
        for list in kraliki_projections::call_list::call_lists_of(effects.pool(), source).await? {
            let spec = CallListSpec {
                name: list.name,
                filter: serde_json::from_value(list.filter)?,
                order: serde_json::from_value(list.sort)?,
            };
            let id = Uuid::new_v5(&clone, list.id.as_bytes());
            let command = CallListCommand::CreateCallList { campaign_id: clone, spec, at: Utc::now() };
            if let Err(error) = effects.execute::<CallList>(&id.to_string(), command).await {
                match error {
                    crate::DispatchError::Rejected(rule) => {
                        tracing::info!(campaign = %clone, list = %list.id, %rule, "call list not copied")
                    }
                    other => return Err(anyhow::anyhow!("copying call list {}: {other}", list.id)),
                }
            }
        }
        Ok(())
    }
}
