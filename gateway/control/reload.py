"""InventoryReloader: reads the camera inventory again, without a restart (SIGHUP, or
an administrator's POST /api/inventory/reload).

A new inventory is taken whole or not at all: an invalid one is refused, the old one
stays, and the error says where and why. A valid one is written to the audit log
first (who, how many cameras were added, removed and changed), then applied:
- new cameras appear on every map (the `cameras_changed` event);
- a removed camera's sessions end with `camera_removed`, and grants may no longer
  name it (those that do show it as gone);
- a changed source is used at the camera's next pull, never mid-stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

from gateway.config import Settings
from gateway.inventory import Inventory, InventoryError, read_inventory
from gateway.relay import CameraHubs, CameraUnavailable
from gateway.signaling import Ending, SessionRegistry, ViewerSession
from gateway.store import Store, StoreUnavailable
from gateway.store import audit as events

from .events import EventBus
from .refusals import Denied

log = logging.getLogger(__name__)

CAMERA_REMOVED = Ending("camera_removed", "camera removed from the inventory")


class NoInventoryFile(Exception):
    """There is nothing to read again: the cameras are [[cameras]] tables only."""


@dataclass(frozen=True)
class Reloaded:
    added: int
    removed: int
    changed: int
    cameras: int  # how many there are now

    def to_json(self) -> dict[str, int]:
        return asdict(self)


class InventoryReloader:
    def __init__(
        self,
        settings: Settings,
        hubs: CameraHubs,
        store: Store,
        sessions: SessionRegistry,
        bus: EventBus,
        read: Callable[[Settings], Inventory] = read_inventory,
    ) -> None:
        self.settings = settings
        self.hubs = hubs
        self.store = store
        self.sessions = sessions
        self.bus = bus
        self._read = read
        self._lock = asyncio.Lock()  # one reload at a time
        self._signalled: set[asyncio.Task[None]] = set()
        self._closing: set[asyncio.Task[None]] = set()
        # First of the start observers: a session that was being set up while its
        # camera was removed is refused before it is recorded as started.
        sessions.on_start.insert(0, _refuse_removed_camera)

    async def reload(self, account: str | None, remote: str | None, via: str) -> Reloaded:
        """Read the inventory again and apply it; InventoryError leaves the old one.

        Raises NoInventoryFile, InventoryError, or StoreUnavailable (the reload could
        not be recorded: nothing changed).
        """
        if self.settings.inventory.file is None:
            raise NoInventoryFile(
                "no [inventory] file is configured; [[cameras]] tables change with a restart"
            )
        async with self._lock:
            who = {"account": account, "remote": remote, "via": via}
            try:
                # 15,000 rows take about 0.3 s: not on the event loop's own time.
                inventory = await asyncio.to_thread(self._read, self.settings)
            except InventoryError as exc:
                log.warning("inventory reload refused, the previous one stays: %s", exc)
                self.store.record(events.INVENTORY_REFUSED, **who, error=str(exc))
                raise
            change = self.hubs.compare(inventory.cameras)
            result = Reloaded(
                len(change.added), len(change.removed), len(change.changed), len(inventory.cameras)
            )
            # Written down before anything changes; if it cannot be, nothing does.
            row = {**who, **result.to_json()}
            await self.store.write(lambda _, audit: audit.record(events.INVENTORY_RELOADED, **row))
            self.store.set_camera_ids(inventory.ids, inventory.districts)
            retired = self.hubs.replace(inventory.cameras)
            for session in self.sessions:
                if session.camera_id in change.removed:
                    await self.sessions.end(session.id, CAMERA_REMOVED)
            for hub in retired:
                # Its pull stops now; waiting for the thread (a camera that is still
                # opening takes up to its open timeout) need not hold up the answer.
                task = asyncio.ensure_future(hub.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            self.bus.publish("cameras_changed", result.to_json(), everyone=True)
            log.info(
                "inventory reloaded (%s): %d cameras, %d added, %d removed, %d changed",
                via,
                result.cameras,
                result.added,
                result.removed,
                result.changed,
            )
            return result

    async def requested(self, account: str, remote: str) -> Reloaded:
        """An administrator's reload: Denied when there is no file or it is invalid
        (the previous inventory stays); StoreUnavailable when it cannot be recorded."""
        try:
            return await self.reload(account, remote, "api")
        except NoInventoryFile as exc:
            raise Denied("no_inventory_file", str(exc)) from None
        except InventoryError as exc:
            raise Denied("invalid_inventory", f"{exc}; the previous inventory stays") from None

    def on_signal(self) -> None:
        """SIGHUP: reload in the background; the outcome goes to the log."""
        task = asyncio.ensure_future(self._reload_for_signal())
        self._signalled.add(task)
        task.add_done_callback(self._signalled.discard)

    async def _reload_for_signal(self) -> None:
        try:
            await self.reload(None, None, "SIGHUP")
        except NoInventoryFile as exc:
            log.warning("SIGHUP: %s", exc)
        except InventoryError:
            pass  # logged and audited by reload
        except StoreUnavailable:
            log.error("inventory reload refused: the audit log cannot be written")


async def _refuse_removed_camera(session: ViewerSession) -> None:
    if session.hub.retired:
        raise CameraUnavailable("camera was removed from the inventory", retry_after=5)
