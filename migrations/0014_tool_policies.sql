-- Which of a user's tools that act in the world run without asking (crew/tools.rs EFFECTS).
-- No row means ask: every external effect waits for a person's approval by default.
CREATE TABLE tool_policies (
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tool          text NOT NULL CHECK (length(tool) BETWEEN 1 AND 64),
    auto_approve  boolean NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, tool)
);
