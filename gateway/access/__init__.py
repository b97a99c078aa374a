"""Who may watch: tokens, grants, the access decision, and the audit log.

`AccessControl` (policy.py) is the one entry point every handler calls.
"""
