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
