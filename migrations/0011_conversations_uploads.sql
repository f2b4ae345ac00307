-- Conversations: one thread per project. A user's message is answered by the orchestrator
-- (step-reply): the reply is written at once as a pending row and completed (or failed)
-- when the model has answered, so a crash between the two leaves a visible pending reply
-- that the queue's redelivery finishes.
ALTER TABLE conversations
    ADD COLUMN status   text NOT NULL DEFAULT 'done' CHECK (status IN ('pending', 'done', 'failed')),
    ADD COLUMN reply_to uuid REFERENCES conversations (id) ON DELETE CASCADE,
    ADD COLUMN error    text;
DROP INDEX conversations_by_project;
CREATE INDEX conversations_by_project ON conversations (project_id, created_at DESC, id DESC);

ALTER TYPE event_kind ADD VALUE 'message_posted';
ALTER TYPE event_kind ADD VALUE 'reply_progress';

-- A user's upload by presigned PUT: granted with its key, type and size, and recorded as an
-- artifact only once the object is there and matches what was granted (the artifact row,
-- under the same key, says it was).
CREATE TABLE uploads (
    id            uuid PRIMARY KEY,
    project_id    uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key           text NOT NULL UNIQUE,
    filename      text NOT NULL,
    content_type  text NOT NULL,
    size_bytes    bigint NOT NULL CHECK (size_bytes > 0),
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uploads_by_project ON uploads (project_id, created_at DESC);
