-- Append-only audit trail: every security decision and operator action, each record chained
-- to the previous one by hash (`coconnect audit verify`). SQLite flavour.
CREATE TABLE audit_log (
    seq             BIGINT PRIMARY KEY,
    at              BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    partner         TEXT,
    source          TEXT,
    message_id      TEXT,
    actor           TEXT,
    reason          TEXT NOT NULL,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL
);
