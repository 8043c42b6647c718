//! `chatvault key generate|rotate`.

use std::path::PathBuf;

use clap::Subcommand;

use super::{GlobalArgs, Output};
use crate::crypto::{MasterKey, MasterKeySource};
use crate::datadir::DataDir;
use crate::error::{Error, Result};
use crate::store::blocking;

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Print a fresh master key (64 hex characters).
    Generate,
    /// Re-key catalog and keyring and re-wrap every DEK under a new master key (offline).
    Rotate {
        /// File holding the new 64-hex master key (mode 0600). Otherwise CHATVAULT_NEW_MASTER_KEY is read.
        #[arg(long)]
        new_master_key_file: Option<PathBuf>,
    },
}

pub async fn run(global: &GlobalArgs, out: &Output, cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Generate => {
            let key = MasterKey::generate().to_hex();
            out.emit(serde_json::json!({ "master_key": key }), || key.clone());
            Ok(())
        }
        KeyCommand::Rotate {
            new_master_key_file,
        } => {
            let old = MasterKey::load(&global.master_key_source())?;
            let new = load_new_key(new_master_key_file)?;
            let dir = DataDir::open(&global.data_dir)?;
            let report = blocking(move || crate::rotation::rotate(&dir, &old, &new, "cli")).await?;
            let at = crate::db::format_time(report.rotated_at);
            out.emit(
                serde_json::json!({ "rotated_at": at, "tenants": report.tenants }),
                || {
                    format!(
                        "rotated the master key ({} tenant keys re-wrapped); \
                         only the new key opens this data directory now",
                        report.tenants
                    )
                },
            );
            Ok(())
        }
    }
}

fn load_new_key(file: Option<PathBuf>) -> Result<MasterKey> {
    let source = match file {
        Some(path) => MasterKeySource::File(path),
        None if std::env::var_os("CHATVAULT_NEW_MASTER_KEY").is_some() => {
            MasterKeySource::Env("CHATVAULT_NEW_MASTER_KEY".into())
        }
        None => {
            return Err(Error::Config(
                "no new master key: set CHATVAULT_NEW_MASTER_KEY or pass --new-master-key-file PATH \
                 (make one with `chatvault key generate`)"
                    .into(),
            ));
        }
    };
    MasterKey::load(&source)
}
