"""Salesforce: Change Data Capture and Outbound Messages, its REST API and OAuth."""

from services.pipeline_api.crm.salesforce.adapter import ADAPTER

__all__ = ["ADAPTER"]
