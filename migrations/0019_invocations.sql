-- Tasks of any length on a serverless platform: one attempt of a task may span many
-- Lambda invocations. The agent loop checkpoints after every model turn and its tool
-- calls; when the invocation's time runs short it hands the task on through the outbox
-- (the task goes back to `queued` while its attempt stays `running`), and the next
-- invocation resumes the same attempt at the checkpoint. `invocations` counts them;
-- `busy_ms` adds up the time invocations spent on the attempt (what Lambda bills).
ALTER TABLE task_attempts
    ADD COLUMN invocations integer NOT NULL DEFAULT 1 CHECK (invocations >= 1),
    ADD COLUMN busy_ms     bigint  NOT NULL DEFAULT 0 CHECK (busy_ms >= 0);
