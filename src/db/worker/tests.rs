use std::time::Instant;

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
