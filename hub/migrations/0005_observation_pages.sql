-- spokegate-hub schema, version 5: what the FHIR Observation search needs at scale.
-- The order of a search, (site, gw, seq, idx), as an index: a page starts where the last one
-- ended (keyset paging), and the index finds the start and reads the page in order, however many
-- readings a site has. Unique as (site, gw, seq) is for messages.
CREATE UNIQUE INDEX observations_page ON observations (site, gw, seq, idx);
-- When a message was stored, for `_lastUpdated`: a hospital's system polling for what is new
-- finds it without reading a site's every row.
CREATE INDEX messages_received ON messages (received_at);
