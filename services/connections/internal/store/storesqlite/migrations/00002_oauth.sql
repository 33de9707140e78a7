-- +goose Up
-- OAuth client ids (not secret; the client secrets are in Vault behind the broker).
CREATE TABLE oauth_clients (
    connector    TEXT NOT NULL,
    workspace_id TEXT NOT NULL DEFAULT '', -- '' is the platform's own OAuth app
    client_id    TEXT NOT NULL,
    PRIMARY KEY (connector, workspace_id)
);

-- Pending authorizations. Only a hash of the state is kept: the state itself
-- travels through the user's browser and derives the PKCE verifier.
CREATE TABLE oauth_states (
    state_hash    TEXT    PRIMARY KEY,
    connection_id TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    scopes        TEXT    NOT NULL,   -- space-separated
    redirect_uri  TEXT    NOT NULL,
    expire_time   INTEGER NOT NULL      -- unix nanoseconds
);

-- +goose Down
DROP TABLE oauth_states;
DROP TABLE oauth_clients;
