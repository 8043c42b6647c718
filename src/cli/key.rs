//! `chatvault key generate`.

use clap::Subcommand;

use super::Output;
use crate::crypto::MasterKey;
use crate::error::Result;

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Print a fresh master key (64 hex characters).
    Generate,
}

pub fn run(out: &Output, cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Generate => {
            let key = MasterKey::generate().to_hex();
            out.emit(serde_json::json!({ "master_key": key }), || key.clone());
            Ok(())
        }
    }
}
