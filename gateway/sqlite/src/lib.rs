//! Embedded backends: a durable queue and the stores, in one SQLite file.
//!
//! Writes go through one writer thread that commits every write waiting at
//! that moment in one transaction (group commit): many concurrent requests
//! share one fsync. Each write runs in its own savepoint, so one failing write
//! does not undo its neighbours. Reads use a small pool of connections (WAL
//! lets them run beside the writer).
//!
//! A cached statement whose plan SQLite derived from a bound value is
//! prepared again every time that value changes: a bare `LIMIT ?n`, and a
//! bound value compared with a column a partial index is defined on
//! (`leased_until <= ?1`). Those parameters are written `?n + 0`, an
//! expression the planner does not look into (`tests/statements.rs`).

mod config;
mod db;
mod queue;
mod schema;
mod store;

pub use db::Db;
pub use queue::SqliteQueue;

/// Open (creating and migrating) the database at `path`.
pub fn open(path: &std::path::Path) -> Result<Db, herald_core::StoreError> {
    Db::open(path)
}
