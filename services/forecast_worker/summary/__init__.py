"""Stage visits and creation facts of the deals, summarised off the apply path for the
metrics and the inspection."""
