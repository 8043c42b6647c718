//! `chatvault user add ID EMAIL --role owner|admin|member`.

use clap::Subcommand;

use super::{GlobalArgs, Output};
use crate::catalog::users::{self, Role};
use crate::domain::TenantId;
use crate::error::Result;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a portal user; prints a one-time password that must be changed at first sign-in.
    Add {
        id: String,
        email: String,
        #[arg(long, value_parser = ["owner", "admin", "member"])]
        role: String,
    },
}

pub async fn run(global: &GlobalArgs, out: &Output, cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Add { id, email, role } => {
            let id = TenantId::parse(&id)?;
            let (email, role) = (users::normalize_email(&email)?, Role::parse(&role)?);
            let store = global.open_store(4)?;
            let password = store.add_user(&id, &email, role, "cli").await?;
            out.emit(serde_json::json!({ "tenant": id.as_str(), "email": email, "password": password }), || {
                format!("added {email} ({}) to {id}\none-time password (change it at first sign-in): {password}", role.as_str())
            });
        }
    }
    Ok(())
}
