"""The event path, read top to bottom: a request's events (`intake`) into the durable log
(`event_log`), then onto Kafka (`relay`)."""
