-- kefu schema v1 (PostgreSQL). Kept in step with ../sqlite/0001_init.sql:
-- ids are UUIDv7 made in Rust (UUID here, 16-byte BLOB there), times are
-- milliseconds since the Unix epoch (BIGINT here, INTEGER there), JSON is
-- JSONB here and TEXT there.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('conversation_number', 1000);

CREATE TABLE agents (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'agent')),
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    avatar_url    TEXT,
    password_hash TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    CONSTRAINT agents_email_key UNIQUE (email)
);

CREATE TABLE sessions (
    id           UUID PRIMARY KEY,
    agent_id     UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    token_hash   BYTEA NOT NULL UNIQUE,
    user_agent   TEXT,
    ip           TEXT,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_agent ON sessions (agent_id);

CREATE TABLE api_tokens (
    id           UUID PRIMARY KEY,
    agent_id     UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    scope        TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    token_hash   BYTEA NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX api_tokens_agent ON api_tokens (agent_id);

CREATE TABLE teams (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT teams_name_key UNIQUE (name)
);

CREATE TABLE team_members (
    team_id  UUID NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    agent_id UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, agent_id)
);

CREATE TABLE inboxes (
    id                         UUID PRIMARY KEY,
    kind                       TEXT NOT NULL CHECK (kind IN ('widget', 'email', 'form', 'api')),
    name                       TEXT NOT NULL,
    sla_first_response_minutes BIGINT,
    sla_resolution_minutes     BIGINT,
    settings                   JSONB NOT NULL DEFAULT '{}',
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL
);

CREATE TABLE inbox_members (
    inbox_id UUID NOT NULL REFERENCES inboxes (id) ON DELETE CASCADE,
    agent_id UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    PRIMARY KEY (inbox_id, agent_id)
);
CREATE INDEX inbox_members_agent ON inbox_members (agent_id, inbox_id);

CREATE TABLE contacts (
    id         UUID PRIMARY KEY,
    name       TEXT,
    email      TEXT,
    phone      TEXT,
    avatar_url TEXT,
    language   TEXT,
    attributes JSONB NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX contacts_updated ON contacts (updated_at DESC, id DESC);

CREATE TABLE contact_identities (
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    contact_id UUID NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    CONSTRAINT contact_identities_kind_value_key PRIMARY KEY (kind, value)
);
CREATE INDEX contact_identities_contact ON contact_identities (contact_id);

CREATE TABLE tags (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL,
    color      TEXT,
    created_at BIGINT NOT NULL,
    CONSTRAINT tags_name_key UNIQUE (name)
);

CREATE TABLE contact_tags (
    contact_id UUID NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    tag_id     UUID NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (contact_id, tag_id)
);
CREATE INDEX contact_tags_tag ON contact_tags (tag_id);

CREATE TABLE conversations (
    id                    UUID PRIMARY KEY,
    number                BIGINT NOT NULL UNIQUE,
    inbox_id              UUID NOT NULL REFERENCES inboxes (id),
    contact_id            UUID NOT NULL REFERENCES contacts (id),
    subject               TEXT,
    status                TEXT NOT NULL,
    snoozed_until         BIGINT,
    priority              TEXT NOT NULL,
    assignee_id           UUID REFERENCES agents (id),
    team_id               UUID REFERENCES teams (id) ON DELETE SET NULL,
    merged_into_id        UUID REFERENCES conversations (id),
    last_seq              BIGINT NOT NULL DEFAULT 0,
    last_activity_at      BIGINT NOT NULL,
    first_response_due_at BIGINT,
    first_response_at     BIGINT,
    resolution_due_at     BIGINT,
    resolved_at           BIGINT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX conversations_activity ON conversations (last_activity_at DESC, id DESC);
CREATE INDEX conversations_inbox_activity ON conversations (inbox_id, last_activity_at DESC, id DESC);
CREATE INDEX conversations_assignee_activity ON conversations (assignee_id, last_activity_at DESC, id DESC);
CREATE INDEX conversations_status_activity ON conversations (status, last_activity_at DESC, id DESC);
CREATE INDEX conversations_contact ON conversations (contact_id, last_activity_at DESC);
CREATE INDEX conversations_team ON conversations (team_id);
CREATE INDEX conversations_snoozed ON conversations (snoozed_until) WHERE snoozed_until IS NOT NULL;

CREATE TABLE conversation_tags (
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    tag_id          UUID NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (conversation_id, tag_id)
);
CREATE INDEX conversation_tags_tag ON conversation_tags (tag_id, conversation_id);

CREATE TABLE messages (
    id              UUID PRIMARY KEY,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    direction       TEXT NOT NULL,
    sender_kind     TEXT NOT NULL,
    sender_id       UUID,
    text            TEXT NOT NULL,
    html            TEXT,
    external_id     TEXT,
    metadata        JSONB NOT NULL DEFAULT '{}',
    created_at      BIGINT NOT NULL,
    CONSTRAINT messages_conversation_seq_key UNIQUE (conversation_id, seq),
    CONSTRAINT messages_conversation_external_key UNIQUE (conversation_id, external_id)
);

CREATE TABLE attachments (
    id           UUID PRIMARY KEY,
    sha256       TEXT NOT NULL,
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    message_id   UUID REFERENCES messages (id) ON DELETE SET NULL,
    uploaded_by  UUID,
    created_at   BIGINT NOT NULL
);
CREATE INDEX attachments_message ON attachments (message_id);

CREATE TABLE canned_responses (
    id         UUID PRIMARY KEY,
    shortcut   TEXT NOT NULL,
    text       TEXT NOT NULL,
    created_by UUID,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT canned_responses_shortcut_key UNIQUE (shortcut)
);

CREATE TABLE audit_log (
    id          UUID PRIMARY KEY,
    actor_id    UUID,
    actor_label TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT,
    ip          TEXT,
    details     JSONB NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL
);
CREATE INDEX audit_log_created ON audit_log (created_at DESC, id DESC);
