//! What a provider's delivery report changes: each receipt's delivery status,
//! a refund for a paid send that finally failed, usage billed beyond the
//! send's debit, and a read receipt acknowledging its incident.

use herald_core::StoreError;
use herald_core::model::{DeliveryId, DeliveryRecord, DeliveryStatus, DeliveryUpdate};
use herald_plugin_host::types::{Receipt, ReceiptStatus, Usage};

use crate::Services;

/// What a report changed.
#[derive(Debug, Default)]
pub struct Applied {
    pub matched: usize,
}

impl Services {
    /// Apply a callback's receipts and usage for `tenant` (both parsed by the
    /// account's plugin), in one write.
    pub async fn apply_receipts(&self, tenant: &str, receipts: &[Receipt], usage: &[Usage]) -> Result<Applied, StoreError> {
        let store = self.deps.backends.store.clone();
        let now = self.deps.clock.now_ms();
        let mut updates = Vec::new();
        let mut ledger = Vec::new();
        let mut failed = Vec::new();
        for r in receipts {
            let Some((message_id, delivery)) = self.find(tenant, r.delivery_id.as_deref(), r.provider_id.as_deref()).await? else {
                continue;
            };
            let status = match r.status {
                ReceiptStatus::Delivered => DeliveryStatus::Delivered,
                ReceiptStatus::Failed => DeliveryStatus::Failed,
                ReceiptStatus::Read => DeliveryStatus::Read,
            };
            if status == DeliveryStatus::Failed {
                failed.push(delivery.id.clone());
                if let Some(m) = store.message(tenant, &message_id).await? {
                    ledger.extend(self.billing.refund(tenant, &m.channel, &m.account, &delivery).await?);
                }
            }
            if status == DeliveryStatus::Read
                && let Err(e) = self.incidents.read_receipt(tenant, &message_id, &delivery.recipient).await
            {
                tracing::warn!(%tenant, error = %e, "read receipt not applied to its incident");
            }
            updates.push(DeliveryUpdate {
                delivery_id: delivery.id,
                message_id,
                tenant: tenant.to_string(),
                status,
                attempts: delivery.attempts,
                detail: r.detail.clone(),
                provider_id: None,
                at: now,
            });
        }
        for u in usage {
            let Some((message_id, delivery)) = self.find(tenant, u.delivery_id.as_deref(), u.provider_id.as_deref()).await? else {
                continue;
            };
            if failed.contains(&delivery.id) || matches!(delivery.status, DeliveryStatus::Failed | DeliveryStatus::Dead) {
                continue;
            }
            if let Some(m) = store.message(tenant, &message_id).await? {
                ledger.extend(self.billing.usage(tenant, &m.channel, &m.account, &delivery, u.units).await?);
            }
        }
        let applied = Applied { matched: updates.len() };
        store.record(updates, ledger).await?;
        Ok(applied)
    }

    /// The message id and delivery a receipt or usage report names, by
    /// delivery id or else by the provider's id.
    async fn find(&self, tenant: &str, delivery_id: Option<&str>, provider_id: Option<&str>) -> Result<Option<(String, DeliveryRecord)>, StoreError> {
        let store = &self.deps.backends.store;
        Ok(match (delivery_id, provider_id) {
            (Some(id), _) => {
                let Some(parsed) = DeliveryId::parse(id) else {
                    return Ok(None);
                };
                store.message(tenant, parsed.message_id()).await?.and_then(|m| m.deliveries.into_iter().find(|d| d.id == id).map(|d| (m.id, d)))
            }
            (None, Some(pid)) => store.delivery_by_provider_id(tenant, pid).await?,
            (None, None) => None,
        })
    }
}
