-- +goose NO TRANSACTION
-- +goose Up
-- ListConnections' name search (name_contains: LOWER(name) LIKE '%text%')
-- cannot seek a B-tree; a trigram index lets PostgreSQL find rare matches
-- among a large workspace's connections without reading them all. pg_trgm
-- ships with PostgreSQL (contrib) and is a trusted extension: the migration
-- user needs CREATE on the database, not superuser. Built concurrently, as
-- the table may be large; a failed build's invalid index is dropped first.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
DROP INDEX CONCURRENTLY IF EXISTS connections_name_trgm;
CREATE INDEX CONCURRENTLY connections_name_trgm ON connections USING gin (LOWER(name) gin_trgm_ops);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS connections_name_trgm;
