-- A delivery step written as one statement outside any transaction (src/store/outbox/fused.rs)
-- calls this when one of its parts could not be written (the certificate moved since the worker
-- saw it): the error rolls the whole statement back, so none of its parts stays, and the step
-- is then written the usual way, in a transaction. VOLATILE, so that it runs only when called,
-- never while the statement is planned. SQLSTATE CC001 tells this error from any other.
CREATE FUNCTION coconnect_undo_statement(reason TEXT) RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CC001', MESSAGE = reason;
END
$$;
