-- The whole schema: drop the database instead.
SELECT 1;
