//! Retention: a background sweeper hard-deletes every conversation whose last message is older
//! than its tenant's `retention_days`, in bounded batches (so widget writes interleave), then
//! checkpoints the WAL with `TRUNCATE` so the deleted text does not linger in `-wal`. Each
//! completed pass beats a [`Heartbeat`]; `/readyz` reports it and fails when it goes stale.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, params};

use crate::app::AppState;
use crate::catalog::tenants;
use crate::domain::TenantId;
use crate::error::Result;
use crate::store::Store;

const DAY_MS: i64 = 86_400_000;

/// The time the sweeper judges expiry by, in ms since the epoch; tests inject their own.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Self(Arc::new(crate::db::now_ms))
    }

    pub fn from_fn(now_ms: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(now_ms))
    }

    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// How the sweeper runs.
#[derive(Clone, Debug)]
pub struct RetentionConfig {
    /// Pause between passes.
    pub interval: Duration,
    /// Conversations deleted per transaction.
    pub batch: usize,
    /// `/readyz` fails when no pass has completed for this long.
    pub stall_after: Duration,
    pub clock: Clock,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(600),
            batch: 200,
            stall_after: Duration::from_secs(3 * 600 + 300),
            clock: Clock::system(),
        }
    }
}

/// When the sweeper last completed a pass.
pub struct Heartbeat {
    started: std::time::Instant,
    last: Mutex<Option<(std::time::Instant, i64)>>,
}

/// What `/readyz` shows of the sweeper.
#[derive(Debug, serde::Serialize)]
pub struct SweeperStatus {
    /// RFC 3339 time (by the sweeper's clock) of the last completed pass.
    pub last_run: Option<String>,
    pub stalled: bool,
}

impl Heartbeat {
    pub fn new() -> Self {
        Self {
            started: std::time::Instant::now(),
            last: Mutex::new(None),
        }
    }

    fn beat(&self, at_ms: i64) {
        *self.lock() = Some((std::time::Instant::now(), at_ms));
    }

