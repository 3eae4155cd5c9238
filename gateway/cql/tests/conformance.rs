//! The conformance suites and CQL-specific tests, against the server named by
//! `HERALD_TEST_CQL` (`host:port[,host:port...]`, e.g. `127.0.0.1:9042`).
//! Each test gets a fresh keyspace, dropped at the end (also on failure).
//! Without `HERALD_TEST_CQL` the tests that need a server print
//! `skipping: HERALD_TEST_CQL not set` and pass.
//!
//! Every store logs in (`HERALD_TEST_CQL_USERNAME` / `HERALD_TEST_CQL_PASSWORD`,
//! default `cassandra`/`cassandra`: deploy/services/cassandra.sh runs
//! `PasswordAuthenticator`; a server without authentication ignores the
//! login). With `HERALD_TEST_TLS_DIR` (the test CA made by
//! deploy/services/lib.sh) the security tests also connect over TLS and check
//! that refused logins and untrusted certificates name the setting.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::FutureExt;
use herald_core::StoreError;
use herald_core::model::{DeliveryStatus, DeliveryUpdate, IdempotencyRecord, LedgerEntry, LedgerKind, Message};
use herald_core::now_ms;
use herald_core::seams::{ConfigStore, Store};
use herald_cql::{CqlStore, Credentials, Options, PagingState, Tls};

const REPLICATION: &str = "{'class': 'SimpleStrategy', 'replication_factor': 1}";

fn server() -> Option<Vec<String>> {
    match std::env::var("HERALD_TEST_CQL") {
        Ok(s) if !s.trim().is_empty() => Some(s.split(',').map(|n| n.trim().to_string()).collect()),
        _ => {
            println!("skipping: HERALD_TEST_CQL not set");
            None
        }
    }
}

fn credentials() -> Credentials {
    let var = |k: &str, d: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| d.to_string());
    Credentials { username: var("HERALD_TEST_CQL_USERNAME", "cassandra"), password: var("HERALD_TEST_CQL_PASSWORD", "cassandra") }
}

