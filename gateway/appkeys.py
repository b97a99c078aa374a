"""Typed application state shared by the handlers (aiohttp `web.AppKey`)."""

from aiohttp import web

from gateway.access import AccessPolicy
from gateway.config import Settings
from gateway.relay import CameraHubs
from gateway.signaling.registry import SessionRegistry

SETTINGS = web.AppKey("settings", Settings)
HUBS = web.AppKey("hubs", CameraHubs)
SESSIONS = web.AppKey("sessions", SessionRegistry)
ACCESS = web.AppKey("access", AccessPolicy)