    /// Stalled when neither a pass nor the start happened within `stall_after`.
    pub fn status(&self, stall_after: Duration) -> SweeperStatus {
        let last = *self.lock();
        let since = last.map_or(self.started, |(at, _)| at);
        SweeperStatus {
            last_run: last.map(|(_, ms)| crate::db::format_time(ms)),
            stalled: since.elapsed() > stall_after,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(std::time::Instant, i64)>> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs passes until the server shuts down.
pub async fn run_sweeper(app: AppState) {
    let config = app.config.retention.clone();
    loop {
        let now = config.clock.now_ms();
        match sweep(&app.store, now, config.batch).await {
            Ok(deleted) => {
                if deleted > 0 {
                    tracing::info!(
                        conversations = deleted,
                        "retention pass deleted expired conversations"
                    );
                }
                app.sweeper.beat(now);
            }
            Err(e) => tracing::warn!(error = %e, "retention pass failed"),
        }
        tokio::select! {
            () = app.shutdown.cancelled() => return,
            () = tokio::time::sleep(config.interval) => {}
        }
    }
}

/// One pass over every tenant with a retention window; returns how many conversations it
/// deleted. A tenant whose file fails is logged and skipped, never blocks the others.
///
/// A tenant's file is opened only when something in it may have expired: the catalog keeps a
/// floor under its conversations' last activity ([`tenants::RetentionState`]), set at creation
/// and by each visit, and a file whose floor is within the window stays closed. A pass over
/// 10,000 quiet tenants is then one catalog read, not 10,000 file opens that would also push
/// the busy tenants out of the open-file set.
pub async fn sweep(store: &Store, now_ms: i64, batch: usize) -> Result<u64> {
    let mut deleted = 0;
    for tenant in store.catalog.call(tenants::retention_states).await? {
        if tenant.retention_days == 0 {
            continue;
        }
        let window = i64::from(tenant.retention_days) * DAY_MS;
        if tenant
            .activity_floor
            .is_some_and(|floor| floor.saturating_add(window) > now_ms)
        {
            continue;
        }
        let id = tenant.id;
        match sweep_tenant(store, &id, now_ms - window, batch).await {
            Ok((n, floor)) => {
                deleted += n;
                let at = id.clone();
                let recorded = store
                    .catalog
                    .call(move |c| tenants::set_activity_floor(c, &at, floor))
                    .await;
                if let Err(e) = recorded {
                    tracing::warn!(tenant = %id, error = %e, "could not record the retention floor");
                }
            }
            Err(e) => tracing::warn!(tenant = %id, error = %e, "retention failed for a tenant"),
        }
    }
    Ok(deleted)
}

/// Deletes the tenant's expired conversations; returns how many, and the activity floor of
/// what is left, read in the same transaction as the last batch.
async fn sweep_tenant(
    store: &Store,
    id: &TenantId,
    cutoff_ms: i64,
    batch: usize,
) -> Result<(u64, i64)> {
    let mut deleted = 0;
    let floor = loop {
        let (n, floor) = store
            .vault
            .call(id, move |conn| {
                let n = delete_expired(conn, cutoff_ms, batch)?;
                let floor = if n < batch {
                    Some(activity_floor(conn)?)
                } else {
                    None
                };
                Ok((n, floor))
            })
            .await?;
        deleted += n as u64;
        if let Some(floor) = floor {
            break floor;
        }
        tokio::task::yield_now().await;
    };
    if deleted > 0 {
        store
            .vault
            .exclusive(id, |conn| {
                Ok(conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?)
            })
            .await?;
    }
    Ok((deleted, floor))
}

/// A floor under the last activity of every conversation in the file, now and later: the
/// oldest `last_at` there, or the current time when that is earlier (or there is none), since a
/// conversation created from now on is stamped with the time it is created.
pub fn activity_floor(conn: &Connection) -> Result<i64> {
    let now = crate::db::now_ms();
    let oldest: Option<i64> =
        conn.query_row("SELECT min(last_at) FROM conversations", [], |r| r.get(0))?;
    Ok(oldest.map_or(now, |oldest| oldest.min(now)))
}

/// Deletes up to `limit` conversations (and by cascade their messages and index entries) whose
/// last message is before `cutoff_ms`, oldest first.
pub fn delete_expired(conn: &Connection, cutoff_ms: i64, limit: usize) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM conversations WHERE id IN (
             SELECT id FROM conversations WHERE last_at < ?1 ORDER BY last_at LIMIT ?2)",
        params![cutoff_ms, i64::try_from(limit).unwrap_or(i64::MAX)],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ConversationId;
    use crate::vault::{repo, schema};

    fn tenant_file() -> Connection {
        crate::db::migrated_in_memory(schema::MIGRATIONS)
    }

    #[test]
    fn the_floor_is_the_oldest_last_activity_and_never_later_than_now() {
        let conn = tenant_file();
        let before = crate::db::now_ms();
        let empty = activity_floor(&conn).unwrap();
        assert!(
            (before..=crate::db::now_ms()).contains(&empty),
            "an empty file: now"
        );

        let ahead = before + 3 * DAY_MS;
        repo::create_conversation(&conn, &ConversationId::generate(), b"h", ahead).unwrap();
        let only_newer = activity_floor(&conn).unwrap();
        assert!(
            only_newer < ahead,
            "a conversation created later is stamped with its own time, so the floor stays at now"
        );

        for at in [5_000, 2_000, 9_000] {
            repo::create_conversation(&conn, &ConversationId::generate(), b"h", at).unwrap();
        }
        assert_eq!(activity_floor(&conn).unwrap(), 2_000);
        delete_expired(&conn, 4_000, 10).unwrap();
        assert_eq!(activity_floor(&conn).unwrap(), 5_000);
    }
}
