-- +goose Up
-- The OAuth callback can send the browser back to the platform
-- (StartAuthorization's return_url, checked against the workspace's allowed
-- origins) and bind the authorized connection to a recipe step.
ALTER TABLE workspaces ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';
ALTER TABLE oauth_states ADD COLUMN bind_recipe_id TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_states ADD COLUMN bind_step TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_states ADD COLUMN return_url TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE oauth_states DROP COLUMN return_url;
ALTER TABLE oauth_states DROP COLUMN bind_step;
ALTER TABLE oauth_states DROP COLUMN bind_recipe_id;
ALTER TABLE workspaces DROP COLUMN allowed_origins;
