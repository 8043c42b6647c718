//! The schema of a tenant file, one migration per `user_version`.

/// `MIGRATIONS[i]` takes a tenant file from version i to i+1.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE conversations (
    id            TEXT PRIMARY KEY,
    token_hash    BLOB NOT NULL,
    started_at    INTEGER NOT NULL,
    last_at       INTEGER NOT NULL,
    message_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX conversations_by_last_at ON conversations (last_at);

CREATE TABLE messages (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('visitor', 'assistant')),
    text            TEXT NOT NULL,
    at              INTEGER NOT NULL,
    -- the client's submit id (visitor) or the visitor message this answers (assistant)
    submit_id       TEXT,
    reply_to        TEXT,
    tokens          INTEGER NOT NULL DEFAULT 0,
    flags           TEXT,
    UNIQUE (conversation_id, submit_id)
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, seq);
CREATE INDEX messages_by_reply_to ON messages (reply_to) WHERE reply_to IS NOT NULL;

-- Running totals so a purge can report its counts without scanning a large file.
CREATE TABLE totals (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    conversations INTEGER NOT NULL,
    messages      INTEGER NOT NULL
);
INSERT INTO totals (id, conversations, messages) VALUES (1, 0, 0);

CREATE TABLE usage_daily (
    day        TEXT PRIMARY KEY,
    messages   INTEGER NOT NULL DEFAULT 0,
    replies    INTEGER NOT NULL DEFAULT 0,
    tokens_in  INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Full-text search over message text. secure-delete makes FTS5 remove a deleted row's
-- tokens from the index itself instead of leaving them behind a delete marker.
CREATE VIRTUAL TABLE messages_fts USING fts5 (text, content = 'messages', content_rowid = 'seq');
INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);

CREATE TRIGGER messages_after_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (NEW.seq, NEW.text);
    UPDATE conversations SET message_count = message_count + 1, last_at = max(last_at, NEW.at)
        WHERE id = NEW.conversation_id;
    UPDATE totals SET messages = messages + 1 WHERE id = 1;
END;
CREATE TRIGGER messages_after_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', OLD.seq, OLD.text);
    UPDATE totals SET messages = messages - 1 WHERE id = 1;
END;
CREATE TRIGGER conversations_after_insert AFTER INSERT ON conversations BEGIN
    UPDATE totals SET conversations = conversations + 1 WHERE id = 1;
END;
CREATE TRIGGER conversations_after_delete AFTER DELETE ON conversations BEGIN
    UPDATE totals SET conversations = conversations - 1 WHERE id = 1;
END;
"#,
    // 1 → 2: the knowledge base. Passages keep a copy of their document's title so the index
    // can weight it; `secure-delete` again makes a deleted passage leave no tokens behind.
    r#"
