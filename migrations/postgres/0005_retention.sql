-- Retention (framework SP2, model agreement Art. 25(5)): message contents are erased once no
-- longer needed; identifiers, digests and signature evidence stay. See src/store/retention.rs.
-- PostgreSQL flavour (keep in step with migrations/sqlite).
ALTER TABLE message_log ADD COLUMN purged_at BIGINT;
-- The purged wire without the content of its SOAP Body: headers, WS-Security signature, token.
ALTER TABLE message_log ADD COLUMN evidence BYTEA;
ALTER TABLE certificates ADD COLUMN purged_at BIGINT;
ALTER TABLE outbox ADD COLUMN purged_at BIGINT;
CREATE INDEX certificates_unpurged ON certificates (updated_at) WHERE purged_at IS NULL;
CREATE INDEX outbox_unpurged ON outbox (updated_at) WHERE purged_at IS NULL;
CREATE INDEX message_log_unpurged_requests ON message_log (at) WHERE purged_at IS NULL AND kind = 'request';
