-- Long jobs (app builds): the step that starts one parks its task, which waits as
-- `awaiting_job` holding no worker and no budget, while the job-watch state machine polls
-- the service. The job is the deployments rows its tool call started (`call_key`); its
-- `deadline_at` is when the watcher gives up and records `timed_out`. A row's
-- `provider_id` is the service's handle of the job until the thing itself has an id (an
-- EAS background job receipt, then the build's id).
ALTER TYPE task_status ADD VALUE IF NOT EXISTS 'awaiting_job' AFTER 'awaiting_approval';

ALTER TABLE deployments
    ADD COLUMN call_key    text,
    ADD COLUMN deadline_at timestamptz;
CREATE INDEX deployments_by_call ON deployments (call_key) WHERE call_key IS NOT NULL;
