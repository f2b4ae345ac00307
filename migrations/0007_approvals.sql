-- Approvals as parked tasks. A critical tool call (one its agent's profile marks, such as
-- `publish`) does not run: the attempt stores where the agent loop stood (the task's
-- checkpoint), records an approval bound to the sha-256 of the exact action payload, and
-- the task waits as `awaiting_approval`, holding no message, no worker and no budget. A
-- decision (or the expiry) makes the task ready again; its next attempt resumes the loop
-- at the checkpoint, and the approved payload runs once (its tool call's idempotency key).

ALTER TYPE task_status ADD VALUE 'awaiting_approval' AFTER 'running';
-- The attempt that stopped at a critical call: it does not count against the task's
-- attempts (the task gets one more when it is made ready again).
ALTER TYPE attempt_status ADD VALUE 'parked';
-- An approved action ran: what it did (for publish, the link).
ALTER TYPE event_kind ADD VALUE 'action_executed';

-- Where the agent loop stood when the task parked: the turn, the conversation up to and
-- including the model's tool calls, and the files written so far. Kept until the task
-- completes, so a later attempt never asks the model again for a call already approved.
ALTER TABLE tasks ADD COLUMN checkpoint jsonb;

-- The approval belongs to one tool call: its idempotency key (run, task, turn, position,
-- arguments). The wait is a parked task, not a Step Functions task token.
ALTER TABLE approvals DROP COLUMN task_token;
ALTER TABLE approvals ADD COLUMN call_key text NOT NULL CHECK (call_key ~ '^[0-9a-f]{64}$');
ALTER TABLE approvals ADD COLUMN executed_at timestamptz;
ALTER TABLE approvals ADD COLUMN result jsonb;
ALTER TABLE approvals ADD CONSTRAINT approvals_one_per_call UNIQUE (task_id, call_key);
ALTER TABLE approvals ADD CONSTRAINT approvals_run_once_approved
    CHECK (executed_at IS NULL OR status = 'approved');
