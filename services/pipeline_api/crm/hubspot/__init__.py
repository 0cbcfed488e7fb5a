"""HubSpot: webhook signatures and payloads, and its REST API."""

from services.pipeline_api.crm.hubspot.adapter import ADAPTER

__all__ = ["ADAPTER"]
