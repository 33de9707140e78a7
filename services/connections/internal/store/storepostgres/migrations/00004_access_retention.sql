-- +goose NO TRANSACTION
-- +goose Up
-- Retention deletes access events by age (PruneAccessEvents). Built
-- concurrently: the table may already be large, and a plain CREATE INDEX
-- would block the brokers' RecordAccess for as long as the build takes. A
-- build that failed leaves an invalid index, which a retry drops first.
DROP INDEX CONCURRENTLY IF EXISTS access_events_last_time;
CREATE INDEX CONCURRENTLY access_events_last_time ON access_events (last_time);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS access_events_last_time;
