use super::*;
use crate::crypto::{DbKey, hash_secret, random_token};
use crate::db::{self, OpenMode};
use crate::vault::schema::MIGRATIONS;

fn tenant_file() -> (tempfile::TempDir, Connection) {
    tenant_file_at(MIGRATIONS)
}

/// A tenant file brought up to the schema `migrations` make.
fn tenant_file_at(migrations: &[&str]) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = db::open_encrypted(
        &dir.path().join("t.db"),
        &DbKey::generate(),
        OpenMode::CreateIfMissing,
    )
    .unwrap();
    db::migrate(&mut conn, migrations).unwrap();
    (dir, conn)
}

fn visitor<'a>(
    conversation: &'a ConversationId,
    text: &'a str,
    submit: &'a SubmitId,
    at: i64,
) -> NewMessage<'a> {
    NewMessage {
        conversation,
        role: Role::Visitor,
        text,
        at,
        submit_id: Some(submit),
        reply_to: None,
        tokens: 3,
    }
}

#[test]
fn a_conversation_keeps_its_messages_in_order() {
    let (_dir, conn) = tenant_file();
    let conv = ConversationId::generate();
    create_conversation(&conn, &conv, &hash_secret(&random_token()), 10).unwrap();
    let s1 = SubmitId::parse("one").unwrap();
    let Inserted::New(first) = insert_message(&conn, &visitor(&conv, "hello", &s1, 11)).unwrap()
    else {
        panic!("first insert must be new")
    };
    let reply = NewMessage {
        conversation: &conv,
        role: Role::Assistant,
        text: "hi there",
        at: 12,
        submit_id: None,
        reply_to: Some(&first),
        tokens: 2,
    };
    insert_message(&conn, &reply).unwrap();
    let messages = all_messages(&conn, &conv).unwrap();
    assert_eq!(
        messages.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["hello", "hi there"]
    );
    assert_eq!(messages[1].role, Role::Assistant);
    assert_eq!(
        reply_to(&conn, &conv, &first).unwrap().unwrap().text,
        "hi there"
    );
    let summary = conversation(&conn, &conv).unwrap().unwrap();
    assert_eq!(
        (summary.started_at, summary.last_at, summary.message_count),
        (10, 12, 2)
    );
}

#[test]
fn a_repeated_submit_id_is_stored_once() {
    let (_dir, conn) = tenant_file();
    let conv = ConversationId::generate();
    create_conversation(&conn, &conv, b"h", 1).unwrap();
    let s = SubmitId::parse("same").unwrap();
    let Inserted::New(id) = insert_message(&conn, &visitor(&conv, "a", &s, 2)).unwrap() else {
        panic!()
    };
    assert_eq!(
        insert_message(&conn, &visitor(&conv, "a", &s, 3)).unwrap(),
        Inserted::Duplicate(id)
    );
    assert_eq!(totals(&conn).unwrap().messages, 1);
}

#[test]
fn the_same_submit_id_in_another_conversation_is_a_new_message() {
    let (_dir, conn) = tenant_file();
    let s = SubmitId::parse("same").unwrap();
    for _ in 0..2 {
        let conv = ConversationId::generate();
        create_conversation(&conn, &conv, b"h", 1).unwrap();
        assert!(matches!(
            insert_message(&conn, &visitor(&conv, "a", &s, 2)).unwrap(),
            Inserted::New(_)
        ));
    }
    assert_eq!(
        totals(&conn).unwrap(),
        Totals {
            conversations: 2,
            messages: 2
        }
    );
}

#[test]
fn deleting_a_conversation_removes_its_messages_and_updates_totals() {
    let (_dir, conn) = tenant_file();
    let keep = ConversationId::generate();
    let gone = ConversationId::generate();
    for conv in [&keep, &gone] {
        create_conversation(&conn, conv, b"h", 1).unwrap();
        for i in 0..3 {
            let s = SubmitId::parse(&format!("s{i}")).unwrap();
            insert_message(&conn, &visitor(conv, "canary words", &s, 2)).unwrap();
        }
    }
    assert!(delete_conversation(&conn, &gone).unwrap());
    assert!(!delete_conversation(&conn, &gone).unwrap());
    assert!(conversation(&conn, &gone).unwrap().is_none());
    assert!(all_messages(&conn, &gone).unwrap().is_empty());
    assert_eq!(
        totals(&conn).unwrap(),
        Totals {
            conversations: 1,
            messages: 3
        }
    );
    // `gone` was deleted while its messages still waited for the index.
    assert_eq!(index_pending_messages(&conn).unwrap(), 3);
    assert_eq!(fts_hits(&conn, "canary"), 3);
    assert_fts_consistent(&conn);
}

