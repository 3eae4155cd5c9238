//! The Kafka queue passes the queue conformance suite against a real broker
//! (`HERALD_TEST_KAFKA=127.0.0.1:9092`; `make test` starts one).

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
    KafkaConfig { brokers, topic: format!("herald.test.{id}"), dead_topic: format!("herald.test.{id}.dead"), group: format!("herald-test-{id}"), partitions: 3, ..Default::default() }
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
            got.extend(q.lease(10, 60_000).await.unwrap());
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
        again.extend(q.lease(10, 60_000).await.unwrap());
        if !again.is_empty() {
            break;
        }
    }
    let ids: Vec<String> = again.iter().map(|l| match &l.work { herald_core::model::Work::Message(m) => m.id.clone(), _ => panic!() }).collect();
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
