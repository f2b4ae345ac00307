-- Long-term memory: what agents learned, per user and (unless user-wide) per project, with
-- its kind, its source and how often it was said again. A user-wide memory (a preference)
-- has no project. Recall ranks by cosine similarity weighted by `updated_at`.
CREATE TYPE memory_kind AS ENUM ('decision', 'fact', 'preference', 'project');
ALTER TYPE event_kind ADD VALUE 'memory_recalled';

ALTER TABLE agent_memory
    ADD COLUMN kind       memory_kind NOT NULL DEFAULT 'fact',
    ADD COLUMN run_id     uuid REFERENCES runs (id) ON DELETE SET NULL,
    ADD COLUMN task_id    uuid REFERENCES tasks (id) ON DELETE SET NULL,
    ADD COLUMN mentions   integer NOT NULL DEFAULT 1 CHECK (mentions > 0),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT agent_memory_content_length CHECK (length(content) BETWEEN 1 AND 2000);
ALTER TABLE agent_memory ALTER COLUMN kind DROP DEFAULT;

-- A project's and a user's memories by recency (listing, retention).
CREATE INDEX agent_memory_recent ON agent_memory (user_id, project_id, updated_at DESC);
-- A project's gist, and the gists of a user's projects.
CREATE INDEX agent_memory_gists ON agent_memory (user_id, project_id) WHERE kind = 'project';
