-- In step with migrations/postgres/0014: the claims read due messages partner by partner.
DROP INDEX outbox_pending_order;
DROP INDEX outbox_due;
CREATE INDEX outbox_partner_due ON outbox (partner, next_attempt_at, created_at, message_id) WHERE state = 'pending';
CREATE INDEX outbox_unalerted ON outbox (created_at) WHERE state = 'pending' AND late_alerted = 0;
