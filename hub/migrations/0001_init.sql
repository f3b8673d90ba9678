-- spokegate-hub schema, version 1. Every row that comes from a gateway points at the message it
-- was decoded from; `messages` keeps the signed envelope as it arrived, so any row can be
-- re-verified later with the key of `kid`.

-- Trusted keys: a gateway key bound to (site, gw), or a hub key bound to a hub id.
CREATE TABLE trusted_keys (
    kid         text PRIMARY KEY,
    site        text,
    gw          text,
    hub         text,
    jwk         jsonb NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK ((site IS NOT NULL AND gw IS NOT NULL AND hub IS NULL) OR (site IS NULL AND gw IS NULL AND hub IS NOT NULL))
);

-- One row per verified signed gateway message. (site, gw, seq) is unique: a message delivered
-- twice, to one instance or to two, is stored once.
CREATE TABLE messages (
    id           bigserial PRIMARY KEY,
    site         text NOT NULL,
    gw           text NOT NULL,
    seq          bigint NOT NULL,
    kind         text NOT NULL,
    dev          text,
    prof         text,
    consult      text,
    t_us         bigint NOT NULL,
    tdev_us      bigint,
    topic        text NOT NULL,
    kid          text NOT NULL,
    envelope     bytea NOT NULL,
    body         jsonb NOT NULL,
    -- When the row was written (not the transaction start): signed -> stored latency.
    received_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (site, gw, seq)
);
CREATE INDEX messages_consult ON messages (consult) WHERE consult IS NOT NULL;

-- Spot readings: one row per value.
CREATE TABLE observations (
    message_id  bigint NOT NULL REFERENCES messages (id),
    idx         integer NOT NULL,
    site        text NOT NULL,
    gw          text NOT NULL,
    seq         bigint NOT NULL,
    dev         text,
    prof        text,
    consult     text,
    mdc         bigint NOT NULL,
    loinc       text,
    name        text,
    value       double precision,
    ucum        text NOT NULL,
    unit_mdc    bigint,
    quality     text NOT NULL,
    t_us        bigint NOT NULL,
    tdev_us     bigint,
    ctx         jsonb,
    PRIMARY KEY (message_id, idx)
);
CREATE INDEX observations_consult ON observations (consult) WHERE consult IS NOT NULL;
CREATE INDEX observations_gateway ON observations (site, gw, dev, t_us);

CREATE TABLE events (
    message_id  bigint PRIMARY KEY REFERENCES messages (id),
    site        text NOT NULL,
    gw          text NOT NULL,
    dev         text,
    consult     text,
    code        text NOT NULL,
    sev         text NOT NULL,
    text        text NOT NULL,
    data        jsonb,
    t_us        bigint NOT NULL
);

-- Waveform chunks: the packed bytes per channel exactly as sent, and the sample index range
-- [i0, i0 + n), so a stream is re-assembled by `ORDER BY i0`.
CREATE TABLE wave_chunks (
    message_id  bigint PRIMARY KEY REFERENCES messages (id),
    site        text NOT NULL,
    gw          text NOT NULL,
    dev         text NOT NULL,
    stream      text NOT NULL,
    consult     text,
    rate        double precision NOT NULL,
    i0          bigint NOT NULL,
    n           integer NOT NULL,
    t0_us       bigint NOT NULL,
    channels    jsonb NOT NULL,
    data        bytea[] NOT NULL
);
CREATE INDEX wave_chunks_stream ON wave_chunks (site, gw, dev, stream, i0);

CREATE TABLE media_parts (
    message_id  bigint PRIMARY KEY REFERENCES messages (id),
    site        text NOT NULL,
    gw          text NOT NULL,
    dev         text,
    media_id    text NOT NULL,
    part        integer NOT NULL,
    parts       integer NOT NULL,
    size        bigint NOT NULL,
    sha256      text NOT NULL,
    mime        text NOT NULL,
    data        bytea NOT NULL,
    UNIQUE (site, gw, media_id, part)
);

-- An image whose parts all arrived and whose SHA-256 matched.
CREATE TABLE images (
    site         text NOT NULL,
    gw           text NOT NULL,
    media_id     text NOT NULL,
    dev          text,
    consult      text,
    mime         text NOT NULL,
    sha256       text NOT NULL,
    bytes        bytea NOT NULL,
    meta         jsonb,
    completed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, gw, media_id)
);

-- Consult bindings as the gateway announced them (consult NULL: ended).
CREATE TABLE consults (
    message_id  bigint PRIMARY KEY REFERENCES messages (id),
    site        text NOT NULL,
    gw          text NOT NULL,
    consult     text,
    since_us    bigint NOT NULL,
    by_whom     text NOT NULL,
    cmd         text
);

-- Commands hubs sent (verified with a hub key) and the gateways' replies.
CREATE TABLE commands (
    site        text NOT NULL,
    gw          text NOT NULL,
    hub         text NOT NULL,
    id          text NOT NULL,
    name        text NOT NULL,
    args        jsonb NOT NULL,
    iat_us      bigint NOT NULL,
    exp_us      bigint NOT NULL,
    envelope    bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, gw, hub, id)
);

CREATE TABLE replies (
    message_id  bigint PRIMARY KEY REFERENCES messages (id),
    site        text NOT NULL,
    gw          text NOT NULL,
    cmd         text NOT NULL,
    hub         text NOT NULL,
    state       text NOT NULL,
    code        text NOT NULL,
    text        text NOT NULL,
    data        jsonb
);

-- What did not verify: kept apart, with the reason, never in the tables above.
CREATE TABLE quarantine (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    reason      text NOT NULL,
    detail      text NOT NULL,
    kid         text,
    payload     bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
