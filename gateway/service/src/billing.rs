//! Billing: the prepaid gate every send passes, what a sent delivery debits,
//! refunds and usage that providers report later, and the low-balance alert.

use herald_core::billing::{BILLING, BILLING_SETTINGS, BillingSettings};
use herald_core::directory::USER;
use herald_core::docs::Repo;
use herald_core::i18n::{SETTINGS, TENANT, TenantSettings};
use herald_core::ledger::Billable;
use herald_core::model::{Content, DeliveryRecord, LedgerEntry, Price, RecipientSpec};
use herald_core::{ApiError, StoreError};

use crate::intake::{Body, Gate, Submission};
use crate::{Deps, derived_id};

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("the prepaid balance ({balance}) does not cover {need} {currency} for {sends} sends on {channel}")]
    InsufficientBalance { balance: i64, need: i64, currency: String, sends: usize, channel: String },
    #[error("a top-up must be a positive amount in minor units")]
    NonPositiveTopUp,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ApiError> for BillingError {
    fn from(e: ApiError) -> Self {
        BillingError::Store(StoreError::Backend(e.message))
    }
}

#[derive(Clone)]
pub struct Billing {
    deps: Deps,
}

/// A send that went out, as billing sees it.
pub struct Sent<'a> {
    pub billable: Billable<'a>,
    /// The plugin bills per SMS segment (`billing-unit = "segment"`)…
    pub per_segment: bool,
    /// …of this text.
    pub text: Option<&'a str>,
}

impl Billing {
    pub fn new(deps: Deps) -> Billing {
        Billing { deps }
    }

    async fn settings(&self, tenant: &str) -> Result<BillingSettings, BillingError> {
        Ok(Repo::new(self.deps.backends.config.as_ref(), tenant).get(BILLING, BILLING_SETTINGS).await?.unwrap_or_default())
    }

    /// The price of one unit on `channel` for `tenant`, when it costs anything.
    pub async fn paid_price(&self, tenant: &str, channel: &str) -> Result<Option<Price>, StoreError> {
        Ok(self.deps.backends.config.price(tenant, channel).await?.filter(|p| p.unit_minor > 0))
    }

    /// The prepaid gate: a prepaid tenant whose balance cannot pay `sends`
    /// sends on `channel` is refused. Free channels and postpaid tenants pass.
    pub async fn gate(&self, tenant: &str, channel: &str, sends: usize) -> Result<(), BillingError> {
        if !self.settings(tenant).await?.prepaid {
            return Ok(());
        }
        let Some(price) = self.paid_price(tenant, channel).await? else {
            return Ok(());
        };
        let need = price.unit_minor.saturating_mul(sends as i64);
        let balance = self.deps.backends.store.balance(tenant).await?;
        if balance < need {
            return Err(BillingError::InsufficientBalance { balance, need, currency: price.currency, sends, channel: channel.to_string() });
        }
        Ok(())
    }

    /// Whether the tenant's fallback policy sends on a free channel instead of refusing.
    pub async fn falls_back_to_free(&self, tenant: &str) -> Result<bool, BillingError> {
        Ok(self.settings(tenant).await?.policy == "fallback_free")
    }

    /// What a sent delivery debits (SMS billed per segment: the host counts
    /// them by the GSM-7/UCS-2 rules, whatever the plugin reported).
    pub fn debit(price: Option<&Price>, sent: Sent<'_>) -> Option<LedgerEntry> {
        let mut b = sent.billable;
        if sent.per_segment {
            b.units = b.units.max(herald_core::billing::sms_segments(sent.text.unwrap_or("")).units);
        }
        herald_core::ledger::debit(price, &b)
    }

    /// A delivery the provider finally reported failed is not billed: its
    /// debit comes back, once.
    pub async fn refund(&self, tenant: &str, channel: &str, account: &str, delivery: &DeliveryRecord) -> Result<Option<LedgerEntry>, StoreError> {
        if delivery.cost_minor <= 0 {
            return Ok(None);
        }
        let currency = self.deps.backends.config.tenant(tenant).await?.map(|t| t.currency).unwrap_or_else(herald_core::model::default_currency);
        let now = self.deps.clock.now_ms();
        Ok(Some(herald_core::ledger::refund(&delivery.id, channel, account, delivery.cost_minor, &currency, tenant, now)))
    }

    /// Usage reported after the send (a call's started minutes): what exceeds
    /// the send's debit, once per delivery.
    pub async fn usage(
        &self,
        tenant: &str,
        channel: &str,
        account: &str,
        delivery: &DeliveryRecord,
        units: u32,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        let price = self.deps.backends.config.price(tenant, channel).await?;
        let now = self.deps.clock.now_ms();
        let b = Billable { tenant, channel, account, delivery_id: &delivery.id, units, at: now };
        Ok(herald_core::ledger::usage(price.as_ref(), &b, delivery.cost_minor))
    }

