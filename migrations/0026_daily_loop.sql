-- The daily marketing loop. A project launches when it first has a ready site or a
-- published post; it then gets one daily-loop schedule (08:00 in the user's time zone),
-- which the user can change, pause or delete like any schedule. Posts the tools publish
-- are kept with the engagement last fetched, for the loop to learn from.
CREATE TYPE schedule_kind AS ENUM ('command', 'daily_loop');
ALTER TABLE schedules ADD COLUMN kind schedule_kind NOT NULL DEFAULT 'command';
CREATE UNIQUE INDEX schedules_one_daily_loop ON schedules (project_id) WHERE kind = 'daily_loop';

ALTER TABLE projects ADD COLUMN launched_at timestamptz;

CREATE TABLE social_posts (
    service      service NOT NULL,
    -- X's post id, LinkedIn's post URN.
    provider_id  text NOT NULL CHECK (length(provider_id) BETWEEN 1 AND 200),
    project_id   uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    run_id       uuid REFERENCES runs (id) ON DELETE SET NULL,
    link         text NOT NULL,
    text         text NOT NULL,
    posted_at    timestamptz NOT NULL DEFAULT now(),
    -- The engagement last fetched from the service: likes, replies, reposts, impressions.
    metrics      jsonb,
    metrics_at   timestamptz,
    PRIMARY KEY (service, provider_id)
);
CREATE INDEX social_posts_by_project ON social_posts (project_id, posted_at DESC);

ALTER TYPE event_kind ADD VALUE 'morning_report';
