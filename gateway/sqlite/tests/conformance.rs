//! The embedded backend passes every seam's conformance suite.

fn db() -> (tempfile::TempDir, herald_sqlite::Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = herald_sqlite::open(&dir.path().join("herald.db")).unwrap();
    (dir, db)
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_conformance() {
    let (_dir, db) = db();
    herald_conformance::queue_suite(&herald_sqlite::SqliteQueue::new(db, herald_core::Clock::system())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn store_conformance() {
    let (_dir, db) = db();
    herald_conformance::store_suite(&db).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn config_conformance() {
    let (_dir, db) = db();
    herald_conformance::config_suite(&db).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_survives_reopen_and_recover_releases_leases() {
    use herald_core::seams::{Enqueue, Queue};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let m = herald_conformance::message("t", 1);
    {
        let q = herald_sqlite::SqliteQueue::new(herald_sqlite::open(&path).unwrap(), herald_core::Clock::system());
        q.publish(vec![Enqueue { key: "t".into(), not_before: 0, work: herald_core::model::Work::Message(m.clone()) }]).await.unwrap();
        assert_eq!(q.lease(10, 600_000, &[]).await.unwrap().len(), 1);
        assert!(q.lease(10, 600_000, &[]).await.unwrap().is_empty(), "leased for 10 minutes");
    }
    let q = herald_sqlite::SqliteQueue::new(herald_sqlite::open(&path).unwrap(), herald_core::Clock::system());
    assert_eq!(q.recover().await.unwrap(), 1);
    let again = q.lease(10, 1000, &[]).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].redeliveries, 1);
    assert_eq!(again[0].work, herald_core::model::Work::Message(m));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_queue_row_is_set_aside_not_blocking() {
    use herald_core::seams::{Enqueue, Queue};
    let (_dir, db) = db();
    db.write(|c| {
        c.execute("INSERT INTO queue (key, not_before, work) VALUES ('t', 0, 'not json')", [])
            .map(|_| ())
            .map_err(|e| herald_core::StoreError::Backend(e.to_string()))
    })
    .await
    .unwrap();
    let q = herald_sqlite::SqliteQueue::new(db.clone(), herald_core::Clock::system());
    let m = herald_conformance::message("t", 1);
    q.publish(vec![Enqueue { key: "t".into(), not_before: 0, work: herald_core::model::Work::Message(m.clone()) }]).await.unwrap();
    let got = q.lease(10, 1000, &[]).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].work, herald_core::model::Work::Message(m));
    let dead: i64 = db
        .read(|c| c.query_row("SELECT COUNT(*) FROM queue_dead", [], |r| r.get(0)).map_err(|e| herald_core::StoreError::Backend(e.to_string())))
        .await
        .unwrap();
    assert_eq!(dead, 1);
}

/// A message published beside the store goes straight to the dispatcher that
/// took the handoff, already leased (no lease finds it; a restart's recovery
/// hands it out again); a tenant the dispatcher refuses, a full channel and a
/// repeated publish of the same message go into the queue unleased.
#[tokio::test(flavor = "multi_thread")]
async fn handed_off_items_are_leased_durable_and_only_first_publishes() {
    use herald_core::model::Work;
    use herald_core::seams::{Enqueue, Handoff, Queue};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let db = herald_sqlite::open(&path).unwrap();
    let q = herald_sqlite::SqliteQueue::new(db.clone(), herald_core::Clock::system()).beside_store();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let admits = std::sync::Arc::new(|tenant: &str| tenant != "busy");
    assert!(q.hand_off(Handoff { tx, lease_ms: 600_000, admits }));
    let item = |m: &herald_core::model::Message| vec![Enqueue { key: m.tenant.clone(), not_before: 0, work: Work::Message(m.clone()) }];

    let first = herald_conformance::message("t", 2);
    q.publish_message(&db, &first, item(&first)).await.unwrap();
    let handed = rx.try_recv().expect("handed over once durable");
    assert_eq!(handed.work, Work::Message(first.clone()));
    assert_eq!(handed.redeliveries, 0);
    assert!(q.lease(10, 1000, &[]).await.unwrap().is_empty(), "a handed item is leased");

    // The channel holds one: the second fills it, so the third goes into the queue.
    let second = herald_conformance::message("t", 1);
    q.publish_message(&db, &second, item(&second)).await.unwrap();
    let third = herald_conformance::message("t", 1);
    q.publish_message(&db, &third, item(&third)).await.unwrap();
    let busy = herald_conformance::message("busy", 1);
    q.publish_message(&db, &busy, item(&busy)).await.unwrap();
    // A repeated publish (a keyed retry after a crash): some deliveries may be done.
    q.publish_message(&db, &first, item(&first)).await.unwrap();
    let mut leased: Vec<Work> = q.lease(10, 1000, &[]).await.unwrap().into_iter().map(|l| l.work).collect();
    assert_eq!(leased.len(), 3, "the full channel's, the refused tenant's and the repeat");
    assert!(leased.contains(&Work::Message(third.clone())) && leased.contains(&Work::Message(busy.clone())));
    leased.retain(|w| *w == Work::Message(first.clone()));
    assert_eq!(leased.len(), 1);
    assert_eq!(rx.try_recv().expect("the second was handed over").work, Work::Message(second));
    rx.try_recv().expect_err("nothing more was handed over");
    drop(rx);

    // A crash before the handed item was acknowledged: recovery frees it.
    let q = herald_sqlite::SqliteQueue::new(db, herald_core::Clock::system());
    assert!(q.recover().await.unwrap() >= 1);
    let again = q.lease(10, 1000, &[]).await.unwrap();
    assert!(again.iter().any(|l| l.work == Work::Message(first.clone())), "the handed item comes back after a restart");
}
