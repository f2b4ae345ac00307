-- Users who sign in with an external OpenID Connect issuer (OIDC_ISSUER): the issuer's
-- subject names one user of ours, created on first sight. Their users row has no password.
CREATE TABLE external_identities (
    issuer      text NOT NULL,
    subject     text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX external_identities_by_user ON external_identities (user_id);
