"""Sources: connected CRM accounts, their sealed secrets and mappings, kept in a short cache."""
