-- In step with migrations/postgres/0011: a down partner's probe is recorded in its status row,
-- so a claim no longer writes an index entry for each message it takes.
DROP INDEX outbox_leased_by_partner;
ALTER TABLE partner_status ADD COLUMN probe_message_id TEXT;
ALTER TABLE partner_status ADD COLUMN probe_not_before BIGINT;
