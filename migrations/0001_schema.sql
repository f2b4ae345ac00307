-- Autocrew's schema. Every enum here mirrors a Rust enum in shared/src/domain/kinds.rs;
-- the conversion lives in one place (the pg_enum! macro there). Money is integer
-- micro-dollars (1 USD = 1,000,000) so sums are exact.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TYPE agent_kind AS ENUM ('orchestrator', 'developer', 'marketer', 'sales', 'designer', 'ops');
-- pending: waits for dependencies; ready: all dependencies completed, not yet sent;
-- queued: budget reserved and sent to the agent's queue; blocked: a dependency failed.
CREATE TYPE task_status AS ENUM ('pending', 'ready', 'queued', 'running', 'completed', 'failed', 'blocked', 'cancelled');
-- Declared low to high: ORDER BY priority DESC puts critical first.
CREATE TYPE task_priority AS ENUM ('low', 'normal', 'high', 'critical');
CREATE TYPE task_complexity AS ENUM ('simple', 'medium', 'complex');
CREATE TYPE run_status AS ENUM ('pending', 'planning', 'running', 'compiling', 'succeeded', 'failed', 'cancelled');
CREATE TYPE attempt_status AS ENUM ('running', 'succeeded', 'failed');
CREATE TYPE approval_status AS ENUM ('pending', 'approved', 'rejected', 'expired');
CREATE TYPE user_tier AS ENUM ('free', 'pro', 'team');
CREATE TYPE deployment_status AS ENUM ('pending', 'in_progress', 'live', 'failed', 'rolled_back');
CREATE TYPE message_role AS ENUM ('system', 'user', 'assistant', 'tool');
CREATE TYPE llm_call_outcome AS ENUM ('ok', 'error', 'cache_hit', 'refused');
CREATE TYPE event_kind AS ENUM (
    'run_created', 'run_planned', 'run_failed', 'run_completed',
    'task_queued', 'task_started', 'task_progress', 'task_completed', 'task_failed', 'task_blocked',
    'artifact_stored', 'approval_requested', 'approval_decided'
);

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL UNIQUE CHECK (email = lower(email) AND position('@' IN email) > 1),
    display_name  text NOT NULL DEFAULT '',
    tier          user_tier NOT NULL DEFAULT 'free',
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description     text NOT NULL DEFAULT '',
    -- The last event sequence number handed out. Appending an event increments it under
    -- the row lock, so a project's sequence is strictly increasing with no gaps.
    last_event_seq  bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_by_user ON projects (user_id, created_at DESC);

CREATE TABLE runs (
    id                 uuid PRIMARY KEY,
    project_id         uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    command            text NOT NULL CHECK (length(command) BETWEEN 1 AND 4000),
    status             run_status NOT NULL DEFAULT 'pending',
    -- Step Functions execution: the name is ours (unique), the ARN is AWS's answer.
    execution_name     text NOT NULL UNIQUE,
    execution_arn      text,
    plan               jsonb,
    budget_micro_usd   bigint NOT NULL CHECK (budget_micro_usd >= 0),
    reserved_micro_usd bigint NOT NULL DEFAULT 0 CHECK (reserved_micro_usd >= 0),
    spent_micro_usd    bigint NOT NULL DEFAULT 0 CHECK (spent_micro_usd >= 0),
    max_concurrency    integer NOT NULL DEFAULT 4 CHECK (max_concurrency > 0),
    -- Tasks not yet ended. Ending a task decrements it under the row lock, so of two tasks
    -- ending at once exactly one sees the run settle.
    open_tasks         integer NOT NULL DEFAULT 0 CHECK (open_tasks >= 0),
    error              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    completed_at       timestamptz
);
CREATE INDEX runs_by_project ON runs (project_id, created_at DESC);
CREATE INDEX runs_by_user ON runs (user_id, created_at DESC);

