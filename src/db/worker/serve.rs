//! The worker thread's side: gathering a batch, running it in one transaction with a savepoint
//! per job, and answering every caller once the transaction has settled.

use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::{BatchJob, Batching, BeforeCommit, ExclusiveJob, Msg};
use crate::error::Error;

/// The most jobs one transaction takes; bounds the latency a batch adds to its first job.
const MAX_BATCH: usize = 64;

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

pub(super) fn serve(mut conn: Connection, rx: Receiver<Msg>, batching: Batching) {
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

pub(super) fn fail_all(rx: Receiver<Msg>, reason: &str) {
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Batch { job, .. } => job.abort(Error::Unavailable(reason.to_owned())),
            // Dropping it drops its reply sender, which the caller reads as `gone()`.
            Msg::Exclusive(job) => drop(job),
        }
    }
}
