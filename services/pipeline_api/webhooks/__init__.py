"""CRM deliveries: authenticate, archive, parse, then ingest as events, parked changes or
re-sync jobs."""
