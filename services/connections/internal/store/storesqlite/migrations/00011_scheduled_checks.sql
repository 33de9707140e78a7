-- +goose Up
-- Scheduled checks look for the active connections verified longest ago
-- (DueForCheck) every minute; the index keeps that a short range read.
CREATE INDEX connections_check ON connections (status, last_verify_time, id);

-- +goose Down
DROP INDEX connections_check;
