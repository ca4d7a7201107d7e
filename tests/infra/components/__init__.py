"""Helpers for tests/infra/test_components.py: AWSTOE documents read and run as the service does, and a sandbox."""