fn fts_hits(conn: &Connection, word: &str) -> i64 {
    conn.query_row(
        "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?1",
        [word],
        |r| r.get(0),
    )
    .unwrap()
}

/// FTS5 compares its index with the content table (`messages`) row by row.
fn assert_fts_consistent(conn: &Connection) {
    conn.execute(
        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
        [],
    )
    .unwrap();
}

/// A new conversation holding `count` visitor messages that say `text` (submit ids s0, s1, …).
fn conversation_saying(conn: &Connection, text: &str, count: i64) -> ConversationId {
    let conv = ConversationId::generate();
    create_conversation(conn, &conv, b"h", 1).unwrap();
    for i in 0..count {
        let s = SubmitId::parse(&format!("s{i}")).unwrap();
        insert_message(conn, &visitor(&conv, text, &s, i)).unwrap();
    }
    conv
}

#[test]
fn new_messages_reach_the_index_in_one_step_and_deletes_keep_it_consistent() {
    let (_dir, conn) = tenant_file();
    let a = conversation_saying(&conn, "lantern", 3);
    let b = conversation_saying(&conn, "lantern", 3);
    assert_eq!(fts_hits(&conn, "lantern"), 0, "indexed before the step");
    assert_eq!(index_pending_messages(&conn).unwrap(), 6);
    assert_eq!(index_pending_messages(&conn).unwrap(), 0);
    assert_eq!(fts_hits(&conn, "lantern"), 6);
    // Deleting indexed rows removes their tokens; the newest row's seq is then reused by the
    // next insert, which must still be indexed.
    assert!(delete_conversation(&conn, &b).unwrap());
    assert_eq!(fts_hits(&conn, "lantern"), 3);
    let s = SubmitId::parse("again").unwrap();
    insert_message(&conn, &visitor(&a, "harbour", &s, 3)).unwrap();
    assert_eq!(index_pending_messages(&conn).unwrap(), 1);
    assert_eq!(fts_hits(&conn, "harbour"), 1);
    assert_fts_consistent(&conn);
}

#[test]
fn a_hurried_commit_indexes_only_a_backlog() {
    let (_dir, conn) = tenant_file();
    let conv = ConversationId::generate();
    create_conversation(&conn, &conv, b"h", 1).unwrap();
    for i in 0..INDEX_BACKLOG {
        assert_eq!(fts_hits(&conn, "sextant"), 0, "indexed after {i} messages");
        let s = SubmitId::parse(&format!("s{i}")).unwrap();
        insert_message(&conn, &visitor(&conv, "sextant", &s, i)).unwrap();
        index_before_commit(&conn, false).unwrap();
    }
    assert_eq!(fts_hits(&conn, "sextant"), INDEX_BACKLOG);
    assert_eq!(index_pending_messages(&conn).unwrap(), 0);
}

#[test]
fn a_patient_commit_indexes_waiting_messages_in_groups() {
    let (_dir, conn) = tenant_file();
    let conv = ConversationId::generate();
    create_conversation(&conn, &conv, b"h", 1).unwrap();
    let add = |i: i64| {
        let s = SubmitId::parse(&format!("s{i}")).unwrap();
        insert_message(&conn, &visitor(&conv, "compass", &s, i)).unwrap();
    };
    for i in 0..INDEX_GROUP - 1 {
        add(i);
        index_before_commit(&conn, true).unwrap();
    }
    assert_eq!(
        fts_hits(&conn, "compass"),
        0,
        "a group waits until it is whole"
    );
    add(INDEX_GROUP);
    index_before_commit(&conn, true).unwrap();
    assert_eq!(fts_hits(&conn, "compass"), INDEX_GROUP);
    assert_eq!(index_pending_messages(&conn).unwrap(), 0);
    assert_fts_consistent(&conn);
}

