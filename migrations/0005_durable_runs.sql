-- Durable, steerable runs.

-- The transactional outbox. Every write-then-send of the engine (a task to its agent's
-- queue, an answer to a Step Functions task token, starting or stopping an execution)
-- writes its message here in the same transaction as the state change it carries out. A
-- relay sends the rows right after the commit and deletes them; the reconciler re-sends
-- whatever is still here after a short delay. A crash between commit and send therefore
-- delays a message, never loses it; consumers are idempotent, so a message sent twice
-- does no harm.
CREATE TABLE outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      uuid REFERENCES runs (id) ON DELETE CASCADE,
    -- The message, tagged by kind (shared/src/services/messages.rs, `Outgoing`).
    message     jsonb NOT NULL,
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_by_age ON outbox (created_at);

-- A running attempt proves it is alive every few seconds; one whose heartbeat is older
-- than the limit died, and the reconciler fails it as retryable and dispatches it again.
ALTER TABLE task_attempts ADD COLUMN heartbeat_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX task_attempts_running_by_heartbeat ON task_attempts (heartbeat_at) WHERE status = 'running';

-- The plan step's lease: its task token and heartbeat, so a planner that died is replaced
-- by the reconciler without waiting for the plan message's visibility timeout.
ALTER TABLE runs ADD COLUMN plan_token text;
ALTER TABLE runs ADD COLUMN heartbeat_at timestamptz;
CREATE INDEX runs_planning_by_heartbeat ON runs (heartbeat_at) WHERE status = 'planning';
-- Past its deadline a run fails with a clear error. Null: no deadline.
ALTER TABLE runs ADD COLUMN deadline_at timestamptz;
CREATE INDEX runs_open_by_deadline ON runs (deadline_at)
    WHERE status IN ('pending', 'planning', 'running', 'compiling');
-- How many executions the run has had: a resumed run gets a new one, named
-- run-<id>-<n>, because Step Functions names are unique.
ALTER TABLE runs ADD COLUMN executions integer NOT NULL DEFAULT 1 CHECK (executions >= 1);

ALTER TYPE event_kind ADD VALUE 'run_cancelled';
ALTER TYPE event_kind ADD VALUE 'run_resumed';
ALTER TYPE event_kind ADD VALUE 'task_retried';
ALTER TYPE attempt_status ADD VALUE 'cancelled';
