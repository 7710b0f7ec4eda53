-- Back-end delivery (issue 12): the ordered event log of what the administration's own systems
-- must learn, and the position of each push subscriber in it. See src/store/events.rs and
-- src/store/subscribers.rs. PostgreSQL flavour (keep in step with migrations/sqlite).

-- One row per event, written in the transaction of the change that causes it. `seq` is the
-- feed's order: NULL until the sequencer numbers committed rows (events::sequence), so that a
-- reader never sees seq N+1 before seq N has committed.
CREATE TABLE events (
    id              BIGSERIAL PRIMARY KEY,
    seq             BIGINT UNIQUE,
    event_id        TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    certificate_id  TEXT NOT NULL REFERENCES certificates(id),
    partner         TEXT NOT NULL,
    direction       TEXT NOT NULL,
    issuer          TEXT NOT NULL,
    reference       TEXT NOT NULL,
    document_kind   TEXT NOT NULL,
    message_id      TEXT,
    detail          TEXT NOT NULL,
    at              BIGINT NOT NULL,
    acked_at        BIGINT,
    acked_by        TEXT
);
CREATE INDEX events_unsequenced ON events (id) WHERE seq IS NULL;
CREATE INDEX events_by_certificate ON events (certificate_id, id);

-- A push subscriber ([[backend.subscribers]]): how far it has been served, who serves it now.
CREATE TABLE backend_subscribers (
    name              TEXT PRIMARY KEY,
    position          BIGINT NOT NULL DEFAULT 0,
    active            BIGINT NOT NULL DEFAULT 1,
    lease_owner       TEXT,
    lease_until       BIGINT,
    delivered         BIGINT NOT NULL DEFAULT 0,
    last_delivered_at BIGINT,
    failures          BIGINT NOT NULL DEFAULT 0,
    failing_since     BIGINT,
    next_attempt_at   BIGINT NOT NULL DEFAULT 0,
    last_error        TEXT,
    down_alerted      BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
