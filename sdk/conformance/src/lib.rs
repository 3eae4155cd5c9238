//! The conformance kit. `check(plugin, options)` loads a plugin in the real
//! host (same sandbox, limits and allowlist as the gateway) and runs:
//!
//! 1. load: a valid `herald:channel` 1.x component;
//! 2. describe: name, version, channel, formats, batch size, JSON Schema, hosts, billing unit;
//! 3. validate-account: the sample account passes, garbage is refused with `bad-config`;
//! 4. build: batches of 1 and of `max-batch` sample deliveries — every delivery in
//!    exactly one request, only declared hosts, output within limits, and the same
//!    input gives the same output (plugins must be pure);
//! 5. interpret: synthetic answers (success, throttle, server error, client error)
//!    give one outcome per delivery; recorded answers give the recorded outcome;
//! 6. parse-callback: recorded callbacks give the recorded receipts (and, for
//!    1.2 plugins with `callback-usage`, the recorded usage units);
//! 7. tokens (1.1 plugins): the token request goes to a declared host; a recorded
//!    token answer parses.
//!
//! Fixtures live in a folder (by convention `plugins/<name>/conformance/`):
//! `account.json` (a sample account), `responses/*.json`
//! (`{"now_ms"?, "response": {"http": {"status", "headers": [[k, v]], "body"}} | {"smtp": {"code", "message"}}, "expect": "sent"|"retry"|"throttled"|"failed"}`),
//! `callbacks/*.json` (`{"now_ms"?, "request": {"method", "url", "headers", "body"}, "expect": ["delivered"|"failed"|"read", ...], "expect_usage"?: [units, ...]}` or `"expect_error": true`),
//! `token.json` (`{"response": {"status", "headers", "body"}, "expect_value": "..."}`), and
//! optionally `sample.json` (`{"recipients": ["group", "@all"]}`: recipient
//! addresses to use, cycled, for channels whose addresses have a special form).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use herald_plugin_host::types::{CallContext, Delivery, HttpRequest, HttpResponse, OutcomeKind, ReceiptStatus, Request, Response, SmtpReply};
use herald_plugin_host::{HostConfig, LoadedPlugin, PluginHost};
use serde::Deserialize;

/// One check's result.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub plugin: String,
    pub checks: Vec<Check>,
}

impl Report {
    fn record(&mut self, name: impl Into<String>, result: Result<String, String>) {
        let (passed, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        self.checks.push(Check { name: name.into(), passed, detail });
    }
    pub fn passed(&self) -> usize {
        self.checks.iter().filter(|c| c.passed).count()
    }
    pub fn failed(&self) -> usize {
        self.checks.len() - self.passed()
    }
    pub fn ok(&self) -> bool {
        self.failed() == 0 && !self.checks.is_empty()
    }
    /// Human-readable report ending in "N passed, M failed".
    pub fn render(&self) -> String {
        let mut out = format!("herald-plugin-check {}\n", self.plugin);
        for c in &self.checks {
            out.push_str(&format!(
                "  {}  {}{}\n",
                if c.passed { "PASS" } else { "FAIL" },
                c.name,
                if c.detail.is_empty() { String::new() } else { format!(": {}", c.detail) }
            ));
        }
        out.push_str(&format!("{} passed, {} failed\n", self.passed(), self.failed()));
        out
    }
}

#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Sample account JSON; default `<fixtures>/account.json`.
    pub account: Option<String>,
    /// Fixture folder.
    pub fixtures: Option<PathBuf>,
    pub now_ms: Option<u64>,
}

