"""What the tests share: the camera, the gateway, viewers, browsers, tokens."""
