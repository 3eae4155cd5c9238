use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use herald_core::StoreError;
use rusqlite::{Connection, Transaction};
use tokio::sync::oneshot;

type Done = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&mut Transaction<'_>) -> Done + Send>;

/// Most writes folded into one transaction.
const MAX_GROUP: usize = 1024;

/// Handle to the database: cheap to clone, shared by the queue and stores.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    /// Wait for the writer on a blocking-pool thread (see [`Db::hold_paused_clock`]).
    hold_clock: std::sync::atomic::AtomicBool,
    path: PathBuf,
    writer: mpsc::Sender<Job>,
    readers: Mutex<Vec<Connection>>,
    /// One per reader connection: a read waits for a connection instead of
    /// opening (and then dropping) one more, which under load cost more than
    /// the reads themselves.
    reads: tokio::sync::Semaphore,
}

/// Reader connections kept open.
const READERS: usize = 8;

pub(crate) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Sorted lists order text with it (Chinese by pinyin). Only queries
    // name it, never the schema: other programs opening the file (an older
    // binary, the sqlite3 shell) need not know it.
    conn.create_collation(herald_core::collate::COLLATION, herald_core::collate::text_order)?;
    Ok(conn)
}

impl Db {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Backend(format!("create {}: {e}", dir.display())))?;
        }
        let mut conn = connect(path).map_err(backend)?;
        crate::schema::migrate(&mut conn).map_err(backend)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new().name("herald-sqlite-writer".into()).spawn(move || writer_loop(conn, rx)).map_err(backend)?;
        Ok(Self {
            inner: Arc::new(Inner {
                hold_clock: Default::default(),
                path: path.to_path_buf(),
                writer: tx,
                readers: Mutex::new(Vec::new()),
                reads: tokio::sync::Semaphore::new(READERS),
            }),
        })
    }

    /// Under tokio's paused clock (in-process tests), a task waiting on the
    /// writer thread looks idle to tokio, which then jumps its clock to the
    /// next timer. Waiting on a blocking-pool thread instead holds the clock.
    pub fn hold_paused_clock(&self) {
        self.inner.hold_clock.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Run `f` in the next group-commit transaction; resolves after commit.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (otx, orx) = oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |txn: &mut Transaction<'_>| {
            let result = match txn.savepoint() {
                Ok(sp) => match f(&sp) {
                    Ok(v) => sp.commit().map(|_| v).map_err(backend),
                    Err(e) => Err(e), // dropping the savepoint rolls it back
                },
                Err(e) => Err(backend(e)),
            };
            Box::new(move |committed: Result<(), String>| {
                let out = match (result, committed) {
                    (Ok(v), Ok(())) => Ok(v),
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(StoreError::Unavailable(format!("commit failed: {e}"))),
                };
                let _ = otx.send(out);
            })
        });
        self.inner.writer.send(job).map_err(|_| StoreError::Unavailable("sqlite writer stopped".into()))?;
        let stopped = || StoreError::Unavailable("sqlite writer stopped".into());
        if self.inner.hold_clock.load(std::sync::atomic::Ordering::Relaxed) {
            return tokio::task::spawn_blocking(move || orx.blocking_recv()).await.map_err(backend)?.map_err(|_| stopped())?;
        }
        orx.await.map_err(|_| stopped())?
    }

    /// Run a read on a pooled connection, off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _permit = self.inner.reads.acquire().await.map_err(backend)?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().expect("reader pool").pop();
            let conn = match pooled {
                Some(c) => c,
                None => connect(&inner.path).map_err(backend)?,
            };
            let out = f(&conn);
            inner.readers.lock().expect("reader pool").push(conn);
            out
        })
        .await
        .map_err(backend)?
    }
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // IMMEDIATE: another process on the same file (the admin service) makes
        // this wait on the busy timeout instead of failing a lock upgrade.
        let mut txn = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
            Ok(t) => t,
            Err(e) => {
                // Dropping the jobs drops their reply channels: callers see Unavailable.
                tracing::error!(error = %e, "sqlite: cannot begin transaction");
                continue;
            }
        };
        let dones: Vec<Done> = jobs.into_iter().map(|job| job(&mut txn)).collect();
        let committed = txn.commit().map_err(|e| e.to_string());
        if let Err(e) = &committed {
            tracing::error!(error = %e, "sqlite: group commit failed");
        }
        for done in dones {
            done(committed.clone());
        }
    }
}
