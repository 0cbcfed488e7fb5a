"""Intake: canonical events and CRM webhooks into the durable event log, then Kafka."""
