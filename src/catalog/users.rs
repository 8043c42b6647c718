//! Portal users (per tenant) and their server-side sessions. Passwords are argon2id hashes;
//! session ids and CSRF tokens are 256-bit random values and only the session id's hash is kept.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::crypto;
use crate::db;
use crate::domain::TenantId;
use crate::error::{Error, Result};

/// What a portal user may do. Each role includes the ones below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn parse(raw: &str) -> Result<Self> {
        match raw {
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            _ => Err(Error::invalid(
                "invalid_role",
                "role must be owner, admin or member",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

/// A user's public record.
#[derive(Clone, Debug, Serialize)]
pub struct User {
    pub email: String,
    pub role: Role,
    pub must_change_password: bool,
    pub created_at: i64,
}

/// Row needed to check a login.
pub struct Credentials {
    pub role: Role,
    pub password_hash: String,
    pub must_change_password: bool,
}

/// A live session.
#[derive(Clone, Debug)]
pub struct Session {
    pub tenant: TenantId,
    pub email: String,
    pub role: Role,
    pub csrf_token: String,
    pub must_change_password: bool,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// Normalises an e-mail for storage and lookup.
pub fn normalize_email(raw: &str) -> Result<String> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(Error::invalid(
            "invalid_email",
            "that is not an e-mail address",
        ));
    }
    Ok(email)
}

pub fn insert(
    conn: &Connection,
    tenant: &TenantId,
    email: &str,
    role: Role,
    password_hash: &str,
) -> Result<()> {
    let inserted = conn.execute(
        "INSERT INTO users (tenant_id, email, role, password_hash, must_change_password, created_at)
         VALUES (?1, ?2, ?3, ?4, 1, ?5) ON CONFLICT DO NOTHING",
        params![tenant.as_str(), email, role.as_str(), password_hash, db::now_ms()],
    )?;
    if inserted == 0 {
        return Err(Error::Conflict(format!("user {email} already exists")));
    }
    Ok(())
}

pub fn credentials(
    conn: &Connection,
    tenant: &TenantId,
    email: &str,
) -> Result<Option<Credentials>> {
    let row = conn
        .query_row(
            "SELECT role, password_hash, must_change_password FROM users WHERE tenant_id = ?1 AND email = ?2",
            [tenant.as_str(), email],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)? != 0)),
        )
        .optional()?;
    row.map(|(role, password_hash, must_change_password)| {
        Ok(Credentials {
            role: Role::parse(&role)?,
            password_hash,
            must_change_password,
        })
    })
    .transpose()
}

pub fn list(conn: &Connection, tenant: &TenantId) -> Result<Vec<User>> {
    let mut stmt = conn.prepare("SELECT email, role, must_change_password, created_at FROM users WHERE tenant_id = ?1 ORDER BY email")?;
    let rows = stmt.query_map([tenant.as_str()], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut users = Vec::new();
    for row in rows {
        let (email, role, must, created_at) = row?;
        users.push(User {
            email,
            role: Role::parse(&role)?,
            must_change_password: must != 0,
            created_at,
        });
    }
    Ok(users)
}

pub fn set_role(conn: &Connection, tenant: &TenantId, email: &str, role: Role) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE users SET role = ?3 WHERE tenant_id = ?1 AND email = ?2",
        params![tenant.as_str(), email, role.as_str()],
    )? > 0)
}

pub fn set_password(
    conn: &Connection,
    tenant: &TenantId,
    email: &str,
    password_hash: &str,
) -> Result<()> {
    conn.execute(
        "UPDATE users SET password_hash = ?3, must_change_password = 0 WHERE tenant_id = ?1 AND email = ?2",
        params![tenant.as_str(), email, password_hash],
    )?;
    Ok(())
}

/// Replaces a user's password with a one-time one (must be changed at the next sign-in) and ends
/// their sessions.
pub fn reset_password(
    conn: &Connection,
    tenant: &TenantId,
    email: &str,
    password_hash: &str,
) -> Result<bool> {
    conn.execute(
        "DELETE FROM sessions WHERE tenant_id = ?1 AND email = ?2",
        [tenant.as_str(), email],
    )?;
    Ok(conn.execute(
        "UPDATE users SET password_hash = ?3, must_change_password = 1 WHERE tenant_id = ?1 AND email = ?2",
        params![tenant.as_str(), email, password_hash],
    )? > 0)
}

