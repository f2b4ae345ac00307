-- The user's IANA time zone: their daily schedules' (and anything else on their clock)
-- default. Set by PATCH /me.
ALTER TABLE users
    ADD COLUMN timezone text NOT NULL DEFAULT 'UTC' CHECK (length(timezone) BETWEEN 1 AND 64);
