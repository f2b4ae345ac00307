-- Re-planning: the orchestrator may replace the part of a run's graph that has not
-- started, at most a few times a run. A revision asked for and not yet made holds the
-- run's end (`revision_pending`): the execute token is answered once it is made or given up.
ALTER TYPE task_status ADD VALUE 'replaced';
ALTER TYPE event_kind ADD VALUE 'plan_revised';
ALTER TABLE runs
    ADD COLUMN revisions int NOT NULL DEFAULT 0 CHECK (revisions >= 0),
    ADD COLUMN revision_pending text;
