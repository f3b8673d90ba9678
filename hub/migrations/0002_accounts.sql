-- spokegate-hub schema, version 2: the hub's own accounts for the consult view. A user sees what a
-- grant gives: every consult of a site, of one gateway, or one consult only.

CREATE TABLE users (
    name           text PRIMARY KEY,
    -- PHC string (argon2id), never the password.
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- gw NULL: every gateway of the site; consult NULL: every consult (and the gateway's readings
-- outside consults).
CREATE TABLE grants (
    name     text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    site     text NOT NULL,
    gw       text,
    consult  text
);
CREATE UNIQUE INDEX grants_unique ON grants (name, site, coalesce(gw, ''), coalesce(consult, ''));

-- Signed-in browsers: the SHA-256 of the cookie's token (a stolen table opens nothing), and the
-- token every state-changing request repeats in a header.
CREATE TABLE sessions (
    token_sha256  text PRIMARY KEY,
    name          text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf          text NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX messages_gateway ON messages (site, gw, id);
