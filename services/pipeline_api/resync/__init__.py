"""Re-sync jobs: read deals and activities back from a CRM's REST API when a webhook
cannot carry them."""
