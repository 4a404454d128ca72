-- What users are told, the emails that tell them, and the webhooks that tell others.

-- One notification per user, kind and order, however often its event arrives.
CREATE TABLE notifications (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL,
    kind       text        NOT NULL,
    order_id   uuid        NOT NULL,
    subject    text        NOT NULL,
    body       text        NOT NULL,
    channel    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, kind, order_id)
);
CREATE INDEX notifications_user_newest ON notifications (user_id, created_at DESC, id DESC);

-- The email of a notification: a durable send queue. A worker claims a due row by
-- moving its next_attempt_at past a lease, sends, and marks it sent; a failure sets the
-- next attempt with backoff.
CREATE TABLE emails (
    notification_id uuid        PRIMARY KEY REFERENCES notifications (id) ON DELETE CASCADE,
    recipient       text        NOT NULL,
    subject         text        NOT NULL,
    text_body       text        NOT NULL,
    html_body       text        NOT NULL,
    message_id      text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    sent_at         timestamptz
);
CREATE INDEX emails_due ON emails (next_attempt_at) WHERE status = 'pending';

CREATE TABLE webhooks (
    id         uuid        PRIMARY KEY,
    url        text        NOT NULL,
    events     text[]      NOT NULL,
    -- The HMAC key; never returned by the API nor logged.
    secret     text        NOT NULL,
    active     boolean     NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One delivery per webhook and event: the body is stored as sent, so every attempt
-- signs and sends the same bytes.
CREATE TABLE webhook_deliveries (
    id              uuid        PRIMARY KEY,
    webhook_id      uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    body            text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- Every attempt, for the deliveries log.
CREATE TABLE webhook_attempts (
    delivery_id  uuid        NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      integer     NOT NULL,
    status_code  integer,
    error        text,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (delivery_id, attempt)
);
