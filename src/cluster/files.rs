//! The bytes of a move on disk: the source's snapshot (copied and hashed in one pass), the
//! destination's staging file (streamed in, hashed and fsynced), both in the data directory's
//! trash, which is emptied at every start.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use rusqlite::Connection;

use super::ClusterSecret;
use super::bundle::{FileDigest, Header};
use crate::crypto::DbKey;
use crate::domain::TenantId;
use crate::error::{Error, Result};
use crate::store::Store;

/// Reads the header, then writes the rest of `body` to `staged` on a blocking thread while
/// hashing it; the header's length and SHA-256 must match what arrived.
pub(super) async fn receive<S, E>(
    secret: &ClusterSecret,
    tenant: &TenantId,
    body: S,
    staged: &Path,
) -> Result<Header>
where
    S: Stream<Item = std::result::Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let path = staged.to_path_buf();
    let writer = tokio::task::spawn_blocking(move || -> Result<FileDigest> {
        let mut file = crate::datadir::create_or_open_private(&path)?;
        file.set_len(0)?;
        let mut digest = FileDigest::default();
        while let Some(chunk) = rx.blocking_recv() {
            digest.update(&chunk);
            file.write_all(&chunk)?;
        }
        file.sync_all()?;
        Ok(digest)
    });
    let mut head = Vec::new();
    let mut header = None;
    let mut body = std::pin::pin!(body);
    let fed = async {
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| Error::Unavailable(format!("the bundle stopped: {e}")))?;
            let rest = if header.is_some() {
                chunk
            } else {
                head.extend_from_slice(&chunk);
                let Some((opened, used)) = super::bundle::open_header(secret, tenant, &head)?
                else {
                    continue;
                };
                header = Some(opened);
                Bytes::from(head.split_off(used))
            };
            if tx.send(rest).await.is_err() {
                break; // the writer failed; its error is reported below
            }
        }
        Ok::<_, Error>(())
    }
    .await;
    drop(tx);
    let digest = writer
        .await
        .map_err(|e| Error::Unavailable(format!("the bundle writer failed: {e}")))??;
    fed?;
    let header = header.ok_or_else(|| {
        Error::invalid(
            "invalid_bundle",
            "not a tenant bundle: it ended before its header",
        )
    })?;
    header.check(&digest)?;
    Ok(header)
}

/// A fresh path in the data directory's trash (same filesystem, emptied at every start).
pub(super) fn staging_path(store: &Store, tenant: &TenantId, what: &str) -> Result<PathBuf> {
    let trash = store.dir.trash_dir();
    if !trash.exists() {
        crate::datadir::create_private_dir(&trash)?;
    }
    let tag = hex::encode(crate::crypto::random_bytes::<8>());
    Ok(trash.join(format!("{tenant}.{what}-{tag}")))
}

/// A consistent copy of the tenant's file at `out`, hashed on the way. Fast path: once a
/// truncating checkpoint has folded the WAL in, the file on disk is the whole database, so its
/// bytes are copied as they are (already encrypted; nothing is decrypted or re-encrypted). If a
/// reader (an export in progress) keeps the checkpoint from finishing, the SQLite backup API
/// copies page by page instead.
pub(super) fn snapshot_file(
    conn: &Connection,
    live: &Path,
    out: &Path,
    key: &DbKey,
) -> Result<FileDigest> {
    let (busy, _, _): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    if busy != 0 {
        crate::backup::copy_database(conn, out, key)?;
        return copy_hashing(out, None);
    }
    copy_hashing(live, Some(out))
}

/// Reads `from` in large pieces, hashing them, and writes them to `to` when given.
fn copy_hashing(from: &Path, to: Option<&Path>) -> Result<FileDigest> {
    let mut source = std::fs::File::open(from)?;
    let mut sink = to.map(crate::datadir::create_or_open_private).transpose()?;
    let mut digest = FileDigest::default();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = source.read(&mut buf)?;
        if n == 0 {
            return Ok(digest);
        }
        digest.update(&buf[..n]);
        if let Some(sink) = &mut sink {
            sink.write_all(&buf[..n])?;
        }
    }
}
