-- Orders and their lines. An order is created `pending` and ends `confirmed` or
-- `cancelled`; the saga's events move it.

CREATE TABLE orders (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled')),
    cancel_reason   text        CHECK (cancel_reason IN ('out_of_stock', 'payment_declined', 'cancelled_by_user')),
    total_cents     bigint      NOT NULL CHECK (total_cents >= 0),
    currency        text        NOT NULL,
    payment_method  text        NOT NULL,
    -- The client's Idempotency-Key and a digest of the request it came with: a retry
    -- with the same key and body gets this order back, another body is refused.
    idempotency_key text        CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_digest  bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'cancelled') = (cancel_reason IS NOT NULL)),
    CHECK ((idempotency_key IS NULL) = (request_digest IS NULL))
);

-- One order per user and key, however many requests race with it.
CREATE UNIQUE INDEX orders_idempotency_key ON orders (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX orders_user_newest ON orders (user_id, created_at DESC, id DESC);
CREATE INDEX orders_newest ON orders (created_at DESC, id DESC);

CREATE TABLE order_items (
    order_id         uuid    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line             integer NOT NULL CHECK (line >= 0),
    product_id       uuid    NOT NULL,
    quantity         bigint  NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    unit_price_cents bigint  NOT NULL CHECK (unit_price_cents >= 1),
    PRIMARY KEY (order_id, line),
    UNIQUE (order_id, product_id)
);
