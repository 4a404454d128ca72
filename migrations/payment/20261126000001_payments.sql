-- One payment per order: captured (`succeeded`), `declined`, or captured and then
-- `refunded`.

CREATE TABLE payments (
    id             uuid        PRIMARY KEY,
    order_id       uuid        NOT NULL UNIQUE,
    user_id        uuid        NOT NULL,
    amount_cents   bigint      NOT NULL CHECK (amount_cents >= 0),
    currency       text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('succeeded', 'declined', 'refunded')),
    -- The provider's reference for the charge, for reconciliation.
    provider_ref   text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX payments_user_newest ON payments (user_id, created_at DESC, id DESC);
CREATE INDEX payments_newest ON payments (created_at DESC, id DESC);

-- Orders cancelled before they were charged: an `inventory.reserved` handled after the
-- order's `order.cancelled` must not charge it.
CREATE TABLE cancelled_orders (
    order_id     uuid        PRIMARY KEY,
    cancelled_at timestamptz NOT NULL DEFAULT now()
);
