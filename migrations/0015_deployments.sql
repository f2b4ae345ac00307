-- Every deploy and build a tool starts at an outside service: which one, where it stands,
-- its URL and the service's own ids. The app follows them (deployment_updated events) and
-- lists them per project.
-- 0001's placeholder table of this name was never written to; this one replaces it.
DROP TABLE deployments;
DROP TYPE deployment_status;

CREATE TYPE deployment_status AS ENUM ('queued', 'building', 'ready', 'failed', 'canceled', 'timed_out');

CREATE TABLE deployments (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id      uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    run_id          uuid REFERENCES runs (id) ON DELETE SET NULL,
    task_id         uuid REFERENCES tasks (id) ON DELETE SET NULL,
    service         service NOT NULL,
    -- What was deployed or built: site, ios_build, android_build.
    kind            text NOT NULL CHECK (kind IN ('site', 'ios_build', 'android_build')),
    status          deployment_status NOT NULL,
    url             text,
    -- Where a person inspects it at the service (Vercel's inspector, the EAS build page).
    inspect_url     text,
    provider_id     text NOT NULL,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE (service, provider_id)
);
CREATE INDEX deployments_by_project ON deployments (project_id, created_at DESC);

ALTER TYPE event_kind ADD VALUE IF NOT EXISTS 'deployment_updated';
