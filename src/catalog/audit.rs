//! The audit log: append-only, hash-chained per tenant. Each entry's hash is
//! SHA-256(previous hash || canonical JSON of the entry), so an edited, inserted or removed row
//! breaks the chain at that point. Entries never carry conversation content.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db;
use crate::domain::TenantId;
use crate::error::Result;

/// One audit entry.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub details: serde_json::Value,
}

/// What `audit verify` found.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ChainReport {
    pub ok: bool,
    pub entries: i64,
    /// The `seq` of the first entry whose hash does not follow from the chain.
    pub first_bad: Option<i64>,
}

/// An action about to be recorded.
pub struct NewEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub details: serde_json::Value,
}

/// Appends an entry to the tenant's chain.
pub fn append(conn: &Connection, tenant: &TenantId, entry: &NewEntry<'_>) -> Result<()> {
    let prev: Vec<u8> = conn
        .query_row(
            "SELECT hash FROM audit WHERE tenant_id = ?1 ORDER BY seq DESC LIMIT 1",
            [tenant.as_str()],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or_else(|| vec![0u8; 32]);
    let at = db::now_ms();
    let details = entry.details.to_string();
    let hash = entry_hash(
        &prev,
        tenant.as_str(),
        at,
        entry.actor,
        entry.action,
        entry.target,
        &details,
    );
    conn.execute(
        "INSERT INTO audit (tenant_id, at, actor, action, target, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            tenant.as_str(),
            at,
            entry.actor,
            entry.action,
            entry.target,
            details,
            prev,
            hash.as_slice()
        ],
    )?;
    Ok(())
}

/// The tenant's entries since `since_ms`, oldest first.
pub fn entries(
    conn: &Connection,
    tenant: &TenantId,
    since_ms: i64,
    limit: usize,
) -> Result<Vec<AuditEntry>> {
    let mut stmt = conn.prepare(
        "SELECT seq, at, actor, action, target, details FROM audit
         WHERE tenant_id = ?1 AND at >= ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![
            tenant.as_str(),
            since_ms,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        |r| {
            let details: String = r.get(5)?;
            Ok(AuditEntry {
                seq: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Recomputes the tenant's chain from the first entry.
pub fn verify(conn: &Connection, tenant: &TenantId) -> Result<ChainReport> {
    let mut stmt = conn.prepare(
        "SELECT seq, at, actor, action, target, details, prev_hash, hash FROM audit
         WHERE tenant_id = ?1 ORDER BY seq",
    )?;
    let mut rows = stmt.query([tenant.as_str()])?;
    let mut expected_prev = vec![0u8; 32];
    let mut entries = 0;
    while let Some(r) = rows.next()? {
        entries += 1;
        let seq: i64 = r.get(0)?;
        let target: Option<String> = r.get(4)?;
        let (prev, stored): (Vec<u8>, Vec<u8>) = (r.get(6)?, r.get(7)?);
        let computed = entry_hash(
            &expected_prev,
            tenant.as_str(),
            r.get(1)?,
            &r.get::<_, String>(2)?,
            &r.get::<_, String>(3)?,
            target.as_deref(),
            &r.get::<_, String>(5)?,
        );
        if prev != expected_prev || stored != computed.as_slice() {
            return Ok(ChainReport {
                ok: false,
                entries,
                first_bad: Some(seq),
            });
        }
        expected_prev = stored;
    }
    Ok(ChainReport {
        ok: true,
        entries,
        first_bad: None,
    })
}

pub fn delete_tenant(conn: &Connection, tenant: &TenantId) -> Result<()> {
    conn.execute("DELETE FROM audit WHERE tenant_id = ?1", [tenant.as_str()])?;
    Ok(())
}

fn entry_hash(
    prev: &[u8],
    tenant: &str,
    at: i64,
    actor: &str,
    action: &str,
    target: Option<&str>,
    details: &str,
) -> [u8; 32] {
    let canonical = serde_json::json!([tenant, at, actor, action, target, details]).to_string();
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(canonical.as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::schema::MIGRATIONS;

    fn catalog() -> Connection {
        db::migrated_in_memory(MIGRATIONS)
    }

    fn record(conn: &Connection, tenant: &TenantId, action: &str) {
        let entry = NewEntry {
            actor: "cli",
            action,
            target: Some("x"),
            details: serde_json::json!({"n": 1}),
        };
        append(conn, tenant, &entry).unwrap();
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let conn = catalog();
        let acme = TenantId::parse("acme").unwrap();
        let other = TenantId::parse("other").unwrap();
        for action in ["a", "b", "c"] {
            record(&conn, &acme, action);
            record(&conn, &other, action);
        }
        assert_eq!(
            verify(&conn, &acme).unwrap(),
            ChainReport {
                ok: true,
                entries: 3,
                first_bad: None
            }
        );
    }

    #[test]
    fn an_edited_or_removed_entry_breaks_the_chain_there() {
        let conn = catalog();
        let acme = TenantId::parse("acme").unwrap();
        for action in ["a", "b", "c", "d"] {
            record(&conn, &acme, action);
        }
        conn.execute("UPDATE audit SET action = 'forged' WHERE seq = 2", [])
            .unwrap();
        assert_eq!(verify(&conn, &acme).unwrap().first_bad, Some(2));
        conn.execute("UPDATE audit SET action = 'b' WHERE seq = 2", [])
            .unwrap();
        assert!(verify(&conn, &acme).unwrap().ok);
        conn.execute("DELETE FROM audit WHERE seq = 3", []).unwrap();
        let report = verify(&conn, &acme).unwrap();
        assert_eq!((report.ok, report.first_bad), (false, Some(4)));
    }
}
