//! `chatvault audit verify ID`: recompute the tenant's audit hash chain.

use clap::Subcommand;

use super::{GlobalArgs, Output};
use crate::catalog::audit;
use crate::domain::TenantId;
use crate::error::{Error, Result};

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check that no entry of the tenant's audit log was edited, inserted or removed.
    Verify { id: String },
}

pub async fn run(global: &GlobalArgs, out: &Output, cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Verify { id } => {
            let id = TenantId::parse(&id)?;
            let store = global.open_store(4)?;
            store.tenant(&id).await?;
            let tenant = id.clone();
            let report = store
                .catalog
                .call(move |c| audit::verify(c, &tenant))
                .await?;
            out.emit(
                serde_json::json!({ "tenant": id.as_str(), "ok": report.ok, "entries": report.entries, "first_bad": report.first_bad }),
                || match report.first_bad {
                    None => format!("audit log of {id}: {} entries, chain intact", report.entries),
                    Some(seq) => format!("audit log of {id}: chain broken at entry {seq}"),
                },
            );
            if !report.ok {
                return Err(Error::Conflict(format!(
                    "the audit log of {id} was altered (first bad entry: {})",
                    report.first_bad.unwrap_or_default()
                )));
            }
        }
    }
    Ok(())
}
