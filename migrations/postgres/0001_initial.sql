-- coconnect schema, PostgreSQL flavour (keep in step with migrations/sqlite).
CREATE TABLE certificates (
    id              TEXT PRIMARY KEY,
    issuer          TEXT NOT NULL,
    reference       TEXT NOT NULL,
    direction       TEXT NOT NULL,
    partner         TEXT NOT NULL,
    state           TEXT NOT NULL,
    content_sha256  TEXT NOT NULL,
    co_xml          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (issuer, reference, direction)
);

CREATE TABLE certificate_history (
    id              BIGSERIAL PRIMARY KEY,
    certificate_id  TEXT NOT NULL REFERENCES certificates(id),
    from_state      TEXT,
    to_state        TEXT NOT NULL,
    at              BIGINT NOT NULL,
    cause           TEXT NOT NULL,
    message_id      TEXT
);
CREATE INDEX certificate_history_by_certificate ON certificate_history (certificate_id, id);

CREATE TABLE outbox (
    message_id      TEXT PRIMARY KEY,
    certificate_id  TEXT NOT NULL REFERENCES certificates(id),
    partner         TEXT NOT NULL,
    operation       TEXT NOT NULL,
    body_xml        TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

CREATE TABLE delivery_attempts (
    id              BIGSERIAL PRIMARY KEY,
    message_id      TEXT NOT NULL REFERENCES outbox(message_id),
    attempt         BIGINT NOT NULL,
    started_at      BIGINT NOT NULL,
    finished_at     BIGINT,
    outcome         TEXT,
    http_status     BIGINT,
    error           TEXT,
    wire_sha256     TEXT NOT NULL,
    UNIQUE (message_id, attempt)
);

CREATE TABLE message_log (
    id              BIGSERIAL PRIMARY KEY,
    message_id      TEXT NOT NULL,
    direction       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    partner         TEXT NOT NULL,
    operation       TEXT NOT NULL,
    wire_sha256     TEXT NOT NULL,
    wire            BYTEA NOT NULL,
    at              BIGINT NOT NULL
);
CREATE INDEX message_log_by_message ON message_log (message_id);

CREATE TABLE inbound_messages (
    partner         TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    operation       TEXT NOT NULL,
    body_sha256     TEXT NOT NULL,
    status          TEXT NOT NULL,
    certificate_id  TEXT REFERENCES certificates(id),
    ack_wire        BYTEA NOT NULL,
    received_at     BIGINT NOT NULL,
    PRIMARY KEY (partner, message_id)
);

CREATE TABLE replay_cache (
    signature_key   TEXT PRIMARY KEY,
    expires_at      BIGINT NOT NULL
);
