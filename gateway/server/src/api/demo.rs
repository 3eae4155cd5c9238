//! The demo inbox: the demo tenant's webhook account posts here, so a
//! newcomer sees deliveries arrive without running anything else.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::App;

/// The demo tenant's webhook account posts here, so a newcomer sees
/// deliveries arrive without running anything else.
pub async fn receive(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Some(inbox) = &app.demo_inbox else {
        return StatusCode::NOT_FOUND;
    };
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body)));
    let signed = headers.get("x-herald-signature").is_some();
    tracing::info!(delivery = ?headers.get("x-herald-delivery"), "demo inbox received a notification");
    let mut inbox = inbox.lock().expect("demo inbox");
    if inbox.len() >= 100 {
        inbox.pop_front();
    }
    inbox.push_back(json!({"received_at": herald_core::now_ms(), "signed": signed, "body": parsed}));
    StatusCode::NO_CONTENT
}

pub async fn list(State(app): State<Arc<App>>) -> Response {
    let items: Vec<_> = app.demo_inbox.as_ref().map(|i| i.lock().expect("demo inbox").iter().cloned().collect()).unwrap_or_default();
    axum::Json(json!({ "received": items })).into_response()
}
