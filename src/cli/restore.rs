//! `chatvault restore --from DIR [--force]`: put a backup back into the data directory, which
//! must hold the keyring. Offline.

use std::path::PathBuf;

use clap::Args;

use super::{GlobalArgs, Output};
use crate::backup;
use crate::crypto::MasterKey;
use crate::datadir::DataDir;
use crate::error::Result;
use crate::store::blocking;

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Directory written by `chatvault backup`.
    #[arg(long)]
    pub from: PathBuf,
    /// Replace the catalog and tenant files already in the data directory.
    #[arg(long)]
    pub force: bool,
}

pub async fn run(global: &GlobalArgs, out: &Output, args: RestoreArgs) -> Result<()> {
    let master = MasterKey::load(&global.master_key_source())?;
    let dir = DataDir::open(&global.data_dir)?;
    let report = blocking(move || backup::restore(&dir, &master, &args.from, args.force)).await?;
    out.emit(
        serde_json::json!({ "restored": report.restored, "unreadable": report.unreadable }),
        || {
            let mut text = format!("restored {} tenants", report.restored.len());
            if !report.unreadable.is_empty() {
                text.push_str(&format!(
                    "\nunreadable (their key was destroyed after the backup): {}",
                    report.unreadable.join(", ")
                ));
            }
            text
        },
    );
    Ok(())
}
