//! The rules' typed errors in the API's error vocabulary (a stable code, a
//! message, the field at fault, and a kind each edge maps to its status).

use herald_core::ApiError;
use herald_core::error::ErrorKind;

use crate::{BillingError, IncidentError, IntakeError};

impl From<BillingError> for ApiError {
    fn from(e: BillingError) -> Self {
        match e {
            BillingError::Store(e) => e.into(),
            e @ BillingError::InsufficientBalance { .. } => ApiError::new(ErrorKind::PaymentRequired, "insufficient_balance", e.to_string()),
            e @ BillingError::NonPositiveTopUp => ApiError::invalid("amount_minor", e.to_string()),
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        let message = e.to_string();
        match e {
            IntakeError::UnknownChannel(_) => ApiError::unknown("unknown_channel", "channel", message),
            IntakeError::UnknownAccount(_) | IntakeError::NoAccount(_) => ApiError::unknown("unknown_account", "account", message),
            IntakeError::AmbiguousAccount(_) => ApiError::invalid("account", "several accounts serve this channel; name one"),
            IntakeError::AccountChannelMismatch { .. } => ApiError::unknown("account_channel_mismatch", "account", message),
            IntakeError::InvalidRecipient { index, .. } => ApiError::invalid(format!("recipients[{index}].to"), message),
            IntakeError::TooManyRecipients { .. } | IntakeError::NoRecipients => ApiError::invalid("recipients", message),
            IntakeError::TooCostly { field, .. } => ApiError::new(ErrorKind::TooLarge, "too_large", message).with_field(field),
            IntakeError::UnknownTemplate(_) => ApiError::unknown("unknown_template", "template", message),
            IntakeError::InvalidTemplate { part, .. } => ApiError::new(ErrorKind::Invalid, "invalid_template", message)
                .with_field(part.map_or_else(|| "template".to_string(), |p| format!("content.{p}"))),
            IntakeError::Billing(e) => e.into(),
            IntakeError::Store(e) => e.into(),
        }
    }
}

impl From<IncidentError> for ApiError {
    fn from(e: IncidentError) -> Self {
        let message = e.to_string();
        match e {
            IncidentError::UnknownAction => ApiError::not_found("action", "id"),
            IncidentError::ActionDisabled { .. } => ApiError::new(ErrorKind::Conflict, "action_disabled", message),
            IncidentError::AppDisabled => ApiError::new(ErrorKind::Forbidden, "app_disabled", message),
            IncidentError::UnknownLevel => ApiError::invalid("level", message),
            IncidentError::NoRules { .. } => ApiError::unknown("no_rules", "level", message),
            IncidentError::DedupKeyTooLong => ApiError::invalid("dedup_key", message),
            IncidentError::UnknownIncident => ApiError::not_found("incident", "id"),
            IncidentError::UnknownRecipient(_) => ApiError::unknown("unknown_recipient", "recipient", message),
            IncidentError::InvalidLink => ApiError::new(ErrorKind::NotFound, "invalid_link", message),
            IncidentError::ExpiredLink => ApiError::new(ErrorKind::NotFound, "expired_link", message),
            IncidentError::Store(e) => e.into(),
            IncidentError::Doc(e) => e,
        }
    }
}
