-- +goose Up
-- When the broker last obtained an OAuth access token for a connection and
-- when it expires (Connection.last_refresh_time, token_expire_time), kept
-- beside the last use: reported as it happens, without moving the etag.
ALTER TABLE connection_usage ADD COLUMN last_refresh_time BIGINT NOT NULL DEFAULT 0;
ALTER TABLE connection_usage ADD COLUMN token_expire_time BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE connection_usage DROP COLUMN token_expire_time;
ALTER TABLE connection_usage DROP COLUMN last_refresh_time;
