//! The Kafka queue passes the queue conformance suite against a real broker
//! (`HERALD_TEST_KAFKA=127.0.0.1:9092`; `make test` starts one).
//!
//! The same broker's SASL_SSL listener (`HERALD_TEST_KAFKA_SASL=127.0.0.1:9094`,
//! SCRAM-SHA-512, the certificate of the test CA in `HERALD_TEST_TLS_DIR`;
//! see deploy/services/kafka.sh) runs the suite again, and refused
//! credentials or an untrusted certificate stop `connect` with an error
//! naming the setting.

use herald_kafka::{KafkaConfig, KafkaQueue};

fn brokers() -> Option<String> {
    let b = std::env::var("HERALD_TEST_KAFKA").ok().filter(|b| !b.is_empty());
    if b.is_none() {
        println!("skipping: HERALD_TEST_KAFKA not set");
    }
    b
}

fn config(brokers: String) -> KafkaConfig {
    let id = uuid::Uuid::new_v4().simple().to_string();
    KafkaConfig {
        brokers,
        topic: format!("herald.test.{id}"),
        dead_topic: format!("herald.test.{id}.dead"),
        group: format!("herald-test-{id}"),
        partitions: 3,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_conformance() {
    let Some(b) = brokers() else { return };
    let q = KafkaQueue::connect(config(b)).await.expect("connect");
    herald_conformance::queue_suite(&q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_work_is_not_redelivered_to_the_next_consumer() {
    use herald_core::seams::{Enqueue, Queue};
    let Some(b) = brokers() else { return };
    let cfg = config(b);
    let m1 = herald_conformance::message("t1", 1);
    let m2 = herald_conformance::message("t1", 1);
    {
        let q = KafkaQueue::connect(cfg.clone()).await.unwrap();
        q.publish(vec![
            Enqueue { key: "t1".into(), not_before: 0, work: herald_core::model::Work::Message(m1.clone()) },
            Enqueue { key: "t1".into(), not_before: 0, work: herald_core::model::Work::Message(m2.clone()) },
        ])
        .await
        .unwrap();
        let mut got = Vec::new();
        for _ in 0..200 {
            got.extend(q.lease(10, 60_000, &[]).await.unwrap());
            if got.len() >= 2 {
                break;
            }
        }
        assert_eq!(got.len(), 2);
        // Only the first is done; the process "crashes" (the consumer is dropped).
        q.ack(vec![got[0].token.clone()]).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await; // auto-commit interval
    }
    let q = KafkaQueue::connect(cfg).await.unwrap();
    let mut again = Vec::new();
    for _ in 0..400 {
        again.extend(q.lease(10, 60_000, &[]).await.unwrap());
        if !again.is_empty() {
            break;
        }
    }
    let ids: Vec<String> = again
        .iter()
        .map(|l| match &l.work {
            herald_core::model::Work::Message(m) => m.id.clone(),
            _ => panic!(),
        })
        .collect();
    assert_eq!(ids, vec![m2.id], "only the unacknowledged record comes back");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_broker_is_unavailable_not_accepted() {
    use herald_core::seams::{Enqueue, Queue};
    // Port 1 on loopback: nothing listens.
    let cfg = KafkaConfig { brokers: "127.0.0.1:1".into(), produce_timeout_ms: 1_000, ..Default::default() };
    let q = KafkaQueue::connect(cfg).await.expect("starts without a broker");
    let err = q
        .publish(vec![Enqueue { key: "t".into(), not_before: 0, work: herald_core::model::Work::Message(herald_conformance::message("t", 1)) }])
        .await
        .unwrap_err();
    assert!(matches!(err, herald_core::StoreError::Unavailable(_)), "{err:?}");
}

/// A test double of the `Schedules` seam (the CQL store implements it for
/// real; its own suite runs against Cassandra): what the queue parks, in memory.
#[derive(Default)]
struct MemorySchedules {
    items: std::sync::Mutex<Vec<(String, herald_core::seams::Enqueue)>>,
}

#[async_trait::async_trait]
impl herald_core::seams::Schedules for MemorySchedules {
    async fn park(&self, items: Vec<herald_core::seams::Enqueue>) -> herald_core::seams::Result<()> {
        let mut v = self.items.lock().unwrap();
        for i in items {
            v.push((uuid::Uuid::new_v4().to_string(), i));
        }
        Ok(())
    }
    async fn lead(&self, _node: &str, _lease_ms: i64) -> herald_core::seams::Result<bool> {
        Ok(true)
    }
    async fn due(&self, now: i64, max: usize) -> herald_core::seams::Result<Vec<(String, herald_core::seams::Enqueue)>> {
        Ok(self.items.lock().unwrap().iter().filter(|(_, e)| e.not_before <= now).take(max).cloned().collect())
    }
    async fn release(&self, tokens: Vec<String>) -> herald_core::seams::Result<()> {
        self.items.lock().unwrap().retain(|(t, _)| !tokens.contains(t));
        Ok(())
    }
}

/// A record on the topic due later than `park_after_ms` (e.g. produced
/// directly by an enterprise system) is parked, its offset moves on, and the
/// mover puts it back on the topic when due; a publish that far ahead goes
/// straight to the schedule store.
#[tokio::test(flavor = "multi_thread")]
async fn far_records_are_parked_and_come_back_when_due() {
    use herald_core::seams::{Enqueue, Queue};
    let Some(b) = brokers() else { return };
    let cfg = KafkaConfig { park_after_ms: 1_000, ..config(b) };
    let (direct, published) = (herald_conformance::message("t1", 1), herald_conformance::message("t1", 1));
    let due = herald_core::now_ms() + 12_000;
    // Another producer (no schedule store) puts a far record on the topic.
    KafkaQueue::connect(cfg.clone())
        .await
        .unwrap()
        .publish(vec![Enqueue { key: "t1".into(), not_before: due, work: herald_core::model::Work::Message(direct.clone()) }])
        .await
        .unwrap();
    let parked = std::sync::Arc::new(MemorySchedules::default());
    let q = KafkaQueue::connect(cfg).await.unwrap().with_schedules(parked.clone());
    q.publish(vec![Enqueue { key: "t1".into(), not_before: due, work: herald_core::model::Work::Message(published.clone()) }]).await.unwrap();
    assert_eq!(parked.items.lock().unwrap().len(), 1, "published far ahead: parked, not produced");

    let mut leased = Vec::new();
    let mut lag_was_zero = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    while leased.len() < 2 && std::time::Instant::now() < deadline {
        leased.extend(q.lease(10, 60_000, &[]).await.unwrap());
        if herald_core::now_ms() < due - 500 && parked.items.lock().unwrap().len() == 2 {
            // Both wait in the store; the topic's offsets moved past the direct one.
            lag_was_zero |= q.depth().await.unwrap() == 0;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(lag_was_zero, "the parked record was acknowledged on the topic");
    assert!(herald_core::now_ms() >= due, "nothing came back before it was due");
    let mut ids: Vec<String> = leased
        .iter()
        .map(|l| match &l.work {
            herald_core::model::Work::Message(m) => m.id.clone(),
            w => panic!("{w:?}"),
        })
        .collect();
    ids.sort();
    let mut want = vec![direct.id, published.id];
    want.sort();
    assert_eq!(ids, want, "both came back through the topic when due");
    assert!(parked.items.lock().unwrap().is_empty(), "released after moving");
}

/// The SASL_SSL listener and the test CA's directory.
fn secured() -> Option<(String, std::path::PathBuf)> {
    let b = std::env::var("HERALD_TEST_KAFKA_SASL").ok().filter(|b| !b.is_empty());
    let dir = std::env::var("HERALD_TEST_TLS_DIR").ok().filter(|d| !d.is_empty());
    match (b, dir) {
        (Some(b), Some(d)) => Some((b, d.into())),
        _ => {
            println!("skipping: HERALD_TEST_KAFKA_SASL or HERALD_TEST_TLS_DIR not set");
            None
        }
    }
}

fn sasl_config(brokers: String, dir: &std::path::Path) -> KafkaConfig {
    let var = |k: &str, d: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| d.to_string());
    KafkaConfig {
        security_protocol: herald_kafka::SecurityProtocol::SaslSsl,
        sasl_mechanism: Some(herald_kafka::SaslMechanism::ScramSha512),
        sasl_username: Some(var("HERALD_TEST_KAFKA_SASL_USERNAME", "herald")),
        sasl_password: Some(herald_kafka::Secret::new(var("HERALD_TEST_KAFKA_SASL_PASSWORD", "herald-scram-secret"))),
        ssl_ca_location: Some(dir.join("ca.pem")),
        ..config(brokers)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_conformance_over_sasl_ssl() {
    let Some((b, dir)) = secured() else { return };
    let q = KafkaQueue::connect(sasl_config(b, &dir)).await.expect("connect over SASL_SSL");
    // Join the group first: the suite gives a scheduled item 1.5 s, and the
    // consumer's first TLS handshakes, SCRAM exchanges and group join can take
    // that long on a loaded machine (it would then be due before the others arrive).
    use herald_core::seams::Queue;
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(4) {
        assert!(q.lease(10, 60_000, &[]).await.expect("lease").is_empty(), "a new topic is empty");
    }
    herald_conformance::queue_suite(&q).await;
}

/// The client certificate (mutual TLS) is sent and accepted by the listener
/// (`ssl.client.auth=requested` checks it against the CA when one is sent).
#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificate_is_accepted() {
    use herald_core::seams::{Enqueue, Queue};
    let Some((b, dir)) = secured() else { return };
    let cfg = KafkaConfig {
        ssl_certificate_location: Some(dir.join("client.pem")),
        ssl_key_location: Some(dir.join("client.key")),
        ..sasl_config(b, &dir)
    };
    let q = KafkaQueue::connect(cfg).await.expect("connect with a client certificate");
    q.publish(vec![Enqueue { key: "t".into(), not_before: 0, work: herald_core::model::Work::Message(herald_conformance::message("t", 1)) }])
        .await
        .expect("published over mutual TLS");
}

async fn refused(cfg: KafkaConfig) -> String {
    let t0 = std::time::Instant::now();
    let e = match KafkaQueue::connect(cfg).await {
        Ok(_) => panic!("connected with settings the broker refuses"),
        Err(e) => e.to_string(),
    };
    println!("refused after {:?}: {e}", t0.elapsed());
    assert!(t0.elapsed() < std::time::Duration::from_secs(10), "a refusal must not wait for the admin timeout: {e}");
    e
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_stops_connect_naming_the_setting() {
    let Some((b, dir)) = secured() else { return };
    let cfg = KafkaConfig { sasl_password: Some(herald_kafka::Secret::new("wrong-password-9c1d")), ..sasl_config(b, &dir) };
    let e = refused(cfg).await;
    assert!(e.contains("queue.kafka.sasl_username / queue.kafka.sasl_password: the broker refused the credentials"), "{e}");
    assert!(!e.contains("wrong-password-9c1d"), "the password leaked: {e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_certificate_stops_connect_naming_the_setting() {
    let Some((b, dir)) = secured() else { return };
    let cfg = KafkaConfig { ssl_ca_location: Some(dir.join("other-ca.pem")), ..sasl_config(b, &dir) };
    let e = refused(cfg).await;
    assert!(e.contains("queue.kafka.ssl_ca_location: the broker's certificate is not trusted"), "{e}");
}
