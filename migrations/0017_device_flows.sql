-- Connecting by OAuth's device flow (GitHub): the API asks the service for a device code
-- and a user code, the user enters the user code at the service's verification page, and
-- the app polls until the service hands out the token. While it waits, the device code
-- is a credential in waiting: it is sealed like a token (same envelope, same additional
-- data), and the row is gone once the flow ends or expires.
CREATE TABLE device_flows (
    id                uuid PRIMARY KEY,
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    service           service NOT NULL,
    sealed_secret     bytea NOT NULL,
    wrapped_key       bytea NOT NULL,
    key_id            text NOT NULL,
    user_code         text NOT NULL,
    verification_uri  text NOT NULL,
    -- The least number of seconds between two polls, as the service asks (it grows on slow_down).
    interval_secs     integer NOT NULL CHECK (interval_secs > 0),
    expires_at        timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX device_flows_by_user ON device_flows (user_id);
