-- Personal links that open the widget already identified as a contact (sent
-- to imported customers during a move away from WeChat). The link itself is
-- a signed token naming a row here, so a link can be revoked and expires.
CREATE TABLE continuity_links (
    id           BLOB PRIMARY KEY,
    contact_id   BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    inbox_id     BLOB NOT NULL REFERENCES inboxes (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_used_at INTEGER
);
CREATE INDEX continuity_links_contact ON continuity_links (contact_id);
