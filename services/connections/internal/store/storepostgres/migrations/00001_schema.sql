-- +goose Up
CREATE TABLE connections (
    id                   TEXT    PRIMARY KEY,
    workspace_id         TEXT    NOT NULL,
    project_id           TEXT    NOT NULL DEFAULT '',
    name                 TEXT    NOT NULL,
    connector            TEXT    NOT NULL,
    environment          TEXT    NOT NULL,
    auth_type            TEXT    NOT NULL,
    base_url             TEXT    NOT NULL DEFAULT '',
    subdomain            TEXT    NOT NULL DEFAULT '',
    org_id               TEXT    NOT NULL DEFAULT '',
    sandbox              BOOLEAN NOT NULL DEFAULT FALSE,
    status               TEXT    NOT NULL,
    status_reason        TEXT    NOT NULL DEFAULT '',
    last_error           TEXT    NOT NULL DEFAULT '',
    last_verify_time     BIGINT  NOT NULL DEFAULT 0,   -- unix nanoseconds, 0 = never
    authorized_as        TEXT    NOT NULL DEFAULT '',
    granted_scopes       TEXT    NOT NULL DEFAULT '[]', -- JSON array
    owner                TEXT    NOT NULL DEFAULT '',
    parent_connection_id TEXT    NOT NULL DEFAULT '',  -- runtime user connections only
    runtime_user         TEXT    NOT NULL DEFAULT '',
    create_time          BIGINT  NOT NULL,             -- unix nanoseconds
    update_time          BIGINT  NOT NULL,
    version              BIGINT  NOT NULL
);
-- Keyset pagination, newest first within a workspace (and within a parent).
CREATE INDEX connections_page ON connections (workspace_id, parent_connection_id, create_time DESC, id DESC);
CREATE UNIQUE INDEX connections_runtime_user ON connections (parent_connection_id, runtime_user) WHERE parent_connection_id <> '';

CREATE TABLE workspaces (
    id                      TEXT    PRIMARY KEY,
    allow_cross_environment BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE recipes (
    id                       TEXT    PRIMARY KEY,
    workspace_id             TEXT    NOT NULL,
    name                     TEXT    NOT NULL DEFAULT '',
    environment              TEXT    NOT NULL,
    callable                 BOOLEAN NOT NULL DEFAULT FALSE,
    runtime_user_connections BOOLEAN NOT NULL DEFAULT FALSE,
    create_time              BIGINT  NOT NULL,
    update_time              BIGINT  NOT NULL
);

CREATE TABLE bindings (
    recipe_id     TEXT    NOT NULL REFERENCES recipes (id) ON DELETE CASCADE,
    step          TEXT    NOT NULL,
    connection_id TEXT    NOT NULL REFERENCES connections (id),
    create_time   BIGINT  NOT NULL,
    PRIMARY KEY (recipe_id, step)
);
CREATE INDEX bindings_connection ON bindings (connection_id);

-- The audit log and the change stream: one row per change, in commit order.
CREATE TABLE events (
    seq           BIGSERIAL PRIMARY KEY,
    time          BIGINT  NOT NULL,
    workspace_id  TEXT    NOT NULL,
    connection_id TEXT    NOT NULL DEFAULT '',
    recipe_id     TEXT    NOT NULL DEFAULT '',
    actor         TEXT    NOT NULL DEFAULT '',
    action        TEXT    NOT NULL,
    before        TEXT    NOT NULL DEFAULT '',
    after         TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX events_workspace ON events (workspace_id, seq);
CREATE INDEX events_connection ON events (connection_id, seq);
CREATE INDEX events_actor ON events (actor, seq);

-- +goose Down
DROP TABLE events;
DROP TABLE bindings;
DROP TABLE recipes;
DROP TABLE workspaces;
DROP TABLE connections;
