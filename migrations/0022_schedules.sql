-- Schedules: a project's command started by a clock (EventBridge Scheduler on AWS, the
-- local runner here), in the schedule's time zone. Each fire is kept once per (schedule,
-- scheduled time), with what it did: two deliveries of one fire start one run.
CREATE TYPE schedule_overlap AS ENUM ('skip', 'queue');
CREATE TYPE schedule_catch_up AS ENUM ('skip', 'once');
CREATE TYPE fire_outcome AS ENUM ('started', 'skipped', 'queued');

CREATE TABLE schedules (
    id               uuid PRIMARY KEY,
    project_id       uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expression       text NOT NULL CHECK (length(expression) BETWEEN 1 AND 256),
    timezone         text NOT NULL DEFAULT 'UTC' CHECK (length(timezone) BETWEEN 1 AND 64),
    command          text NOT NULL CHECK (length(command) BETWEEN 1 AND 4000),
    budget_micro_usd bigint NOT NULL CHECK (budget_micro_usd > 0),
    overlap          schedule_overlap NOT NULL DEFAULT 'skip',
    catch_up         schedule_catch_up NOT NULL DEFAULT 'skip',
    enabled          boolean NOT NULL DEFAULT true,
    -- When it fires next: null once it never fires again (an at() that fired).
    next_fire_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_by_project ON schedules (project_id, created_at DESC);
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE enabled AND next_fire_at IS NOT NULL;

CREATE TABLE schedule_fires (
    schedule_id  uuid NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    scheduled_at timestamptz NOT NULL,
    outcome      fire_outcome NOT NULL,
    run_id       uuid REFERENCES runs (id) ON DELETE SET NULL,
    -- Why a fire started nothing (or waits), in words.
    reason       text,
    fired_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_id, scheduled_at)
);

-- The run a fire started is an ordinary run, marked with its schedule.
ALTER TABLE runs ADD COLUMN schedule_id uuid REFERENCES schedules (id) ON DELETE SET NULL;
CREATE INDEX runs_by_schedule ON runs (schedule_id, created_at DESC) WHERE schedule_id IS NOT NULL;
