-- What the first end-to-end run needs on top of the foundation.

-- The task token of the state machine's "execute" step: whoever ends the run's last task
-- answers it (SendTaskSuccess when every task completed, SendTaskFailure otherwise).
ALTER TABLE runs ADD COLUMN execute_token text;

-- Development bearer tokens: the seam where real authentication plugs in later. Only the
-- sha-256 of a token is stored; the token itself is shown once, at creation.
CREATE TABLE api_tokens (
    token_sha256  text PRIMARY KEY CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);
