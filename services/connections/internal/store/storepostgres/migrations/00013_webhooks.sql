-- +goose Up
-- Webhooks (ListWebhooks): a workspace's subscriptions to connection
-- events. The signing secret is in Vault (through the broker) under the
-- generation named here; the secret_intents protocol guards its writes
-- with the key 'webhook:<id>'. Events with a sequence above start_seq (the
-- webhook's own creation event) are delivered.
CREATE TABLE webhooks (
    id                TEXT   PRIMARY KEY,
    workspace_id      TEXT   NOT NULL,
    url               TEXT   NOT NULL,
    events            TEXT   NOT NULL, -- space-separated event types
    secret_generation TEXT   NOT NULL,
    created_by        TEXT   NOT NULL,
    create_time       BIGINT NOT NULL,
    start_seq         BIGINT NOT NULL
);
CREATE INDEX webhooks_workspace ON webhooks (workspace_id, create_time);

-- The outbox: one row per event and webhook, made in the transaction that
-- moves the cursor below past the event, so that a restart neither loses
-- nor repeats one. Deliveries are retried until next_attempt_time runs out
-- of the schedule; retry_base is the attempt count when the current
-- schedule began (a redelivery starts a new one).
CREATE TABLE webhook_deliveries (
    seq               BIGSERIAL PRIMARY KEY,
    id                TEXT    NOT NULL UNIQUE, -- the webhook-id header
    webhook_id        TEXT    NOT NULL,
    event_seq         BIGINT  NOT NULL,
    event_type        TEXT    NOT NULL,
    connection_id     TEXT    NOT NULL,
    payload           TEXT    NOT NULL,
    create_time       BIGINT  NOT NULL,
    state             TEXT    NOT NULL, -- pending, succeeded, failed
    attempts          INTEGER NOT NULL DEFAULT 0,
    retry_base        INTEGER NOT NULL DEFAULT 0,
    next_attempt_time BIGINT  NOT NULL,
    UNIQUE (webhook_id, event_seq, event_type)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_time);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, seq);

-- Every attempt of a delivery, for the delivery log.
CREATE TABLE webhook_attempts (
    delivery_id TEXT    NOT NULL,
    n           INTEGER NOT NULL,
    time        BIGINT  NOT NULL,
    http_status INTEGER NOT NULL,
    error       TEXT    NOT NULL,
    duration    BIGINT  NOT NULL, -- nanoseconds
    PRIMARY KEY (delivery_id, n)
);

-- How far the event log has been turned into deliveries (one row).
CREATE TABLE webhook_cursor (
    id       INTEGER PRIMARY KEY,
    last_seq BIGINT  NOT NULL
);
INSERT INTO webhook_cursor (id, last_seq) SELECT 1, COALESCE(MAX(seq), 0) FROM events;

-- +goose Down
DROP TABLE webhook_cursor;
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
