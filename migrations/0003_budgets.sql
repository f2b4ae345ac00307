-- Hard budgets. Before a call, its worst-case cost is reserved against the run's budget
-- and the user's monthly AI budget in one transaction; after the call, the reservation is
-- settled at the actual cost. The conditional updates re-check the limit under the row
-- lock, so concurrent calls can never reserve past a budget together.

CREATE TYPE reservation_status AS ENUM ('held', 'settled');

CREATE TABLE user_monthly_spend (
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The first day of the month (UTC).
    month               date NOT NULL CHECK (extract(day FROM month) = 1),
    reserved_micro_usd  bigint NOT NULL DEFAULT 0 CHECK (reserved_micro_usd >= 0),
    spent_micro_usd     bigint NOT NULL DEFAULT 0 CHECK (spent_micro_usd >= 0),
    PRIMARY KEY (user_id, month)
);

CREATE TABLE budget_reservations (
    id                uuid PRIMARY KEY,
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    run_id            uuid REFERENCES runs (id) ON DELETE CASCADE,
    month             date NOT NULL,
    amount_micro_usd  bigint NOT NULL CHECK (amount_micro_usd >= 0),
    actual_micro_usd  bigint CHECK (actual_micro_usd >= 0),
    status            reservation_status NOT NULL DEFAULT 'held',
    created_at        timestamptz NOT NULL DEFAULT now(),
    settled_at        timestamptz,
    CHECK ((status = 'settled') = (actual_micro_usd IS NOT NULL))
);
CREATE INDEX budget_reservations_held ON budget_reservations (created_at) WHERE status = 'held';
