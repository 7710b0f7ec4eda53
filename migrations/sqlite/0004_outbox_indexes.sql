-- The claim query checks, per candidate, older messages of the same certificate and in-flight
-- messages of the same partner, and takes candidates in submission order: index all three.
CREATE INDEX outbox_by_certificate ON outbox (certificate_id, state, created_at);
CREATE INDEX outbox_by_partner ON outbox (partner, state, lease_until);
CREATE INDEX outbox_pending_order ON outbox (state, created_at, message_id);
