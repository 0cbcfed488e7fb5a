"""Helpers the test suites share: infrastructure, event builders, waiting."""