#[test]
fn integrity_check_passes_while_messages_wait_for_the_index() {
    let (_dir, conn) = tenant_file();
    conversation_saying(&conn, "waiting", 3);
    // What `chatvault verify` runs: it must not take a waiting row for a damaged index.
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(verdict, "ok");
}

#[test]
fn the_turn_count_counts_visitor_messages_only() {
    let (_dir, conn) = tenant_file();
    let conv = ConversationId::generate();
    create_conversation(&conn, &conv, b"h", 1).unwrap();
    assert_eq!(visitor_turns(&conn, &conv).unwrap(), Some(0));
    for i in 0..3 {
        let s = SubmitId::parse(&format!("s{i}")).unwrap();
        let Inserted::New(asked) = insert_message(&conn, &visitor(&conv, "q", &s, i)).unwrap()
        else {
            panic!("a new submit id was taken for a resend");
        };
        let reply = NewMessage {
            conversation: &conv,
            role: Role::Assistant,
            text: "a",
            at: i,
            submit_id: None,
            reply_to: Some(&asked),
            tokens: 1,
        };
        insert_message(&conn, &reply).unwrap();
    }
    // A resent submit is not a new turn.
    let s = SubmitId::parse("s0").unwrap();
    insert_message(&conn, &visitor(&conv, "q", &s, 9)).unwrap();
    assert_eq!(visitor_turns(&conn, &conv).unwrap(), Some(3));
    assert_eq!(
        visitor_turns(&conn, &ConversationId::generate()).unwrap(),
        None
    );
}

#[test]
fn migrating_a_version_3_file_keeps_its_index_and_counts_its_turns() {
    let (_dir, mut conn) = tenant_file_at(&MIGRATIONS[..3]);
    let conv = ConversationId::generate();
    create_conversation(&conn, &conv, b"h", 1).unwrap();
    for (i, role) in ["visitor", "assistant", "visitor"].iter().enumerate() {
        conn.execute(
            "INSERT INTO messages (id, conversation_id, role, text, at) VALUES (?1, ?2, ?3, 'beacon', 1)",
            params![format!("m_old{i}"), conv.as_str(), role],
        )
        .unwrap();
    }
    db::migrate(&mut conn, MIGRATIONS).unwrap();
    assert_eq!(visitor_turns(&conn, &conv).unwrap(), Some(2));
    assert_eq!(index_pending_messages(&conn).unwrap(), 0);
    assert_eq!(fts_hits(&conn, "beacon"), 3);
    assert!(delete_conversation(&conn, &conv).unwrap());
    assert_eq!(fts_hits(&conn, "beacon"), 0);
    assert_fts_consistent(&conn);
}

#[test]
fn migrating_a_version_4_file_indexes_its_queue_and_keeps_finding_replies() {
    let (_dir, mut conn) = tenant_file_at(&MIGRATIONS[..4]);
    let conv = ConversationId::generate();
    create_conversation(&conn, &conv, b"h", 1).unwrap();
    // Three messages indexed by the version-4 writer, two still in its queue.
    let mut ids = Vec::new();
    for i in 0..5 {
        let s = SubmitId::parse(&format!("s{i}")).unwrap();
        ids.push(insert_new_message(&conn, &visitor(&conv, "beacon", &s, i)).unwrap());
        if i == 2 {
            conn.execute_batch(
                "INSERT INTO messages_fts (rowid, text)
                     SELECT m.seq, m.text FROM fts_pending p JOIN messages m ON m.seq = p.seq;
                 DELETE FROM fts_pending;",
            )
            .unwrap();
        }
    }
    let reply = NewMessage {
        conversation: &conv,
        role: Role::Assistant,
        text: "lighthouse",
        at: 9,
        submit_id: None,
        reply_to: Some(&ids[4]),
        tokens: 1,
    };
    insert_message(&conn, &reply).unwrap();
    db::migrate(&mut conn, MIGRATIONS).unwrap();

    assert_eq!(
        index_pending_messages(&conn).unwrap(),
        0,
        "the queue was indexed"
    );
    assert_eq!(fts_hits(&conn, "beacon"), 5);
    assert_eq!(fts_hits(&conn, "lighthouse"), 1);
    assert_fts_consistent(&conn);
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master
             WHERE name IN ('fts_pending', 'messages_by_reply_to')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
    assert_eq!(
        reply_to(&conn, &conv, &ids[4]).unwrap().unwrap().text,
        "lighthouse"
    );
    assert!(reply_to(&conn, &conv, &ids[3]).unwrap().is_none());
    assert!(delete_conversation(&conn, &conv).unwrap());
    assert_eq!(fts_hits(&conn, "lighthouse"), 0);
    assert_fts_consistent(&conn);
}

