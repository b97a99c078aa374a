"""Who may watch: the one place the access decision is made.

The relay-core release admits everyone; grants, tokens and the audit log plug in
here without the HTTP handlers changing.
"""

from .policy import AccessDenied, AccessPolicy, AllowAll, Viewer

__all__ = ["AccessDenied", "AccessPolicy", "AllowAll", "Viewer"]
