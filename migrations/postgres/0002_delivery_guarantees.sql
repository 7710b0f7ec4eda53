-- Delivery guarantees (framework 4.3.3): retry schedule, partner health and pauses, alerts,
-- operator actions. PostgreSQL flavour (keep in step with migrations/sqlite).
ALTER TABLE outbox ADD COLUMN first_attempt_at BIGINT;
ALTER TABLE outbox ADD COLUMN late_alerted BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN schedule_start_attempt BIGINT NOT NULL DEFAULT 0;
ALTER TABLE delivery_attempts ADD COLUMN instance TEXT;

CREATE TABLE partner_status (
    party           TEXT PRIMARY KEY,
    paused_since    BIGINT,
    paused_by       TEXT,
    down_since      BIGINT,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE alerts (
    id              BIGSERIAL PRIMARY KEY,
    name            TEXT NOT NULL,
    partner         TEXT,
    message_id      TEXT,
    certificate_id  TEXT,
    detail          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    acknowledged_at BIGINT,
    acknowledged_by TEXT,
    webhook_state   TEXT NOT NULL,
    webhook_attempts BIGINT NOT NULL DEFAULT 0,
    webhook_next_at BIGINT
);
CREATE INDEX alerts_webhook_due ON alerts (webhook_state, webhook_next_at);

CREATE TABLE operator_actions (
    id              BIGSERIAL PRIMARY KEY,
    at              BIGINT NOT NULL,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    target          TEXT NOT NULL,
    detail          TEXT NOT NULL
);
