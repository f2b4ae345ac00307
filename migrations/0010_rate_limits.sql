-- Rate limit counters: one row per bucket (user, IP, sign-up IP...) and minute. Unlogged:
-- counters only matter for the minute they count, so they skip the WAL (a crash empties
-- the table, which forgives a minute). The sweep deletes past minutes.
CREATE UNLOGGED TABLE rate_counters (
    bucket        text NOT NULL,
    window_start  timestamptz NOT NULL,
    hits          integer NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
