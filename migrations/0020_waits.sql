-- Waiting at real scale: a call may wait for a concurrency slot (the provider's or its
-- model's own, `max_in_flight` in the model table) or for as long as the provider asked
-- (429 or 529 with `retry-after`), within its task's invocation and its run's deadline.
-- Each ledger row says how long it waited before it was sent.
ALTER TABLE llm_calls
    ADD COLUMN waited_ms integer NOT NULL DEFAULT 0 CHECK (waited_ms >= 0);
