//! `chatvault config check [--config FILE]`: resolve the configuration as `serve` would (file,
//! then environment) and list every problem, one per line; exit non-zero when there is any.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::serve::ServeArgs;
use super::{GlobalArgs, Output};
use crate::error::{Error, Result};

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the configuration (file, environment, key, TLS files) without starting.
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// TOML configuration file to check together with the environment.
    #[arg(long, env = "CHATVAULT_CONFIG")]
    pub config: Option<PathBuf>,
}

pub async fn run(global: &GlobalArgs, out: &Output, cmd: ConfigCommand) -> Result<()> {
    let ConfigCommand::Check(args) = cmd;
    let serve = ServeArgs {
        config: args.config,
        ..ServeArgs::default()
    };
    let problems = serve.resolve(global).err().unwrap_or_default();
    out.emit(
        serde_json::json!({ "ok": problems.is_empty(), "problems": problems }),
        || {
            if problems.is_empty() {
                "configuration ok".into()
            } else {
                problems.join("\n")
            }
        },
    );
    match problems.len() {
        0 => Ok(()),
        n => Err(Error::Config(format!("{n} configuration problem(s)"))),
    }
}
