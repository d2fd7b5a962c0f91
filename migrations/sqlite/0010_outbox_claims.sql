-- Several nodes run the outbox: a node claims a row before sending it
-- (`claim`, a random id per claim) for a lease (`claimed_until`, ms). Other
-- nodes skip a claimed row until the lease runs out, so a node that dies
-- mid-send leaves the row to be sent by another, not stranded.
ALTER TABLE email_outbox ADD COLUMN claim BLOB;
ALTER TABLE email_outbox ADD COLUMN claimed_until INTEGER;