    /// Credits a tenant's prepaid balance: one `TopUp` ledger entry, and a
    /// low-balance alert already sent is cleared when the balance is back at
    /// or above the threshold, so the next crossing alerts again.
    pub async fn top_up(&self, tenant: &herald_core::model::Tenant, amount_minor: i64, note: &str) -> Result<(LedgerEntry, i64), BillingError> {
        self.top_up_once(tenant, &format!("top_up:{}", herald_core::docs::new_id()), amount_minor, note).await
    }

    /// [`Self::top_up`] as ledger entry `id`: the store keeps one entry per
    /// id, so a top-up made again with the same id (an approval retried)
    /// credits the balance once.
    pub async fn top_up_once(
        &self,
        tenant: &herald_core::model::Tenant,
        id: &str,
        amount_minor: i64,
        note: &str,
    ) -> Result<(LedgerEntry, i64), BillingError> {
        if amount_minor <= 0 {
            return Err(BillingError::NonPositiveTopUp);
        }
        let entry = LedgerEntry {
            id: id.to_string(),
            tenant: tenant.id.clone(),
            kind: herald_core::model::LedgerKind::TopUp,
            channel: String::new(),
            account: note.chars().take(100).collect(),
            delivery_id: None,
            units: 0,
            amount_minor,
            currency: tenant.currency.clone(),
            at: self.deps.clock.now_ms(),
        };
        self.deps.backends.store.record(vec![], vec![entry.clone()]).await?;
        let balance = self.deps.backends.store.balance(&tenant.id).await?;
        if balance >= self.settings(&tenant.id).await?.low_balance_minor {
            self.deps.backends.config.delete_doc(&tenant.id, "alert", "low_balance").await?;
        }
        Ok((entry, balance))
    }

    /// After debits: a tenant whose balance fell below its alert threshold
    /// gets one e-mail to its cost managers per crossing (`alert/low_balance`
    /// marks it sent; a balance back above the threshold clears it). The
    /// alert is returned for intake to accept; it is exempt from the gate.
    pub async fn low_balance_alert(&self, tenant: &str) -> Result<Option<Submission>, BillingError> {
        let c = self.deps.backends.config.as_ref();
        let billing = self.settings(tenant).await?;
        if billing.low_balance_minor <= 0 {
            return Ok(None);
        }
        let balance = self.deps.backends.store.balance(tenant).await?;
        if balance >= billing.low_balance_minor {
            c.delete_doc(tenant, "alert", "low_balance").await?;
            return Ok(None);
        }
        let now = self.deps.clock.now_ms();
        let claim = herald_core::model::Doc {
            tenant: tenant.into(),
            kind: "alert".into(),
            id: "low_balance".into(),
            body: serde_json::json!({"at": now, "balance_minor": balance}),
            updated_at: now,
        };
        if !c.create_doc(&claim).await? {
            return Ok(None);
        }
        let repo = Repo::new(c, tenant);
        let roles: Vec<herald_core::rbac::Role> = repo.list(herald_core::rbac::ROLE).await?;
        let managers: Vec<&str> = roles.iter().filter(|r| r.grants(herald_core::rbac::Permission::CostManage)).map(|r| r.id.as_str()).collect();
        let users: Vec<herald_core::directory::User> = repo.list(USER).await?;
        let recipients: Vec<RecipientSpec> = users
            .iter()
            .filter(|u| u.roles.iter().any(|r| managers.contains(&r.as_str())))
            .filter_map(|u| u.email.clone())
            .map(|to| RecipientSpec { to, variables: Default::default() })
            .collect();
        let account = c.accounts(tenant).await?.into_iter().find(|a| a.plugin == "email");
        let (Some(account), false) = (account, recipients.is_empty()) else {
            tracing::warn!(%tenant, balance, "balance below the alert threshold, but no e-mail account or administrator with an address to tell");
            return Ok(None);
        };
        let currency = c.tenant(tenant).await?.map(|t| t.currency).unwrap_or_default();
        let (now_left, threshold) =
            (herald_core::billing::money(balance, &currency), herald_core::billing::money(billing.low_balance_minor, &currency));
        let lang = repo.get::<TenantSettings>(TENANT, SETTINGS).await?.unwrap_or_default().language;
        let subject = herald_core::msg!("alert.low_balance.subject", balance = now_left).render(lang);
        let text = herald_core::msg!("alert.low_balance.text", balance = now_left, threshold = threshold).render(lang);
        tracing::info!(%tenant, balance, threshold = billing.low_balance_minor, "low-balance alert");
        Ok(Some(Submission {
            id: derived_id(&format!("herald-low-balance:{tenant}:{now}")),
            tenant: tenant.into(),
            channel: "email".into(),
            account: Some(account.name),
            body: Body::Content(Content { subject: Some(subject), text: Some(text), html: None }),
            variables: Default::default(),
            recipients,
            metadata: [("alert".to_string(), "low_balance".to_string())].into(),
            send_at: None,
            gate: Gate::Exempt,
        }))
    }
}
