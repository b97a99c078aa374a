"""Store: the grants and the audit log of one database, used off the event loop.

The database never runs on the event loop. Reads go to a reader thread and writes to
a writer thread, each with its own connection; a lock is waited for in short steps
(`busy_timeout`) and retried there, never on the loop. Writes are queued in order:
- `write(job)` waits a little for the job to land and raises StoreUnavailable if it
  cannot, and the job is dropped (nothing happened: the caller may try again);
- `keep(job)` and `record(row)` are never dropped. They wait in a bounded queue, in
  order, retried until the database takes them; the caller is told the record is
  pending (WritePending) but the record itself waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg

from .audit import AuditLog, AuditWriteError
from .database import DB_ERRORS, DatabaseError, is_postgres, open_database
from .grants import GrantStore

log = logging.getLogger(__name__)
T = TypeVar("T")

# A lock is waited for this long inside SQLite, then retried by the store's thread.
LOCK_STEP_MS = 100
READ_SECONDS = 2.0  # a read that cannot finish by then fails: the caller fails closed
WRITE_SECONDS = 2.0  # how long a caller waits for its write before hearing it is pending
RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0)  # backoff of the writer while the database refuses
# The queue of writes that wait for the database. Past this many, new viewers are
# refused (nobody is admitted whose record could not wait); what is queued stays.
PENDING_LIMIT = 100_000
BATCH_ROWS = 500  # audit rows written in one transaction when many wait
CLOSE_SECONDS = 5.0  # at shutdown, how long a thread still in a database call is waited for
READ_GRACE = 0.5  # past a read's own timeout, how long a stuck thread is waited for


_DATABASE_ERRORS = (*DB_ERRORS, AuditWriteError, OSError)


class StoreUnavailable(Exception):
    """The database could not answer in time; nothing was changed."""


class WritePending(Exception):
    """The database has not taken the write yet; it waits in the queue and will land."""


# Work for the store's threads, given that thread's grants and audit log.
Job = Callable[[GrantStore, AuditLog], T]


@dataclass(eq=False)
class _Write:
    job: Job
    keep: bool  # never dropped (a record); else dropped past its deadline
    deadline: float
    row: dict[str, Any] | None = None  # an audit row, batched with its neighbours
    queued: float = field(default_factory=time.monotonic)
    done: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Store:
    """The grants and the audit log of one database (a SQLite file, or PostgreSQL),
    used from threads of its own."""

    def __init__(self, path: str, camera_ids: Iterable[str], max_grant_days: float) -> None:
        ids = frozenset(camera_ids)
        self.path = path
        self.shared = is_postgres(path)  # several nodes may use it at once
        # For start-up, the command line and tests: a plain connection on the caller's
        # thread. The running gateway uses the reader and the writer below.
        # DatabaseError if it cannot be opened.
        self._db = open_database(path)
        self.grants = GrantStore(self._db, ids, max_grant_days)
        self.audit = AuditLog(self._db)
        self._reader = _Worker("store-reader", path, ids, max_grant_days)
        self._writer = _Worker("store-writer", path, ids, max_grant_days)
        self._queue: deque[_Write] = deque()
        self._wakeup: asyncio.Event | None = None
        self._draining: asyncio.Task[None] | None = None
        self.writable = True  # the last write attempt succeeded
        self.readable = True  # the last read succeeded
        self.answered_at = time.monotonic()  # the database last answered a read or write
        self.refusing = False  # the queue is full: admit nobody new
        self._single = False  # write one at a time (to find a bad row)

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.grants.clock

    def set_camera_ids(
        self, camera_ids: Iterable[str], districts: dict[str, str] | None = None
    ) -> None:
        """The cameras a grant may name from now on (they follow the inventory), and
        their districts (a police authorization's scope may name a district), in
        every connection's GrantStore."""
        ids = frozenset(camera_ids)
        self.grants.set_camera_ids(ids, districts)
        for worker in (self._reader, self._writer):
            worker.set_camera_ids(ids, districts)

    def at_start(self, job: Job[T]) -> T:
        """Run `job` now on the start-up connection, on the caller's thread: only at
        start-up, before anything is served (it holds up the event loop)."""
        return job(self.grants, self.audit)

    # --- reads ------------------------------------------------------------------

    async def read(self, job: Job[T], timeout: float = READ_SECONDS) -> T:
        """Run `job` in the reader thread; StoreUnavailable if it cannot by `timeout`."""
        try:
            # The thread may be stuck on a server that stopped answering: the caller
            # waits no longer than it asked for (the job finds it is late, or ends).
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the answer
            # when the caller is cancelled as it arrives, and the cancellation is lost.
            async with asyncio.timeout(timeout + READ_GRACE):
                result = await self._reader.run(job, time.monotonic() + timeout)
        except (*DB_ERRORS, _Late, TimeoutError) as exc:
            self.readable = False
            raise StoreUnavailable(f"the database cannot be read ({_short(exc)})") from None
        self.readable, self.answered_at = True, time.monotonic()
        return result

    # --- writes -----------------------------------------------------------------

    async def write(self, job: Job, timeout: float = WRITE_SECONDS) -> Any:
        """Run `job` in the writer thread, after what is queued; StoreUnavailable (and
        the job dropped) if it has not landed by `timeout`."""
        item = self._enqueue(_Write(job, keep=False, deadline=time.monotonic() + timeout))
        return await item.done

    def submit(self, job: Job) -> asyncio.Future[Any]:
        """Queue `job` to run in order, never dropped; the future holds its result."""
        return self._enqueue(_Write(job, keep=True, deadline=time.monotonic())).done

    async def keep(self, job: Job, timeout: float = WRITE_SECONDS) -> Any:
        """Run `job` in order and never drop it; WritePending if it has not landed by
        `timeout` (it still will)."""
        done = self.submit(job)
        await self.landed(done, timeout)
        return done.result()

    def record(self, event: str, **fields: Any) -> asyncio.Future[Any]:
        """Queue an audit row, stamped now; it lands in order, however long that takes.
        Await the result (with `landed`) to know it is written."""
        row = {"event": event, "at": datetime.now(UTC), **fields}
        item = _Write(_write_row(row), keep=True, deadline=time.monotonic(), row=row)
        return self._enqueue(item).done

    async def landed(self, done: asyncio.Future[Any], timeout: float = WRITE_SECONDS) -> None:
        """Wait for a queued record; WritePending if it is not written by `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(done)
        except TimeoutError:
            raise WritePending("the record waits for the database") from None

    @property
    def pending(self) -> int:
        """Writes waiting for the database (a metric, and readiness)."""
        return len(self._queue)

    @property
    def ready(self) -> bool:
        """Access can be decided and recorded now (for /readyz; never waits). Writes
        passing through the queue are normal (a cluster node's heartbeat every
        second); one that has waited longer than a write may is not."""
        stuck = bool(self._queue) and time.monotonic() - self._queue[0].queued > WRITE_SECONDS
        return self.writable and self.readable and not stuck

    def _enqueue(self, item: _Write) -> _Write:
        self._queue.append(item)
        self.refusing = len(self._queue) >= PENDING_LIMIT
        if self._draining is None:
            self._wakeup = asyncio.Event()
            self._draining = asyncio.create_task(self._drain())
        assert self._wakeup is not None
        self._wakeup.set()
        return item

    async def _drain(self) -> None:
        """Write the queue in order: one transaction per write, or per batch of rows."""
        assert self._wakeup is not None
        failures = 0
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._drop_late()
            if not self._queue:
                continue
            batch = self._next_batch()
            try:
                results = await self._writer.run(_run_batch(batch), None)
            except asyncio.CancelledError:
                raise
            except _DATABASE_ERRORS as exc:
                if self.writable:
                    log.error("database cannot be written (%s); writes wait", _short(exc))
                self.writable = False
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                await asyncio.sleep(delay)
                continue
            except Exception as exc:  # the job's own refusal (e.g. GrantInvalid)
                if len(batch) > 1:
                    self._single = True  # find which row it was: one at a time
                    continue
                self._queue.popleft()
                if not batch[0].done.done():
                    batch[0].done.set_exception(exc)
                continue
            self._single = False
            if not self.writable:
                log.warning("database writable again; %d writes were waiting", len(self._queue))
            self.writable, failures, self.answered_at = True, 0, time.monotonic()
            for item, result in zip(batch, results, strict=True):
                self._queue.popleft()
                if not item.done.done():
                    item.done.set_result(result)
            self.refusing = len(self._queue) >= PENDING_LIMIT

    def _drop_late(self) -> None:
        """A write that may be dropped and is past its deadline fails, unless it is at
        the head of the queue and being tried (it either lands or fails)."""
        now = time.monotonic()
        kept: deque[_Write] = deque()
        for item in self._queue:
            if not item.keep and now > item.deadline:
                if not item.done.done():
                    item.done.set_exception(
                        StoreUnavailable("the database did not take the change in time")
                    )
                continue
            kept.append(item)
        self._queue = kept

    def _next_batch(self) -> list[_Write]:
        first = self._queue[0]
        if first.row is None or self._single:
            return [first]
        batch = []
        for item in self._queue:
            if item.row is None or len(batch) >= BATCH_ROWS:
                break
            batch.append(item)
        return batch

    # --- health and shutdown ----------------------------------------------------

    def ping(self) -> bool:
        """The database answers a read on the caller's thread (the command line)."""
        try:
            self._db.execute("SELECT count(*) FROM grants").fetchone()
        except DB_ERRORS:
            return False
        return True

    async def flush(self, timeout: float) -> None:
        """Give queued writes until `timeout` to land (at shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._queue:
            log.error("shutting down with %d writes the database did not take", len(self._queue))

    async def close(self) -> None:
        if self._draining is not None:
            self._draining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._draining
        # A thread still inside a database call must not hold up shutdown: on SQLite
        # that is one lock step, but a PostgreSQL server cut off by the network holds
        # it until libpq's TCP timeout (6 s), or a statement's (5 s).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_SECONDS):
                await asyncio.gather(self._reader.close(), self._writer.close())
        self._db.close()


class _Late(Exception):
    """The job's turn came after its deadline."""


class _Worker:
    """One thread with its own connection; jobs run there in order."""

    def __init__(self, name: str, path: str, camera_ids: frozenset[str], max_days: float) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._path, self._camera_ids, self._max_days = path, camera_ids, max_days
        self._stores_made: tuple[GrantStore, AuditLog] | None = None
        self._districts: dict[str, str] = {}

    def set_camera_ids(self, camera_ids: frozenset[str], districts: dict[str, str] | None) -> None:
        self._camera_ids = camera_ids
        if districts is not None:
            self._districts = districts
        if self._stores_made is not None:
            # One attribute each: atomic.
            self._stores_made[0].set_camera_ids(camera_ids, districts)

    def _stores(self) -> tuple[GrantStore, AuditLog]:
        # Only ever called on this worker's one thread.
        if self._stores_made is None:
            db = open_database(self._path, busy_timeout_ms=LOCK_STEP_MS, migrate_schema=False)
            grants = GrantStore(db, self._camera_ids, self._max_days)
            grants.set_camera_ids(self._camera_ids, self._districts)
            self._stores_made = (grants, AuditLog(db))
        return self._stores_made

    def _forget_broken(self) -> None:
        """A PostgreSQL connection that broke (the server restarted, the network) is
        replaced by a new one on the next job."""
        stores = self._stores_made
        if stores is not None and getattr(stores[0].db, "broken", False):
            with contextlib.suppress(Exception):
                stores[0].db.close()
            self._stores_made = None

    def _call(self, job: Job[T], deadline: float | None) -> T:
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise _Late("timed out")
            try:
                return job(*self._stores())
            except psycopg.Error:
                self._forget_broken()
                raise
            except sqlite3.OperationalError as exc:
                # Locked or busy: another process writes. Wait off the loop, try again.
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if deadline is None:
                    raise
                time.sleep(0.02)
            except DatabaseError as exc:
                raise sqlite3.OperationalError(str(exc)) from None

    async def run(self, job: Job[T], deadline: float | None) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, job, deadline)

    async def close(self) -> None:
        def close_db() -> None:
            if self._stores_made is not None:
                self._stores_made[0].db.close()

        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            await loop.run_in_executor(self._executor, close_db)
        self._executor.shutdown(wait=False)


def _write_row(row: dict[str, Any]) -> Job[int]:
    def job(grants: GrantStore, audit: AuditLog) -> int:
        return audit.record(**row)

    return job


def _run_batch(batch: list[_Write]) -> Job[list[Any]]:
    """One transaction for the batch: it lands whole or not at all."""

    def job(grants: GrantStore, audit: AuditLog) -> list[Any]:
        db = grants.db
        db.execute("BEGIN IMMEDIATE")
        try:
            results = [item.job(grants, audit) for item in batch]
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(*DB_ERRORS):
                    db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return results

    return job


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
