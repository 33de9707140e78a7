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
    sandbox              INTEGER NOT NULL DEFAULT 0,
    status               TEXT    NOT NULL,
    status_reason        TEXT    NOT NULL DEFAULT '',
    last_error           TEXT    NOT NULL DEFAULT '',
    last_verify_time     INTEGER NOT NULL DEFAULT 0,  -- unix nanoseconds, 0 = never
    authorized_as        TEXT    NOT NULL DEFAULT '',
    granted_scopes       TEXT    NOT NULL DEFAULT '[]', -- JSON array
    owner                TEXT    NOT NULL DEFAULT '',
    parent_connection_id TEXT    NOT NULL DEFAULT '',
    runtime_user         TEXT    NOT NULL DEFAULT '',
    create_time          INTEGER NOT NULL,            -- unix nanoseconds
    update_time          INTEGER NOT NULL,
    version              INTEGER NOT NULL
);
-- Keyset pagination: newest first within a workspace.
CREATE INDEX connections_workspace_created ON connections (workspace_id, create_time DESC, id DESC);

-- +goose Down
DROP TABLE connections;
