-- spokegate-hub schema, version 4: failed password checks by name, shared by every instance of
-- the hub (behind a load balancer, a guesser would otherwise get five tries a minute from each).
-- A row lives for the failure window; `since` is the database's clock, the same for all instances.
CREATE TABLE password_failures (
    name      text PRIMARY KEY,
    failures  integer NOT NULL,
    since     timestamptz NOT NULL
);
CREATE INDEX password_failures_since ON password_failures (since);
