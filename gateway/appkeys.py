"""Typed application state shared by the handlers (aiohttp `web.AppKey`)."""

import sqlite3

from aiohttp import web

from gateway.access.administration import AccessAdmin
from gateway.access.policy import AccessControl
from gateway.access.tickets import TicketBook
from gateway.config import Settings
from gateway.events import EventBus
from gateway.metrics import GatewayMetrics
from gateway.relay import CameraHubs
from gateway.signaling.registry import SessionRegistry

SETTINGS = web.AppKey("settings", Settings)
HUBS = web.AppKey("hubs", CameraHubs)
SESSIONS = web.AppKey("sessions", SessionRegistry)
ACCESS = web.AppKey("access", AccessControl)
ADMIN = web.AppKey("admin", AccessAdmin)
EVENTS = web.AppKey("events", EventBus)
TICKETS = web.AppKey("tickets", TicketBook)
DATABASE = web.AppKey("database", sqlite3.Connection)
METRICS = web.AppKey("metrics", GatewayMetrics)
