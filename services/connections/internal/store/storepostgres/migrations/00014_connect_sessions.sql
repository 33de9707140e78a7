-- +goose Up
-- Connect sessions (CreateConnectSession): the hosted connect flow's
-- single-use links, keyed by the SHA-256 of the token in the URL. What the
-- session may do is fixed here: the creator's principal (subject, workspace,
-- privileges) and the connection it may make.
CREATE TABLE connect_sessions (
    token_hash           TEXT    PRIMARY KEY,
    workspace_id         TEXT    NOT NULL,
    subject              TEXT    NOT NULL,
    privileges           TEXT    NOT NULL, -- space-separated
    connectors           TEXT    NOT NULL, -- space-separated
    project_id           TEXT    NOT NULL,
    environment          TEXT    NOT NULL,
    parent_connection_id TEXT    NOT NULL,
    runtime_user         TEXT    NOT NULL,
    bind_recipe_id       TEXT    NOT NULL,
    bind_step            TEXT    NOT NULL,
    return_url           TEXT    NOT NULL,
    expire_time          BIGINT  NOT NULL,
    attempts             INTEGER NOT NULL DEFAULT 0,
    used                 INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX connect_sessions_expiry ON connect_sessions (expire_time);

-- +goose Down
DROP TABLE connect_sessions;
