"""CRM connectors: each turns what one CRM really sends into `CrmChange`s (pure parsing),
and `mapping.py` turns those into canonical events with a source's mapping."""
