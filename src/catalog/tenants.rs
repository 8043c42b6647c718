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
        // A new tenant's file is empty: nothing in it is older than its creation.
        "INSERT INTO tenants (id, name, created_at, settings, activity_floor)
         VALUES (?1, ?2, ?3, ?4, ?3)
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

/// A tenant as the retention sweeper sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionState {
    pub id: TenantId,
    pub retention_days: u32,
    /// No conversation in the tenant's file was last active before this (ms); `None`: unknown.
    pub activity_floor: Option<i64>,
}

/// Every tenant's retention window and activity floor, in one read.
pub fn retention_states(conn: &Connection) -> Result<Vec<RetentionState>> {
    let mut stmt = conn.prepare("SELECT id, settings, activity_floor FROM tenants ORDER BY id")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<i64>>(2)?,
        ))
    })?;
    let mut states = Vec::new();
    for row in rows {
        let (id, settings, activity_floor) = row?;
        let Ok(id) = TenantId::parse(&id) else {
            continue;
        };
        let settings: TenantSettings = serde_json::from_str(&settings).unwrap_or_default();
        states.push(RetentionState {
            id,
            retention_days: settings.retention_days,
            activity_floor,
        });
    }
    Ok(states)
}

/// Records what the sweeper found: nothing in the tenant's file is older than `floor` (ms).
pub fn set_activity_floor(conn: &Connection, id: &TenantId, floor: i64) -> Result<()> {
    conn.execute(
        "UPDATE tenants SET activity_floor = ?2 WHERE id = ?1",
        params![id.as_str(), floor],
    )?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::schema;

    fn catalog_at(version: usize) -> Connection {
        db::migrated_in_memory(&schema::MIGRATIONS[..version])
    }

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    #[test]
    fn a_new_tenant_has_nothing_older_than_its_creation_and_a_visit_moves_the_floor() {
        let conn = catalog_at(schema::MIGRATIONS.len());
        insert(&conn, &acme(), "Acme", &[], 1_000).unwrap();
        let settings = TenantSettings {
            retention_days: 7,
            ..TenantSettings::default()
        };
        update_settings(&conn, &acme(), "test", &settings).unwrap();
        let expected = RetentionState {
            id: acme(),
            retention_days: 7,
            activity_floor: Some(1_000),
        };
        assert_eq!(retention_states(&conn).unwrap(), vec![expected.clone()]);
        set_activity_floor(&conn, &acme(), 5_000).unwrap();
        assert_eq!(
            retention_states(&conn).unwrap(),
            vec![RetentionState {
                activity_floor: Some(5_000),
                ..expected
            }]
        );
    }

    #[test]
    fn tenants_from_before_the_floor_existed_are_unknown_so_the_next_pass_visits_them() {
        let mut conn = catalog_at(schema::MIGRATIONS.len() - 1);
        conn.execute(
            "INSERT INTO tenants (id, name, created_at) VALUES ('acme', 'Acme', 1)",
            [],
        )
        .unwrap();
        db::migrate(&mut conn, schema::MIGRATIONS).unwrap();
        let states = retention_states(&conn).unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(states[0].activity_floor, None);
        assert_eq!(
            states[0].retention_days,
            TenantSettings::default().retention_days
        );
    }
}
