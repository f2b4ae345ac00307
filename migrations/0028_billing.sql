-- Revenue. A user's plan follows their Stripe subscription; the AI budget of a billing
-- period is a share of the money its invoices actually collected (net of refunds), plus
-- what is left of the one-time trial credit, plus the overage cap a subscriber opted in to.
-- Budgets are still reserved atomically: `hold_period` below is the one place the limit is
-- computed and checked, under the period row's lock.

-- Plans are data (shared/data/plans.json); the plan a user is on is derived, never stored:
-- their live subscription's plan, or free (see `effective_plan`).
ALTER TABLE users DROP COLUMN tier;
DROP TYPE user_tier;
-- AI spend past the included budget a subscriber allows, metered to Stripe; NULL: none
-- (the budget is a hard stop).
ALTER TABLE users ADD COLUMN overage_cap_micro_usd bigint CHECK (overage_cap_micro_usd > 0);

-- Spend is kept per budget period: a subscription's current period, or the UTC calendar
-- month for a user with none. `period_start` is the period's first day (UTC), its key.
ALTER TABLE user_monthly_spend RENAME TO user_period_spend;
ALTER TABLE user_period_spend RENAME COLUMN month TO period_start;
ALTER TABLE user_period_spend DROP CONSTRAINT user_monthly_spend_month_check;
ALTER TABLE user_period_spend
    ADD COLUMN starts timestamptz,
    ADD COLUMN ends timestamptz,
    -- A period of a live subscription: its revenue and the overage cap count.
    ADD COLUMN paid boolean NOT NULL DEFAULT false;
UPDATE user_period_spend
    SET starts = period_start::timestamp AT TIME ZONE 'UTC',
        ends = (period_start + interval '1 month')::timestamp AT TIME ZONE 'UTC';
ALTER TABLE user_period_spend
    ALTER COLUMN starts SET NOT NULL,
    ALTER COLUMN ends SET NOT NULL,
    ADD CHECK (starts < ends);
ALTER TABLE budget_reservations RENAME COLUMN month TO period_start;
-- A run is budgeted in the period it made its first reservation in, so a run in flight
-- finishes on that period's budget when the plan drops or the period renews.
ALTER TABLE runs ADD COLUMN period_start date;

CREATE TYPE subscription_status AS ENUM (
    'incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled',
    'unpaid', 'paused');

-- One Stripe customer per user, made once.
CREATE TABLE billing_customers (
    user_id             uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    stripe_customer_id  text NOT NULL UNIQUE,
    created_at          timestamptz NOT NULL DEFAULT now()
);

