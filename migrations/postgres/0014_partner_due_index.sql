-- Claims take due messages partner by partner, each partner's in the order of their due time
-- (then age): an index scan per partner reads only the messages that are due, so neither a
-- paused or down partner's backlog nor one waiting for its retry time or its turn in the
-- partner's pace is read by every claim. The same index finds the partners with pending
-- messages, one probe each, and answers whether anything is due at all.
-- It replaces both indexes the claims read before: the one in order of age alone (the
-- operators' list of pending messages now sorts them) and the one of due times, which the
-- planner preferred for a partner's first due messages with a generic plan (reading every
-- partner's due messages to find one partner's). Keep in step with migrations/sqlite.
DROP INDEX outbox_pending_order;
DROP INDEX outbox_due;
CREATE INDEX outbox_partner_due ON outbox (partner, next_attempt_at, created_at, message_id) WHERE state = 'pending';
-- The hourly-alert check (`outbox::alert_late`, every poll interval) read the pending messages
-- older than an hour through the index in order of age, alerted or not; it now reads the ones
-- not alerted yet only.
CREATE INDEX outbox_unalerted ON outbox (created_at) WHERE state = 'pending' AND late_alerted = 0;
