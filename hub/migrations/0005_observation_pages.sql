-- spokegate-hub schema, version 5: the order of an Observation search, (site, gw, seq, idx), as an
-- index. A search page starts where the last one ended (keyset paging): the index finds the start
-- and reads the page in order, however many readings a site has. Unique as (site, gw, seq) is for
-- messages.
CREATE UNIQUE INDEX observations_page ON observations (site, gw, seq, idx);