/// `herald_cql::open`, logged in.
async fn open(nodes: &[String], keyspace: &str, replication: &str) -> Result<CqlStore, StoreError> {
    herald_cql::open_with(nodes, keyspace, replication, Options { credentials: Some(credentials()), ..Options::default() }).await
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Run `body` against a store in a fresh keyspace, then drop the keyspace.
async fn with_store(name: &str, body: impl AsyncFnOnce(&CqlStore, &[String])) {
    let Some(nodes) = server() else { return };
    let ks = format!("herald_t_{}", uuid::Uuid::new_v4().simple());
    let t0 = Instant::now();
    let store = open(&nodes, &ks, REPLICATION).await.expect("open");
    let opened = t0.elapsed();
    let result = AssertUnwindSafe(body(&store, &nodes)).catch_unwind().await;
    println!("{name}: open {opened:?}, body {:?}", t0.elapsed() - opened);
    if let Err(e) = store.session().query_unpaged(format!("DROP KEYSPACE IF EXISTS {ks}"), ()).await {
        eprintln!("{name}: dropping {ks} failed: {e}");
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn update(m: &Message, i: usize, status: DeliveryStatus, attempts: u32, at: i64) -> DeliveryUpdate {
    DeliveryUpdate {
        delivery_id: m.delivery_id(i),
        message_id: m.id.clone(),
        tenant: m.tenant.clone(),
        status,
        attempts,
        detail: Some(format!("{status:?}")),
        provider_id: (status == DeliveryStatus::Sent).then(|| format!("p-{}", m.delivery_id(i))),
        at,
    }
}

fn entry(tenant: &str, id: &str, kind: LedgerKind, delivery: Option<String>, amount: i64, at: i64) -> LedgerEntry {
    LedgerEntry {
        id: id.into(),
        tenant: tenant.into(),
        kind,
        channel: "sms".into(),
        account: "acc".into(),
        delivery_id: delivery,
        units: 1,
        amount_minor: amount,
        currency: "CNY".into(),
        at,
    }
}

// 2024-03-01T12:00:00Z: fixed, so day and month partitions are known.
const T: i64 = 1_709_294_400_000;
const DAY_MS: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_suite() {
    with_store("store_suite", async |s, _| herald_conformance::store_suite(s).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_suite() {
    with_store("config_suite", async |s, _| herald_conformance::config_suite(s).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_suite() {
    with_store("schedules_suite", async |s, _| herald_conformance::schedules_suite(s).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent_on_reopen() {
    with_store("migrations", async |s, nodes| {
        let ks = s.keyspace().to_string();
        assert_eq!(s.applied_migrations().await.unwrap(), vec![1, 2, 3, 4, 5, 6, 7]);
        let t = herald_core::model::Tenant { id: unique("mt"), name: "M".into(), currency: "CNY".into() };
        s.upsert_tenant(&t).await.unwrap();

        // Two processes opening at once: both succeed, nothing is applied twice.
        let (a, b) = tokio::join!(open(nodes, &ks, REPLICATION), open(nodes, &ks, REPLICATION));
        let (a, b) = (a.expect("reopen a"), b.expect("reopen b"));
        assert_eq!(b.applied_migrations().await.unwrap(), vec![1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(a.tenant(&t.id).await.unwrap(), Some(t.clone()), "data survives a reopen");

        // A crash after running a migration's DDL but before recording it: the
        // next open runs it again (IF NOT EXISTS) and records it.
        s.session().query_unpaged(format!("DELETE FROM {ks}.schema_migrations WHERE scope = 'herald' AND version = 2"), ()).await.unwrap();
        assert_eq!(s.applied_migrations().await.unwrap(), vec![1, 3, 4, 5, 6, 7]);
        let c = open(nodes, &ks, REPLICATION).await.expect("reopen after a lost version row");
        assert_eq!(c.applied_migrations().await.unwrap(), vec![1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(c.tenant(&t.id).await.unwrap(), Some(t), "re-running DDL keeps the data");
        // The same for a migration that adds a column (no IF NOT EXISTS there).
        let m = herald_conformance::message(&unique("mt"), 3);
        c.record_message(&m).await.unwrap();
        s.session().query_unpaged(format!("DELETE FROM {ks}.schema_migrations WHERE scope = 'herald' AND version = 6"), ()).await.unwrap();
        let d = open(nodes, &ks, REPLICATION).await.expect("reopen after a lost ALTER version row");
        assert_eq!(d.applied_migrations().await.unwrap(), vec![1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(d.message(&m.tenant, &m.id).await.unwrap().expect("message").deliveries.len(), 3);

        let lock = s.session().query_unpaged(format!("SELECT owner FROM {ks}.schema_lock WHERE name = 'migrate'"), ()).await.unwrap();
        assert_eq!(lock.into_rows_result().unwrap().rows_num(), 0, "the migration lease is released");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_by_day_pages() {
    with_store("paging", async |s, _| {
        let tenant = unique("pt");
        let mut day_messages = Vec::new();
        for i in 0..12 {
            let mut m = herald_conformance::message(&tenant, i + 1);
            m.accepted_at = T + i as i64 * 60_000;
            s.record_message(&m).await.unwrap();
            day_messages.push(m);
        }
        let mut other_day = herald_conformance::message(&tenant, 3);
        other_day.accepted_at = T + DAY_MS;
        let mut other_tenant = herald_conformance::message(&unique("pt"), 4);
        other_tenant.accepted_at = T;
        for m in [&other_day, &other_tenant] {
            s.record_message(m).await.unwrap();
        }
        let day = herald_cql::day_of(T).unwrap();

        let mut pages = Vec::new();
        let mut state = PagingState::start();
        loop {
            let page = s.messages_by_day(&tenant, day, 5, state).await.unwrap();
            pages.push(page.entries);
            match page.next {
                // A console passes the cursor through a URL: round-trip the bytes.
                Some(next) => state = PagingState::new_from_raw_bytes(next.as_bytes_slice().expect("bytes").to_vec()),
                None => break,
            }
            assert!(pages.len() < 10, "paging does not end");
        }
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 12, "pages {sizes:?}");
        assert!(sizes.iter().all(|n| *n <= 5), "pages {sizes:?}");
        let all: Vec<_> = pages.into_iter().flatten().collect();
        let ids: Vec<&str> = all.iter().map(|e| e.message_id.as_str()).collect();
        let newest_first: Vec<&str> = day_messages.iter().rev().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, newest_first, "newest first, no entry twice");
        let e = &all[11];
        assert_eq!((e.at, e.recipients, e.channel.as_str(), e.account.as_str()), (T, 1, "webhook", "hook"));
        assert_eq!(all[0].recipients, 12);

        let next_day = s.messages_by_day(&tenant, herald_cql::day_of(T + DAY_MS).unwrap(), 10, PagingState::start()).await.unwrap();
        assert_eq!((next_day.entries.len(), next_day.next.is_none()), (1, true));
        let empty = s.messages_by_day(&unique("nobody"), day, 10, PagingState::start()).await.unwrap();
        assert!(empty.entries.is_empty() && empty.next.is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_replays_are_counted_once() {
    with_store("ledger", async |s, _| {
        let tenant = unique("lt");
        let m = herald_conformance::message(&tenant, 2);
        s.record_message(&m).await.unwrap();
        let entries = vec![
            entry(&tenant, &format!("{}:debit", m.delivery_id(0)), LedgerKind::Debit, Some(m.delivery_id(0)), 5, T),
            entry(&tenant, &format!("{}:debit", m.delivery_id(1)), LedgerKind::Debit, Some(m.delivery_id(1)), 7, T + 1),
            entry(&tenant, "topup-1", LedgerKind::TopUp, None, 100, T + 2),
        ];
        // The same record, five times at once (racing claims), then once more.
        let replays = (0..5).map(|_| s.record(vec![], entries.clone()));
        for r in futures::future::join_all(replays).await {
            r.expect("record");
        }
        s.record(vec![], entries.clone()).await.unwrap();
        assert_eq!(s.balance(&tenant).await.unwrap(), 88);
        // A redelivered item re-creates the entries later (same ids, new time, next month).
        let late: Vec<_> = entries.iter().map(|e| LedgerEntry { at: e.at + 40 * DAY_MS, ..e.clone() }).collect();
        s.record(vec![], late).await.unwrap();
        assert_eq!(s.balance(&tenant).await.unwrap(), 88, "replayed with a new time: still once");
        assert_eq!(s.ledger_sum(&tenant).await.unwrap(), 88, "balance agrees with the entries");
        let listed = s.ledger(&tenant, 10).await.unwrap();
        assert_eq!(listed.len(), 3, "one row per entry id: {listed:?}");
        assert!(listed.iter().all(|e| e.at < T + 10), "the first claim's time is kept");
        assert_eq!(listed[0].id, "topup-1", "newest first");
        assert_eq!(listed[2], entries[0]);

        // A refund, in a later month: cost and balance move, ledger spans months.
        let refund = entry(&tenant, &format!("{}:credit", m.delivery_id(0)), LedgerKind::Credit, Some(m.delivery_id(0)), 2, T + 35 * DAY_MS);
        s.record(vec![], vec![refund.clone()]).await.unwrap();
        s.record(vec![], vec![refund.clone()]).await.unwrap();
        assert_eq!(s.balance(&tenant).await.unwrap(), 90);
        assert_eq!(s.ledger_sum(&tenant).await.unwrap(), 90);
        let view = s.message(&tenant, &m.id).await.unwrap().unwrap();
        assert_eq!((view.deliveries[0].cost_minor, view.deliveries[1].cost_minor), (3, 7));
        let recent = s.ledger(&tenant, 2).await.unwrap();
        assert_eq!(recent.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [refund.id.as_str(), "topup-1"], "limit across months");
        assert_eq!(s.ledger(&tenant, 0).await.unwrap(), vec![]);

        assert!(matches!(s.record(vec![], vec![entry(&tenant, "neg", LedgerKind::Debit, None, -1, T)]).await, Err(StoreError::Backend(_))));
        assert_eq!(s.balance(&unique("none")).await.unwrap(), 0);
    })
    .await;
}

/// A `record` cut off at any point (the process died mid-call) and then
/// replayed, by this process and by another one at the same time, counts
/// every entry exactly once: claims and balance move together or not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_cut_off_anywhere_and_replayed_by_two_processes_counts_once() {
    with_store("ledger_cut", async |s, nodes| {
        let other = open(nodes, s.keyspace(), REPLICATION).await.expect("second process");
        for (round, cut_ms) in [0u64, 1, 2, 4, 8, 16, 32, 64].into_iter().enumerate() {
            let tenant = unique(&format!("cut{round}"));
            // 120 messages of one delivery, and one message of 300 (one
            // shard, several rounds).
            let entries: Vec<LedgerEntry> = (0..120)
                .map(|i| entry(&tenant, &format!("m{i}.0:debit"), LedgerKind::Debit, Some(format!("m{i}.0")), i + 1, T + i))
                .chain((0..300).map(|i| entry(&tenant, &format!("big.{i}:debit"), LedgerKind::Debit, Some(format!("big.{i}")), 1, T + i)))
                .collect();
            let want: i64 = -(1..=120).sum::<i64>() - 300;
            // The "crash": the call is dropped after `cut_ms`, wherever it is.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(cut_ms), s.record(vec![], entries.clone())).await;
            let mut reversed = entries.clone();
            reversed.reverse();
            let (a, b) = futures::join!(s.record(vec![], entries.clone()), other.record(vec![], reversed),);
            a.expect("replay here");
            b.expect("replay there");
            assert_eq!(s.balance(&tenant).await.unwrap(), want, "cut after {cut_ms} ms");
            assert_eq!(other.balance(&tenant).await.unwrap(), want);
            assert_eq!(s.ledger_sum(&tenant).await.unwrap(), want, "balance agrees with the entries");
            assert_eq!(s.ledger(&tenant, 1000).await.unwrap().len(), 420, "one row per entry");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_does_not_depend_on_arrival_order() {
    with_store("status_order", async |s, _| {
        let tenant = unique("so");
        let m = herald_conformance::message(&tenant, 2);
        s.record_message(&m).await.unwrap();
        let t = m.accepted_at;
        // Receipts land before the recorder's "sent" (each in its own write).
        s.record(vec![update(&m, 0, DeliveryStatus::Read, 1, t + 30)], vec![]).await.unwrap();
        s.record(vec![update(&m, 0, DeliveryStatus::Delivered, 1, t + 20)], vec![]).await.unwrap();
        s.record(vec![update(&m, 0, DeliveryStatus::Sent, 1, t + 10)], vec![]).await.unwrap();
        // Delivery 1: retried twice, then sent; the late retry report is ignored.
        s.record(vec![update(&m, 1, DeliveryStatus::Retrying, 1, t + 10)], vec![]).await.unwrap();
        s.record(vec![update(&m, 1, DeliveryStatus::Sent, 2, t + 30)], vec![]).await.unwrap();
        s.record(vec![update(&m, 1, DeliveryStatus::Retrying, 1, t + 20)], vec![]).await.unwrap();

        let v = s.message(&tenant, &m.id).await.unwrap().unwrap();
        let d0 = &v.deliveries[0];
        assert_eq!((d0.status, d0.attempts, d0.updated_at), (DeliveryStatus::Read, 1, t + 30));
        assert_eq!(d0.provider_id.as_deref(), Some(format!("p-{}", m.delivery_id(0)).as_str()), "provider id kept");
        let d1 = &v.deliveries[1];
        assert_eq!((d1.status, d1.attempts, d1.detail.as_deref()), (DeliveryStatus::Sent, 2, Some("Sent")));
        assert!(!s.retry_due(&tenant, &m.delivery_id(1), 2).await.unwrap());
        let (mid, rec) = s.delivery_by_provider_id(&tenant, &format!("p-{}", m.delivery_id(1))).await.unwrap().unwrap();
        assert_eq!((mid, rec), (m.id.clone(), d1.clone()));

        // A replayed message keeps the statuses (no reset to queued).
        s.record_message(&m).await.unwrap();
        assert_eq!(s.message(&tenant, &m.id).await.unwrap().unwrap(), v);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_deliveries_and_edge_shapes() {
    with_store("edges", async |s, _| {
        let tenant = unique("ed");
        let m = herald_conformance::message(&tenant, 2);
        s.record_message(&m).await.unwrap();
        let before = s.message(&tenant, &m.id).await.unwrap().unwrap();
        let mut ghost = update(&m, 9, DeliveryStatus::Sent, 1, now_ms());
        let mut foreign = update(&m, 0, DeliveryStatus::Failed, 1, now_ms());
        foreign.message_id = "someone-else".into();
        s.record(vec![ghost.clone(), foreign], vec![]).await.expect("updates of unknown deliveries are no-ops");
        assert_eq!(s.message(&tenant, &m.id).await.unwrap().unwrap(), before);
        assert!(s.delivery_by_provider_id(&tenant, ghost.provider_id.as_deref().unwrap()).await.unwrap().is_none());
        ghost.delivery_id = "no-dot".into();
        s.record(vec![ghost], vec![]).await.unwrap();
        assert!(!s.retry_due(&tenant, "no-dot", 2).await.unwrap());
        assert!(s.message(&tenant, "missing").await.unwrap().is_none());
        assert!(s.queued_deliveries(&tenant, "missing").await.unwrap().is_empty());

        // No recipients: a header-only partition.
        let mut empty = herald_conformance::message(&tenant, 0);
        empty.template = Some("welcome".into());
        empty.send_at = Some(empty.accepted_at + 1_000);
        s.record_message(&empty).await.unwrap();
        let v = s.message(&tenant, &empty.id).await.unwrap().unwrap();
        assert_eq!((v.deliveries.len(), v.template.as_deref(), v.send_at), (0, Some("welcome"), empty.send_at));

        // More recipients than one batch holds.
        let big = herald_conformance::message(&tenant, herald_cql::BATCH_ROWS * 2 + 7);
        s.record_message(&big).await.unwrap();
        s.record_message(&big).await.unwrap();
        let queued = s.queued_deliveries(&tenant, &big.id).await.unwrap();
        assert_eq!(queued.len(), big.recipients.len());
        assert_eq!(queued[big.recipients.len() - 1], big.delivery_id(big.recipients.len() - 1), "ordered by index, not text");
        let v = s.message(&tenant, &big.id).await.unwrap().unwrap();
        assert!(v.deliveries.iter().enumerate().all(|(i, d)| d.recipient == format!("r{i}")));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_carry_a_ttl() {
    with_store("idempotency_ttl", async |s, _| {
        let tenant = unique("it");
        let now = now_ms();
        let rec = IdempotencyRecord {
            tenant: tenant.clone(),
            key: "k".into(),
            request_hash: "h".into(),
            message_id: "m".into(),
            response: "{}".into(),
            expires_at: now + 60_000,
        };
        s.put_idempotency(rec.clone()).await.unwrap();
        let ks = s.keyspace();
        let ttl = s
            .session()
            .query_unpaged(format!("SELECT TTL(response) FROM {ks}.idempotency WHERE tenant = ? AND idem_key = ?"), (&tenant, "k"))
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .single_row::<(Option<i32>,)>()
            .unwrap()
            .0
            .expect("a TTL");
        assert!((55..=60).contains(&ttl), "ttl {ttl}");
        // Overwrite (the trait's semantics) with an already expired record: gone for readers.
        s.put_idempotency(IdempotencyRecord { expires_at: now - 1, ..rec.clone() }).await.unwrap();
        assert_eq!(s.idempotency(&tenant, "k", now).await.unwrap(), None);
    })
    .await;
}

/// Needs no server: nothing listens on port 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_unavailable() {
    let t0 = Instant::now();
    let err = match open(&["127.0.0.1:1".to_string()], "herald_unreachable", REPLICATION).await {
        Ok(_) => panic!("opened a store on a closed port"),
        Err(e) => e,
    };
    println!("unreachable: {err} after {:?}", t0.elapsed());
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = match open(&[], "herald_unreachable", REPLICATION).await {
        Ok(_) => panic!("opened a store without contact points"),
        Err(e) => e,
    };
    assert!(matches!(err, StoreError::Backend(_)), "a configuration error is not 'try later': {err:?}");
}

/// A TCP relay to the CQL server that can be cut (all connections closed, the
/// port refusing) and restored on the same port. The driver addresses a node
/// by its `rpc_address` and the port it first connected on, so with a
/// single-node server every connection goes through the relay.
struct Relay {
    addr: std::net::SocketAddr,
    target: String,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: &str, addr: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind relay");
        let relay = Relay { addr: listener.local_addr().unwrap(), target: target.to_string(), tasks: Default::default() };
        let (target, tasks) = (relay.target.clone(), relay.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(conn);
            }
        });
        relay.tasks.lock().unwrap().push(accept);
        relay
    }

    /// Close the listener and every relayed connection.
    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_gone_after_open_is_unavailable() {
    with_store("server_gone", async |direct, nodes| {
        let relay = Relay::start(&nodes[0], "127.0.0.1:0".parse().unwrap()).await;
        let s = open(&[relay.addr.to_string()], direct.keyspace(), REPLICATION).await.expect("open through the relay");
        let tenant = unique("sg");
        let m = herald_conformance::message(&tenant, 2);
        s.record_message(&m).await.unwrap();

        relay.cut();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let t0 = Instant::now();
        let errs = [
            s.record_message(&m).await.err(),
            s.message(&tenant, &m.id).await.err(),
            s.record(vec![update(&m, 0, DeliveryStatus::Sent, 1, now_ms())], vec![]).await.err(),
            s.balance(&tenant).await.err(),
            s.price(&tenant, "sms").await.err(),
        ];
        println!("server_gone: 5 failed calls in {:?}: {:?}", t0.elapsed(), errs[0]);
        for e in errs {
            assert!(matches!(e, Some(StoreError::Unavailable(_))), "{e:?}");
        }

        // Back on the same port: the driver reconnects and the store works again.
        let _relay = Relay::start(&nodes[0], relay.addr).await;
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        let view = loop {
            match s.message(&tenant, &m.id).await {
                Ok(v) => break v,
                Err(e) if Instant::now() < deadline => {
                    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no recovery: {e}"),
            }
        };
        println!("server_gone: recovered after {:?}", t0.elapsed());
        assert_eq!(view.map(|v| v.deliveries.len()), Some(2));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_open_migrates_once() {
    let Some(nodes) = server() else { return };
    let ks = format!("herald_t_{}", uuid::Uuid::new_v4().simple());
    let t0 = Instant::now();
    let (a, b) = tokio::join!(open(&nodes, &ks, REPLICATION), open(&nodes, &ks, REPLICATION));
    println!("concurrent_first_open: {:?}", t0.elapsed());
    let result = AssertUnwindSafe(async {
        let (a, b) = (a.expect("open a"), b.expect("open b"));
        assert_eq!(a.applied_migrations().await.unwrap(), vec![1, 2, 3, 4, 5, 6, 7]);
        let rows = a
            .session()
            .query_unpaged(format!("SELECT version FROM {ks}.schema_migrations WHERE scope = 'herald'"), ())
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .rows_num();
        assert_eq!(rows, 7);
        herald_conformance::config_suite(&b).await;
    })
    .catch_unwind()
    .await;
    let cleanup = open(&nodes, &ks, REPLICATION).await.expect("reopen for cleanup");
    cleanup.session().query_unpaged(format!("DROP KEYSPACE IF EXISTS {ks}"), ()).await.expect("drop");
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

/// The test CA's directory (`HERALD_TEST_TLS_DIR`), with the server.
fn tls_dir() -> Option<(Vec<String>, std::path::PathBuf)> {
    let nodes = server()?;
    match std::env::var("HERALD_TEST_TLS_DIR") {
        Ok(d) if !d.is_empty() => Some((nodes, d.into())),
        _ => {
            println!("skipping: HERALD_TEST_TLS_DIR not set");
            None
        }
    }
}

fn tls(ca: std::path::PathBuf) -> Tls {
    Tls { ca_file: ca, cert_file: None, key_file: None, verify_hostname: true }
}

async fn open_err(nodes: &[String], o: Options) -> String {
    match herald_cql::open_with(nodes, "herald_refused", REPLICATION, o).await {
        Ok(_) => panic!("opened a store that should have been refused"),
        Err(e) => e.to_string(),
    }
}

/// Over client TLS and logged in, the store works, and the server sees this
/// connection encrypted and authenticated (`system_views.clients`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_a_login_the_store_works() {
    let Some((nodes, dir)) = tls_dir() else { return };
    let ks = format!("herald_t_{}", uuid::Uuid::new_v4().simple());
    let o = Options { credentials: Some(credentials()), tls: Some(tls(dir.join("ca.pem"))), ..Options::default() };
    let store = herald_cql::open_with(&nodes, &ks, REPLICATION, o).await.expect("open over TLS");
    let result = AssertUnwindSafe(async {
        let t = herald_core::model::Tenant { id: "tls".into(), name: "TLS".into(), currency: "CNY".into() };
        store.upsert_tenant(&t).await.unwrap();
        assert_eq!(store.tenant("tls").await.unwrap().map(|t| t.name), Some("TLS".into()));
        let rows =
            store.session().query_unpaged("SELECT ssl_enabled, username FROM system_views.clients", ()).await.unwrap().into_rows_result().unwrap();
        let clients: Vec<(Option<bool>, Option<String>)> = rows.rows::<(Option<bool>, Option<String>)>().unwrap().map(Result::unwrap).collect();
        assert!(!clients.is_empty());
        // Every connection of this session is TLS (others, of other tests, may not be).
        assert!(clients.iter().any(|(ssl, user)| *ssl == Some(true) && user.as_deref() == Some(credentials().username.as_str())), "{clients:?}");
    })
    .catch_unwind()
    .await;
    let _ = store.session().query_unpaged(format!("DROP KEYSPACE IF EXISTS {ks}"), ()).await;
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

/// A wrong password, no login, an untrusted certificate: each fails at open
/// with an error that names the setting and never shows the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_logins_and_untrusted_certificates_name_the_setting() {
    let Some((nodes, dir)) = tls_dir() else { return };
    let wrong = Credentials { username: credentials().username, password: "not-the-password-7f3a".into() };
    let e = open_err(&nodes, Options { credentials: Some(wrong.clone()), ..Options::default() }).await;
    println!("wrong password: {e}");
    assert!(e.contains("storage.cql.username / storage.cql.password: the server refused the credentials"), "{e}");
    assert!(!e.contains("not-the-password-7f3a"), "the password leaked: {e}");
    let e = open_err(&nodes, Options { credentials: Some(wrong), tls: Some(tls(dir.join("ca.pem"))), ..Options::default() }).await;
    assert!(e.contains("storage.cql.password") && !e.contains("not-the-password-7f3a"), "{e}");

    let e = open_err(&nodes, Options::default()).await;
    println!("no login: {e}");
    assert!(e.contains("storage.cql.username / storage.cql.password: the server requires a login"), "{e}");

    let e = open_err(&nodes, Options { credentials: Some(credentials()), tls: Some(tls(dir.join("other-ca.pem"))), ..Options::default() }).await;
    println!("untrusted certificate: {e}");
    assert!(e.contains("storage.cql.tls.ca_file: the server's certificate is not trusted"), "{e}");
}
