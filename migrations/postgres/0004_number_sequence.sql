-- Ticket numbers come from a sequence: the counters row locked every
-- concurrent create until commit. It starts after every number in use.
CREATE SEQUENCE conversation_number_seq;
SELECT setval('conversation_number_seq', GREATEST(
    1000,
    (SELECT COALESCE(MAX(number), 0) FROM conversations),
    (SELECT value FROM counters WHERE name = 'conversation_number')
));
