-- The whole CO lifecycle (issue 4): declarations of origin, amendments (cancellation + re-issue),
-- origin-treatment decisions, claims with reconciliation, approved exporters, and the Annex III
-- reference code. SQLite flavour (keep in step with migrations/postgres).

-- 'CO' (UN/EDIFACT 1001 code 861) or 'DO' (862, Annex IV).
ALTER TABLE certificates ADD COLUMN kind TEXT NOT NULL DEFAULT 'CO';
-- The certificate this one replaces (re-issue after an accepted cancellation).
ALTER TABLE certificates ADD COLUMN replaces TEXT REFERENCES certificates(id);
-- Outbound: the verification code printed on the CO, asked for by GetCO (Annex III).
ALTER TABLE certificates ADD COLUMN reference_code TEXT;
-- Inbound DO whose approved exporter is not on the partner's list: why it must be verified.
ALTER TABLE certificates ADD COLUMN verification_flag TEXT;

-- One amendment request = one cancellation notification and its answer.
CREATE TABLE amendments (
    id                    TEXT PRIMARY KEY,
    certificate_id        TEXT NOT NULL REFERENCES certificates(id),
    state                 TEXT NOT NULL,          -- requested | accepted | declined
    reason                TEXT NOT NULL,
    replacement_reference TEXT,
    replacement_xml       TEXT,                   -- outbound: the replacement CO, pushed on acceptance
    replacement_id        TEXT REFERENCES certificates(id),
    decision_reason       TEXT,
    decided_by            TEXT,
    message_id            TEXT NOT NULL,          -- the SendCancellation message
    created_at            BIGINT NOT NULL,
    decided_at            BIGINT
);
CREATE INDEX amendments_by_certificate ON amendments (certificate_id, created_at);

-- Origin-based treatment decisions (T3), recorded by the importer and received by the exporter.
CREATE TABLE treatment_decisions (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    certificate_id        TEXT NOT NULL REFERENCES certificates(id),
    decision              TEXT NOT NULL,          -- Granted | Rejected | PartiallyGranted
    declaration_reference TEXT,
    reason_codes          TEXT NOT NULL,          -- JSON array of codes
    remarks               TEXT,
    recorded_by           TEXT NOT NULL,          -- API caller, or the partner that sent it
    message_id            TEXT,
    at                    BIGINT NOT NULL
);
CREATE INDEX treatment_decisions_by_certificate ON treatment_decisions (certificate_id, id);

-- Claims: a declaration summary reconciled against a received CO or DO.
CREATE TABLE claims (
    id                    TEXT PRIMARY KEY,
    declaration_number    TEXT NOT NULL,
    issuer                TEXT NOT NULL,
    reference             TEXT NOT NULL,
    certificate_id        TEXT REFERENCES certificates(id),
    outcome               TEXT NOT NULL,
    result_json           TEXT NOT NULL,
    claimed_by            TEXT NOT NULL,
    at                    BIGINT NOT NULL,
    UNIQUE (declaration_number, issuer, reference)
);
CREATE TABLE claim_items (
    claim_id              TEXT NOT NULL REFERENCES claims(id),
    certificate_id        TEXT NOT NULL REFERENCES certificates(id),
    co_item               BIGINT NOT NULL,
    quantity              DOUBLE PRECISION,
    weight                DOUBLE PRECISION
);
CREATE INDEX claim_items_by_certificate ON claim_items (certificate_id, co_item);

-- A partner's approved exporters (Annex IV), imported through the domestic API.
CREATE TABLE approved_exporters (
    partner               TEXT NOT NULL,
    authorisation_id      TEXT NOT NULL,
    name                  TEXT,
    valid_until           BIGINT,
    imported_at           BIGINT NOT NULL,
    PRIMARY KEY (partner, authorisation_id)
);
