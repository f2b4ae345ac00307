-- The REST surface: archived projects, and keyset pagination (newest first, ties broken
-- by id) over projects, runs and artifacts.

ALTER TABLE projects ADD COLUMN archived_at timestamptz;

DROP INDEX projects_by_user;
CREATE INDEX projects_by_user ON projects (user_id, created_at DESC, id DESC);
DROP INDEX runs_by_project;
CREATE INDEX runs_by_project ON runs (project_id, created_at DESC, id DESC);
DROP INDEX runs_by_user;
CREATE INDEX runs_by_user ON runs (user_id, created_at DESC, id DESC);
CREATE INDEX artifacts_by_project ON artifacts (project_id, created_at DESC, id DESC);
