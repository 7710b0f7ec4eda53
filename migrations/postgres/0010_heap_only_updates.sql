-- A delivery moves each outbox row three times (claim, attempt, answer) and its certificate
-- twice. An UPDATE that changes no indexed column, and finds room on the row's page, is
-- heap-only: no index gets a new entry. Before this migration none of these updates was, since
-- `lease_until` (outbox_by_partner) and `updated_at` (the retention indexes) are written by
-- each of them: every update added an entry to each of the outbox's six indexes and the
-- certificates' three. Keep in step with migrations/sqlite.
--
-- In-flight messages of a down partner (the one-probe rule in the claim) are found through
-- the leased rows only, which are few.
DROP INDEX outbox_by_partner;
CREATE INDEX outbox_leased_by_partner ON outbox (partner) WHERE lease_owner IS NOT NULL;
-- Retention finds old rows by creation (never updated); since updated_at >= created_at, a row
-- last updated before the cutoff was also created before it (src/store/retention.rs).
DROP INDEX outbox_unpurged;
CREATE INDEX outbox_unpurged ON outbox (created_at) WHERE purged_at IS NULL;
DROP INDEX certificates_unpurged;
CREATE INDEX certificates_unpurged ON certificates (created_at) WHERE purged_at IS NULL;
-- Room on each page for the new versions of its rows (the large columns live in TOAST).
ALTER TABLE outbox SET (fillfactor = 70);
ALTER TABLE certificates SET (fillfactor = 80);
