"""Thin adapters over boto3: pagination, request shapes, error translation. No business rules here.

Adapters take a boto3 client in their constructor so tests can inject a moto-backed client or one
wrapped in botocore's Stubber. `clients.py` builds the real clients once per process.
"""
