-- +goose Up
-- OAuth client registrations follow the write protocol (docs/write-protocol.md):
-- the client secret is written to Vault as a new, immutable generation under a
-- write intent, and the row names the live one ('' = the legacy single Vault
-- entry, registered before generations existed). Intents share secret_intents
-- under the key 'oauth-client:<connector>/<workspace>'.
ALTER TABLE oauth_clients ADD COLUMN secret_generation TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE oauth_clients DROP COLUMN secret_generation;
