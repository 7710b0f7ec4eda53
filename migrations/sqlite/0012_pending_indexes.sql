-- In step with migrations/postgres/0012: the claims' indexes hold pending messages only.
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
DROP INDEX outbox_pending_order;
CREATE INDEX outbox_pending_order ON outbox (created_at, message_id) WHERE state = 'pending';
