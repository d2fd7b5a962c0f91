-- Staging no longer writes messages into the database before placing them:
-- each staging batch is sorted in memory into placing order and written
-- once, as a run file in the import's work directory, and placing merges
-- the runs. The database keeps what must survive a kill -9 with the runs:
-- every key ever staged (a re-run and duplicates across files add nothing)
-- and the runs themselves, recorded in the transaction that records the
-- file's progress.
CREATE TABLE import_keys (
    key TEXT PRIMARY KEY
) WITHOUT ROWID;
INSERT INTO import_keys (key) SELECT key FROM import_staged;

-- A sorted run of staged messages: `<work dir>/<id>.run`, `row_count` lines. Runs
-- of one pass are merged and placed together; a pass's runs are deleted
-- once it is placed. `source` names where the messages came from (the tag
-- of their conversations; a source's placing step starts only passes of its
-- own runs). `agent_refs` (a JSON array) lets a resumed run map the agents
-- of what is left without reading the files.
CREATE TABLE import_sort_runs (
    id         BLOB PRIMARY KEY,
    pass       INTEGER NOT NULL,
    source     TEXT NOT NULL DEFAULT '',
    row_count  INTEGER NOT NULL,
    agent_refs TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL
);
CREATE INDEX import_sort_runs_pass ON import_sort_runs (pass);

-- Staged rows an earlier version left unplaced become run files the first
-- time an import opens its work directory; placed ones are history.
DELETE FROM import_staged
WHERE pass < (SELECT pass FROM import_placing WHERE id = 1);
