DROP INDEX audit_events_record;
