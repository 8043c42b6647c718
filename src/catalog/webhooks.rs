//! A tenant's webhook endpoint (URL, signing secret, content opt-in) and its delivery log.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::db;
use crate::domain::TenantId;
use crate::error::Result;

/// Where and how a tenant's events are delivered.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub url: String,
    pub secret: String,
    pub include_content: bool,
}

/// One delivery as the portal shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Delivery {
    pub id: String,
    pub event: String,
    pub status: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

pub fn set(conn: &Connection, tenant: &TenantId, endpoint: &Endpoint) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO webhooks (tenant_id, url, secret, include_content, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![tenant.as_str(), endpoint.url, endpoint.secret, endpoint.include_content, db::now_ms()],
    )?;
    Ok(())
}

pub fn get(conn: &Connection, tenant: &TenantId) -> Result<Option<Endpoint>> {
    Ok(conn
        .query_row(
            "SELECT url, secret, include_content FROM webhooks WHERE tenant_id = ?1",
            [tenant.as_str()],
            |r| {
                Ok(Endpoint {
                    url: r.get(0)?,
                    secret: r.get(1)?,
                    include_content: r.get(2)?,
                })
            },
        )
        .optional()?)
}

pub fn remove(conn: &Connection, tenant: &TenantId) -> Result<bool> {
    Ok(conn.execute(
        "DELETE FROM webhooks WHERE tenant_id = ?1",
        [tenant.as_str()],
    )? > 0)
}

pub fn record_delivery(
    conn: &Connection,
    tenant: &TenantId,
    id: &str,
    event: &str,
    status: &str,
    attempts: u32,
    last_status: Option<u16>,
) -> Result<()> {
    let finished = (status != "pending").then(db::now_ms);
    conn.execute(
        "INSERT INTO webhook_deliveries (id, tenant_id, event, status, attempts, last_status, created_at, finished_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET status = ?4, attempts = ?5, last_status = ?6, finished_at = ?8",
        params![id, tenant.as_str(), event, status, attempts, last_status, db::now_ms(), finished],
    )?;
    // Keep the log bounded: the newest 1,000 deliveries per tenant.
    conn.execute(
        "DELETE FROM webhook_deliveries WHERE tenant_id = ?1 AND id NOT IN
            (SELECT id FROM webhook_deliveries WHERE tenant_id = ?1 ORDER BY created_at DESC LIMIT 1000)",
        [tenant.as_str()],
    )?;
    Ok(())
}

pub fn deliveries(conn: &Connection, tenant: &TenantId, limit: usize) -> Result<Vec<Delivery>> {
    let mut stmt = conn.prepare(
        "SELECT id, event, status, attempts, last_status, created_at, finished_at FROM webhook_deliveries
         WHERE tenant_id = ?1 ORDER BY created_at DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(
        params![tenant.as_str(), i64::try_from(limit).unwrap_or(i64::MAX)],
        |r| {
            Ok(Delivery {
                id: r.get(0)?,
                event: r.get(1)?,
                status: r.get(2)?,
                attempts: r.get(3)?,
                last_status: r.get(4)?,
                created_at: r.get(5)?,
                finished_at: r.get(6)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}
