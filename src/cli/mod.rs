//! The command line (CONTRACT §2): argument types and dispatch. One file per subcommand.

mod audit;
mod backup;
mod config;
pub mod demo;
mod demo_docs;
mod docs;
mod key;
mod policy;
mod restore;
mod serve;
mod tenant;
mod tenant_move;
mod user;
mod verify;

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::crypto::{MasterKey, MasterKeySource};
use crate::datadir::DataDir;
use crate::error::Result;
use crate::store::Store;

#[derive(Parser, Debug)]
#[command(
    name = "chatvault",
    version,
    about = "Privacy-first backend for embeddable AI chat widgets"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Data directory holding catalog.db, keyring.db and one file per tenant.
    #[arg(
        long,
        global = true,
        env = "CHATVAULT_DATA_DIR",
        default_value = "./tenants"
    )]
    pub data_dir: PathBuf,
    /// File holding the 64-hex master key (mode 0600 or stricter). Otherwise CHATVAULT_MASTER_KEY is read.
    #[arg(long, global = true, env = "CHATVAULT_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log format on stderr: text or json.
    #[arg(long, global = true, env = "CHATVAULT_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// True when `--data-dir` came from neither a flag nor the environment (a config file may set it).
    #[arg(skip)]
    pub data_dir_defaulted: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Zero-config demo: ./tenants, a demo key file, a demo tenant and its sample page.
    Demo(demo::DemoArgs),
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Master key operations.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Tenant operations.
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Online, consistent copy of the catalog and tenant files (never the keyring).
    Backup(backup::BackupArgs),
    /// Restore a backup into the data directory (offline).
    Restore(restore::RestoreArgs),
    /// Integrity and cipher integrity check of every file.
    Verify,
    /// A tenant's knowledge base: add and list documents.
    #[command(subcommand)]
    Docs(docs::DocsCommand),
    /// Privacy-policy paragraph that states the tenant's real settings.
    PolicySnippet { id: String },
    /// Configuration checks.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Portal users.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Audit log checks.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

impl Cli {
    /// Parses the process arguments, noting which values fell back to their defaults so a
    /// configuration file can fill them (file < environment < flags).
    pub fn try_parse_tracked() -> std::result::Result<Self, clap::Error> {
        let matches = Self::command().try_get_matches()?;
        let mut cli = Self::from_arg_matches(&matches)?;
        cli.global.data_dir_defaulted = matches!(
            matches.value_source("data_dir"),
            None | Some(clap::parser::ValueSource::DefaultValue)
        );
        Ok(cli)
    }
}

/// Runs a parsed command.
pub async fn run(cli: Cli) -> Result<()> {
    let out = Output {
        json: cli.global.json,
    };
    match cli.command {
        Command::Demo(args) => demo::run(&cli.global, args).await,
        Command::Serve(args) => serve::run(&cli.global, args).await,
        Command::Key(cmd) => key::run(&cli.global, &out, cmd).await,
        Command::Tenant(cmd) => tenant::run(&cli.global, &out, cmd).await,
        Command::Backup(args) => backup::run(&cli.global, &out, args).await,
        Command::Restore(args) => restore::run(&cli.global, &out, args).await,
        Command::Verify => verify::run(&cli.global, &out).await,
        Command::Docs(cmd) => docs::run(&cli.global, &out, cmd).await,
        Command::PolicySnippet { id } => policy::run(&cli.global, &out, &id).await,
        Command::Config(cmd) => config::run(&cli.global, &out, cmd).await,
        Command::User(cmd) => user::run(&cli.global, &out, cmd).await,
        Command::Audit(cmd) => audit::run(&cli.global, &out, cmd).await,
    }
}

impl GlobalArgs {
    /// Where the master key comes from: the file if given, else the environment.
    pub fn master_key_source(&self) -> MasterKeySource {
        match &self.master_key_file {
            Some(path) => MasterKeySource::File(path.clone()),
            None => MasterKeySource::Env("CHATVAULT_MASTER_KEY".into()),
        }
    }

    /// Opens the data directory with the master key.
    pub fn open_store(&self, max_open_tenants: usize) -> Result<Store> {
        self.open_store_with(max_open_tenants, crate::db::Durability::Full)
    }

    /// [`open_store`](Self::open_store) with a commit durability for tenant files (`serve`).
    pub fn open_store_with(
        &self,
        max_open_tenants: usize,
        durability: crate::db::Durability,
    ) -> Result<Store> {
        let master = MasterKey::load(&self.master_key_source())?;
        let dir = DataDir::open(&self.data_dir)?;
        Store::open_with(dir, &master, max_open_tenants, durability)
    }

    /// [`open_store`](Self::open_store), also handing back the master key.
    pub fn open_store_with_key(&self, max_open_tenants: usize) -> Result<(Store, MasterKey)> {
        let master = MasterKey::load(&self.master_key_source())?;
        let dir = DataDir::open(&self.data_dir)?;
        Ok((Store::open(dir, &master, max_open_tenants)?, master))
    }
}

/// Prints results as text or as one JSON object.
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn emit(&self, value: serde_json::Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", text());
        }
    }
}
