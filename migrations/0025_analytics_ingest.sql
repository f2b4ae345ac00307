-- Analytics ingestion: the project's app and landing page post their events
-- (POST /projects/{id}/analytics/events). Each event is kept once per client event id, so a
-- batch sent again adds nothing.
ALTER TABLE analytics_events
    ADD COLUMN event_id    text CHECK (length(event_id) BETWEEN 1 AND 100),
    ADD COLUMN visitor_id  text CHECK (length(visitor_id) BETWEEN 1 AND 100),
    ADD COLUMN received_at timestamptz NOT NULL DEFAULT now();
CREATE UNIQUE INDEX analytics_events_once ON analytics_events (project_id, event_id);
-- The owner's traffic per day reads by user and time.
CREATE INDEX analytics_events_by_user ON analytics_events (user_id, occurred_at);

-- A project's public ingest key: the landing page carries it, so it is not a secret; it can
-- only add events to its project, and revoking it stops that at once. One live key per
-- project; revoked keys are kept so a late beacon's refusal says the key was revoked.
CREATE TABLE ingest_keys (
    key         text PRIMARY KEY CHECK (length(key) BETWEEN 20 AND 100),
    project_id  uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE UNIQUE INDEX ingest_keys_live ON ingest_keys (project_id) WHERE revoked_at IS NULL;
