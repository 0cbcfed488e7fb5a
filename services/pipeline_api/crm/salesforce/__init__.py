"""Salesforce: Change Data Capture and Outbound Messages, its REST API and OAuth."""
