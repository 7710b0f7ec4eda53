-- The two indexes that only the claims and the due checks read hold pending messages only.
-- Before, each held every message the outbox ever had (until purged), and the answer that ends
-- a delivery (state 'pending' to 'delivered', say: not a heap-only update) added an entry to
-- each; now it adds none to these two. The claims read them with `state = 'pending'`, which
-- implies the predicate. Keep in step with migrations/sqlite.
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
DROP INDEX outbox_pending_order;
CREATE INDEX outbox_pending_order ON outbox (created_at, message_id) WHERE state = 'pending';
