//! One tenant's catalog rows, out of one catalog and into another (for `tenant move`): the tenant
//! and its origins, widget keys, API key hashes, portal users and sessions, webhook and audit
//! chain. Rows travel column by column, so a table that gains a column moves it too; a row can
//! only ever land under the tenant being imported.

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, params_from_iter};
use serde::{Deserialize, Serialize};

use crate::domain::TenantId;
use crate::error::{Error, Result};

/// Every table that holds a tenant's rows, parents first, with the column naming the tenant.
/// Idempotency records and webhook delivery logs stay behind (short-lived, per node).
const TABLES: &[(&str, &str)] = &[
    ("tenants", "id"),
    ("origins", "tenant_id"),
    ("widget_keys", "tenant_id"),
    ("api_keys", "tenant_id"),
    ("users", "tenant_id"),
    ("sessions", "tenant_id"),
    ("webhooks", "tenant_id"),
    ("audit", "tenant_id"),
];

/// A tenant's rows from every table in [`TABLES`].
#[derive(Debug, Serialize, Deserialize)]
pub struct TenantRows {
    pub tables: Vec<Table>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// One SQLite value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v", rename_all = "lowercase")]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    /// Hex.
    Blob(String),
}

/// Reads every row of the tenant. The audit chain keeps its order but not its `seq` numbers
/// (the receiving catalog numbers rows itself; the hashes do not cover `seq`).
pub fn export(conn: &Connection, tenant: &TenantId) -> Result<TenantRows> {
    let mut tables = Vec::with_capacity(TABLES.len());
    for &(name, tenant_column) in TABLES {
        let columns: Vec<String> = columns_of(conn, name)?
            .into_iter()
            .filter(|c| !(name == "audit" && c == "seq"))
            .collect();
        let order = if name == "audit" { " ORDER BY seq" } else { "" };
        let sql = format!(
            "SELECT {} FROM {name} WHERE {tenant_column} = ?1{order}",
            quoted(&columns)
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt
            .query_map([tenant.as_str()], |row| {
                (0..columns.len())
                    .map(|i| Ok(cell(row.get_ref(i)?)))
                    .collect::<rusqlite::Result<Vec<_>>>()
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        tables.push(Table {
            name: name.to_owned(),
            columns,
            rows,
        });
    }
    tables_found(tenant, TenantRows { tables })
}

/// Inserts the rows under `tenant`, which must not exist here yet. Call inside one transaction
/// (a catalog job is one), so a failure leaves nothing behind.
pub fn import(conn: &Connection, tenant: &TenantId, rows: &TenantRows) -> Result<()> {
    if super::tenants::exists(conn, tenant)? {
        return Err(Error::Conflict(format!(
            "tenant {tenant} already exists here"
        )));
    }
    for &(name, tenant_column) in TABLES {
        let Some(table) = rows.tables.iter().find(|t| t.name == name) else {
            continue;
        };
        let known = columns_of(conn, name)?;
        if let Some(unknown) = table.columns.iter().find(|c| !known.contains(c)) {
            return Err(Error::invalid(
                "incompatible_bundle",
                format!("column {name}.{unknown} does not exist here; upgrade this node first"),
            ));
        }
        let owner = table
            .columns
            .iter()
            .position(|c| c == tenant_column)
            .ok_or_else(|| {
                Error::invalid("invalid_bundle", format!("{name} rows name no tenant"))
            })?;
        let placeholders = (1..=table.columns.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO {name} ({}) VALUES ({placeholders})",
            quoted(&table.columns)
        );
        let mut stmt = conn.prepare(&sql)?;
        for row in &table.rows {
            if row.len() != table.columns.len()
                || row[owner] != Cell::Text(tenant.as_str().to_owned())
            {
                return Err(Error::invalid(
                    "invalid_bundle",
                    format!("a {name} row does not belong to tenant {tenant}"),
                ));
            }
            stmt.execute(params_from_iter(row.iter().map(value)))?;
        }
    }
    Ok(())
}

fn tables_found(tenant: &TenantId, rows: TenantRows) -> Result<TenantRows> {
    let has_tenant = rows
        .tables
        .iter()
        .any(|t| t.name == "tenants" && !t.rows.is_empty());
    if has_tenant {
        Ok(rows)
    } else {
        Err(Error::not_found(&format!("tenant {tenant}")))
    }
}

fn columns_of(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?;
    Ok(stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Column names are checked against the live schema before they reach SQL; quoting is belt and
/// braces.
fn quoted(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cell(value: ValueRef<'_>) -> Cell {
    match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Int(i),
        ValueRef::Real(f) => Cell::Real(f),
        ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Cell::Blob(hex::encode(b)),
    }
}

fn value(cell: &Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Int(i) => Value::Integer(*i),
        Cell::Real(f) => Value::Real(*f),
        Cell::Text(t) => Value::Text(t.clone()),
        Cell::Blob(h) => Value::Blob(hex::decode(h).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::audit::{self, NewEntry};
    use crate::catalog::{api_keys, schema, tenants};
    use crate::domain::{Origin, WidgetKey};

    fn catalog() -> Connection {
        crate::db::migrated_in_memory(schema::MIGRATIONS)
    }

    fn seed(conn: &Connection, id: &TenantId) {
        let origin = Origin::parse("https://acme.example").unwrap();
        tenants::insert(conn, id, "Acme", &[origin], 1).unwrap();
        tenants::add_widget_key(conn, id, &WidgetKey::generate(id)).unwrap();
        api_keys::insert(
            conn,
            id,
            &api_keys::NewApiKey::generate(id),
            "k",
            &api_keys::Scope::ALL,
        )
        .unwrap();
        for action in ["tenant.created", "settings.changed"] {
            let entry = NewEntry {
                actor: "cli",
                action,
                target: None,
                details: serde_json::json!({}),
            };
            audit::append(conn, id, &entry).unwrap();
        }
    }

    #[test]
    fn a_tenant_moves_whole_and_its_audit_chain_still_verifies() {
        let (source, dest) = (catalog(), catalog());
        let (acme, other) = (
            TenantId::parse("acme").unwrap(),
            TenantId::parse("other").unwrap(),
        );
        seed(&source, &other);
        seed(&source, &acme);
        seed(&dest, &other);

        let rows = export(&source, &acme).unwrap();
        // Through JSON, as on the wire.
        let rows: TenantRows =
            serde_json::from_str(&serde_json::to_string(&rows).unwrap()).unwrap();
        import(&dest, &acme, &rows).unwrap();

        let moved = tenants::get(&dest, &acme).unwrap().unwrap();
        assert_eq!(moved.origins, vec!["https://acme.example".to_owned()]);
        assert_eq!(
            tenants::widget_keys(&dest, &acme).unwrap(),
            tenants::widget_keys(&source, &acme).unwrap()
        );
        assert_eq!(api_keys::list(&dest, &acme).unwrap().len(), 1);
        let chain = audit::verify(&dest, &acme).unwrap();
        assert!(chain.ok && chain.entries == 2, "{chain:?}");
        assert!(audit::verify(&dest, &other).unwrap().ok);

        let again = import(&dest, &acme, &rows).unwrap_err();
        assert!(matches!(again, Error::Conflict(_)));
    }

    #[test]
    fn rows_of_another_tenant_or_unknown_columns_are_refused() {
        let (source, dest) = (catalog(), catalog());
        let acme = TenantId::parse("acme").unwrap();
        seed(&source, &acme);
        let rows = export(&source, &acme).unwrap();

        let mut foreign = serde_json::to_value(&rows).unwrap();
        foreign["tables"][2]["rows"][0][1] = serde_json::json!({"t": "text", "v": "victim"});
        let foreign: TenantRows = serde_json::from_value(foreign).unwrap();
        let tx = dest.unchecked_transaction().unwrap();
        let err = import(&tx, &acme, &foreign).unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");
        drop(tx);
        assert!(!tenants::exists(&dest, &acme).unwrap());

        let mut odd = serde_json::to_value(&rows).unwrap();
        odd["tables"][0]["columns"][0] = serde_json::json!("id\" FROM x; --");
        let odd: TenantRows = serde_json::from_value(odd).unwrap();
        assert!(import(&catalog(), &acme, &odd).is_err());

        assert!(matches!(
            export(&source, &TenantId::parse("nobody").unwrap()),
            Err(Error::NotFound(_))
        ));
    }
}
