-- A claim wrote an entry into `outbox_leased_by_partner` for each message it took (the index's
-- predicate, `lease_owner IS NOT NULL`, changed), so it was never a heap-only update: six index
-- entries and their WAL a message, on the busiest table. The index served one check only: is
-- a message of a down partner in flight (the one-probe rule). That is now kept in the partner's
-- status row (src/store/outbox.rs, src/store/partners.rs):
-- - `probe_message_id`: the message a claim took for the partner while it was down; it is in
--   flight while that outbox row is pending with a live lease;
-- - `probe_not_before`: when the partner was marked down, the end of the latest lease of its
--   other messages then in flight; no probe goes before it.
-- Keep in step with migrations/sqlite.
DROP INDEX outbox_leased_by_partner;
ALTER TABLE partner_status ADD COLUMN probe_message_id TEXT;
ALTER TABLE partner_status ADD COLUMN probe_not_before BIGINT;
