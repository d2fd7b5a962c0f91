-- Uploads that were never sent in a message expire (issue #12). The sweeper
-- finds them by age, the per-uploader quota counts them, and a blob file is
-- deleted only when no row names its hash any more.
CREATE INDEX attachments_pending_by ON attachments (uploaded_by) WHERE message_id IS NULL;
CREATE INDEX attachments_pending_age ON attachments (created_at) WHERE message_id IS NULL;
CREATE INDEX attachments_sha256 ON attachments (sha256);
CREATE INDEX email_inbound_sha256 ON email_inbound (sha256);
CREATE INDEX email_outbox_sha256 ON email_outbox (sha256);
