//! `chatvault tenant create|list|purge|delete|export-key|rekey|move|route`.

use clap::Subcommand;

use super::{GlobalArgs, Output};
use crate::db::format_time;
use crate::domain::{Origin, TenantId};
use crate::error::Result;

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant with its own encrypted file, widget key and API key.
    Create {
        id: String,
        /// Allowed widget origin, e.g. https://example.com (repeatable).
        #[arg(long = "origin", required = true)]
        origins: Vec<String>,
        #[arg(long)]
        name: Option<String>,
        /// The tenant's initial retention window in days (0 keeps conversations until deleted);
        /// the customer can change it later in the portal.
        #[arg(long, env = "CHATVAULT_DEFAULT_RETENTION_DAYS", default_value_t = 30)]
        retention_days: u32,
    },
    /// List tenants.
    List,
    /// Instantly purge every conversation of a tenant.
    Purge { id: String },
    /// Crypto-shred and remove a tenant entirely.
    Delete { id: String },
    /// Print the tenant's raw data key (64 hex) for opening its file with SQLCipher 4 tools.
    ExportKey { id: String },
    /// Give the tenant a new data key and re-encrypt its file; the old key stops working.
    Rekey { id: String },
    /// Move the tenant between two running nodes of a cluster, without losing a message.
    Move(Box<super::tenant_move::MoveArgs>),
    /// Point HAProxy's tenant map at the node that holds the tenant (live and in the map file).
    Route {
        id: String,
        /// The HAProxy backend that reaches the tenant's node.
        #[arg(long)]
        backend: String,
        /// HAProxy's runtime API socket (`stats socket … level admin`).
        #[arg(long)]
        haproxy_socket: std::path::PathBuf,
        /// The tenant map file, exactly as haproxy.cfg names it.
        #[arg(long)]
        haproxy_map: std::path::PathBuf,
    },
}

const ACTOR: &str = "cli";

pub async fn run(global: &GlobalArgs, out: &Output, cmd: TenantCommand) -> Result<()> {
    match cmd {
        TenantCommand::Create {
            id,
            origins,
            name,
            retention_days,
        } => {
            let id = TenantId::parse(&id)?;
            let origins = origins
                .iter()
                .map(|o| Origin::parse(o))
                .collect::<Result<Vec<_>>>()?;
            let store = global.open_store(4)?;
            let name = name.unwrap_or_else(|| id.to_string());
            let mut settings = crate::catalog::settings::TenantSettings {
                retention_days,
                ..Default::default()
            };
            settings.validate()?;
            let created = store.create_tenant(&id, &name, &origins, ACTOR).await?;
            if settings != crate::catalog::settings::TenantSettings::default() {
                let (tenant, display) = (id.clone(), name.clone());
                settings.retention_days = retention_days;
                store
                    .catalog
                    .call(move |c| {
                        crate::catalog::tenants::update_settings(c, &tenant, &display, &settings)
                    })
                    .await?;
            }
            out.emit(serde_json::to_value(&created).unwrap_or_default(), || {
                format!(
                    "created tenant {}\nwidget key: {}\nAPI key (shown once): {}",
                    created.tenant, created.widget_key, created.api_key
                )
            });
        }
        TenantCommand::List => {
            let store = global.open_store(4)?;
            let tenants = store.catalog.call(crate::catalog::tenants::list).await?;
            let sizes: Vec<u64> = tenants
                .iter()
                .map(|t| {
                    TenantId::parse(&t.id)
                        .map(|id| file_size(&store.dir.tenant_path(&id)))
                        .unwrap_or(0)
                })
                .collect();
            let json = serde_json::json!({ "tenants": tenants.iter().zip(&sizes).map(|(t, size)| serde_json::json!({
                "id": t.id, "name": t.name, "origins": t.origins, "created_at": format_time(t.created_at), "bytes": size,
            })).collect::<Vec<_>>() });
            out.emit(json, || {
                if tenants.is_empty() {
                    return "no tenants".into();
                }
                tenants
                    .iter()
                    .zip(&sizes)
                    .map(|(t, size)| {
                        format!(
                            "{}\t{}\t{} bytes\t{}",
                            t.id,
                            format_time(t.created_at),
                            size,
                            t.origins.join(" ")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        TenantCommand::Purge { id } => {
            let id = TenantId::parse(&id)?;
            let store = global.open_store(4)?;
            store.dir.ensure_no_server()?;
            let report = store.purge_tenant(&id, ACTOR).await?;
            let at = format_time(report.purged_at);
            out.emit(
                serde_json::json!({ "tenant": id.as_str(), "purged_at": at, "conversations": report.conversations, "messages": report.messages }),
                || format!("purged tenant {id}: {} conversations, {} messages", report.conversations, report.messages),
            );
        }
        TenantCommand::Delete { id } => {
            let id = TenantId::parse(&id)?;
            let store = global.open_store(4)?;
            store.dir.ensure_no_server()?;
            store.delete_tenant(&id).await?;
            let at = format_time(crate::db::now_ms());
            out.emit(
                serde_json::json!({ "tenant": id.as_str(), "deleted_at": at }),
                || format!("deleted tenant {id}"),
            );
        }
        TenantCommand::ExportKey { id } => {
            let id = TenantId::parse(&id)?;
            let store = global.open_store(4)?;
            let key = store.export_key(&id, ACTOR).await?.to_hex();
            out.emit(
                serde_json::json!({ "tenant": id.as_str(), "key": key }),
                || key.clone(),
            );
        }
        TenantCommand::Move(args) => super::tenant_move::run(out, *args).await?,
        TenantCommand::Route {
            id,
            backend,
            haproxy_socket,
            haproxy_map,
        } => {
            let id = TenantId::parse(&id)?;
            let map = crate::cluster::haproxy::TenantMap {
                socket: haproxy_socket,
                map: haproxy_map,
            };
            map.route(&id, &backend).await?;
            out.emit(
                serde_json::json!({ "tenant": id.as_str(), "backend": backend }),
                || format!("{id} now routes to {backend}"),
            );
        }
        TenantCommand::Rekey { id } => {
            let id = TenantId::parse(&id)?;
            let store = global.open_store(4)?;
            // A server keeps the file open under the old key; rekey through it instead.
            store.dir.ensure_no_server()?;
            let at = format_time(store.rekey_tenant(&id, ACTOR).await?);
            out.emit(
                serde_json::json!({ "tenant": id.as_str(), "rekeyed_at": at }),
                || format!("tenant {id} has a new data key"),
            );
        }
    }
    Ok(())
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
