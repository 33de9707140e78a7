-- +goose Up
-- When each connection was last used (Connection.last_use_time), to the
-- minute, kept apart from the connections table so that recording a use
-- changes neither a connection's version (etag) nor the change stream.
CREATE TABLE connection_usage (
    connection_id TEXT   PRIMARY KEY,
    last_use_time BIGINT NOT NULL
);

-- +goose Down
DROP TABLE connection_usage;
