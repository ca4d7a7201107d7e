"""Operator commands: `make start`, `status`, `history`, `approve`, `reject` and `restore-image`.

Run as `python -m scripts.<name>` from the repository root (the Makefile does).
"""
