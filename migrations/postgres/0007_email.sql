-- The email channel. Every received message is kept raw first (its bytes in
-- the blob store by SHA-256), then filed; a second delivery of the same
-- Message-ID from the same sender is recognised here and stored once.
CREATE TABLE email_inbound (
    id              UUID PRIMARY KEY,
    inbox_id        UUID NOT NULL REFERENCES inboxes (id) ON DELETE CASCADE,
    sha256          TEXT NOT NULL,
    size            BIGINT NOT NULL,
    header_id       TEXT,
    sender          TEXT,
    status          TEXT NOT NULL,
    problem         TEXT,
    conversation_id UUID REFERENCES conversations (id) ON DELETE SET NULL,
    message_id      UUID REFERENCES messages (id) ON DELETE SET NULL,
    received_at     BIGINT NOT NULL,
    filed_at        BIGINT
);
CREATE UNIQUE INDEX email_inbound_once ON email_inbound (inbox_id, header_id, sender);
CREATE INDEX email_inbound_sender ON email_inbound (inbox_id, sender, received_at);
CREATE INDEX email_inbound_held ON email_inbound (received_at) WHERE status = 'held';

-- Message-IDs of mail received and sent, for threading by In-Reply-To and
-- References.
CREATE TABLE email_message_ids (
    inbox_id        UUID NOT NULL REFERENCES inboxes (id) ON DELETE CASCADE,
    header_id       TEXT NOT NULL,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    message_id      UUID REFERENCES messages (id) ON DELETE SET NULL,
    outgoing        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (inbox_id, header_id)
);
CREATE INDEX email_message_ids_conversation ON email_message_ids (conversation_id, created_at);

-- One per email conversation: the secret in its reply address
-- (support+TOKEN@…) and whom it writes to.
CREATE TABLE email_threads (
    conversation_id UUID PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    token           TEXT NOT NULL UNIQUE,
    customer_email  TEXT NOT NULL,
    subject         TEXT NOT NULL
);

-- Outgoing mail, built once (bytes in the blob store) and sent with retries.
CREATE TABLE email_outbox (
    id              UUID PRIMARY KEY,
    inbox_id        UUID NOT NULL REFERENCES inboxes (id) ON DELETE CASCADE,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    message_id      UUID REFERENCES messages (id) ON DELETE SET NULL,
    header_id       TEXT NOT NULL,
    envelope_from   TEXT NOT NULL,
    recipients      TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at) WHERE status = 'queued';
CREATE UNIQUE INDEX email_outbox_message ON email_outbox (message_id);
CREATE INDEX email_outbox_header ON email_outbox (header_id);
