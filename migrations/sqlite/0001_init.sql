-- kefu schema v1 (SQLite). Kept in step with ../postgres/0001_init.sql:
-- ids are UUIDv7 made in Rust (16-byte BLOB here, UUID there), times are
-- milliseconds since the Unix epoch (INTEGER here, BIGINT there).

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('conversation_number', 1000);

CREATE TABLE agents (
    id            BLOB PRIMARY KEY,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'agent')),
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    avatar_url    TEXT,
    password_hash TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CONSTRAINT agents_email_key UNIQUE (email)
);

CREATE TABLE sessions (
    id           BLOB PRIMARY KEY,
    agent_id     BLOB NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    token_hash   BLOB NOT NULL UNIQUE,
    user_agent   TEXT,
    ip           TEXT,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_agent ON sessions (agent_id);

CREATE TABLE api_tokens (
    id           BLOB PRIMARY KEY,
    agent_id     BLOB NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    scope        TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    token_hash   BLOB NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX api_tokens_agent ON api_tokens (agent_id);

CREATE TABLE teams (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CONSTRAINT teams_name_key UNIQUE (name)
);

CREATE TABLE team_members (
    team_id  BLOB NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    agent_id BLOB NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, agent_id)
);

CREATE TABLE inboxes (
    id                         BLOB PRIMARY KEY,
    kind                       TEXT NOT NULL CHECK (kind IN ('widget', 'email', 'form', 'api')),
    name                       TEXT NOT NULL,
    sla_first_response_minutes INTEGER,
    sla_resolution_minutes     INTEGER,
    settings                   TEXT NOT NULL DEFAULT '{}',
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL
);

CREATE TABLE inbox_members (
    inbox_id BLOB NOT NULL REFERENCES inboxes (id) ON DELETE CASCADE,
    agent_id BLOB NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    PRIMARY KEY (inbox_id, agent_id)
);
CREATE INDEX inbox_members_agent ON inbox_members (agent_id, inbox_id);

CREATE TABLE contacts (
    id         BLOB PRIMARY KEY,
    name       TEXT,
    email      TEXT,
    phone      TEXT,
    avatar_url TEXT,
    language   TEXT,
    attributes TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX contacts_updated ON contacts (updated_at DESC, id DESC);

CREATE TABLE contact_identities (
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    contact_id BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    CONSTRAINT contact_identities_kind_value_key PRIMARY KEY (kind, value)
);
CREATE INDEX contact_identities_contact ON contact_identities (contact_id);

CREATE TABLE tags (
    id         BLOB PRIMARY KEY,
    name       TEXT NOT NULL,
    color      TEXT,
    created_at INTEGER NOT NULL,
    CONSTRAINT tags_name_key UNIQUE (name)
);

CREATE TABLE contact_tags (
    contact_id BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    tag_id     BLOB NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (contact_id, tag_id)
);
CREATE INDEX contact_tags_tag ON contact_tags (tag_id);

CREATE TABLE conversations (
    id                    BLOB PRIMARY KEY,
    number                INTEGER NOT NULL UNIQUE,
    inbox_id              BLOB NOT NULL REFERENCES inboxes (id),
    contact_id            BLOB NOT NULL REFERENCES contacts (id),
    subject               TEXT,
    status                TEXT NOT NULL,
    snoozed_until         INTEGER,
    priority              TEXT NOT NULL,
    assignee_id           BLOB REFERENCES agents (id),
    team_id               BLOB REFERENCES teams (id) ON DELETE SET NULL,
    merged_into_id        BLOB REFERENCES conversations (id),
    last_seq              INTEGER NOT NULL DEFAULT 0,
    last_activity_at      INTEGER NOT NULL,
    first_response_due_at INTEGER,
    first_response_at     INTEGER,
    resolution_due_at     INTEGER,
    resolved_at           INTEGER,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);
CREATE INDEX conversations_activity ON conversations (last_activity_at DESC, id DESC);
CREATE INDEX conversations_inbox_activity ON conversations (inbox_id, last_activity_at DESC, id DESC);
CREATE INDEX conversations_assignee_activity ON conversations (assignee_id, last_activity_at DESC, id DESC);
CREATE INDEX conversations_status_activity ON conversations (status, last_activity_at DESC, id DESC);
CREATE INDEX conversations_contact ON conversations (contact_id, last_activity_at DESC);
CREATE INDEX conversations_team ON conversations (team_id);
CREATE INDEX conversations_snoozed ON conversations (snoozed_until) WHERE snoozed_until IS NOT NULL;

CREATE TABLE conversation_tags (
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    tag_id          BLOB NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (conversation_id, tag_id)
);
CREATE INDEX conversation_tags_tag ON conversation_tags (tag_id, conversation_id);

CREATE TABLE messages (
    id              BLOB PRIMARY KEY,
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    direction       TEXT NOT NULL,
    sender_kind     TEXT NOT NULL,
    sender_id       BLOB,
    text            TEXT NOT NULL,
    html            TEXT,
    external_id     TEXT,
    metadata        TEXT NOT NULL DEFAULT '{}',
    created_at      INTEGER NOT NULL,
    CONSTRAINT messages_conversation_seq_key UNIQUE (conversation_id, seq),
    CONSTRAINT messages_conversation_external_key UNIQUE (conversation_id, external_id)
);

CREATE TABLE attachments (
    id           BLOB PRIMARY KEY,
    sha256       TEXT NOT NULL,
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    message_id   BLOB REFERENCES messages (id) ON DELETE SET NULL,
    uploaded_by  BLOB,
    created_at   INTEGER NOT NULL
);
CREATE INDEX attachments_message ON attachments (message_id);

CREATE TABLE canned_responses (
    id         BLOB PRIMARY KEY,
    shortcut   TEXT NOT NULL,
    text       TEXT NOT NULL,
    created_by BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CONSTRAINT canned_responses_shortcut_key UNIQUE (shortcut)
);

CREATE TABLE audit_log (
    id          BLOB PRIMARY KEY,
    actor_id    BLOB,
    actor_label TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT,
    ip          TEXT,
    details     TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL
);
CREATE INDEX audit_log_created ON audit_log (created_at DESC, id DESC);
