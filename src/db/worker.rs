//! A thread that owns one connection and runs closures against it.
//!
//! Jobs that queue up while a commit is under way run together in the next transaction, each in
//! its own savepoint (group commit): one encrypted commit pays for many writes, and every caller
//! still hears back only after its write is durable. Exclusive jobs run between batches, outside
//! any transaction, and may replace the connection (purge, rekey).

use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::{Error, Result};

type BatchJob = Box<dyn Job>;
type ExclusiveJob = Box<dyn FnOnce(&mut Connection) + Send>;

/// A closure waiting for a batch, and the caller it answers.
trait Job: Send {
    /// Runs the closure; the result is held until the batch commits.
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Outcome>;
    /// Answers the caller without running (the batch could not start).
    fn abort(self: Box<Self>, error: Error);
}

/// A job's result, held until its transaction settles.
trait Outcome: Send {
    fn succeeded(&self) -> bool;
    fn deliver(self: Box<Self>, committed: Result<()>);
}

struct Call<T, F> {
    f: F,
    tx: oneshot::Sender<Result<T>>,
}

struct Held<T> {
    out: Result<T>,
    tx: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Call<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Outcome> {
        let out = (self.f)(conn);
        Box::new(Held { out, tx: self.tx })
    }

    fn abort(self: Box<Self>, error: Error) {
        let _ = self.tx.send(Err(error));
    }
}

impl<T: Send + 'static> Outcome for Held<T> {
    fn succeeded(&self) -> bool {
        self.out.is_ok()
    }

    fn deliver(self: Box<Self>, committed: Result<()>) {
        let _ = self.tx.send(committed.and(self.out));
    }
}

enum Msg {
    /// `patient`: the job may wait for company (see [`Batching::patience`]).
    Batch {
        job: BatchJob,
        patient: bool,
    },
    Exclusive(ExclusiveJob),
}

/// The most jobs one transaction takes; bounds the latency a batch adds to its first job.
const MAX_BATCH: usize = 64;

/// A cheap handle to a worker thread; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct WorkerHandle {
    // Field order matters: `tx` drops before `thread`, so when the last handle goes the thread
    // sees the channel close, closes its connection, and is joined.
    tx: Sender<Msg>,
    failure: Arc<OnceLock<String>>,
    _thread: Arc<Joiner>,
}

/// Joins the worker thread when the last handle is dropped, so no connection is still closing
/// (inside SQLCipher and OpenSSL) while the process runs its exit handlers.
struct Joiner(std::sync::Mutex<Option<std::thread::JoinHandle<()>>>);

impl Drop for Joiner {
    fn drop(&mut self) {
        let handle = self.0.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join();
        }
    }
}

/// Spawns workers.
pub struct Worker;

/// Runs inside each batch transaction after its jobs, just before `COMMIT`; an error rolls the
/// whole batch back and every job in it hears the error.
/// Its flag says whether every job in the batch is patient (nobody waits on this commit in a
/// hurry), so slower bookkeeping can be left for such a batch.
pub type BeforeCommit = fn(&Connection, bool) -> rusqlite::Result<()>;

/// How a worker batches its writes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Batching {
    /// While writes arrive together (the previous batch held more than one job), a batch waits
    /// up to this long after its first job for more to join it (still at most [`MAX_BATCH`]).
    /// A lone write on an idle worker never waits.
    pub gather: Duration,
    /// A batch made only of patient jobs ([`WorkerHandle::enqueue_patient`]) waits up to this
    /// long after its first job for another write to share its commit, and commits as soon as
    /// an impatient job joins it.
    pub patience: Duration,
    /// Work done once per batch rather than once per job (tenant files index new messages).
    pub before_commit: Option<BeforeCommit>,
}

impl Worker {
    /// Starts a thread that opens its connection with `open` and then serves jobs.
    pub fn spawn<F>(name: String, open: F) -> Result<WorkerHandle>
    where
        F: FnOnce() -> Result<Connection> + Send + 'static,
    {
        Self::spawn_batching(name, Batching::default(), open)
    }

    /// [`spawn`](Self::spawn) with a commit gather and a once-per-batch step (see
    /// [`Batching`]); every caller still hears back only after its commit.
    pub fn spawn_batching<F>(name: String, batching: Batching, open: F) -> Result<WorkerHandle>
    where
        F: FnOnce() -> Result<Connection> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let failure = Arc::new(OnceLock::new());
        let thread_failure = failure.clone();
        let thread = std::thread::Builder::new()
            .name(name)
            .stack_size(256 * 1024)
            .spawn(move || match open() {
                Ok(conn) => serve(conn, rx, batching),
                Err(e) => {
                    let _ = thread_failure.set(e.to_string());
                    fail_all(rx, &e.to_string());
                }
            })
            .map_err(|e| Error::Unavailable(format!("cannot start a database thread: {e}")))?;
        let thread = Arc::new(Joiner(std::sync::Mutex::new(Some(thread))));
        Ok(WorkerHandle {
            tx,
            failure,
            _thread: thread,
        })
    }
}