#[test]
fn a_mark_lowered_by_deletes_leaves_no_new_row_unindexed() {
    let (_dir, conn) = tenant_file();
    let keep = conversation_saying(&conn, "anchor", 2);
    let newest = conversation_saying(&conn, "anchor", 3);
    assert_eq!(index_pending_messages(&conn).unwrap(), 5);
    // The three newest rows, all below the mark, go; their seqs come back for new rows, one
    // of which is then deleted again before it was ever indexed.
    assert!(delete_conversation(&conn, &newest).unwrap());
    let again = conversation_saying(&conn, "buoy", 2);
    assert_eq!(fts_hits(&conn, "buoy"), 0);
    assert!(delete_conversation(&conn, &again).unwrap());
    // (FTS5's check compares the index with every content row, so it runs only when none wait.)
    assert_fts_consistent(&conn);
    let last = conversation_saying(&conn, "buoy", 1);
    assert_eq!(index_pending_messages(&conn).unwrap(), 1);
    assert_eq!(fts_hits(&conn, "buoy"), 1);
    assert_eq!(fts_hits(&conn, "anchor"), 2);
    assert_fts_consistent(&conn);
    assert!(delete_conversation(&conn, &last).unwrap());
    assert!(delete_conversation(&conn, &keep).unwrap());
    assert_eq!(index_pending_messages(&conn).unwrap(), 0);
    assert_fts_consistent(&conn);
}

#[test]
fn recent_messages_returns_the_newest_in_chronological_order() {
    let (_dir, conn) = tenant_file();
    let conv = ConversationId::generate();
    create_conversation(&conn, &conv, b"h", 1).unwrap();
    for i in 0..5 {
        let s = SubmitId::parse(&format!("s{i}")).unwrap();
        insert_message(&conn, &visitor(&conv, &format!("m{i}"), &s, i)).unwrap();
    }
    let last = recent_messages(&conn, &conv, 2).unwrap();
    assert_eq!(
        last.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["m3", "m4"]
    );
}

