-- +goose Up
-- Access-event batches already recorded, by the id the broker gave them: a
-- batch sent again after its answer was lost is acknowledged without being
-- stored twice. Pruned with the access events.
CREATE TABLE access_batches (
    batch_id    TEXT   NOT NULL PRIMARY KEY,
    record_time BIGINT NOT NULL -- unix nanoseconds
);
CREATE INDEX access_batches_record_time ON access_batches (record_time);

-- +goose Down
DROP TABLE access_batches;
