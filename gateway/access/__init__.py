"""Pure decisions: a token to an Identity, and (grant, account, camera, time) to
allowed or the rule that failed. No HTTP, no WebRTC, no database."""
