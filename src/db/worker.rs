//! A thread that owns one connection and runs closures against it.
//!
//! Jobs that queue up while a commit is under way run together in the next transaction, each in
//! its own savepoint (group commit): one encrypted commit pays for many writes, and every caller
//! still hears back only after its write is durable. A batch of patient jobs only (finished
//! replies) waits a little for another write to share its commit. Exclusive jobs run between
//! batches, outside any transaction, and may replace the connection (purge, rekey). The thread's
//! side of this lives in `serve`.

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::{Error, Result};

mod serve;

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
    /// up to this long after its first job for more to join it (still at most 64 jobs).
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
                Ok(conn) => serve::serve(conn, rx, batching),
                Err(e) => {
                    let _ = thread_failure.set(e.to_string());
                    serve::fail_all(rx, &e.to_string());
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
        self.send(batch_job(f, tx, patient))?;
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
        self.send(batch_job(f, tx, false))?;
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

/// The message that queues `f` for a batch, answering on `tx`.
fn batch_job<T, F>(f: F, tx: oneshot::Sender<Result<T>>, patient: bool) -> Msg
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    Msg::Batch {
        job: Box::new(Call { f, tx }),
        patient,
    }
}

#[cfg(test)]
mod tests;
