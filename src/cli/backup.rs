//! `chatvault backup --out DIR`: an online, consistent copy of the catalog and every tenant
//! file, never the keyring.

use std::path::PathBuf;

use clap::Args;

use super::{GlobalArgs, Output};
use crate::backup;
use crate::error::Result;

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// New or empty directory to write the backup into (created with mode 0700).
    #[arg(long)]
    pub out: PathBuf,
}

pub async fn run(global: &GlobalArgs, out: &Output, args: BackupArgs) -> Result<()> {
    let (store, master) = global.open_store_with_key(4)?;
    let report = backup::backup(&store, &master, &args.out).await?;
    out.emit(
        serde_json::json!({ "out": report.out, "tenants": report.tenants, "bytes": report.bytes }),
        || {
            format!(
                "backed up the catalog and {} tenant files ({} bytes) to {}\n\
                 the keyring is not in the backup: keep keyring.db safe, it is the only way to read it",
                report.tenants,
                report.bytes,
                report.out.display()
            )
        },
    );
    Ok(())
}
