-- spokegate-hub schema, version 4: failed password checks by name, shared by every instance of
-- the hub (behind a load balancer, a guesser would otherwise get five tries a minute from each).
-- A row lives for the failure window; `since` is the database's clock, the same for all instances.
-- A name is kept as its SHA-256 (hex of its UTF-8): any name a client sends fits the key, one
-- holding U+0000 or a megabyte long too.
CREATE TABLE password_failures (
    name_sha256  text PRIMARY KEY,
    failures     integer NOT NULL,
    since        timestamptz NOT NULL
);
CREATE INDEX password_failures_since ON password_failures (since);
