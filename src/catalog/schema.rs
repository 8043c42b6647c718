//! The schema of `catalog.db`, one migration per `user_version`.

pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    settings   TEXT NOT NULL DEFAULT '{}'
) WITHOUT ROWID;

CREATE TABLE origins (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    origin    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, origin)
) WITHOUT ROWID;

CREATE TABLE widget_keys (
    key        TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX widget_keys_by_tenant ON widget_keys (tenant_id);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,
    scopes       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
) WITHOUT ROWID;
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);

-- Append-only and hash-chained per tenant: each row's hash commits to the previous row's.
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    at        INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT,
    details   TEXT NOT NULL DEFAULT '{}',
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL
);
CREATE INDEX audit_by_tenant ON audit (tenant_id, seq);
"#,
    r#"
CREATE TABLE users (
    tenant_id            TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email                TEXT NOT NULL,
    role                 TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    password_hash        TEXT NOT NULL,
    must_change_password INTEGER NOT NULL DEFAULT 1,
    created_at           INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, email)
) WITHOUT ROWID;

-- Server-side portal sessions; only the SHA-256 of the cookie value is stored.
CREATE TABLE sessions (
    id_hash      BLOB PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email        TEXT NOT NULL,
    csrf_token   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_by_user ON sessions (tenant_id, email);

-- First responses to mutations carrying an Idempotency-Key, per credential.
CREATE TABLE idempotency (
    scope      BLOB NOT NULL,
    key        TEXT NOT NULL,
    status     INTEGER NOT NULL,
    body       BLOB NOT NULL,
    content_type TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE webhooks (
    tenant_id       TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL,
    include_content INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE webhook_deliveries (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    event        TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_status  INTEGER,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER
) WITHOUT ROWID;
CREATE INDEX webhook_deliveries_by_tenant ON webhook_deliveries (tenant_id, created_at);
"#,
    // 4 → 5: every conversation in the tenant's file was last active at or after
    // `activity_floor` (ms since the epoch), so the retention sweeper leaves the file closed
    // until `activity_floor + retention_days` has passed instead of opening every tenant's file
    // on every pass. NULL: not known yet (the next pass visits the file and sets it).
    r#"
ALTER TABLE tenants ADD COLUMN activity_floor INTEGER;
"#,
];
