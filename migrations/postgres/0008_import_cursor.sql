-- Placing follows a cursor through the staged rows instead of marking each
-- row placed: the mark was a row rewrite and an index delete per message,
-- a third of placing. Rows are staged into a pass; placing walks a pass in
-- placing order and records the last row it placed (committed with that
-- batch, so a killed run resumes exactly). Rows staged once placing of a
-- pass has begun go to the next pass, so none is ever behind the cursor.
ALTER TABLE import_staged ADD COLUMN pass BIGINT NOT NULL DEFAULT 0;
DROP INDEX import_staged_pending;
CREATE INDEX import_staged_order
    ON import_staged (pass, customer_kind, customer_value, account, sent_at, key);

-- The one row: the pass being placed and the last row placed in it (all
-- NULL while that pass is not begun).
CREATE TABLE import_placing (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    pass           BIGINT NOT NULL,
    customer_kind  TEXT,
    customer_value TEXT,
    account        TEXT,
    sent_at        BIGINT,
    key            TEXT
);

-- Rows an earlier version staged and did not place form pass 1; placed
-- ones (message_id set) stay in pass 0, behind it.
UPDATE import_staged SET pass = 1 WHERE message_id IS NULL;
INSERT INTO import_placing (id, pass) VALUES (1, 1);
