-- A receipt's acknowledgement is stored once, in the message log row written with it
-- (`store::inbound`): receipts from here on leave `ack_wire` empty, and a retry is answered
-- from the log. Nothing to change in the data (older receipts keep and use their copy); this
-- migration is the marker that makes an older binary, which would answer a retry of a new
-- receipt with `ack_wire` as stored (empty), refuse to start on the database. Keep in step
-- with migrations/sqlite.
COMMENT ON COLUMN inbound_messages.ack_wire IS
    'Empty since migration 0015: the acknowledgement is in message_log (store::inbound::find).';
