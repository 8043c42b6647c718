//! Everything persistent behind one value: the data directory, catalog, keyring and tenant
//! vault, plus the tenant lifecycle operations that span them (create, purge, delete, export
//! key), each recorded in the audit log. The CLI and the HTTP API both call these.

use serde::Serialize;

use crate::catalog::api_keys::{self, NewApiKey, Scope};
use crate::catalog::audit::{self, NewEntry};
use crate::catalog::{Catalog, tenants};
use crate::crypto::{DbKey, MasterKey};
use crate::datadir::DataDir;
use crate::domain::{Origin, TenantId, WidgetKey};
use crate::error::{Error, Result};
use crate::keyring::Keyring;
use crate::vault::{PurgeReport, Vault};

/// The persistent state of one data directory.
#[derive(Clone)]
pub struct Store {
    pub dir: DataDir,
    pub catalog: Catalog,
    pub vault: Vault,
}

/// What `tenant create` hands back (the keys are shown only here).
#[derive(Debug, Serialize)]
pub struct CreatedTenant {
    pub tenant: String,
    pub widget_key: String,
    pub api_key: String,
}

impl Store {
    /// Opens the data directory; the catalog is opened first so a wrong master key touches nothing.
    /// A master key rotation that a crash interrupted is completed or discarded first.
    pub fn open(dir: DataDir, master: &MasterKey, max_open_tenants: usize) -> Result<Self> {
        Self::open_with(dir, master, max_open_tenants, crate::db::Durability::Full)
    }

    /// [`open`](Self::open) with the operator's choice of commit durability for tenant files.
    pub fn open_with(
        dir: DataDir,
        master: &MasterKey,
        max_open_tenants: usize,
        durability: crate::db::Durability,
    ) -> Result<Self> {
        crate::rotation::recover(&dir)?;
        let catalog = Catalog::open(&dir, master)?;
        let keyring = Keyring::open(&dir, master)?;
        dir.empty_trash();
        let vault = Vault::new(dir.clone(), keyring, max_open_tenants).with_durability(durability);
        Ok(Self {
            dir,
            catalog,
            vault,
        })
    }

    /// Creates a tenant: its DEK and file, an origin allow-list, a widget key and an
    /// all-scopes API key.
    pub async fn create_tenant(
        &self,
        id: &TenantId,
        name: &str,
        origins: &[Origin],
        actor: &str,
    ) -> Result<CreatedTenant> {
        if origins.is_empty() {
            return Err(Error::invalid(
                "invalid_origin",
                "a tenant needs at least one --origin",
            ));
        }
        let probe = id.clone();
        if self
            .catalog
            .call(move |c| tenants::exists(c, &probe))
            .await?
        {
            return Err(Error::Conflict(format!("tenant {id} already exists")));
        }
        let vault = self.vault.clone();
        let file_id = id.clone();
        blocking(move || vault.create_tenant_blocking(&file_id)).await?;

        let widget_key = WidgetKey::generate(id);
        let api_key = NewApiKey::generate(id);
        let created = CreatedTenant {
            tenant: id.to_string(),
            widget_key: widget_key.to_string(),
            api_key: api_key.token(),
        };
        let (id, name, origins, actor) = (
            id.clone(),
            name.to_owned(),
            origins.to_vec(),
            actor.to_owned(),
        );
        self.catalog
            .call(move |c| {
                tenants::insert(c, &id, &name, &origins, crate::db::now_ms())?;
                tenants::add_widget_key(c, &id, &widget_key)?;
                api_keys::insert(c, &id, &api_key, "initial", &Scope::ALL)?;
                let details = serde_json::json!({ "origins": origins.iter().map(Origin::as_str).collect::<Vec<_>>() });
                audit::append(c, &id, &NewEntry { actor: &actor, action: "tenant.created", target: Some(id.as_str()), details })
            })
            .await?;
        Ok(created)
    }

    /// The tenant, or 404.
    pub async fn tenant(&self, id: &TenantId) -> Result<tenants::Tenant> {
        let probe = id.clone();
        self.catalog
            .call(move |c| tenants::get(c, &probe))
            .await?
            .ok_or_else(|| Error::not_found(&format!("tenant {id}")))
    }

    /// Purges all conversations of the tenant at once and records it.
    pub async fn purge_tenant(&self, id: &TenantId, actor: &str) -> Result<PurgeReport> {
        self.tenant(id).await?;
        let report = self.vault.purge(id).await?;
        let details = serde_json::json!({ "conversations": report.conversations, "messages": report.messages });
        self.audit(id, actor, "history.purged", None, details)
            .await?;
        Ok(report)
    }

    /// Crypto-shreds the tenant and removes every trace of it from the catalog.
    pub async fn delete_tenant(&self, id: &TenantId) -> Result<()> {
        self.tenant(id).await?;
        self.vault.delete(id).await?;
        let gone = id.clone();
        self.catalog
            .call(move |c| {
                tenants::delete(c, &gone)?;
                audit::delete_tenant(c, &gone)
            })
            .await?;
        tracing::info!(tenant = %id, "tenant deleted");
        Ok(())
    }

    /// The tenant's raw DEK, for opening its file with any SQLCipher 4 tool. Audited.
    pub async fn export_key(&self, id: &TenantId, actor: &str) -> Result<DbKey> {
        self.tenant(id).await?;
        let vault = self.vault.clone();
        let key_id = id.clone();
        let key = blocking(move || vault.tenant_key_blocking(&key_id)).await?;
        self.audit(
            id,
            actor,
            "tenant.key_exported",
            None,
            serde_json::json!({}),
        )
        .await?;
        Ok(key)
    }

    /// Adds a portal user with a one-time password (returned once; must be changed at first login).
    pub async fn add_user(
        &self,
        id: &TenantId,
        email: &str,
        role: crate::catalog::users::Role,
        actor: &str,
    ) -> Result<String> {
        use crate::catalog::users;
        self.tenant(id).await?;
        let password = users::generate_password();
        let plain = password.clone();
        let hash = blocking(move || users::hash_password(&plain)).await?;
        let (tenant, address) = (id.clone(), email.to_owned());
        self.catalog
            .call(move |c| users::insert(c, &tenant, &address, role, &hash))
            .await?;
        self.audit(
            id,
            actor,
            "user.added",
            Some(email),
            serde_json::json!({ "role": role.as_str() }),
        )
        .await?;
        Ok(password)
    }

    /// Moves the tenant's file to a fresh DEK, online, and records it. Returns when (ms).
    pub async fn rekey_tenant(&self, id: &TenantId, actor: &str) -> Result<i64> {
        self.tenant(id).await?;
        let at = self.vault.rekey(id).await?;
        self.audit(id, actor, "tenant.rekeyed", None, serde_json::json!({}))
            .await?;
        Ok(at)
    }

    /// Records an administrative action in the tenant's audit chain.
    pub async fn audit(
        &self,
        id: &TenantId,
        actor: &str,
        action: &str,
        target: Option<&str>,
        details: serde_json::Value,
    ) -> Result<()> {
        let (id, actor, action, target) = (
            id.clone(),
            actor.to_owned(),
            action.to_owned(),
            target.map(str::to_owned),
        );
        self.catalog
            .call(move |c| {
                let entry = NewEntry {
                    actor: &actor,
                    action: &action,
                    target: target.as_deref(),
                    details,
                };
                audit::append(c, &id, &entry)
            })
            .await
    }
}

/// Runs blocking work (file creation, key unwrapping, password hashing) off the async runtime.
pub async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Unavailable(format!("a blocking task failed: {e}")))?
}