CREATE TABLE documents (
    seq        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    title      TEXT NOT NULL,
    url        TEXT,
    format     TEXT NOT NULL CHECK (format IN ('text', 'markdown', 'html')),
    -- the reduced text (what passages were cut from), for previews
    text       TEXT NOT NULL,
    chars      INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE passages (
    seq          INTEGER PRIMARY KEY,
    document_seq INTEGER NOT NULL REFERENCES documents (seq) ON DELETE CASCADE,
    ord          INTEGER NOT NULL,
    title        TEXT NOT NULL,
    text         TEXT NOT NULL,
    UNIQUE (document_seq, ord)
);

CREATE VIRTUAL TABLE passages_fts USING fts5 (
    title, text, content = 'passages', content_rowid = 'seq',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
INSERT INTO passages_fts (passages_fts, rank) VALUES ('secure-delete', 1);

CREATE TRIGGER passages_after_insert AFTER INSERT ON passages BEGIN
    INSERT INTO passages_fts (rowid, title, text) VALUES (NEW.seq, NEW.title, NEW.text);
END;
CREATE TRIGGER passages_after_delete AFTER DELETE ON passages BEGIN
    INSERT INTO passages_fts (passages_fts, rowid, title, text)
        VALUES ('delete', OLD.seq, OLD.title, OLD.text);
END;
"#,
    // Embedding vectors of passages (little-endian f32), only when an embeddings endpoint is
    // configured; they live and die with their passage, inside the tenant's encrypted file.
    r#"
CREATE TABLE passage_vectors (
    passage_seq INTEGER PRIMARY KEY REFERENCES passages (seq) ON DELETE CASCADE,
    vector      BLOB NOT NULL
);
"#,
    // 3 → 4: cheaper writes. A conversation counts its visitor messages (the turn limit read a
    // count over every row of the conversation per submit), and new messages reach the
    // full-text index once per commit instead of once per write: FTS5 flushes a segment at every
    // savepoint, and the tenant writer runs each job in its own. The insert trigger queues the
    // row in `fts_pending`; the writer indexes the queue in groups before a commit
    // (`repo::index_before_commit`) and a search indexes whatever is left first.
    r#"
ALTER TABLE conversations ADD COLUMN visitor_count INTEGER NOT NULL DEFAULT 0;
UPDATE conversations SET visitor_count =
    (SELECT count(*) FROM messages m WHERE m.conversation_id = conversations.id AND m.role = 'visitor');

CREATE TABLE fts_pending (seq INTEGER PRIMARY KEY);

DROP TRIGGER messages_after_insert;
CREATE TRIGGER messages_after_insert AFTER INSERT ON messages BEGIN
    INSERT INTO fts_pending (seq) VALUES (NEW.seq);
    UPDATE conversations SET message_count = message_count + 1,
            visitor_count = visitor_count + (NEW.role = 'visitor'),
            last_at = max(last_at, NEW.at)
        WHERE id = NEW.conversation_id;
    UPDATE totals SET messages = messages + 1 WHERE id = 1;
END;
-- A row still queued was never indexed: it leaves the queue instead (FTS5 must be told to
-- delete exactly what it holds).
DROP TRIGGER messages_after_delete;
CREATE TRIGGER messages_after_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text)
        SELECT 'delete', OLD.seq, OLD.text
        WHERE NOT EXISTS (SELECT 1 FROM fts_pending WHERE seq = OLD.seq);
    DELETE FROM fts_pending WHERE seq = OLD.seq;
    UPDATE totals SET messages = messages - 1 WHERE id = 1;
END;
"#,
    // 4 → 5: fewer pages per commit. Every page a commit changes is encrypted, MACed and
    // written to the WAL, and each table or index a write touches is at least one page. The
    // full-text queue becomes a mark in `totals` (whose page every commit changes anyway):
    // every message with `seq <= indexed_through` is in the index and no later one is. A new
    // row's seq is one more than the largest, so the mark never exceeds the largest seq: a
    // delete lowers it to that. Replies are found through their conversation's index, so
    // `messages_by_reply_to` goes too (a page per reply commit).
    r#"
INSERT INTO messages_fts (rowid, text)
    SELECT m.seq, m.text FROM fts_pending p JOIN messages m ON m.seq = p.seq;
DROP TRIGGER messages_after_insert;
DROP TRIGGER messages_after_delete;
DROP TABLE fts_pending;
DROP INDEX messages_by_reply_to;
ALTER TABLE totals ADD COLUMN indexed_through INTEGER NOT NULL DEFAULT 0;
UPDATE totals SET indexed_through = coalesce((SELECT max(seq) FROM messages), 0);

CREATE TRIGGER messages_after_insert AFTER INSERT ON messages BEGIN
    UPDATE conversations SET message_count = message_count + 1,
            visitor_count = visitor_count + (NEW.role = 'visitor'),
            last_at = max(last_at, NEW.at)
        WHERE id = NEW.conversation_id;
    UPDATE totals SET messages = messages + 1 WHERE id = 1;
END;
-- A row above the mark was never indexed (FTS5 must be told to delete exactly what it holds).
CREATE TRIGGER messages_after_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text)
        SELECT 'delete', OLD.seq, OLD.text FROM totals WHERE id = 1 AND OLD.seq <= indexed_through;
    UPDATE totals SET messages = messages - 1,
            indexed_through = min(indexed_through, coalesce((SELECT max(seq) FROM messages), 0))
        WHERE id = 1;
END;
"#,
    // 5 → 6: the current day's usage counters live in the `totals` row too, for the same
    // reason (a visitor message's and a reply's commit each updated a `usage_daily` row, one
    // more page); `usage_daily` keeps the earlier days, and a day's counters move there when
    // the next day's first write arrives (`repo::add_usage`).
    r#"
ALTER TABLE totals ADD COLUMN day TEXT NOT NULL DEFAULT '';
ALTER TABLE totals ADD COLUMN day_messages INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN day_replies INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN day_tokens_in INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN day_tokens_out INTEGER NOT NULL DEFAULT 0;
"#,
];
