//! The dispatch pipeline, billing and incidents in one process: SQLite in a
//! temporary directory, the real `webhook` plugin, a fake transport that
//! answers every provider request, and tokio's paused clock, so that a
//! ten-minute escalation takes milliseconds. (The e2e suite in `tests/`
//! drives the real binaries.)

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use herald_core::Clock;
use herald_core::billing::{BILLING, BILLING_SETTINGS, BillingSettings};
use herald_core::directory::{ListEntry, Targets};
use herald_core::docs::Repo;
use herald_core::model::{Account, Content, DeliveryStatus, Price, RecipientSpec, Tenant};
use herald_core::quiet::QuietHours;
use herald_core::tiered::{ACTION, Action, ChannelRef, Condition, Editor, Escalate, Rule, TEMPLATE, TieredTemplate};
use herald_gateway::config::Config;
use herald_gateway::dispatch::Dispatch;
use herald_gateway::metrics::Metrics;
use herald_gateway::transport::{SendOptions, Sent, Transport, TransportError};
use herald_plugin_host::types::{HttpResponse, Receipt, ReceiptStatus, Request, Response};
use herald_plugin_host::{HostConfig, PluginHost};
use herald_service::{BillingError, Body, Deps, Gate, IntakeError, LimitsSource, Services, Submission, Trigger};
use tokio_util::sync::CancellationToken;

const TENANT: &str = "acme";

/// Answers every HTTP request 200 and remembers its body.
#[derive(Default)]
struct FakeTransport {
    bodies: Mutex<Vec<String>>,
}

impl FakeTransport {
    /// Request bodies that mention `needle`.
    fn seen(&self, needle: &str) -> usize {
        self.bodies.lock().unwrap().iter().filter(|b| b.contains(needle)).count()
    }
}

#[async_trait]
impl Transport for FakeTransport {
    async fn send_with(&self, request: Request, _: SendOptions) -> Result<Sent, TransportError> {
        let Request::Http(r) = request else {
            return Err(TransportError::Protocol("only HTTP here".into()));
        };
        self.bodies.lock().unwrap().push(String::from_utf8_lossy(&r.body).into_owned());
        Ok(Sent { response: Response::Http(HttpResponse { status: 200, headers: vec![], body: b"{}".to_vec() }), recipients: vec![] })
    }
}