#[derive(Deserialize)]
struct RecordedResponse {
    #[serde(default)]
    now_ms: Option<u64>,
    response: RecordedAnswer,
    expect: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RecordedAnswer {
    Http(RecordedHttp),
    Smtp { code: u16, message: String },
}

#[derive(Deserialize)]
struct RecordedHttp {
    status: u16,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: String,
}

impl RecordedHttp {
    fn to_response(&self) -> HttpResponse {
        HttpResponse { status: self.status, headers: self.headers.clone(), body: self.body.clone().into_bytes() }
    }
}

#[derive(Deserialize)]
struct RecordedCallback {
    #[serde(default)]
    now_ms: Option<u64>,
    request: RecordedRequest,
    #[serde(default)]
    expect: Vec<String>,
    #[serde(default)]
    expect_error: bool,
    /// Contract 1.2: the units `callback-usage` reports, in order.
    #[serde(default)]
    expect_usage: Option<Vec<u32>>,
}

#[derive(Deserialize)]
struct RecordedRequest {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: String,
}

#[derive(Deserialize)]
struct RecordedToken {
    response: RecordedHttp,
    expect_value: String,
}

/// A fixed, plausible "now" so that reports are reproducible.
const DEFAULT_NOW_MS: u64 = 1_795_000_000_000;

fn ctx(now_ms: u64) -> CallContext {
    CallContext { now_ms, tenant: "conformance".into(), attempt: 1 }
}

#[derive(Deserialize)]
struct Sample {
    recipients: Vec<String>,
}

fn sample(i: usize, channel: &str, recipients: &[String]) -> Delivery {
    let recipient = match (recipients.is_empty(), channel) {
        (false, _) => recipients[i % recipients.len()].clone(),
        (true, "email") => format!("user{i}@example.com"),
        (true, "sms" | "voice") => format!("+86138000{:05}", i % 100_000),
        (true, _) => format!("user{i}"),
    };
    Delivery {
        id: format!("conformance-msg.{i}"),
        recipient,
        subject: Some(format!("Subject {i} — 通知")),
        text: format!("Hello {i}: your code is 1234. 您好，这是一条测试消息。"),
        html: Some(format!("<p>Hello <b>{i}</b></p>")),
        metadata: vec![("order".into(), format!("A-{i}")), ("code".into(), "1234".into())],
    }
}

fn kind_name(k: OutcomeKind) -> &'static str {
    match k {
        OutcomeKind::Sent => "sent",
        OutcomeKind::Retry => "retry",
        OutcomeKind::Throttled => "throttled",
        OutcomeKind::Failed => "failed",
    }
}

