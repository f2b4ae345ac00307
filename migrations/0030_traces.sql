-- Traces (shared/src/telemetry.rs): a run is one trace, from the API call that created it
-- to every step. The run keeps its trace's W3C traceparent, for the steps whose messages
-- come from the state machine (which carries no attribute of ours); each outbox entry
-- keeps the trace it was written in, so the relay sends it on in that trace even when the
-- reconciler sends it later from another invocation.
ALTER TABLE runs ADD COLUMN traceparent text CHECK (length(traceparent) <= 64);
ALTER TABLE outbox ADD COLUMN traceparent text CHECK (length(traceparent) <= 64);
