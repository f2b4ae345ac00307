-- Connected accounts: a user's credential for an outside service, sealed by envelope
-- encryption (services/vault.rs). The credential is AES-256-GCM under a data key of its
-- own; the data key is kept only wrapped, by KMS on AWS or by the local key file. The
-- row's user and service are the additional data, so a sealed value moved to another
-- row does not open.
CREATE TYPE service AS ENUM ('github', 'vercel', 'expo', 'resend', 'x', 'linkedin');
CREATE TYPE connection_status AS ENUM ('active', 'invalid');

CREATE TABLE connections (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    service        service NOT NULL,
    account        text NOT NULL CHECK (length(account) BETWEEN 1 AND 200),
    hint           text NOT NULL CHECK (length(hint) <= 4),
    -- nonce (12 bytes) || ciphertext || tag (16 bytes)
    sealed_secret  bytea NOT NULL,
    wrapped_key    bytea NOT NULL,
    -- Which master key wrapped the data key (a KMS key ARN, or file:<fingerprint>).
    key_id         text NOT NULL,
    status         connection_status NOT NULL DEFAULT 'active',
    status_reason  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz,
    -- One connection per service: connecting again replaces the credential.
    UNIQUE (user_id, service)
);
