//! Erasing one conversation so that it leaves no trace: its rows and full-text index entries are
//! deleted (SQLite `secure_delete` and FTS5 `secure-delete` zero the freed bytes), then the WAL
//! is checkpointed with `TRUNCATE`, so no older page image holding the text survives in `-wal`.

use super::{Vault, repo};
use crate::domain::{ConversationId, TenantId};
use crate::error::Result;

impl Vault {
    /// Deletes the conversation and rewrites the WAL; false when there was no such conversation.
    pub async fn erase_conversation(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<bool> {
        let gone = conversation.clone();
        let erased = self
            .call(tenant, move |conn| repo::delete_conversation(conn, &gone))
            .await?;
        if erased {
            self.exclusive(tenant, |conn| {
                Ok(conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?)
            })
            .await?;
        }
        Ok(erased)
    }
}
