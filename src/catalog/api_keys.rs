//! API keys: `cvk_<id>_<secret>`, shown once, stored as SHA-256 of the secret, scoped and
//! revocable.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::crypto;
use crate::db;
use crate::domain::TenantId;
use crate::error::{Error, Result};

/// What an API key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum Scope {
    #[serde(rename = "history:read")]
    HistoryRead,
    #[serde(rename = "history:delete")]
    HistoryDelete,
    #[serde(rename = "settings:write")]
    SettingsWrite,
    #[serde(rename = "keys:manage")]
    KeysManage,
    #[serde(rename = "knowledge:manage")]
    KnowledgeManage,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::HistoryRead,
        Scope::HistoryDelete,
        Scope::SettingsWrite,
        Scope::KeysManage,
        Scope::KnowledgeManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::HistoryRead => "history:read",
            Scope::HistoryDelete => "history:delete",
            Scope::SettingsWrite => "settings:write",
            Scope::KeysManage => "keys:manage",
            Scope::KnowledgeManage => "knowledge:manage",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// A key's public record.
#[derive(Clone, Debug, Serialize)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A freshly made key: the full secret exists only in this value.
pub struct NewApiKey {
    pub id: String,
    pub secret: String,
}

impl NewApiKey {
    /// A key for `tenant`; its id is `<tenant>.<12 hex>` so a load balancer can route by it.
    pub fn generate(tenant: &TenantId) -> Self {
        Self {
            id: crate::domain::routed(tenant, &hex::encode(crypto::random_bytes::<6>())),
            secret: crypto::random_token(),
        }
    }

    /// The string the customer puts in `Authorization: Bearer …`.
    pub fn token(&self) -> String {
        format!("cvk_{}_{}", self.id, self.secret)
    }
}

/// Splits `cvk_<id>_<secret>` without touching the database. The id is `<tenant>.<12 hex>`, or
/// bare 12 hex for keys made before ids carried their tenant.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("cvk_")?;
    let (id, secret) = rest.split_once('_')?;
    let hex_of = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let (_, random) = crate::domain::split_routed(id)?;
    (hex_of(random, 12) && hex_of(secret, 64)).then_some((id, secret))
}

pub fn insert(
    conn: &Connection,
    tenant: &TenantId,
    key: &NewApiKey,
    name: &str,
    scopes: &[Scope],
) -> Result<()> {
    let scopes = scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    conn.execute(
        "INSERT INTO api_keys (id, tenant_id, name, secret_hash, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![key.id, tenant.as_str(), name, crypto::hash_secret(&key.secret).as_slice(), scopes, db::now_ms()],
    )?;
    Ok(())
}

/// Checks a presented token: the tenant and scopes of a live key, recording its use.
pub fn authenticate(conn: &Connection, token: &str) -> Result<(TenantId, Vec<Scope>)> {
    let unauthorized = || Error::Unauthorized("invalid or revoked API key".into());
    let (id, secret) = parse_token(token).ok_or_else(unauthorized)?;
    let row = conn
        .query_row(
            "SELECT tenant_id, secret_hash, scopes, revoked_at FROM api_keys WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            },
        )
        .optional()?;
    let Some((tenant, hash, scopes, revoked)) = row else {
        return Err(unauthorized());
    };
    if !crypto::secret_matches(secret, &hash) || revoked.is_some() {
        return Err(unauthorized());
    }
    conn.execute(
        "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
        params![id, db::now_ms()],
    )?;
    Ok((
        TenantId::parse(&tenant)?,
        scopes.split(' ').filter_map(Scope::parse).collect(),
    ))
}

pub fn list(conn: &Connection, tenant: &TenantId) -> Result<Vec<ApiKeyInfo>> {
    let mut stmt = conn.prepare(
        "SELECT id, name, scopes, created_at, last_used_at, revoked_at FROM api_keys
         WHERE tenant_id = ?1 ORDER BY created_at",
    )?;
    let rows = stmt.query_map([tenant.as_str()], |r| {
        Ok(ApiKeyInfo {
            id: r.get(0)?,
            name: r.get(1)?,
            scopes: r
                .get::<_, String>(2)?
                .split(' ')
                .filter_map(Scope::parse)
                .collect(),
            created_at: r.get(3)?,
            last_used_at: r.get(4)?,
            revoked_at: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes a key of this tenant; another tenant's key id is reported as not found.
pub fn revoke(conn: &Connection, tenant: &TenantId, id: &str) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE api_keys SET revoked_at = ?3 WHERE id = ?1 AND tenant_id = ?2 AND revoked_at IS NULL",
        params![id, tenant.as_str(), db::now_ms()],
    )? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn only_well_formed_tokens_parse(raw in ".{0,120}") {
            if let Some((id, secret)) = parse_token(&raw) {
                proptest::prop_assert_eq!(format!("cvk_{id}_{secret}"), raw.clone());
                let (tenant, random) = crate::domain::split_routed(id).unwrap();
                proptest::prop_assert!(random.len() == 12 && secret.len() == 64);
                proptest::prop_assert_eq!(tenant.is_some(), id.contains('.'));
            }
        }

        #[test]
        fn generated_tokens_round_trip(tenant in "[a-z0-9][a-z0-9-]{1,20}") {
            let tenant = TenantId::parse(&tenant).unwrap();
            let key = NewApiKey::generate(&tenant);
            let prefix = format!("{tenant}.");
            proptest::prop_assert!(key.id.starts_with(&prefix));
            let token = key.token();
            proptest::prop_assert_eq!(parse_token(&token), Some((key.id.as_str(), key.secret.as_str())));
        }
    }
}