struct World {
    services: Arc<Services>,
    transport: Arc<FakeTransport>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for World {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn plugin_dir() -> PathBuf {
    std::env::var_os("HERALD_TEST_PLUGIN_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("../../target"));
        target.join("herald-plugins")
    })
}

/// A gateway's rules and dispatch role on a fresh SQLite store, with tenant
/// `acme` and its webhook account `hook`; webhook sends cost `price` each.
async fn world(price: i64) -> World {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
    let dir = tempfile::tempdir().unwrap();
    let defaults = Config::default();
    // One poll a second: a ten-minute wait is six hundred of them.
    let dispatch = herald_gateway::config::DispatchConfig { poll_ms: 1_000, linger_ms: 5, ..defaults.dispatch.clone() };
    let cfg = Config { data_dir: dir.path().to_path_buf(), dispatch, ..defaults };
    let clock = Clock::tokio();
    let backends = herald_backends::open(&cfg.storage, &cfg.queue, dir.path(), herald_backends::Role::Owner, clock.clone()).await.unwrap();
    let plugins = Arc::new(PluginHost::new(HostConfig::default(), HashMap::new()).unwrap());
    let wasm = plugin_dir().join("webhook.wasm");
    plugins.load_file(&wasm).unwrap_or_else(|e| panic!("{e} (build the plugins: make plugins)"));
    let sealer = Arc::new(herald_backends::Sealer::load(None, dir.path()).unwrap());
    let c = backends.config.clone();
    c.upsert_tenant(&Tenant { id: TENANT.into(), name: "Acme".into(), currency: "CNY".into() }).await.unwrap();
    let hook = serde_json::json!({"url": "https://hooks.example.com/in"});
    c.upsert_account(&Account { tenant: TENANT.into(), name: "hook".into(), plugin: "webhook".into(), config: hook, rate_per_sec: None })
        .await
        .unwrap();
    if price > 0 {
        c.set_price(TENANT, &Price { channel: "webhook".into(), unit_minor: price, currency: "CNY".into() }).await.unwrap();
    }
    let deps = Deps { backends, plugins, sealer, clock };
    let services = Services::new(deps.clone(), LimitsSource::Fixed(cfg.limits.clone()), "https://herald.example.com".into());
    let transport = Arc::new(FakeTransport::default());
    let dispatch = Dispatch::new(&cfg, deps, services.clone(), transport.clone(), Metrics::new()).unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(Arc::new(dispatch).run(shutdown.clone()));
    World { services, transport, shutdown, _dir: dir }
}

fn message(id: &str, to: &[&str]) -> Submission {
    Submission {
        id: id.into(),
        tenant: TENANT.into(),
        channel: "webhook".into(),
        account: None,
        body: Body::Content(Content { subject: None, text: Some("hello {{ name }}".into()), html: None }),
        variables: Default::default(),
        recipients: to.iter().map(|t| RecipientSpec { to: t.to_string(), variables: Default::default() }).collect(),
        metadata: Default::default(),
        send_at: None,
        gate: Gate::Prepaid,
    }
}

/// Wait (in paused time) until `done`, at most `within`.
async fn eventually(within: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let until = tokio::time::Instant::now() + within;
    while !done().await {
        assert!(tokio::time::Instant::now() < until, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn statuses(w: &World, id: &str) -> Vec<DeliveryStatus> {
    let store = &w.services.deps.backends.store;
    store.message(TENANT, id).await.unwrap().map(|m| m.deliveries.iter().map(|d| d.status).collect()).unwrap_or_default()
}

async fn set_billing(w: &World, prepaid: bool, low_balance_minor: i64) {
    let repo = Repo::new(w.services.deps.backends.config.as_ref(), TENANT);
    let settings = BillingSettings { prepaid, low_balance_minor, policy: "refuse".into() };
    repo.put(BILLING, BILLING_SETTINGS, &settings).await.unwrap();
}

async fn top_up(w: &World, amount_minor: i64) {
    let tenant = w.services.deps.backends.config.tenant(TENANT).await.unwrap().unwrap();
    w.services.billing.top_up(&tenant, amount_minor, "test").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_accepted_message_is_sent_and_each_delivery_billed_once() {
    let w = world(5).await;
    w.services.intake.submit(message("m1", &["a", "b", "c"])).await.unwrap();
    eventually(Duration::from_secs(30), "three deliveries sent", async || statuses(&w, "m1").await == vec![DeliveryStatus::Sent; 3]).await;
    assert_eq!(w.services.deps.backends.store.balance(TENANT).await.unwrap(), -15, "3 × 5 debited");
    // The same message accepted again (a replay) sends and bills nothing more.
    w.services.intake.submit(message("m1", &["a", "b", "c"])).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(w.transport.seen("hello"), w.transport.bodies.lock().unwrap().len());
    assert_eq!(w.services.deps.backends.store.balance(TENANT).await.unwrap(), -15);
}

#[tokio::test(start_paused = true)]
async fn a_prepaid_tenant_without_balance_is_refused_a_paid_send_by_intake() {
    let w = world(5).await;
    set_billing(&w, true, 0).await;
    let refused = w.services.intake.submit(message("m1", &["a"])).await;
    assert!(matches!(refused, Err(IntakeError::Billing(BillingError::InsufficientBalance { need: 5, balance: 0, .. }))), "{refused:?}");
    // A push split into several messages is gated on its total, before any is written.
    top_up(&w, 15).await;
    let parts = vec![message("p1", &["a", "b"]), message("p2", &["c", "d"])];
    let refused = w.services.intake.submit_all(parts).await;
    assert!(matches!(refused, Err(IntakeError::Billing(BillingError::InsufficientBalance { need: 20, balance: 15, .. }))), "{refused:?}");
    assert!(statuses(&w, "p1").await.is_empty(), "nothing written");
    // Herald's own alerts pass the gate.
    let alert = Submission { gate: Gate::Exempt, ..message("alert", &["a"]) };
    w.services.intake.submit(alert).await.unwrap();
    // Enough balance: accepted.
    w.services.intake.submit(message("m2", &["a", "b", "c"])).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_low_balance_alert_goes_out_once_per_crossing() {
    let w = world(5).await;
    set_billing(&w, false, 10).await;
    top_up(&w, 12).await;
    // No e-mail account here: the alert is due but has nowhere to go, so
    // what is checked is the claim that makes it once per crossing.
    w.services.intake.submit(message("m1", &["a"])).await.unwrap();
    eventually(Duration::from_secs(30), "sent", async || statuses(&w, "m1").await == vec![DeliveryStatus::Sent]).await;
    let c = w.services.deps.backends.config.clone();
    eventually(Duration::from_secs(10), "below the threshold: claimed", async || c.doc(TENANT, "alert", "low_balance").await.unwrap().is_some())
        .await;
    top_up(&w, 100).await;
    assert!(c.doc(TENANT, "alert", "low_balance").await.unwrap().is_none(), "a top-up back above the threshold clears it");
    // Spent below again: the next crossing is claimed (alerted) again.
    let tenant = c.tenant(TENANT).await.unwrap().unwrap();
    let refused = w.services.billing.top_up(&tenant, 0, "").await;
    assert!(matches!(refused, Err(BillingError::NonPositiveTopUp)), "{refused:?}");
    let to: Vec<String> = (0..20).map(|i| format!("r{i}")).collect();
    w.services.intake.submit(message("m2", &to.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap();
    eventually(Duration::from_secs(30), "below again: claimed again", async || c.doc(TENANT, "alert", "low_balance").await.unwrap().is_some()).await;
}

#[tokio::test(start_paused = true)]
async fn a_paid_send_the_provider_reports_failed_is_refunded_once() {
    let w = world(5).await;
    w.services.intake.submit(message("m1", &["a", "b"])).await.unwrap();
    eventually(Duration::from_secs(30), "sent", async || statuses(&w, "m1").await == vec![DeliveryStatus::Sent; 2]).await;
    assert_eq!(w.services.deps.backends.store.balance(TENANT).await.unwrap(), -10);
    let store = &w.services.deps.backends.store;
    let failed = store.message(TENANT, "m1").await.unwrap().unwrap().deliveries[0].id.clone();
    let receipt =
        Receipt { delivery_id: Some(failed.clone()), provider_id: None, status: ReceiptStatus::Failed, detail: Some("undeliverable".into()) };
    let applied = w.services.apply_receipts(TENANT, std::slice::from_ref(&receipt), &[]).await.unwrap();
    assert_eq!(applied.matched, 1);
    assert_eq!(store.balance(TENANT).await.unwrap(), -5, "the failed send's debit refunded");
    // The provider reports it again: no second refund.
    w.services.apply_receipts(TENANT, &[receipt], &[]).await.unwrap();
    assert_eq!(store.balance(TENANT).await.unwrap(), -5, "refunded once");
    let view = store.message(TENANT, "m1").await.unwrap().unwrap();
    let d = view.deliveries.iter().find(|d| d.id == failed).unwrap();
    assert_eq!((d.status, d.cost_minor), (DeliveryStatus::Failed, 0));
}

fn template() -> TieredTemplate {
    TieredTemplate {
        id: "t1".into(),
        number: "T000001".into(),
        title: "down".into(),
        editor: Editor::Text,
        subject: None,
        body: "{{ level }}: the service is down".into(),
        variables: vec![],
        provider: Default::default(),
        created_at: 0,
        updated_at: 0,
    }
}

fn rule(level: &str, to: &str, escalate: Option<Escalate>) -> Rule {
    let list = vec![ListEntry { to: to.into(), name: None, channel: None, variables: Default::default() }];
    Rule {
        level: level.into(),
        channels: vec![ChannelRef { channel: "webhook".into(), account: "hook".into() }],
        recipients: Targets { list, ..Default::default() },
        escalate,
        repeat: 0,
    }
}

/// Action `a1`: `oncall-1` first, `oncall-2` ten minutes later unless acknowledged.
async fn escalating_action(w: &World, level: &str) {
    let repo = Repo::new(w.services.deps.backends.config.as_ref(), TENANT);
    repo.put(TEMPLATE, "t1", &template()).await.unwrap();
    let ten_minutes = Escalate { after_secs: 600, condition: Condition::NotAcknowledged };
    let action = Action {
        id: "a1".into(),
        number: "A000001".into(),
        title: "service down".into(),
        templates: vec!["t1".into()],
        rules: vec![rule(level, "oncall-1", Some(ten_minutes)), rule(level, "oncall-2", None)],
        enabled: true,
        ack_scope: Default::default(),
        created_at: 0,
        updated_at: 0,
    };
    repo.put(ACTION, "a1", &action).await.unwrap();
}

fn trigger(level: &str) -> Trigger {
    Trigger { level: level.into(), recipients: Default::default(), variables: Default::default(), dedup_key: None }
}

#[tokio::test(start_paused = true)]
async fn an_unacknowledged_incident_escalates_after_ten_minutes() {
    let w = world(0).await;
    escalating_action(&w, "urgent").await;
    let (incident, _) = w.services.incidents.trigger(TENANT, "a1", trigger("urgent"), None).await.unwrap();
    eventually(Duration::from_secs(30), "the first step", async || w.transport.seen("oncall-1") == 1).await;
    tokio::time::sleep(Duration::from_secs(590)).await;
    assert_eq!(w.transport.seen("oncall-2"), 0, "not before ten minutes");
    eventually(Duration::from_secs(30), "the second step after ten minutes", async || w.transport.seen("oncall-2") == 1).await;
    let inc = w.services.incidents.incident(TENANT, &incident).await.unwrap().unwrap();
    assert_eq!(inc.fired, vec![0, 1]);
}

#[tokio::test(start_paused = true)]
async fn an_acknowledged_incident_does_not_escalate() {
    let w = world(0).await;
    escalating_action(&w, "urgent").await;
    let (incident, _) = w.services.incidents.trigger(TENANT, "a1", trigger("urgent"), None).await.unwrap();
    eventually(Duration::from_secs(30), "the first step", async || w.transport.seen("oncall-1") == 1).await;
    w.services.incidents.ack(TENANT, &incident, None, "test").await.unwrap();
    tokio::time::sleep(Duration::from_secs(15 * 60)).await;
    assert_eq!(w.transport.seen("oncall-2"), 0, "acknowledged: nobody else is woken");
    let inc = w.services.incidents.incident(TENANT, &incident).await.unwrap().unwrap();
    assert_eq!(inc.state, "acknowledged");
    assert!(inc.timeline.iter().any(|e| e.kind == "stopped"), "{:?}", inc.timeline);
}

#[tokio::test(start_paused = true)]
async fn quiet_hours_hold_a_normal_incident_until_they_end() {
    let w = world(0).await;
    escalating_action(&w, "normal").await;
    // Quiet from an hour ago until two hours from now (UTC).
    let now = chrono::DateTime::from_timestamp_millis(w.services.deps.clock.now_ms()).unwrap();
    let hhmm = |t: chrono::DateTime<chrono::Utc>| t.format("%H:%M").to_string();
    let quiet = QuietHours {
        start: hhmm(now - chrono::Duration::hours(1)),
        end: hhmm(now + chrono::Duration::hours(2)),
        time_zone: "UTC".into(),
        levels_exempt: vec!["urgent".into()],
    };
    Repo::new(w.services.deps.backends.config.as_ref(), TENANT).put("settings", "quiet_hours", &quiet).await.unwrap();
    let (incident, _) = w.services.incidents.trigger(TENANT, "a1", trigger("normal"), None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(w.transport.seen("oncall-1"), 0, "held during quiet hours");
    let inc = w.services.incidents.incident(TENANT, &incident).await.unwrap().unwrap();
    assert!(inc.timeline.iter().any(|e| e.kind == "deferred"), "{:?}", inc.timeline);
    eventually(Duration::from_secs(3 * 3600), "sent when quiet hours end", async || w.transport.seen("oncall-1") == 1).await;
}

#[tokio::test(start_paused = true)]
async fn a_prepaid_tenant_without_balance_is_refused_a_paid_tiered_step() {
    let w = world(5).await;
    set_billing(&w, true, 0).await;
    escalating_action(&w, "urgent").await;
    let (incident, _) = w.services.incidents.trigger(TENANT, "a1", trigger("urgent"), None).await.unwrap();
    let svc = w.services.clone();
    let id = incident.clone();
    eventually(Duration::from_secs(30), "the step ran", async || {
        svc.incidents.incident(TENANT, &id).await.unwrap().is_some_and(|i| i.timeline.iter().any(|e| e.kind == "refused"))
    })
    .await;
    assert_eq!(w.transport.seen("oncall-1"), 0, "nothing sent");
}
