-- +goose Up
-- PostgreSQL's 00008 adds a trigram index for ListConnections' name search;
-- SQLite (the embedded default, one node) scans the workspace's rows
-- instead. Kept so that both stores carry the same migration versions.
SELECT 1;

-- +goose Down
SELECT 1;
