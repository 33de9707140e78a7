-- +goose NO TRANSACTION
-- +goose Up
-- Scheduled checks look for the active connections verified longest ago
-- (DueForCheck) every minute; the index keeps that a short range read.
DROP INDEX CONCURRENTLY IF EXISTS connections_check;
CREATE INDEX CONCURRENTLY connections_check ON connections (status, last_verify_time, id);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS connections_check;
