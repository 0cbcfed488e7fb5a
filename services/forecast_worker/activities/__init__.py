"""Activities as their latest event left them, deletions included (kept for audit)."""
