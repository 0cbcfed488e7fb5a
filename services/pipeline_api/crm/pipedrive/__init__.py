"""Pipedrive: webhook Basic auth and payloads (v1 and v2), and its REST API."""

from services.pipeline_api.crm.pipedrive.adapter import ADAPTER

__all__ = ["ADAPTER"]
