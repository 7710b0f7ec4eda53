-- Every accepted CO asks whether an accepted cancellation announced it as a replacement
-- (amendments.rs: link_replacement; replacement_reserved on submission). Without this index,
-- PostgreSQL's plan made while the database was empty started from the partner's certificates
-- and probed amendments for each one: a scan of every inbound certificate per CO received,
-- inside the receipt's transaction.
CREATE INDEX amendments_by_replacement ON amendments (replacement_reference, state);
