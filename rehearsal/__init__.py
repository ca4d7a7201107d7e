"""Local rehearsal of a full deployment: the real ASL, the real handlers, an emulated AWS.

`python -m rehearsal [--scenario NAME] [--json] [--list]`. See README, "Rehearsal".
"""