pub fn remove(conn: &Connection, tenant: &TenantId, email: &str) -> Result<bool> {
    conn.execute(
        "DELETE FROM sessions WHERE tenant_id = ?1 AND email = ?2",
        [tenant.as_str(), email],
    )?;
    Ok(conn.execute(
        "DELETE FROM users WHERE tenant_id = ?1 AND email = ?2",
        [tenant.as_str(), email],
    )? > 0)
}

/// Creates a session and returns its cookie value and CSRF token.
pub fn create_session(
    conn: &Connection,
    tenant: &TenantId,
    email: &str,
) -> Result<(String, String)> {
    // `<tenant>.<64 hex>`: a load balancer can route the portal's requests by the cookie alone.
    let id = crate::domain::routed(tenant, &crypto::random_token());
    let csrf = crypto::random_token();
    let now = db::now_ms();
    conn.execute(
        "INSERT INTO sessions (id_hash, tenant_id, email, csrf_token, created_at, last_seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![crypto::hash_secret(&id).as_slice(), tenant.as_str(), email, csrf, now],
    )?;
    Ok((id, csrf))
}

/// The live session for a cookie value, touching its last-seen time; expired sessions are
/// deleted and reported as absent.
pub fn session(
    conn: &Connection,
    id: &str,
    idle_ms: i64,
    absolute_ms: i64,
) -> Result<Option<Session>> {
    let hash = crypto::hash_secret(id);
    let row = conn
        .query_row(
            "SELECT s.tenant_id, s.email, u.role, s.csrf_token, u.must_change_password, s.created_at, s.last_seen_at
             FROM sessions s JOIN users u ON u.tenant_id = s.tenant_id AND u.email = s.email
             WHERE s.id_hash = ?1",
            [hash.as_slice()],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?, r.get::<_, i64>(4)?, r.get::<_, i64>(5)?, r.get::<_, i64>(6)?)),
        )
        .optional()?;
    let Some((tenant, email, role, csrf_token, must, created_at, last_seen_at)) = row else {
        return Ok(None);
    };
    let now = db::now_ms();
    if now - last_seen_at > idle_ms || now - created_at > absolute_ms {
        conn.execute("DELETE FROM sessions WHERE id_hash = ?1", [hash.as_slice()])?;
        return Ok(None);
    }
    conn.execute(
        "UPDATE sessions SET last_seen_at = ?2 WHERE id_hash = ?1",
        params![hash.as_slice(), now],
    )?;
    Ok(Some(Session {
        tenant: TenantId::parse(&tenant)?,
        email,
        role: Role::parse(&role)?,
        csrf_token,
        must_change_password: must != 0,
        created_at,
        last_seen_at: now,
    }))
}

pub fn delete_session(conn: &Connection, id: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM sessions WHERE id_hash = ?1",
        [crypto::hash_secret(id).as_slice()],
    )?;
    Ok(())
}

/// Ends every session of a user (password change, removal).
pub fn delete_sessions_of(conn: &Connection, tenant: &TenantId, email: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM sessions WHERE tenant_id = ?1 AND email = ?2",
        [tenant.as_str(), email],
    )?;
    Ok(())
}

/// Hashes a password with argon2id (call off the async runtime: it is deliberately slow).
pub fn hash_password(password: &str) -> Result<String> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Unavailable(format!("password hashing failed: {e}")))
}

/// Checks a password against its stored hash (off the async runtime).
pub fn verify_password(password: &str, stored: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    argon2::password_hash::phc::PasswordHash::new(stored).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// A one-time password: 24 characters from an unambiguous alphabet.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    crypto::random_bytes::<24>()
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email(" Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@localhost",
            "a b@example.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn one_time_passwords_are_long_and_distinct() {
        let a = generate_password();
        assert_eq!(a.len(), 24);
        assert_ne!(a, generate_password());
    }
}
