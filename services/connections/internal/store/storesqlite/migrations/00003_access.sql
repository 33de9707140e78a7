-- +goose Up
-- Serve a runtime user without a connection for an app the recipe's own.
ALTER TABLE recipes ADD COLUMN runtime_user_fallback BOOLEAN NOT NULL DEFAULT FALSE;

-- The credential broker's access log: one row per batch of identical
-- accesses by one job, in the order recorded. Never a secret.
CREATE TABLE access_events (
    seq                     INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id            TEXT    NOT NULL DEFAULT '', -- '' when the job token could not be verified
    operation               TEXT    NOT NULL,
    job_id                  TEXT    NOT NULL DEFAULT '',
    recipe_id               TEXT    NOT NULL DEFAULT '',
    requested_connection_id TEXT    NOT NULL DEFAULT '',
    resolved_connection_id  TEXT    NOT NULL DEFAULT '',
    runtime_user            TEXT    NOT NULL DEFAULT '',
    decision                TEXT    NOT NULL,            -- "allowed" or "denied"
    code                    TEXT    NOT NULL DEFAULT '',
    reason                  TEXT    NOT NULL DEFAULT '',
    count                   INTEGER NOT NULL,
    first_time              INTEGER NOT NULL,            -- unix nanoseconds
    last_time               INTEGER NOT NULL,
    broker                  TEXT    NOT NULL DEFAULT '',
    record_time             INTEGER NOT NULL
);
CREATE INDEX access_events_workspace ON access_events (workspace_id, seq);
CREATE INDEX access_events_requested ON access_events (requested_connection_id, seq);
CREATE INDEX access_events_resolved ON access_events (resolved_connection_id, seq);
CREATE INDEX access_events_job ON access_events (job_id, seq);

-- +goose Down
DROP TABLE access_events;
ALTER TABLE recipes DROP COLUMN runtime_user_fallback;
