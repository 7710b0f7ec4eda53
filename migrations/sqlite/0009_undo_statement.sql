-- Kept in step with migrations/postgres/0009_undo_statement.sql, which adds the function a
-- PostgreSQL delivery step in one statement calls to undo itself. SQLite writes each step
-- statement by statement in a transaction and needs nothing here.
SELECT 1;
