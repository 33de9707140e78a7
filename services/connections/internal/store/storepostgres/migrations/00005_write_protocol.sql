-- +goose Up
-- The write protocol (docs/write-protocol.md). A connection names the secret
-- generation the broker serves ('' = the legacy single Vault entry); state
-- 'deleting' is a tombstone: the delete was acknowledged, its secrets are
-- being destroyed, and the row is hidden from every read.
ALTER TABLE connections ADD COLUMN secret_generation TEXT NOT NULL DEFAULT '';
ALTER TABLE connections ADD COLUMN state TEXT NOT NULL DEFAULT '';
CREATE INDEX connections_tombstones ON connections (state) WHERE state <> '';

-- An OAuth 1.0a authorization writes its pending request token to a new
-- generation, which the callback then makes live.
ALTER TABLE oauth_states ADD COLUMN secret_generation TEXT NOT NULL DEFAULT '';

-- Secret writes in progress: a generation may be written to Vault only while
-- its intent exists, and becomes live only in the transaction that deletes
-- the intent. The reconciler destroys generations that have neither a live
-- row naming them nor an unexpired intent.
CREATE TABLE secret_intents (
    connection_id TEXT   NOT NULL,
    generation    TEXT   NOT NULL,
    expire_time   BIGINT NOT NULL, -- unix nanoseconds
    PRIMARY KEY (connection_id, generation)
);

-- +goose Down
DROP TABLE secret_intents;
ALTER TABLE oauth_states DROP COLUMN secret_generation;
DROP INDEX connections_tombstones;
ALTER TABLE connections DROP COLUMN state;
ALTER TABLE connections DROP COLUMN secret_generation;
