"""The CDK app: one stack (pipeline_stack.py) wiring one construct per concern."""
