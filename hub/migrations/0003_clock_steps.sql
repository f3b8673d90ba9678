-- spokegate-hub schema, version 3: steps of a gateway's wall clock. A spoke PC without a working
-- RTC signs with a wrong clock until NTP steps it, and then says so in a signed `clock-stepped`
-- event: the gateway times of the messages seq_from..=seq_to it signed were off by step_us. Every
-- message stays as signed; what the view shows and the FHIR API exports adds the steps that cover
-- a message to its gateway time.
CREATE TABLE clock_steps (
    message_id  bigint PRIMARY KEY REFERENCES messages (id),
    site        text NOT NULL,
    gw          text NOT NULL,
    step_us     bigint NOT NULL,
    seq_from    bigint NOT NULL,
    seq_to      bigint NOT NULL,
    CHECK (seq_from <= seq_to)
);
CREATE INDEX clock_steps_gateway ON clock_steps (site, gw);
