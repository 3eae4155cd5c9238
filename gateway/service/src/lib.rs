//! Herald's business rules, in one layer every edge calls.
//!
//! - [`intake`]: the one way a message is accepted (references checked with
//!   the configured limits, the prepaid gate, rows written, work published).
//! - [`billing`]: the prepaid gate, the debit of a send, refunds and usage
//!   reported by callbacks, low-balance alerts.
//! - [`incidents`]: tiered push at run time (steps, escalation waits,
//!   acknowledgements, quiet hours).
//! - [`receipts`]: what a provider's delivery report changes.
//!
//! Edges (the gateway's HTTP API, dispatch, the admin service and its push
//! scheduler) translate their input into calls here and the typed errors back
//! into their own answers; nothing else writes messages or ledger entries.
//! Each module's error is typed; [`edge`] turns them into the API's error
//! vocabulary.

pub mod billing;
pub mod edge;
pub mod incidents;
pub mod intake;
pub mod receipts;

use std::sync::Arc;

use herald_backends::{Backends, Sealer};
use herald_core::Clock;
use herald_plugin_host::PluginHost;

pub use billing::{Billing, BillingError};
pub use incidents::{IncidentError, Incidents, Trigger, TriggerLevel};
pub use intake::{Accepted, Body, Gate, Intake, IntakeError, LimitsSource, Submission};

/// What the rules work on, shared by every part: the backends, the loaded
/// plugins (channels and their address rules), the sealer (account secrets,
/// signed links) and the clock.
#[derive(Clone)]
pub struct Deps {
    pub backends: Backends,
    pub plugins: Arc<PluginHost>,
    pub sealer: Arc<Sealer>,
    pub clock: Clock,
}

/// The rules of one process.
pub struct Services {
    pub deps: Deps,
    pub intake: Intake,
    pub billing: Billing,
    pub incidents: Incidents,
}

impl Services {
    /// `public_url`: this gateway's base URL as recipients reach it (ack links).
    pub fn new(deps: Deps, limits: LimitsSource, public_url: String) -> Arc<Services> {
        let billing = Billing::new(deps.clone());
        let intake = Intake::new(deps.clone(), limits, billing.clone());
        let incidents = Incidents::new(deps.clone(), intake.clone(), billing.clone(), public_url);
        Arc::new(Services { deps, intake, billing, incidents })
    }

    /// After debits were recorded for `tenant`: the low-balance alert, if due.
    pub async fn after_debits(&self, tenant: &str) -> Result<(), IntakeError> {
        if let Some(alert) = self.billing.low_balance_alert(tenant).await? {
            self.intake.submit(alert).await?;
        }
        Ok(())
    }
}

/// A stable id from its parts (UUID v5): the same parts, the same id, in every
/// process — what makes a replayed step or push recognisable downstream.
pub fn derived_id(parts: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, parts.as_bytes()).simple().to_string()
}
