-- Connecting by OAuth's authorization-code flow (X with PKCE, LinkedIn): the API gives the
-- user a link to the service's consent page; the service sends the browser back to the
-- public callback with a code and our `state`; the callback trades the code for tokens.
-- The state is the flow's only handle in the browser, so only its SHA-256 is kept. The
-- PKCE code verifier is a credential in waiting: sealed like a token. A flow is used once:
-- the callback claims it (`pending` → `exchanging`) before it calls the service, and it
-- ends `connected` or `failed` with the reason the app is shown.
CREATE TABLE web_flows (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    service        service NOT NULL,
    state_hash     bytea NOT NULL UNIQUE,
    sealed_secret  bytea NOT NULL,
    wrapped_key    bytea NOT NULL,
    key_id         text NOT NULL,
    -- Exactly as sent in the authorization request: the token request must repeat it.
    redirect_uri   text NOT NULL,
    -- Where the browser goes once the flow ended (the app's deep link), if the app gave one.
    return_to      text,
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'exchanging', 'connected', 'failed')),
    reason         text,
    connection_id  uuid REFERENCES connections (id) ON DELETE SET NULL,
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX web_flows_by_user ON web_flows (user_id);

-- Tokens from an OAuth flow expire (X's after two hours, LinkedIn's after sixty days). A
-- refresh token, where the service gives one, is sealed beside the access token, and the
-- tools renew the access token before it lapses. Renewal is leased (`renewing_until`) so
-- two tasks never spend one rotating refresh token twice.
ALTER TABLE connections
    ADD COLUMN expires_at             timestamptz,
    ADD COLUMN refresh_sealed_secret  bytea,
    ADD COLUMN refresh_wrapped_key    bytea,
    ADD COLUMN refresh_key_id         text,
    ADD COLUMN renewing_until         timestamptz;
