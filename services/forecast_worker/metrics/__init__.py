"""Pipeline metrics over deals closed in a date range: win rates, cycle, stages, velocity."""