-- Each Stripe subscription as Stripe last showed it (re-fetched on every event about it,
-- so delivery order never matters).
CREATE TABLE subscriptions (
    stripe_subscription_id  text PRIMARY KEY,
    user_id                 uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    plan                    text NOT NULL,
    billing_interval        text NOT NULL CHECK (billing_interval IN ('month', 'year')),
    status                  subscription_status NOT NULL,
    current_period_start    timestamptz NOT NULL,
    current_period_end      timestamptz NOT NULL CHECK (current_period_end > current_period_start),
    cancel_at_period_end    boolean NOT NULL DEFAULT false,
    -- The subscription's metered item for overage, when it carries one.
    overage_item            text,
    -- Set by a failed payment while unpaid: the plan holds until `grace_until`.
    payment_failed_at       timestamptz,
    grace_until             timestamptz,
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_by_user ON subscriptions (user_id, current_period_start DESC);

-- What each invoice collected. An invoice pays for the service period its licensed line
-- starts in (a renewal: the new period; an upgrade's proration: the rest of this one).
CREATE TABLE revenue_invoices (
    invoice_id              text PRIMARY KEY,
    user_id                 uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    stripe_subscription_id  text,
    service_start           timestamptz NOT NULL,
    amount_paid_cents       bigint NOT NULL CHECK (amount_paid_cents >= 0),
    currency                text NOT NULL,
    -- The share of this money the AI budget gets, as configured when it was paid
    -- (parts per million: 400000 is 40%).
    ai_share_ppm            integer NOT NULL CHECK (ai_share_ppm BETWEEN 0 AND 1000000),
    paid_at                 timestamptz NOT NULL,
    recorded_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revenue_invoices_by_user ON revenue_invoices (user_id, service_start);

-- Refunds, per charge, as an absolute amount that only grows (a re-fetched charge says
-- how much of it was refunded in all).
CREATE TABLE revenue_refunds (
    charge_id              text PRIMARY KEY,
    invoice_id             text NOT NULL REFERENCES revenue_invoices (invoice_id) ON DELETE CASCADE,
    amount_refunded_cents  bigint NOT NULL CHECK (amount_refunded_cents >= 0),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revenue_refunds_by_invoice ON revenue_refunds (invoice_id);

-- Credits given without payment: the trial credit, once per user, at sign-up.
CREATE TABLE billing_credits (
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('trial')),
    amount_micro_usd  bigint NOT NULL CHECK (amount_micro_usd > 0),
    granted_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, kind)
);

-- Stripe events, each processed once (the row commits with its effects).
CREATE TABLE stripe_events (
    id           text PRIMARY KEY,
    type         text NOT NULL,
    created      timestamptz NOT NULL,
    outcome      text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_events_received ON stripe_events (received_at);

-- Overage reported to Stripe as Billing Meter events. A report is written before it is
-- sent; its identifier makes Stripe take it once, so a resend after a crash is harmless.
CREATE TABLE overage_reports (
    identifier          text PRIMARY KEY,
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    period_start        date NOT NULL,
    stripe_customer_id  text NOT NULL,
    value_micro_usd     bigint NOT NULL CHECK (value_micro_usd > 0),
    -- The period's overage reported in all, this report included.
    through_micro_usd   bigint NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz,
    UNIQUE (user_id, period_start, through_micro_usd)
);
CREATE INDEX overage_reports_unsent ON overage_reports (created_at) WHERE sent_at IS NULL;

-- The subscription that sets `u`'s plan and period now: trialing or active, or past due
-- within its grace; the latest period first.
CREATE FUNCTION live_subscription(u uuid) RETURNS subscriptions
LANGUAGE sql STABLE AS $$
    SELECT s.* FROM subscriptions s
    WHERE s.user_id = u
      AND (s.status IN ('trialing', 'active')
           OR (s.status = 'past_due' AND (s.grace_until IS NULL OR s.grace_until > now())))
    ORDER BY s.current_period_start DESC
    LIMIT 1
$$;

-- The plan `u` is on: their live subscription's, or free.
CREATE FUNCTION effective_plan(u uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT (live_subscription(u)).plan), 'free')
$$;

-- A period's AI budget, in parts: the share of what its invoices collected (net of
-- refunds) when it is a paid period; what is left of the trial credit after every earlier
-- period's spend; the overage cap when the period is paid and the user opted in.
CREATE FUNCTION period_budget(u uuid, p date)
RETURNS TABLE (included bigint, trial_left bigint, overage_cap bigint)
LANGUAGE sql STABLE AS $$
    SELECT
        CASE WHEN sp.paid THEN coalesce((
            SELECT sum((i.amount_paid_cents - least(i.amount_paid_cents, coalesce(r.refunded, 0)))
                       * 10000 * i.ai_share_ppm / 1000000)::bigint
            FROM revenue_invoices i
            LEFT JOIN (SELECT invoice_id, sum(amount_refunded_cents) AS refunded
                       FROM revenue_refunds GROUP BY invoice_id) r ON r.invoice_id = i.invoice_id
            WHERE i.user_id = u AND i.service_start >= sp.starts AND i.service_start < sp.ends
              AND i.currency = 'usd'), 0)
        ELSE 0 END,
        greatest(0, coalesce((SELECT sum(c.amount_micro_usd) FROM billing_credits c WHERE c.user_id = u), 0)
                    - coalesce((SELECT sum(e.spent_micro_usd) FROM user_period_spend e
                                WHERE e.user_id = u AND e.period_start < p), 0))::bigint,
        CASE WHEN sp.paid THEN coalesce((SELECT us.overage_cap_micro_usd FROM users us WHERE us.id = u), 0)
             ELSE 0 END
    FROM user_period_spend sp
    WHERE sp.user_id = u AND sp.period_start = p
$$;

-- The period a reservation made now is held in, made if missing: the run's own period
-- once it has one, else the live subscription's current period, else this UTC month.
-- NULL: there is no such user.
CREATE FUNCTION current_period(u uuid, run uuid) RETURNS date
LANGUAGE plpgsql AS $$
DECLARE
    p date;
    s subscriptions;
    starts timestamptz;
    ends timestamptz;
    paid boolean;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM users WHERE id = u) THEN
        RETURN NULL;
    END IF;
    IF run IS NOT NULL THEN
        SELECT r.period_start INTO p FROM runs r WHERE r.id = run;
        IF p IS NOT NULL THEN
            RETURN p;
        END IF;
    END IF;
    s := live_subscription(u);
    IF s.stripe_subscription_id IS NOT NULL THEN
        starts := s.current_period_start;
        ends := s.current_period_end;
        paid := true;
    ELSE
        starts := date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
        ends := (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
        paid := false;
    END IF;
    p := (starts AT TIME ZONE 'UTC')::date;
    INSERT INTO user_period_spend (user_id, period_start, starts, ends, paid)
    VALUES (u, p, starts, ends, paid)
    ON CONFLICT (user_id, period_start) DO UPDATE
        SET ends = greatest(user_period_spend.ends, EXCLUDED.ends),
            paid = user_period_spend.paid OR EXCLUDED.paid
        WHERE user_period_spend.ends < EXCLUDED.ends OR (EXCLUDED.paid AND NOT user_period_spend.paid);
    IF run IS NOT NULL THEN
        UPDATE runs SET period_start = p WHERE id = run AND period_start IS NULL;
    END IF;
    RETURN p;
END
$$;

-- Holds `amount` in `u`'s period `p` if it stays within the period's budget: the row is
-- locked, then the limit is computed and checked on its latest version, so racing
-- reservations cannot pass it together. True: held.
CREATE FUNCTION hold_period(u uuid, p date, amount bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    used bigint;
    lim bigint;
BEGIN
    SELECT spent_micro_usd + reserved_micro_usd INTO used
    FROM user_period_spend WHERE user_id = u AND period_start = p FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    SELECT b.included + b.trial_left + b.overage_cap INTO lim FROM period_budget(u, p) b;
    -- A call that costs nothing (the offline model) always passes, even past the limit.
    IF amount > 0 AND used + amount > lim THEN
        RETURN false;
    END IF;
    UPDATE user_period_spend SET reserved_micro_usd = reserved_micro_usd + amount
    WHERE user_id = u AND period_start = p;
    RETURN true;
END
$$;

-- `u`'s current period (made if missing), its budget by source and its use. A function of
-- its own so the period made is seen: a statement does not see rows that a function it
-- calls inserts.
CREATE FUNCTION period_standing(u uuid)
RETURNS TABLE (p_start date, p_starts timestamptz, p_ends timestamptz, p_paid boolean,
               p_included bigint, p_trial_left bigint, p_overage_cap bigint,
               p_spent bigint, p_reserved bigint)
LANGUAGE plpgsql AS $$
DECLARE
    p date;
BEGIN
    p := current_period(u, NULL);
    IF p IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT sp.period_start, sp.starts, sp.ends, sp.paid, b.included, b.trial_left,
               b.overage_cap, sp.spent_micro_usd, sp.reserved_micro_usd
        FROM user_period_spend sp, period_budget(u, p) b
        WHERE sp.user_id = u AND sp.period_start = p;
END
$$;