CREATE TABLE tasks (
    id                   uuid PRIMARY KEY,
    run_id               uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    project_id           uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    parent_task_id       uuid REFERENCES tasks (id) ON DELETE SET NULL,
    -- The task's key inside its plan ("design_brand"); dependencies in the plan use it.
    task_key             text NOT NULL,
    -- Index in the plan: ties in priority dispatch in plan order.
    position             integer NOT NULL CHECK (position >= 0),
    agent                agent_kind NOT NULL,
    title                text NOT NULL,
    description          text NOT NULL DEFAULT '',
    status               task_status NOT NULL DEFAULT 'pending',
    priority             task_priority NOT NULL DEFAULT 'normal',
    complexity           task_complexity NOT NULL DEFAULT 'medium',
    budget_micro_usd     bigint NOT NULL DEFAULT 0 CHECK (budget_micro_usd >= 0),
    -- Dependencies not yet completed. Completing a dependency decrements it under the row
    -- lock, so of two racing completions exactly one sees it reach zero.
    pending_dependencies integer NOT NULL DEFAULT 0 CHECK (pending_dependencies >= 0),
    attempts             integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts         integer NOT NULL DEFAULT 3 CHECK (max_attempts > 0),
    result               jsonb,
    error_log            text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    started_at           timestamptz,
    completed_at         timestamptz,
    UNIQUE (run_id, task_key)
);
CREATE INDEX tasks_by_run ON tasks (run_id, position);
-- "Ready tasks of a run, highest priority first": the dispatcher's query.
CREATE INDEX tasks_ready_by_priority ON tasks (run_id, priority DESC, position) WHERE status = 'ready';
CREATE INDEX tasks_in_flight ON tasks (run_id) WHERE status IN ('queued', 'running');

CREATE TABLE task_dependencies (
    task_id     uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    depends_on  uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, depends_on),
    CHECK (task_id <> depends_on)
);
-- Completing a task looks up its dependants.
CREATE INDEX task_dependants ON task_dependencies (depends_on);

CREATE TABLE task_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id      uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt_no   integer NOT NULL CHECK (attempt_no > 0),
    status       attempt_status NOT NULL DEFAULT 'running',
    error        text,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    UNIQUE (task_id, attempt_no)
);

