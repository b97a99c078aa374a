"""What the gateway does with access decisions: admit a viewer, revoke, enforce grants
on live sessions, end sessions, account for them, and publish events."""
