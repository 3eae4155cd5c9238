//! A plugin as a vendor would have built it against `herald:channel@1.0.0`,
//! before 1.1 existed: raw `wit-bindgen`, no SDK. It POSTs
//! `{"id", "recipient", "text", "contract": "1.0.0"}` to the account's `url`.
//! The versioning test loads it next to 1.1 plugins.

wit_bindgen::generate!({
    world: "channel-plugin",
    path: "../../../sdk/wit/herald-channel-1.0.0",
});

use herald::channel::types::{OutcomeKind, Request};

struct Legacy;

fn url(account: &str) -> Result<String, PluginError> {
    serde_json::from_str::<serde_json::Value>(account)
        .ok()
        .and_then(|v| v.get("url").and_then(|u| u.as_str()).map(str::to_string))
        .ok_or_else(|| PluginError::BadConfig("url: required".into()))
}

impl Guest for Legacy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "legacy".into(),
            version: "1.0.0".into(),
            channel: "webhook".into(),
            formats: vec![herald::channel::types::ContentFormat::Text],
            max_batch: 10,
            account_schema: r#"{"type":"object","title":"Legacy webhook","x-herald-zh":{"title":"旧版 Webhook"},"required":["url"],
                "properties":{"url":{"type":"string","title":"URL","description":"Where to POST.",
                "x-herald-zh":{"title":"URL","description":"POST 的目标地址。"}}}}"#
                .into(),
            secret_fields: vec![],
            hosts: vec!["127.0.0.1".into()],
            billing_unit: "request".into(),
        }
    }

    fn validate_account(account: String) -> Result<(), PluginError> {
        url(&account).map(|_| ())
    }

    fn build(_ctx: CallContext, account: String, batch: Vec<Delivery>) -> Result<Vec<Outbound>, PluginError> {
        let url = url(&account)?;
        Ok(batch
            .into_iter()
            .map(|d| {
                let body = serde_json::json!({"id": d.id, "recipient": d.recipient, "text": d.text, "contract": "1.0.0"});
                Outbound {
                    deliveries: vec![d.id],
                    request: Request::Http(HttpRequest {
                        method: "POST".into(),
                        url: url.clone(),
                        headers: vec![("content-type".into(), "application/json".into())],
                        body: body.to_string().into_bytes(),
                    }),
                }
            })
            .collect())
    }

    fn interpret(_ctx: CallContext, _account: String, deliveries: Vec<String>, response: Response) -> Vec<Outcome> {
        let ok = matches!(&response, Response::Http(r) if (200..300).contains(&r.status));
        deliveries
            .into_iter()
            .map(|id| Outcome {
                delivery_id: id,
                kind: if ok { OutcomeKind::Sent } else { OutcomeKind::Retry },
                retry_after_ms: None,
                provider_id: None,
                units: 1,
                detail: None,
            })
            .collect()
    }

    fn parse_callback(_ctx: CallContext, _account: String, _request: HttpRequest) -> Result<CallbackReply, PluginError> {
        Err(PluginError::Internal("callbacks not supported".into()))
    }
}

export!(Legacy);
