//! Tenant rows, their allowed origins, settings and widget keys.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::settings::TenantSettings;
use crate::db;
use crate::domain::{Origin, TenantId, WidgetKey};
use crate::error::{Error, Result};

/// A tenant as the catalog knows it.
#[derive(Clone, Debug, Serialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub origins: Vec<String>,
    pub created_at: i64,
    #[serde(skip)]
    pub settings: TenantSettings,
}

pub fn insert(
    conn: &Connection,
    id: &TenantId,
    name: &str,
    origins: &[Origin],
    at: i64,
) -> Result<()> {
    let inserted = conn.execute(
        "INSERT INTO tenants (id, name, created_at, settings) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO NOTHING",
        params![
            id.as_str(),
            name,
            at,
            serde_json::to_string(&TenantSettings::default()).unwrap_or_default()
        ],
    )?;
    if inserted == 0 {
        return Err(Error::Conflict(format!("tenant {id} already exists")));
    }
    replace_origins(conn, id, origins)
}

pub fn exists(conn: &Connection, id: &TenantId) -> Result<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM tenants WHERE id = ?1", [id.as_str()], |_| {
            Ok(())
        })
        .optional()?
        .is_some())
}

pub fn get(conn: &Connection, id: &TenantId) -> Result<Option<Tenant>> {
    let row = conn
        .prepare_cached("SELECT id, name, created_at, settings FROM tenants WHERE id = ?1")?
        .query_row([id.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .optional()?;
    let Some((id_str, name, created_at, settings)) = row else {
        return Ok(None);
    };
    Ok(Some(Tenant {
        origins: origins(conn, id)?,
        id: id_str,
        name,
        created_at,
        settings: serde_json::from_str(&settings).unwrap_or_default(),
    }))
}

pub fn list(conn: &Connection) -> Result<Vec<Tenant>> {
    let mut stmt = conn.prepare("SELECT id FROM tenants ORDER BY id")?;
    let ids: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut tenants = Vec::with_capacity(ids.len());
    for id in ids {
        if let Ok(id) = TenantId::parse(&id)
            && let Some(tenant) = get(conn, &id)?
        {
            tenants.push(tenant);
        }
    }
    Ok(tenants)
}

pub fn delete(conn: &Connection, id: &TenantId) -> Result<bool> {
    Ok(conn.execute("DELETE FROM tenants WHERE id = ?1", [id.as_str()])? > 0)
}

pub fn origins(conn: &Connection, id: &TenantId) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT origin FROM origins WHERE tenant_id = ?1 ORDER BY origin")?;
    Ok(stmt
        .query_map([id.as_str()], |r| r.get(0))?
        .collect::<Result<_, _>>()?)
}

pub fn replace_origins(conn: &Connection, id: &TenantId, origins: &[Origin]) -> Result<()> {
    conn.execute("DELETE FROM origins WHERE tenant_id = ?1", [id.as_str()])?;
    for origin in origins {
        conn.execute(
            "INSERT OR IGNORE INTO origins (tenant_id, origin) VALUES (?1, ?2)",
            [id.as_str(), origin.as_str()],
        )?;
    }
    Ok(())
}

pub fn update_settings(
    conn: &Connection,
    id: &TenantId,
    name: &str,
    settings: &TenantSettings,
) -> Result<()> {
    let json = serde_json::to_string(settings)
        .map_err(|e| Error::invalid("invalid_settings", e.to_string()))?;
    conn.execute(
        "UPDATE tenants SET name = ?2, settings = ?3 WHERE id = ?1",
        params![id.as_str(), name, json],
    )?;
    Ok(())
}

pub fn add_widget_key(conn: &Connection, id: &TenantId, key: &WidgetKey) -> Result<()> {
    conn.execute(
        "INSERT INTO widget_keys (key, tenant_id, created_at) VALUES (?1, ?2, ?3)",
        params![key.as_str(), id.as_str(), db::now_ms()],
    )?;
    Ok(())
}

pub fn widget_keys(conn: &Connection, id: &TenantId) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare("SELECT key FROM widget_keys WHERE tenant_id = ?1 ORDER BY created_at")?;
    Ok(stmt
        .query_map([id.as_str()], |r| r.get(0))?
        .collect::<Result<_, _>>()?)
}

/// The tenant a widget key belongs to.
pub fn tenant_for_widget_key(conn: &Connection, key: &WidgetKey) -> Result<Option<Tenant>> {
    let id: Option<String> = conn
        .prepare_cached("SELECT tenant_id FROM widget_keys WHERE key = ?1")?
        .query_row([key.as_str()], |r| r.get(0))
        .optional()?;
    match id.map(|id| TenantId::parse(&id)).transpose()? {
        Some(id) => get(conn, &id),
        None => Ok(None),
    }
}
