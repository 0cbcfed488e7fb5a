"""Commission plans, credits and the ledger. Its capability arrives with its own issue;
until then the service runs for real with health, readiness and metrics only."""
