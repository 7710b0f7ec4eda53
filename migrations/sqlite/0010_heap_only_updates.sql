-- In step with migrations/postgres/0010: the indexes no longer hold columns that every step of
-- a delivery writes (`lease_until`, `updated_at`), so those writes touch fewer indexes.
DROP INDEX outbox_by_partner;
CREATE INDEX outbox_leased_by_partner ON outbox (partner) WHERE lease_owner IS NOT NULL;
DROP INDEX outbox_unpurged;
CREATE INDEX outbox_unpurged ON outbox (created_at) WHERE purged_at IS NULL;
DROP INDEX certificates_unpurged;
CREATE INDEX certificates_unpurged ON certificates (created_at) WHERE purged_at IS NULL;
