-- The LLM gateway: per-provider concurrency slots shared by every function, the exact
-- response cache, the opt-in semantic cache, and which attempt of a call a ledger row is.

-- A provider's concurrency limit is its number of slots. A call leases a free slot (or one
-- whose lease ran out: its holder died) and gives it back after; SKIP LOCKED keeps racing
-- callers from waiting on each other's row locks.
CREATE TABLE llm_provider_slots (
    provider      text NOT NULL,
    slot          integer NOT NULL CHECK (slot >= 0),
    holder        uuid,
    leased_until  timestamptz,
    PRIMARY KEY (provider, slot)
);

-- Exact-match responses: the key is the sha-256 of provider, model, system prompt,
-- messages, tools and parameters. A hit costs nothing and is written to the ledger as
-- `cache_hit`.
CREATE TABLE llm_response_cache (
    key         text PRIMARY KEY CHECK (length(key) = 64),
    provider    text NOT NULL,
    model       text NOT NULL,
    response    jsonb NOT NULL,
    hits        bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX llm_response_cache_expiry ON llm_response_cache (expires_at);

-- The semantic cache, per user and opt-in: a question close enough (cosine similarity at
-- or above the user's threshold) to one already answered, under the same embedding model,
-- gets the stored answer.
CREATE TABLE llm_semantic_cache (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope            text NOT NULL,
    prompt           text NOT NULL,
    embedding        vector NOT NULL,
    embedding_model  text NOT NULL,
    embedding_dim    integer NOT NULL CHECK (embedding_dim > 0),
    response         jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    CHECK (vector_dims(embedding) = embedding_dim)
);
CREATE INDEX llm_semantic_cache_by_owner ON llm_semantic_cache (user_id, scope, embedding_model);

-- NULL: the semantic cache is off for this user (the default). A number: on, with that
-- minimum cosine similarity.
ALTER TABLE users ADD COLUMN semantic_cache_threshold real
    CHECK (semantic_cache_threshold IS NULL OR semantic_cache_threshold BETWEEN 0.5 AND 1.0);

-- Which try of one logical call this row is: retries and fallbacks each get a row.
ALTER TABLE llm_calls ADD COLUMN attempt integer NOT NULL DEFAULT 1 CHECK (attempt >= 1);
