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
    /// Dropped with the handle: the checkpoint thread ends.
    _checkpoints: mpsc::Sender<()>,
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
        // The writer's commits only write the WAL; the syncer makes them
        // durable (see `sync_loop`) while the writer goes on with the next group.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(backend)?;
        // Checkpoints run beside the writer (see `checkpoint_loop`); the
        // writer's own only as a backstop, should the WAL grow past ~80 MB.
        conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_BACKSTOP_PAGES).map_err(backend)?;
        let checkpointer = connect(path).map_err(backend)?;
        let (open_tx, open_rx) = mpsc::channel::<()>();
        std::thread::Builder::new().name("herald-sqlite-ckpt".into()).spawn(move || checkpoint_loop(checkpointer, open_rx)).map_err(backend)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let (synced_tx, synced_rx) = mpsc::channel::<Vec<Done>>();
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        std::thread::Builder::new().name("herald-sqlite-sync".into()).spawn(move || sync_loop(&wal, synced_rx)).map_err(backend)?;
        std::thread::Builder::new().name("herald-sqlite-writer".into()).spawn(move || writer_loop(conn, rx, synced_tx)).map_err(backend)?;
        Ok(Self {
            inner: Arc::new(Inner {
                hold_clock: Default::default(),
                _checkpoints: open_tx,
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

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Job>, synced: mpsc::Sender<Vec<Done>>) {
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
        match txn.commit() {
            // Answered once the syncer has made the commit durable.
            Ok(()) => {
                if let Err(mpsc::SendError(dones)) = synced.send(dones) {
                    answer(dones, Err("sqlite syncer stopped".into()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "sqlite: group commit failed");
                answer(dones, Err(e.to_string()));
            }
        }
    }
}

fn answer(dones: Vec<Done>, result: Result<(), String>) {
    for done in dones {
        done(result.clone());
    }
}

/// Makes the writer's commits durable and only then answers their callers:
/// each `fdatasync` of the WAL covers every group committed before it began
/// (the groups waiting here), so one sync serves all that queued up during
/// the previous one, and the writer never waits for the disk. This is what
/// `synchronous = FULL` does on every commit, moved off the writer thread.
/// A caller is answered only after its commit is on disk, so nothing is
/// acknowledged (a 202, a queue item's ack) that a power loss could take back.
///
/// A failed sync is final for this process: the kernel may have dropped the
/// unwritten pages, so a later sync that succeeds proves nothing about the
/// frames before it, and no commit is acknowledged again until a restart
/// (whose recovery reads the WAL as it really is on disk).
fn sync_loop(wal: &Path, rx: mpsc::Receiver<Vec<Done>>) {
    let mut file: Option<std::fs::File> = None;
    let mut failed: Option<String> = None;
    while let Ok(first) = rx.recv() {
        let mut groups = vec![first];
        while let Ok(more) = rx.try_recv() {
            groups.push(more);
        }
        let synced = match &failed {
            Some(e) => Err(e.clone()),
            None => sync_wal(wal, &mut file).map_err(|e| {
                tracing::error!(error = %e, wal = %wal.display(), "sqlite: cannot sync the WAL; no commit is acknowledged until a restart");
                format!("sync {}: {e}", wal.display())
            }),
        };
        if let Err(e) = &synced {
            failed = Some(e.clone());
        }
        for dones in groups {
            answer(dones, synced.clone());
        }
    }
}

/// WAL pages after which the writer checkpoints itself (`wal_autocheckpoint`).
const CHECKPOINT_BACKSTOP_PAGES: i64 = 20_000;

/// How often the WAL is copied back into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Copies the WAL back into the database on its own connection, so that the
/// writer never stops for it (a PASSIVE checkpoint takes no lock a writer
/// needs; the WAL starts over once everything in it is copied). It ends when
/// the database handle is dropped.
fn checkpoint_loop(conn: Connection, open: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = open.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "sqlite: checkpoint failed");
        }
    }
}

/// `fdatasync` the WAL; the first time also its directory (the WAL file may be new).
fn sync_wal(wal: &Path, file: &mut Option<std::fs::File>) -> std::io::Result<()> {
    if file.is_none() {
        let opened = std::fs::File::open(wal)?;
        if let Some(dir) = wal.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        *file = Some(opened);
    }
    file.as_ref().expect("opened above").sync_data()
}
