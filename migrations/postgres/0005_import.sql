-- Imports (WeChat history and the like). Messages are first staged, keyed
-- by their source id, then placed into conversations in time order per
-- customer and account; a staged row with a message_id has been placed.
-- Both steps commit in batches with their progress, so a killed run
-- resumes and a re-run adds nothing.
CREATE TABLE import_runs (
    id          UUID PRIMARY KEY,
    source      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    status      TEXT NOT NULL,
    dry_run     BOOLEAN NOT NULL DEFAULT FALSE,
    files       JSONB NOT NULL DEFAULT '[]',
    report      JSONB NOT NULL DEFAULT '{}',
    started_at  BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX import_runs_started ON import_runs (started_at DESC);

-- How far each input file has been read and committed.
CREATE TABLE import_files (
    fingerprint TEXT PRIMARY KEY,
    path        TEXT NOT NULL,
    format      TEXT NOT NULL,
    byte_offset BIGINT NOT NULL DEFAULT 0,
    line        BIGINT NOT NULL DEFAULT 0,
    done        BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE import_staged (
    key            TEXT PRIMARY KEY,
    customer_kind  TEXT NOT NULL,
    customer_value TEXT NOT NULL,
    account        TEXT NOT NULL,
    sent_at        BIGINT NOT NULL,
    agent_ref      TEXT,
    body           TEXT NOT NULL,
    message_id     UUID
);

-- Only rows waiting to be placed are indexed for placing, so each batch
-- starts where the last one stopped instead of stepping over placed rows.
CREATE INDEX import_staged_pending
    ON import_staged (customer_kind, customer_value, account, sent_at, key)
    WHERE message_id IS NULL;

-- Where each customer's history in each account stands: the conversation
-- the next message may continue.
CREATE TABLE import_tails (
    customer_kind   TEXT NOT NULL,
    customer_value  TEXT NOT NULL,
    account         TEXT NOT NULL,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    last_sent_at    BIGINT NOT NULL,
    ended           BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (customer_kind, customer_value, account)
);
