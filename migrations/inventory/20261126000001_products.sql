-- Products and the stock held for orders.

CREATE TABLE products (
    id          uuid        PRIMARY KEY,
    sku         text        NOT NULL CHECK (sku <> ''),
    name        text        NOT NULL CHECK (name <> ''),
    price_cents bigint      NOT NULL CHECK (price_cents >= 1),
    currency    text        NOT NULL DEFAULT 'USD',
    -- What can still be sold; a reservation takes from it, a release gives back.
    available   bigint      NOT NULL CHECK (available >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX products_sku_key ON products (sku);
CREATE INDEX products_newest ON products (created_at DESC, id DESC);

-- Stock held for an order's line: reserved, then committed (paid) or released.
CREATE TABLE reservations (
    order_id   uuid        NOT NULL,
    product_id uuid        NOT NULL REFERENCES products (id),
    quantity   bigint      NOT NULL CHECK (quantity > 0),
    status     text        NOT NULL CHECK (status IN ('reserved', 'committed', 'released')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, product_id)
);
