-- Kept in step with postgres/0004: SQLite has one writer, so the next ticket
-- number is MAX(number) + 1, read inside the insert; nothing to change here.
SELECT 1;
