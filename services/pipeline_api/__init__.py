"""Intake: canonical events (and, later, CRM webhooks) into the durable event log, then Kafka."""
