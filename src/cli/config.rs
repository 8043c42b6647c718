//! `chatvault config check [--config FILE] [serve options]`: resolve the configuration as `serve`
//! would (file, environment, flags) and list every problem, one per line; exit non-zero when there is any.

use clap::{Args, Subcommand};

use super::serve::ServeArgs;
use super::{GlobalArgs, Output};
use crate::error::{Error, Result};

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the configuration (file, environment, key, TLS files) without starting.
    Check(CheckArgs),
}

/// The same options as `serve`, so a command line can be checked as it would run.
#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
}

pub async fn run(global: &GlobalArgs, out: &Output, cmd: ConfigCommand) -> Result<()> {
    let ConfigCommand::Check(args) = cmd;
    let problems = args.serve.resolve(global).err().unwrap_or_default();
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
