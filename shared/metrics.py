"""Prometheus metrics, defined once per process so every mounted service shares them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_INTAKE = Counter(
    "salesops_intake_events_total", "Events offered to intake, by outcome", ["outcome"]
)
EVENT_LOG_COMMIT_SECONDS = Histogram(
    "salesops_event_log_commit_seconds", "Time to durably write one group of events"
)
RELAY_PUBLISHED = Counter("salesops_relay_published_total", "Events published to Kafka", ["topic"])
RELAY_UNPUBLISHABLE = Counter(
    "salesops_relay_unpublishable_total",
    "Events the relay could not send for their own sake and set aside, by topic",
    ["topic"],
)
RELAY_LEADER = Gauge(
    "salesops_relay_leader", "1 while this process's relay is the one publishing, else 0"
)
RELAY_BACKLOG = Gauge("salesops_relay_backlog_events", "Events stored but not yet published")
RELAY_SET_ASIDE = Gauge(
    "salesops_relay_unpublishable_events", "Events set aside as unpublishable, not yet replayed"
)
BROKER_RESETS = Counter(
    "salesops_broker_resets_total", "Broker incarnations that lost state and were republished"
)
CONSUMER_APPLIED = Counter(
    "salesops_consumer_events_total", "Events a consumer handled, by outcome", ["group", "outcome"]
)
DEAD_LETTERS = Counter(
    "salesops_dead_letters_total", "Events sent to a dead-letter queue", ["topic"]
)
SNAPSHOTS_FAILED = Counter(
    "salesops_forecast_snapshots_failed_total",
    "Scheduled forecast snapshots that failed (the next step tries each again)",
    ["kind"],
)
WEBHOOK_IGNORED = Counter(
    "salesops_webhook_ignored_total",
    "Webhook items acknowledged without being stored or parked (they change nothing we keep)",
    ["kind"],
)
