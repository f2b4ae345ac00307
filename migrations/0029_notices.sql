-- Notices: what reaches a user outside the app's socket. Push notifications to the user's
-- devices through Expo, and signed webhooks to the user's own URLs. Both are written by the
-- event append itself (effects.rs), in the event's transaction, so an event that committed
-- always has its notices, and a worker that dies mid-send leaves them due, never lost.

-- A device's Expo push token. A token belongs to the last user who registered it (a phone
-- that signs in as someone else moves with them).
CREATE TABLE devices (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token       text NOT NULL UNIQUE CHECK (token ~ '^Expo(nent)?PushToken\[[A-Za-z0-9_-]{1,200}\]$'),
    platform    text CHECK (platform IN ('ios', 'android')),
    name        text CHECK (length(name) <= 100),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_by_user ON devices (user_id);

-- The push kinds a user turned off (PATCH /me/notifications).
ALTER TABLE users ADD COLUMN push_muted event_kind[] NOT NULL DEFAULT '{}';

-- One push of one event to one device. pending → sent (Expo gave a ticket) → delivered (its
-- receipt is ok); failed (Expo refused it for good); dropped (the device is not registered:
-- its token was deleted, and nothing is sent to it again).
CREATE TABLE push_messages (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id        uuid REFERENCES devices (id) ON DELETE SET NULL,
    token            text NOT NULL,
    project_id       uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    seq              bigint NOT NULL,
    kind             event_kind NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sent', 'delivered', 'failed', 'dropped')),
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    ticket_id        text,
    error            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    checked_at       timestamptz
);
CREATE INDEX push_messages_due ON push_messages (next_attempt_at) WHERE status = 'pending';
CREATE INDEX push_messages_unreceipted ON push_messages (sent_at) WHERE status = 'sent';
CREATE INDEX push_messages_by_user ON push_messages (user_id, created_at);

-- A user's webhook: a URL that gets the run events of `kinds`, signed with `secret`.
CREATE TABLE webhooks (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url          text NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
    kinds        event_kind[] NOT NULL CHECK (cardinality(kinds) BETWEEN 1 AND 64),
    secret       text NOT NULL CHECK (length(secret) >= 32),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 200),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_by_user ON webhooks (user_id);

-- One event for one webhook, tried until it answers 2xx or its attempts run out.
CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    webhook_id       uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    project_id       uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    seq              bigint NOT NULL,
    kind             event_kind NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    ended_at         timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, created_at DESC);

-- Each attempt of a delivery: what the URL answered, or why nothing came back.
CREATE TABLE webhook_attempts (
    delivery_id  uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      int NOT NULL CHECK (attempt > 0),
    at           timestamptz NOT NULL DEFAULT now(),
    status_code  int,
    error        text,
    duration_ms  int NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
