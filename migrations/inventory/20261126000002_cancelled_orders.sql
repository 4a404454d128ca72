-- Orders cancelled before their stock was reserved: an `order.cancelled` handled before
-- its `order.created` (after a retry) must still keep that order from holding stock.
CREATE TABLE cancelled_orders (
    order_id     uuid        PRIMARY KEY,
    cancelled_at timestamptz NOT NULL DEFAULT now()
);
