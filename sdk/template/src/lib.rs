//! A template Herald channel plugin for a JSON HTTP API with a bearer token:
//! `POST https://api.example.com/v1/notify` with `{"to", "subject", "text"}`.
//! Replace the endpoint, payload and outcome mapping with your provider's.
//!
//! Build: `cargo build --release --target wasm32-wasip2`, then check it with
//! `herald-plugin-check target/wasm32-wasip2/release/<crate>.wasm --fixtures conformance`
//! and drop the `.wasm` into the gateway's plugin directory.

use herald_plugin_sdk::types::*;
use herald_plugin_sdk::{Plugin, export_plugin, http, json, outcome};
use serde::Deserialize;

const ENDPOINT: &str = "https://api.example.com/v1/notify";

/// The account configuration (a JSON object); `deny_unknown_fields` turns a
/// misspelt field into a clear `bad-config` error naming it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Account {
    api_key: String,
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Example account",
  "x-herald-zh": {"title": "示例账号"},
  "type": "object",
  "required": ["api_key"],
  "properties": {
    "api_key": {"type": "string", "minLength": 1, "writeOnly": true,
                "title": "API key", "description": "The key from the provider's console.",
                "x-herald-zh": {"title": "API 密钥", "description": "服务商控制台中的 API 密钥。"}}
  }
}"#;

fn account(raw: &str) -> Result<Account, PluginError> {
    let a: Account = json::parse_account(raw)?;
    if a.api_key.is_empty() {
        return Err(PluginError::BadConfig("api_key: must not be empty".into()));
    }
    Ok(a)
}

struct Template;

impl Plugin for Template {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "template".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            channel: "im".into(),
            formats: vec![ContentFormat::Text],
            max_batch: 1,
            account_schema: SCHEMA.into(),
            secret_fields: vec!["api_key".into()],
            hosts: vec!["api.example.com".into()],
            billing_unit: "message".into(),
        }
    }

    fn validate_account(raw: &str) -> Result<(), PluginError> {
        account(raw).map(|_| ())
    }

    fn build(_ctx: CallContext, raw: &str, batch: Vec<Delivery>) -> Result<Vec<Outbound>, PluginError> {
        let a = account(raw)?;
        let auth = format!("Bearer {}", a.api_key);
        batch
            .into_iter()
            .map(|d| {
                let body = json::json!({"to": d.recipient, "subject": d.subject, "text": d.text});
                let request = http::post_json(ENDPOINT, &[("authorization", auth.as_str())], &body)?;
                Ok(Outbound { deliveries: vec![d.id], request: Request::Http(request) })
            })
            .collect()
    }

    fn interpret(ctx: CallContext, _raw: &str, deliveries: Vec<String>, response: Response) -> Vec<Outcome> {
        match response {
            Response::Http(r) => outcome::from_http_status(&deliveries, &r, ctx.now_ms),
            Response::Smtp(_) => outcome::for_all(&deliveries, |id| outcome::failed(id, "unexpected SMTP answer")),
        }
    }
}

export_plugin!(Template);
