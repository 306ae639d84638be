DROP TABLE study_signatures;
DROP TABLE study_locks;
