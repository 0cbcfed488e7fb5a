"""HubSpot: webhook signatures and payloads, and its REST API."""
