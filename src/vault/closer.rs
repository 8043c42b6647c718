//! Closing tenant files off the request path. When the last handle to a tenant's worker goes
//! (the file was evicted from the open set, forgotten, or the vault is dropped), the worker's
//! connection closes (checkpointing its WAL into the file, with fsyncs) and its thread is
//! joined. That used to happen on whichever thread dropped the handle: an async runtime thread,
//! and for evictions under the vault's lock, so every tenant waited for it. It now happens on
//! one closer thread.
//!
//! A tenant still never has two connections at once: each worker carries an [`Exited`] signal,
//! and a new worker for the same tenant waits for its predecessor's (on its own thread, before
//! opening the file), so a purge or a rekey can never race the close of an older connection.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};

use crate::db::WorkerHandle;

/// Closes waiting for the closer thread beyond this are done by the thread that dropped the
/// handle instead, so files being closed stay bounded (the open set plus this many).
const QUEUE: usize = 32;

/// Set once a worker's thread has ended and its connection is closed.
#[derive(Default)]
pub(super) struct Exited {
    done: Mutex<bool>,
    changed: Condvar,
}

impl Exited {
    /// Blocks until the worker has exited. Call only from a worker's own (blocking) thread.
    pub(super) fn wait(&self) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while !*done {
            done = self.changed.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }

    pub(super) fn is_done(&self) -> bool {
        *self.done.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finish(&self) {
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.changed.notify_all();
    }
}

/// One tenant's worker as the vault holds it; dropping the last one hands it to the closer.
pub(super) struct TenantWorker {
    handle: Option<WorkerHandle>,
    exited: Arc<Exited>,
    closer: Arc<Closer>,
}

impl TenantWorker {
    pub(super) fn new(handle: WorkerHandle, exited: Arc<Exited>, closer: Arc<Closer>) -> Self {
        Self {
            handle: Some(handle),
            exited,
            closer,
        }
    }

    pub(super) fn exited(&self) -> &Arc<Exited> {
        &self.exited
    }
}

impl std::ops::Deref for TenantWorker {
    type Target = WorkerHandle;

    fn deref(&self) -> &WorkerHandle {
        // Taken only in `drop`, so always present while the value can be reached.
        self.handle.as_ref().expect("present until dropped")
    }
}

impl Drop for TenantWorker {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            self.closer.close(handle, self.exited.clone());
        }
    }
}

type Closing = (WorkerHandle, Arc<Exited>);

/// The closer thread: drops (and so closes and joins) handed-over workers in order.
pub(super) struct Closer {
    tx: Option<SyncSender<Closing>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Closer {
    /// Starts the closer thread; without one (the process is out of threads), workers are
    /// closed by whoever drops them, as if the queue were full.
    pub(super) fn start() -> Arc<Self> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("vault-closer".into())
            .stack_size(128 * 1024)
            .spawn(move || close_all(rx));
        match thread {
            Ok(thread) => Arc::new(Self {
                tx: Some(tx),
                thread: Some(thread),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "no closer thread; tenant files close inline");
                Arc::new(Self {
                    tx: None,
                    thread: None,
                })
            }
        }
    }

    fn close(&self, handle: WorkerHandle, exited: Arc<Exited>) {
        let refused = match &self.tx {
            Some(tx) => match tx.try_send((handle, exited)) {
                Ok(()) => return,
                Err(TrySendError::Full(closing) | TrySendError::Disconnected(closing)) => closing,
            },
            None => (handle, exited),
        };
        close_one(refused);
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        // Closing the channel lets the thread finish what is queued and end; joining it means
        // no tenant connection is still closing when the vault is gone.
        drop(self.tx.take());
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

fn close_all(rx: Receiver<Closing>) {
    while let Ok(closing) = rx.recv() {
        close_one(closing);
    }
}

fn close_one((handle, exited): Closing) {
    // The vault holds the only handle of a tenant worker: dropping it closes the connection
    // and joins the thread.
    drop(handle);
    exited.finish();
}