fn receipt_name(r: ReceiptStatus) -> &'static str {
    match r {
        ReceiptStatus::Delivered => "delivered",
        ReceiptStatus::Failed => "failed",
        ReceiptStatus::Read => "read",
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn fixture_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "json")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Run every check against the plugin at `path`.
pub fn check(path: &Path, opts: &Options) -> Report {
    let mut report = Report { plugin: path.display().to_string(), ..Default::default() };
    let host = match PluginHost::new(HostConfig::default(), HashMap::new()) {
        Ok(h) => h,
        Err(e) => {
            report.record("wasm engine", Err(e));
            return report;
        }
    };
    let plugin = match host.load_file(path) {
        Ok(p) => p,
        Err(e) => {
            report.record("loads as a herald:channel 1.x component", Err(e));
            return report;
        }
    };
    report.record("loads as a herald:channel 1.x component", Ok(format!("worlds {}", plugin.worlds().join(", "))));
    report.record("describe", check_describe(&plugin));
    report.record("account-schema labels in English and Chinese", check_labels(&plugin.info.account_schema));

    let now = opts.now_ms.unwrap_or(DEFAULT_NOW_MS);
    let account = match (&opts.account, &opts.fixtures) {
        (Some(a), _) => Some(a.clone()),
        (None, Some(dir)) => std::fs::read_to_string(dir.join("account.json")).ok(),
        (None, None) => None,
    };
    let Some(account) = account else {
        report.record("sample account", Err("none given (--account or <fixtures>/account.json)".into()));
        return report;
    };
    report.record("validate-account accepts the sample account", plugin.validate_account(&account).map(|_| String::new()).map_err(|e| e.to_string()));
    report.record(
        "validate-account refuses a non-object",
        match plugin.validate_account("\"not an account\"") {
            Ok(()) => Err("accepted".into()),
            Err(e) if e.to_string().contains("bad account config") => Ok(String::new()),
            Err(e) => Err(format!("refused, but not with bad-config: {e}")),
        },
    );

    let account = if plugin.uses_tokens() { with_token(&plugin, &account, now, opts, &mut report) } else { account };
    let channel = plugin.info.channel.clone();
    let max = (plugin.info.max_batch as usize).clamp(1, 50);
    let recipients: Vec<String> = match opts.fixtures.as_ref().map(|d| d.join("sample.json")).filter(|p| p.exists()) {
        Some(file) => match read_json::<Sample>(&file) {
            Ok(s) => s.recipients,
            Err(e) => {
                report.record("sample.json", Err(e));
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let mut first_request = None;
    let sizes: Vec<usize> = if max == 1 { vec![1] } else { vec![1, max] };
    for n in sizes {
        let batch: Vec<Delivery> = (0..n).map(|i| sample(i, &channel, &recipients)).collect();
        let result = plugin.build(&ctx(now), &account, &batch);
        let again = plugin.build(&ctx(now), &account, &batch);
        report.record(
            format!("build a batch of {n}"),
            match (&result, again) {
                (Ok(b), _) if !b.uncovered.is_empty() => Err(format!("no request for {:?}", b.uncovered)),
                (Ok(b), Ok(b2)) if b.outbounds != b2.outbounds => Err("same input, different output: plugins must be pure".into()),
                (Ok(b), _) => Ok(format!("{} request(s)", b.outbounds.len())),
                (Err(e), _) => Err(e.to_string()),
            },
        );
        if let Ok(b) = result
            && first_request.is_none()
        {
            first_request = b.outbounds.into_iter().next();
        }
    }
    let Some(outbound) = first_request else { return report };

    let synthetic: Vec<(&str, Response)> = match &outbound.request {
        Request::Http(_) => [(200u16, "ok"), (429, "throttled"), (500, "server error"), (400, "client error")]
            .into_iter()
            .map(|(status, name)| {
                let headers = if status == 429 { vec![("retry-after".to_string(), "2".to_string())] } else { vec![] };
                (name, Response::Http(HttpResponse { status, headers, body: b"{}".to_vec() }))
            })
            .collect(),
        Request::Smtp(_) => [(250u16, "250"), (451, "451"), (550, "550")]
            .into_iter()
            .map(|(code, name)| (name, Response::Smtp(SmtpReply { code, message: name.into() })))
            .collect(),
    };
    for (name, resp) in synthetic {
        report.record(
            format!("interpret a {name} answer: one outcome per delivery"),
            match plugin.interpret(&ctx(now), &account, &outbound.deliveries, &resp) {
                Ok(outcomes) => {
                    let mut ids: Vec<&str> = outcomes.iter().map(|o| o.delivery_id.as_str()).collect();
                    ids.sort();
                    ids.dedup();
                    if ids.len() == outbound.deliveries.len() && outcomes.len() == ids.len() {
                        Ok(outcomes.iter().map(|o| kind_name(o.kind)).collect::<Vec<_>>().join(","))
                    } else {
                        Err(format!("{} outcomes for {} deliveries", outcomes.len(), outbound.deliveries.len()))
                    }
                }
                Err(e) => Err(e.to_string()),
            },
        );
    }

    let Some(dir) = &opts.fixtures else { return report };
    for file in fixture_files(&dir.join("responses")) {
        let name = format!("recorded answer {}", file.file_name().unwrap_or_default().to_string_lossy());
        let result = read_json::<RecordedResponse>(&file).and_then(|r| {
            let resp = match &r.response {
                RecordedAnswer::Http(h) => Response::Http(h.to_response()),
                RecordedAnswer::Smtp { code, message } => Response::Smtp(SmtpReply { code: *code, message: message.clone() }),
            };
            let outcomes = plugin.interpret(&ctx(r.now_ms.unwrap_or(now)), &account, &outbound.deliveries, &resp).map_err(|e| e.to_string())?;
            let kinds: Vec<&str> = outcomes.iter().map(|o| kind_name(o.kind)).collect();
            if !kinds.is_empty() && kinds.iter().all(|k| *k == r.expect) {
                Ok(r.expect.clone())
            } else {
                Err(format!("expected {}, got {kinds:?}", r.expect))
            }
        });
        report.record(name, result);
    }
    for file in fixture_files(&dir.join("callbacks")) {
        let name = format!("recorded callback {}", file.file_name().unwrap_or_default().to_string_lossy());
        let result = read_json::<RecordedCallback>(&file).and_then(|c| {
            let req = HttpRequest { method: c.request.method, url: c.request.url, headers: c.request.headers, body: c.request.body.into_bytes() };
            match (plugin.parse_callback(&ctx(c.now_ms.unwrap_or(now)), &account, &req), c.expect_error) {
                (Err(_), true) => Ok("rejected".into()),
                (Ok(r), true) => Err(format!("accepted with {} receipts; expected a rejection", r.receipts.len())),
                (Err(e), false) => Err(e.to_string()),
                (Ok(r), false) => {
                    let got: Vec<&str> = r.receipts.iter().map(|x| receipt_name(x.status)).collect();
                    if got != c.expect.iter().map(String::as_str).collect::<Vec<_>>() {
                        return Err(format!("expected {:?}, got {got:?}", c.expect));
                    }
                    let Some(expect_usage) = &c.expect_usage else { return Ok(got.join(",")) };
                    let usage = plugin.callback_usage(&ctx(c.now_ms.unwrap_or(now)), &account, &req).map_err(|e| format!("callback-usage: {e}"))?;
                    let units: Vec<u32> = usage.iter().map(|u| u.units).collect();
                    if &units == expect_usage {
                        Ok(format!("{}; usage {units:?}", got.join(",")))
                    } else {
                        Err(format!("expected usage {expect_usage:?}, got {units:?}"))
                    }
                }
            }
        });
        report.record(name, result);
    }
    report
}

/// For 1.1 plugins: check the token request and (with a fixture) the parsing,
/// and return the account with `"$token"` set for the build checks.
fn with_token(plugin: &Arc<LoadedPlugin>, account: &str, now: u64, opts: &Options, report: &mut Report) -> String {
    match plugin.token_request(&ctx(now), account) {
        Ok(Some(req)) => report.record("token request goes to a declared host", Ok(req.url.split('?').next().unwrap_or("").to_string())),
        Ok(None) => return account.to_string(),
        Err(e) => report.record("token request goes to a declared host", Err(e.to_string())),
    }
    let mut value = "conformance-token".to_string();
    if let Some(file) = opts.fixtures.as_ref().map(|d| d.join("token.json")).filter(|p| p.exists()) {
        let result = read_json::<RecordedToken>(&file).and_then(|t| {
            let tok = plugin.parse_token(&ctx(now), account, &t.response.to_response()).map_err(|e| e.to_string())?;
            if tok.value == t.expect_value && tok.expires_in_ms > 0 {
                value = tok.value.clone();
                Ok(format!("expires in {} ms", tok.expires_in_ms))
            } else {
                Err(format!("got {:?} ({} ms)", tok.value, tok.expires_in_ms))
            }
        });
        report.record("recorded token answer parses", result);
    }
    let mut v: serde_json::Value = serde_json::from_str(account).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("$token".into(), value.into());
    }
    v.to_string()
}

/// The console builds the account form from the schema: the root and every property
/// (nested ones too) need an English `title` and `description` and a Chinese one in
/// `x-herald-zh` (sdk/README.md, "Account schema").
fn check_labels(account_schema: &str) -> Result<String, String> {
    let schema: serde_json::Value = serde_json::from_str(account_schema).map_err(|e| format!("account-schema: {e}"))?;
    let problems = missing_labels(&schema);
    if problems.is_empty() { Ok(String::new()) } else { Err(problems.join("; ")) }
}

/// What an account schema lacks for a localized form, one line per gap.
pub fn missing_labels(schema: &serde_json::Value) -> Vec<String> {
    fn text(node: &serde_json::Value, key: &str) -> bool {
        node.get(key).and_then(|v| v.as_str()).is_some_and(|s| !s.trim().is_empty())
    }
    fn walk(node: &serde_json::Value, prefix: &str, problems: &mut Vec<String>) {
        let Some(props) = node.get("properties").and_then(|p| p.as_object()) else { return };
        for (key, p) in props {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            let zh = &p["x-herald-zh"];
            let missing: Vec<&str> = [
                ("title", text(p, "title")),
                ("description", text(p, "description")),
                ("x-herald-zh.title", text(zh, "title")),
                ("x-herald-zh.description", text(zh, "description")),
            ]
            .into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(k, _)| k)
            .collect();
            if !missing.is_empty() {
                problems.push(format!("{path}: no {}", missing.join(", ")));
            }
            walk(p, &path, problems);
        }
    }
    let mut problems = Vec::new();
    if !text(schema, "title") || !text(&schema["x-herald-zh"], "title") {
        problems.push("the schema root needs a title and x-herald-zh.title".into());
    }
    walk(schema, "", &mut problems);
    problems
}

fn check_describe(plugin: &LoadedPlugin) -> Result<String, String> {
    let i = &plugin.info;
    let mut problems = Vec::new();
    let semver =
        i.version.split('.').count() == 3 && i.version.split('.').all(|p| p.split(['-', '+']).next().is_some_and(|n| n.parse::<u64>().is_ok()));
    if !semver {
        problems.push(format!("version {:?} is not semver", i.version));
    }
    if !["webhook", "email", "sms", "voice", "im"].contains(&i.channel.as_str()) {
        problems.push(format!("channel {:?} is not one of webhook, email, sms, voice, im", i.channel));
    }
    if i.formats.is_empty() {
        problems.push("no content formats".into());
    }
    if i.hosts.is_empty() {
        problems.push("no hosts declared".into());
    }
    if i.billing_unit.is_empty() {
        problems.push("no billing unit".into());
    }
    match serde_json::from_str::<serde_json::Value>(&i.account_schema) {
        Ok(schema) if schema.get("type").and_then(|t| t.as_str()) == Some("object") => {
            for field in &i.secret_fields {
                let mut node = &schema;
                for part in field.split('.') {
                    // `*`: every value of a map (`additionalProperties`).
                    node = if part == "*" { &node["additionalProperties"] } else { &node["properties"][part] };
                }
                if node.is_null() {
                    problems.push(format!("secret field {field:?} is not in the account schema"));
                }
            }
        }
        _ => problems.push("account-schema is not a JSON Schema of an object".into()),
    }
    if problems.is_empty() {
        Ok(format!("{} {}, channel {}, max batch {}, hosts {:?}", i.name, i.version, i.channel, i.max_batch, i.hosts))
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::missing_labels;

    #[test]
    fn labels_are_required_in_both_languages_at_every_level() {
        let ok = serde_json::json!({"title": "A", "x-herald-zh": {"title": "甲"}, "properties": {
            "a": {"title": "A", "description": "d", "x-herald-zh": {"title": "甲", "description": "说明"}}}});
        assert!(missing_labels(&ok).is_empty());
        let bad = serde_json::json!({"title": "A", "properties": {
            "a": {"title": "A", "description": "d"},
            "o": {"title": "O", "description": "d", "x-herald-zh": {"title": "乙", "description": "说明"},
                  "properties": {"b": {"x-herald-zh": {"title": "丙", "description": " "}}}}}});
        assert_eq!(
            missing_labels(&bad),
            [
                "the schema root needs a title and x-herald-zh.title",
                "a: no x-herald-zh.title, x-herald-zh.description",
                "o.b: no title, description, x-herald-zh.description",
            ]
        );
    }
}