#[test]
fn prompt_history_is_the_newest_turns_in_order_without_the_resent_message() {
    let (_dir, conn) = tenant_file();
    let conv = ConversationId::generate();
    create_conversation(&conn, &conv, b"h", 1).unwrap();
    let mut ids = Vec::new();
    for i in 0..4 {
        let s = SubmitId::parse(&format!("s{i}")).unwrap();
        ids.push(insert_new_message(&conn, &visitor(&conv, &format!("m{i}"), &s, i)).unwrap());
    }
    let texts = |except: Option<&MessageId>| -> Vec<String> {
        prompt_history(&conn, &conv, 3, except)
            .unwrap()
            .into_iter()
            .map(|(role, text)| {
                assert_eq!(role, Role::Visitor);
                text
            })
            .collect()
    };
    assert_eq!(texts(None), ["m1", "m2", "m3"]);
    assert_eq!(texts(Some(&ids[2])), ["m0", "m1", "m3"]);
    assert!(
        prompt_history(&conn, &ConversationId::generate(), 3, None)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn usage_accumulates_per_day_and_resets() {
    let (_dir, conn) = tenant_file();
    let delta = DailyUsage {
        day: "2026-11-25".into(),
        messages: 1,
        replies: 1,
        tokens_in: 10,
        tokens_out: 20,
    };
    add_usage(&conn, &delta).unwrap();
    add_usage(&conn, &delta).unwrap();
    let day = usage_on(&conn, "2026-11-25").unwrap();
    assert_eq!((day.messages, day.tokens_in, day.tokens_out), (2, 20, 40));
    assert_eq!(usage_on(&conn, "2026-11-24").unwrap().messages, 0);
    assert_eq!(usage_days(&conn, 10).unwrap().len(), 1);
    reset_usage(&conn).unwrap();
    assert!(usage_days(&conn, 10).unwrap().is_empty());
}

fn usage(day: &str, messages: i64, tokens_out: i64) -> DailyUsage {
    DailyUsage {
        day: day.into(),
        messages,
        replies: messages,
        tokens_in: 1,
        tokens_out,
    }
}

fn usage_table(conn: &Connection) -> Vec<(String, i64, i64, i64, i64)> {
    usage_days(conn, 10)
        .unwrap()
        .into_iter()
        .map(|u| (u.day, u.messages, u.replies, u.tokens_in, u.tokens_out))
        .collect()
}

#[test]
fn a_new_day_moves_the_last_days_usage_to_the_history() {
    let (_dir, conn) = tenant_file();
    add_usage(&conn, &usage("2026-11-24", 1, 5)).unwrap();
    add_usage(&conn, &usage("2026-11-24", 2, 5)).unwrap();
    add_usage(&conn, &usage("2026-11-25", 4, 7)).unwrap();
    // The clock stepped back over midnight: the earlier day is already history.
    add_usage(&conn, &usage("2026-11-24", 8, 1)).unwrap();
    add_usage(&conn, &usage("2026-11-26", 16, 2)).unwrap();
    let history: i64 = conn
        .query_row("SELECT count(*) FROM usage_daily", [], |r| r.get(0))
        .unwrap();
    assert_eq!(history, 2, "the current day is not in the history yet");
    assert_eq!(
        usage_table(&conn),
        [
            ("2026-11-26".into(), 16, 16, 1, 2),
            ("2026-11-25".into(), 4, 4, 1, 7),
            ("2026-11-24".into(), 11, 11, 3, 11),
        ]
    );
    assert_eq!(usage_on(&conn, "2026-11-25").unwrap().tokens_out, 7);
    assert_eq!(usage_on(&conn, "2026-11-26").unwrap().messages, 16);
    assert_eq!(usage_days(&conn, 1).unwrap().len(), 1);
    reset_usage(&conn).unwrap();
    assert!(usage_table(&conn).is_empty());
    assert_eq!(usage_on(&conn, "2026-11-26").unwrap().messages, 0);
}

#[test]
fn migrating_a_version_5_file_keeps_the_days_usage() {
    let (_dir, mut conn) = tenant_file_at(&MIGRATIONS[..5]);
    conn.execute(
        "INSERT INTO usage_daily (day, messages, replies, tokens_in, tokens_out)
         VALUES ('2026-11-24', 3, 3, 30, 60), ('2026-11-25', 1, 1, 10, 20)",
        [],
    )
    .unwrap();
    db::migrate(&mut conn, MIGRATIONS).unwrap();
    add_usage(&conn, &usage("2026-11-25", 1, 5)).unwrap();
    assert_eq!(
        usage_table(&conn),
        [
            ("2026-11-25".into(), 2, 2, 11, 25),
            ("2026-11-24".into(), 3, 3, 30, 60),
        ]
    );
    add_usage(&conn, &usage("2026-11-26", 1, 5)).unwrap();
    assert_eq!(usage_on(&conn, "2026-11-25").unwrap().tokens_out, 25);
}

#[test]
fn stored_token_hashes_come_back() {
    let (_dir, conn) = tenant_file();
    let conv = ConversationId::generate();
    let token = random_token();
    create_conversation(&conn, &conv, &hash_secret(&token), 1).unwrap();
    let stored = token_hash(&conn, &conv).unwrap().unwrap();
    assert!(crate::crypto::secret_matches(&token, &stored));
    assert!(
        token_hash(&conn, &ConversationId::generate())
            .unwrap()
            .is_none()
    );
}

#[test]
fn an_unchecked_insert_of_a_stored_submit_id_is_refused_by_the_schema() {
    let (_dir, conn) = tenant_file();
    let conv = ConversationId::generate();
    create_conversation(&conn, &conv, &hash_secret(&random_token()), 10).unwrap();
    let submit = SubmitId::parse("once").unwrap();
    insert_new_message(&conn, &visitor(&conv, "first", &submit, 11)).unwrap();
    assert!(insert_new_message(&conn, &visitor(&conv, "again", &submit, 12)).is_err());
    assert_eq!(all_messages(&conn, &conv).unwrap().len(), 1);
}