impl WorkerHandle {
    /// Runs `f` inside the next batch transaction and returns its result once committed.
    pub async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.enqueue(f)?.await
    }

    /// Queues `f` for the next batch now and returns the wait for its commit, so the caller can
    /// get on with other work meanwhile (hearing from `f` through a channel it captured).
    pub fn enqueue<T, F>(&self, f: F) -> Result<impl Future<Output = Result<T>> + use<T, F>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.enqueue_job(f, false)
    }

    /// [`enqueue`](Self::enqueue) for a write whose caller can wait a little: its commit may
    /// wait up to [`Batching::patience`] for another write to share it.
    pub fn enqueue_patient<T, F>(&self, f: F) -> Result<impl Future<Output = Result<T>> + use<T, F>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.enqueue_job(f, true)
    }

    fn enqueue_job<T, F>(
        &self,
        f: F,
        patient: bool,
    ) -> Result<impl Future<Output = Result<T>> + use<T, F>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = batch_job(f, tx);
        self.send(Msg::Batch { job, patient })?;
        let handle = self.clone();
        Ok(async move { rx.await.unwrap_or_else(|_| Err(handle.gone())) })
    }

    /// [`call`](Self::call) for code already on a blocking thread.
    pub fn call_blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = batch_job(f, tx);
        self.send(Msg::Batch {
            job,
            patient: false,
        })?;
        rx.blocking_recv().unwrap_or_else(|_| Err(self.gone()))
    }

    /// Runs `f` alone, outside any transaction, with the right to replace the connection.
    pub async fn exclusive<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Exclusive(Box::new(move |conn| {
            let _ = tx.send(f(conn));
        })))?;
        rx.await.unwrap_or_else(|_| Err(self.gone()))
    }

    /// [`exclusive`](Self::exclusive) for code already on a blocking thread.
    pub fn exclusive_blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Exclusive(Box::new(move |conn| {
            let _ = tx.send(f(conn));
        })))?;
        rx.blocking_recv().unwrap_or_else(|_| Err(self.gone()))
    }

    /// True once the thread has stopped because its database would not open.
    pub fn has_failed(&self) -> bool {
        self.failure.get().is_some()
    }

    fn send(&self, msg: Msg) -> Result<()> {
        self.tx.send(msg).map_err(|_| self.gone())
    }

    fn gone(&self) -> Error {
        match self.failure.get() {
            Some(reason) => Error::Unavailable(reason.clone()),
            None => Error::Unavailable("the database thread has stopped".into()),
        }
    }
}

fn batch_job<T, F>(f: F, tx: oneshot::Sender<Result<T>>) -> BatchJob
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    Box::new(Call { f, tx })
}

/// The jobs of the next batch, as they are gathered.
struct Gathering {
    jobs: Vec<BatchJob>,
    exclusive: Option<ExclusiveJob>,
    /// Every job so far is patient.
    patient: bool,
}

impl Gathering {
    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Batch { job, patient } => {
                self.jobs.push(job);
                self.patient &= patient;
            }
            Msg::Exclusive(job) => self.exclusive = Some(job),
        }
    }

    /// An exclusive job runs right after the batch, so nothing more joins it.
    fn is_closed(&self) -> bool {
        self.exclusive.is_some() || self.jobs.len() >= MAX_BATCH
    }
}

fn serve(mut conn: Connection, rx: Receiver<Msg>, batching: Batching) {
    let mut busy = false;
    while let Ok(first) = rx.recv() {
        let opened = Instant::now();
        let gathered = opened
            + if busy {
                batching.gather
            } else {
                Duration::ZERO
            };
        let waited_for_company = opened + batching.patience;
        let mut next = Gathering {
            jobs: Vec::new(),
            exclusive: None,
            patient: true,
        };
        next.take(first);
        while !next.is_closed() {
            let deadline = if next.patient {
                gathered.max(waited_for_company)
            } else {
                gathered
            };
            match next_queued(&rx, deadline) {
                Some(msg) => next.take(msg),
                None => break,
            }
        }
        busy = next.jobs.len() > 1;
        if !next.jobs.is_empty() {
            let before_commit = batching.before_commit.map(|step| (step, next.patient));
            run_batch(&conn, next.jobs, before_commit);
        }
        if let Some(job) = next.exclusive {
            job(&mut conn);
        }
    }
}

/// The next queued message, waiting for one until `deadline` at most.
fn next_queued(rx: &Receiver<Msg>, deadline: Instant) -> Option<Msg> {
    match rx.try_recv() {
        Ok(msg) => Some(msg),
        Err(TryRecvError::Disconnected) => None,
        Err(TryRecvError::Empty) => {
            let left = deadline.saturating_duration_since(Instant::now());
            (!left.is_zero())
                .then(|| rx.recv_timeout(left).ok())
                .flatten()
        }
    }
}

