//! The writer's cached statements are prepared once, not on every run: a
//! statement SQLite re-prepares whenever a bound value changes costs a parse
//! and a plan per lease (`lib.rs` says which parameters do that).

use herald_core::model::{DeliveryStatus, DeliveryUpdate, Work};
use herald_core::seams::{Enqueue, Queue, Store};

#[tokio::test(flavor = "multi_thread")]
async fn the_writers_statements_are_not_prepared_again_on_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = herald_sqlite::open(&dir.path().join("h.db")).unwrap();
    let q = herald_sqlite::SqliteQueue::new(db.clone(), herald_core::Clock::system());
    for i in 0..20 {
        let m = herald_conformance::message("t", 2);
        let item = Enqueue { key: format!("t{}", i % 3), not_before: i, work: Work::Message(m.clone()) };
        q.publish_message(&db, &m, vec![item]).await.unwrap();
        let leased = q.lease(1 + i as usize % 4, 1_000 + i, &[]).await.unwrap();
        let updates = (0..2)
            .map(|k| DeliveryUpdate {
                tenant: "t".into(),
                delivery_id: m.delivery_id(k),
                message_id: m.id.clone(),
                status: DeliveryStatus::Sent,
                attempts: 1,
                detail: None,
                provider_id: Some(format!("p{i}.{k}")),
                at: i,
            })
            .collect();
        db.record(updates, vec![]).await.unwrap();
        q.ack(leased.into_iter().map(|l| l.token).collect()).await.unwrap();
    }
    let again = db
        .write(|c| {
            let mut again = Vec::new();
            // SAFETY: the handle is used only within this closure, on the
            // writer thread that owns the connection, to walk its statements.
            unsafe {
                use rusqlite::ffi;
                let h = c.handle();
                let mut st = ffi::sqlite3_next_stmt(h, std::ptr::null_mut());
                while !st.is_null() {
                    let runs = ffi::sqlite3_stmt_status(st, ffi::SQLITE_STMTSTATUS_RUN, 0);
                    let reprepared = ffi::sqlite3_stmt_status(st, ffi::SQLITE_STMTSTATUS_REPREPARE, 0);
                    if runs > 2 && reprepared > 1 {
                        let sql = std::ffi::CStr::from_ptr(ffi::sqlite3_sql(st)).to_string_lossy();
                        again.push(format!("{reprepared} of {runs} runs: {}", sql.split_whitespace().collect::<Vec<_>>().join(" ")));
                    }
                    st = ffi::sqlite3_next_stmt(h, st);
                }
            }
            Ok(again)
        })
        .await
        .unwrap();
    assert!(again.is_empty(), "prepared again:\n{}", again.join("\n"));
}
