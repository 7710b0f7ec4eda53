-- In step with migrations/postgres/0013: the failed messages in order, for operators' lists.
CREATE INDEX outbox_failed_order ON outbox (created_at, message_id) WHERE state = 'failed';
