//! Filling a tenant file fast for the benchmarks: `size` messages in conversations of 20, in one
//! transaction with prepared statements, all from the last few minutes (so a running server's
//! retention sweeper leaves them alone).

use anyhow::Result;
use rusqlite::{Connection, params};

use super::text;

pub fn fill_tenant_file(conn: &mut Connection, size: usize) -> Result<()> {
    let base = chatvault::db::now_ms() - size as i64;
    let tx = conn.transaction()?;
    {
        let mut conv = tx.prepare(
            "INSERT INTO conversations (id, token_hash, started_at, last_at) VALUES (?1, ?2, ?3, ?3)",
        )?;
        let mut msg = tx.prepare(
            "INSERT INTO messages (id, conversation_id, role, text, at, submit_id, tokens)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 40)",
        )?;
        for n in 0..size {
            let c = format!("c{:08}", n / 20);
            if n % 20 == 0 {
                conv.execute(params![c, [0u8; 32], base + n as i64])?;
            }
            let role = if n % 2 == 0 { "visitor" } else { "assistant" };
            let submit = (n % 2 == 0).then(|| format!("s{n}"));
            msg.execute(params![
                format!("m{n:08}"),
                c,
                role,
                text::message(n as u64),
                base + n as i64,
                submit
            ])?;
        }
    }
    chatvault::vault::repo::index_pending_messages(&tx)?;
    tx.commit()?;
    Ok(())
}
