-- A record's history (the case page, the slide page, a read's history) reads the events of one
-- record of one study: without this index that was a scan of the study's whole trail (measured:
-- a case page at 100,000 cases, p99 about 2 s under 64 clients; tools/bench caselist).
CREATE INDEX audit_events_record ON audit_events(study_id, entity, entity_id);