CREATE TABLE conversations (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id  uuid REFERENCES projects (id) ON DELETE CASCADE,
    run_id      uuid REFERENCES runs (id) ON DELETE SET NULL,
    task_id     uuid REFERENCES tasks (id) ON DELETE SET NULL,
    agent       agent_kind,
    role        message_role NOT NULL,
    content     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_by_project ON conversations (project_id, created_at);

CREATE TABLE agent_memory (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id       uuid REFERENCES projects (id) ON DELETE CASCADE,
    agent            agent_kind NOT NULL,
    content          text NOT NULL,
    -- Any model's vector; the model and its dimension are stored with it, and each
    -- dimension in use gets its own HNSW index over a cast (HNSW needs a fixed dimension).
    embedding        vector NOT NULL,
    embedding_model  text NOT NULL,
    embedding_dim    integer NOT NULL CHECK (embedding_dim > 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (vector_dims(embedding) = embedding_dim)
);
CREATE INDEX agent_memory_by_owner ON agent_memory (user_id, project_id, agent);
-- 1536 is OpenAI text-embedding-3-small's and the offline embedder's dimension.
CREATE INDEX agent_memory_hnsw_1536 ON agent_memory
    USING hnsw ((embedding::vector(1536)) vector_cosine_ops) WHERE embedding_dim = 1536;

CREATE TABLE artifacts (
    id               uuid PRIMARY KEY,
    project_id       uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    run_id           uuid REFERENCES runs (id) ON DELETE SET NULL,
    task_id          uuid REFERENCES tasks (id) ON DELETE SET NULL,
    bucket           text NOT NULL,
    key              text NOT NULL,
    content_type     text NOT NULL,
    size_bytes       bigint NOT NULL CHECK (size_bytes >= 0),
    checksum_sha256  text NOT NULL CHECK (checksum_sha256 ~ '^[0-9a-f]{64}$'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bucket, key)
);
CREATE INDEX artifacts_by_run ON artifacts (run_id);

CREATE TABLE deployments (
    id           uuid PRIMARY KEY,
    project_id   uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    run_id       uuid REFERENCES runs (id) ON DELETE SET NULL,
    task_id      uuid REFERENCES tasks (id) ON DELETE SET NULL,
    artifact_id  uuid REFERENCES artifacts (id) ON DELETE SET NULL,
    target       text NOT NULL,
    environment  text NOT NULL DEFAULT 'preview',
    status       deployment_status NOT NULL DEFAULT 'pending',
    url          text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployments_by_project ON deployments (project_id, created_at DESC);

CREATE TABLE analytics_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      uuid REFERENCES users (id) ON DELETE SET NULL,
    project_id   uuid REFERENCES projects (id) ON DELETE CASCADE,
    name         text NOT NULL,
    properties   jsonb NOT NULL DEFAULT '{}',
    occurred_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX analytics_events_by_project ON analytics_events (project_id, occurred_at);
CREATE INDEX analytics_events_by_name ON analytics_events (name, occurred_at);

-- The LLM call ledger: one row per provider call (or cache hit, or refusal), priced and
-- attributed. Rollups per run, project, agent and user read these indexes.
CREATE TABLE llm_calls (
    id                  uuid PRIMARY KEY,
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id          uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    run_id              uuid REFERENCES runs (id) ON DELETE SET NULL,
    task_id             uuid REFERENCES tasks (id) ON DELETE SET NULL,
    agent               agent_kind NOT NULL,
    provider            text NOT NULL,
    model               text NOT NULL,
    outcome             llm_call_outcome NOT NULL,
    input_tokens        integer NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens       integer NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    cache_write_tokens  integer NOT NULL DEFAULT 0 CHECK (cache_write_tokens >= 0),
    cache_read_tokens   integer NOT NULL DEFAULT 0 CHECK (cache_read_tokens >= 0),
    cost_micro_usd      bigint NOT NULL DEFAULT 0 CHECK (cost_micro_usd >= 0),
    latency_ms          integer NOT NULL DEFAULT 0 CHECK (latency_ms >= 0),
    error               text,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_calls_by_run ON llm_calls (run_id);
CREATE INDEX llm_calls_by_task ON llm_calls (task_id);
CREATE INDEX llm_calls_by_project ON llm_calls (project_id, created_at);
CREATE INDEX llm_calls_by_user ON llm_calls (user_id, created_at);

CREATE TABLE events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    run_id      uuid REFERENCES runs (id) ON DELETE CASCADE,
    seq         bigint NOT NULL CHECK (seq > 0),
    kind        event_kind NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Also the index for "events of a project after sequence N".
    UNIQUE (project_id, seq)
);
CREATE INDEX events_by_run ON events (run_id, seq);

-- An approval is bound to the sha-256 of the exact payload that was shown; only that
-- payload may be executed, and only before expires_at.
CREATE TABLE approvals (
    id            uuid PRIMARY KEY,
    project_id    uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    run_id        uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task_id       uuid REFERENCES tasks (id) ON DELETE CASCADE,
    tool          text NOT NULL,
    payload       jsonb NOT NULL,
    payload_hash  text NOT NULL CHECK (payload_hash ~ '^[0-9a-f]{64}$'),
    task_token    text,
    status        approval_status NOT NULL DEFAULT 'pending',
    expires_at    timestamptz NOT NULL,
    decided_at    timestamptz,
    decided_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    reason        text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'pending') = (decided_at IS NULL))
);
CREATE INDEX approvals_pending_by_expiry ON approvals (expires_at) WHERE status = 'pending';
CREATE INDEX approvals_by_run ON approvals (run_id);

-- At-least-once delivery: a step claims (scope, key) before any side effect; a retry
-- finds the claim and, once completed, its stored result.
CREATE TABLE idempotency_keys (
    scope         text NOT NULL,
    key           text NOT NULL,
    result        jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
