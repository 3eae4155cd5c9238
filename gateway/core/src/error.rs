//! Errors. `ApiError` is what a client sees (mapped to HTTP only at the edge);
//! `StoreError` is what a backend reports.

use serde::Serialize;

use crate::i18n::{Lang, Msg, Text};

/// A client-facing error: a stable code, a message, and the offending field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The message's key and arguments, when it has them: rendered in the
    /// reader's language by [`ApiError::body_in`]; `message` is its English.
    #[serde(skip)]
    pub msg: Option<Box<Msg>>,
}

/// What class of failure an `ApiError` is; the edge maps it to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Invalid,
    /// Well-formed, but names something that does not exist (account, template, channel).
    Unprocessable,
    Unauthenticated,
    /// Authenticated, but without the permission.
    Forbidden,
    /// A prepaid balance too low for the send.
    PaymentRequired,
    NotFound,
    Conflict,
    TooLarge,
    /// Slow down (e.g. a login locked after repeated failures).
    TooManyRequests,
    Unavailable,
    Internal,
}

impl ErrorKind {
    /// The HTTP status an edge answers with.
    pub fn status(self) -> u16 {
        match self {
            Self::Invalid => 400,
            Self::Unprocessable => 422,
            Self::Unauthenticated => 401,
            Self::Forbidden => 403,
            Self::PaymentRequired => 402,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::TooLarge => 413,
            Self::TooManyRequests => 429,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

impl ApiError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<Text>) -> Self {
        let Text { en, msg } = message.into();
        Self { kind, code, message: en, field: None, msg: msg.map(Box::new) }
    }
    pub fn invalid(field: impl Into<String>, message: impl Into<Text>) -> Self {
        Self { field: Some(field.into()), ..Self::new(ErrorKind::Invalid, "invalid_field", message) }
    }
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn unknown(code: &'static str, field: &str, message: impl Into<Text>) -> Self {
        Self::new(ErrorKind::Unprocessable, code, message).with_field(field)
    }
    pub fn not_found(what: &str, field: &str) -> Self {
        Self::new(ErrorKind::NotFound, "not_found", crate::msg!("not_found").nested("what", Msg::noun(what))).with_field(field)
    }
    pub fn unavailable(message: impl Into<Text>) -> Self {
        Self::new(ErrorKind::Unavailable, "unavailable", message)
    }

    /// The JSON body clients see: `{"error": {"code", "message", "field"?}}`.
    /// Internal details are logged here and replaced by "internal error".
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(self.error_body()).expect("an error body serialises")
    }

    /// The body clients see, typed (see [`ErrorBody`]).
    pub fn error_body(&self) -> ErrorBody {
        self.body_in(Lang::En)
    }

    /// The body in `lang`: the message rendered from its key when it has
    /// one, else as written.
    pub fn body_in(&self, lang: Lang) -> ErrorBody {
        let message = if self.kind == ErrorKind::Internal {
            tracing::error!(error = %self.message, "internal error");
            crate::msg!("internal").render(lang)
        } else {
            self.msg.as_ref().map_or_else(|| self.message.clone(), |m| m.render(lang))
        };
        ErrorBody { error: ErrorDetail { code: self.code.to_string(), message, field: self.field.clone() } }
    }
}

/// Every error answer of the HTTP APIs: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"error": {"code": "invalid_field", "message": "at least one recipient is required", "field": "recipients"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code, e.g. `invalid_field`, `unauthenticated`, `not_found`,
    /// `idempotency_key_reused`, `unknown_account`, `unavailable`.
    pub code: String,
    /// A human-readable explanation (English); not stable.
    pub message: String,
    /// The request part at fault, when there is one: a body field path (`recipients[3].to`,
    /// `content.text`), `body`, a query parameter or a header (`Idempotency-Key`). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<String>,
}

/// A backend failure. `Unavailable` means "try again later" (the edge answers
/// 503 + Retry-After); everything else is a bug or corruption.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    #[error("backend error: {0}")]
    Backend(String),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => ApiError::unavailable(m),
            other => ApiError::new(ErrorKind::Internal, "internal", other.to_string()),
        }
    }
}
