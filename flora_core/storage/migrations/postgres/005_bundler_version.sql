-- Which bundler made each revision's bundle. NULL: made before flora checked what a bundle may read
-- (SECURITY.md). Such a bundle is never loaded or served again, only rebuilt from its files.
ALTER TABLE deployment_revisions ADD COLUMN bundler_version INTEGER
