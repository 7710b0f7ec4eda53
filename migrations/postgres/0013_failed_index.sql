-- Operators list the failed messages (`GET /api/v1/outbox?state=failed`, `coconnect ops
-- outbox`), most of all during an incident. Until 0012 the claims' order index, which led with
-- state, served that list; since it holds pending messages only, the list read a whole index
-- of every message ever sent. Failed messages are few, and a delivery never writes here (only
-- a message that runs out of retries, or an operator's retry of it). Keep in step with
-- migrations/sqlite.
CREATE INDEX outbox_failed_order ON outbox (created_at, message_id) WHERE state = 'failed';
