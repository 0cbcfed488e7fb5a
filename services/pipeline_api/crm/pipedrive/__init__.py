"""Pipedrive: webhook payloads (v1 and v2), and its REST API."""
