-- Users and the keys that sign their access tokens.

CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    email         text        NOT NULL CHECK (email = btrim(email) AND email <> ''),
    name          text        NOT NULL CHECK (name <> ''),
    password_hash text        NOT NULL,
    roles         text[]      NOT NULL DEFAULT ARRAY['user']
                              CHECK (roles <@ ARRAY['user', 'admin']),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Emails are unique whatever their case; the index also serves login look-ups.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Ed25519 signing keys. The newest key that is not retired signs; retired keys stay
-- published in the JWKS until every token they signed has expired.
CREATE TABLE signing_keys (
    kid         text        PRIMARY KEY,
    seed        bytea       NOT NULL CHECK (length(seed) = 32),
    public_key  bytea       NOT NULL CHECK (length(public_key) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);

CREATE INDEX signing_keys_live ON signing_keys (created_at DESC) WHERE retired_at IS NULL;