fn run_batch(conn: &Connection, batch: Vec<BatchJob>, before_commit: Option<(BeforeCommit, bool)>) {
    if let Err(e) = run_cached(conn, "BEGIN IMMEDIATE") {
        let reason = e.to_string();
        tracing::warn!(error = %reason, "could not begin a transaction");
        for job in batch {
            // Never run a job outside a transaction: answer it with the error instead.
            job.abort(storage_error(&reason));
        }
        return;
    }
    let mut deliveries = Vec::with_capacity(batch.len());
    for job in batch {
        let savepoint = run_cached(conn, "SAVEPOINT job");
        let outcome = job.run(conn);
        let settled = match (savepoint, outcome.succeeded()) {
            (Ok(()), true) => run_cached(conn, "RELEASE job"),
            (Ok(()), false) => {
                run_cached(conn, "ROLLBACK TO job").and_then(|()| run_cached(conn, "RELEASE job"))
            }
            (Err(e), _) => Err(e),
        };
        deliveries.push((settled, outcome));
    }
    let committed = before_commit
        .map_or(Ok(()), |(step, patient)| step(conn, patient))
        .and_then(|()| run_cached(conn, "COMMIT"));
    if committed.is_err() {
        let _ = run_cached(conn, "ROLLBACK");
    }
    let commit_error = committed.err().map(|e| e.to_string());
    for (settled, outcome) in deliveries {
        let committed = match (&commit_error, settled) {
            (None, Ok(())) => Ok(()),
            (Some(reason), _) => Err(storage_error(reason)),
            (None, Err(e)) => Err(Error::Storage(e)),
        };
        outcome.deliver(committed);
    }
}

/// Runs one transaction-control statement from the connection's statement cache: these run
/// several times per batch, and parsing them afresh each time showed up in profiles.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

fn storage_error(reason: &str) -> Error {
    Error::Unavailable(format!("commit failed: {reason}"))
}

fn fail_all(rx: Receiver<Msg>, reason: &str) {
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Batch { job, .. } => job.abort(Error::Unavailable(reason.to_owned())),
            // Dropping it drops its reply sender, which the caller reads as `gone()`.
            Msg::Exclusive(job) => drop(job),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records each batch (and whether it was all patient) inside its own transaction.
    fn record_batch(conn: &Connection, patient: bool) -> rusqlite::Result<()> {
        conn.execute("INSERT INTO batches (patient) VALUES (?1)", [patient])
            .map(drop)
    }

    fn worker(patience: Duration) -> WorkerHandle {
        let batching = Batching {
            gather: Duration::ZERO,
            patience,
            before_commit: Some(record_batch),
        };
        Worker::spawn_batching("test".into(), batching, || {
            let conn = Connection::open_in_memory()?;
            conn.execute_batch(
                "CREATE TABLE batches (patient INTEGER);
                 CREATE TABLE writes (n INTEGER);",
            )?;
            Ok(conn)
        })
        .unwrap()
    }

    fn write(n: i64) -> impl FnOnce(&Connection) -> Result<()> + Send + 'static {
        move |conn| {
            conn.execute("INSERT INTO writes (n) VALUES (?1)", [n])?;
            Ok(())
        }
    }

    fn batches(worker: &WorkerHandle) -> Vec<bool> {
        worker
            .call_blocking(|conn| {
                let mut stmt = conn.prepare("SELECT patient FROM batches ORDER BY rowid")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<bool>>>()?)
            })
            .unwrap()
    }

    fn block_on<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_patient_write_shares_the_commit_of_the_next_write_and_does_not_wait_longer() {
        let worker = worker(Duration::from_secs(60));
        let started = Instant::now();
        let patient = worker.enqueue_patient(write(1)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        worker.call_blocking(write(2)).unwrap();
        block_on(patient).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the impatient write closed the batch"
        );
        // One batch for both writes, not patient: the second write was in a hurry. (The read's
        // own batch records itself only after the read.)
        assert_eq!(batches(&worker), [false]);
        let writes: i64 = worker
            .call_blocking(|c| Ok(c.query_row("SELECT count(*) FROM writes", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(writes, 2);
    }

    #[test]
    fn patient_writes_alone_commit_together_once_their_patience_is_spent() {
        let patience = Duration::from_millis(50);
        let worker = worker(patience);
        let started = Instant::now();
        let first = worker.enqueue_patient(write(1)).unwrap();
        let second = worker.enqueue_patient(write(2)).unwrap();
        block_on(async { (first.await, second.await) }).0.unwrap();
        assert!(
            started.elapsed() >= patience,
            "committed before its patience was spent"
        );
        assert_eq!(batches(&worker), [true]);
    }

    #[test]
    fn an_impatient_write_never_waits_for_company() {
        let worker = worker(Duration::from_secs(60));
        let started = Instant::now();
        worker.call_blocking(write(1)).unwrap();
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(batches(&worker), [false]);
    }
}
