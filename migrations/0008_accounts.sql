-- Real sign-in: passwords (argon2id, PHC strings), rotating refresh tokens, one-time email
-- tokens, and the local mail outbox. Access tokens are JWTs and are never stored.

ALTER TABLE users
    ADD COLUMN password_hash text CHECK (password_hash IS NULL OR password_hash LIKE '$argon2id$%'),
    ADD COLUMN email_verified_at timestamptz;

-- Refresh tokens rotate on every use. A family is one sign-in: each rotation adds a token
-- to it and marks the one used as replaced. A replaced token shown again means it was
-- stolen (or the client is confused): the whole family is revoked.
CREATE TABLE refresh_tokens (
    token_sha256  text PRIMARY KEY CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    family_id     uuid NOT NULL,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    replaced_at   timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);

CREATE TYPE email_token_purpose AS ENUM ('verify_email', 'reset_password');

-- Links sent by email: only their sha-256 is kept; each works once, before its expiry.
CREATE TABLE email_tokens (
    token_sha256  text PRIMARY KEY CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose       email_token_purpose NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);
CREATE INDEX email_tokens_by_user ON email_tokens (user_id);

-- Mail sent in local mode (EMAIL_PROVIDER=outbox): what Resend would have delivered, for
-- `autocrew mail` to show.
CREATE TABLE mail_outbox (
    id          bigserial PRIMARY KEY,
    to_address  text NOT NULL,
    subject     text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mail_outbox_by_address ON mail_outbox (to_address, id);

-- Development tokens are gone: every request carries a signed access token.
DROP TABLE api_tokens;
