"""Code shared by every Lambda handler of the deploy workflow (observability, errors, config, AWS adapters)."""
