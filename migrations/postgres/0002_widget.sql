-- Live chat (v2): the public token a widget names its inbox by, the secret
-- a site signs its users' identifiers with, spent identity hashes (so a hash
-- cannot be replayed), and the customer's rating of a conversation.

ALTER TABLE inboxes ADD COLUMN public_token TEXT;
ALTER TABLE inboxes ADD COLUMN identity_secret TEXT;
CREATE UNIQUE INDEX inboxes_public_token ON inboxes (public_token);

ALTER TABLE conversations ADD COLUMN csat_score BIGINT;
ALTER TABLE conversations ADD COLUMN csat_comment TEXT;
ALTER TABLE conversations ADD COLUMN csat_at BIGINT;

CREATE TABLE widget_nonces (
    hash       TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX widget_nonces_expiry ON widget_nonces (expires_at);
