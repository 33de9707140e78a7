-- +goose Up
-- Retention deletes access events by age (PruneAccessEvents).
CREATE INDEX access_events_last_time ON access_events (last_time);

-- +goose Down
DROP INDEX access_events_last_time;
