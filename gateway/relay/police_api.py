"""PoliceApi: asks the police department's API for a camera's stream URL.

A camera whose source is `api:<reference>` has no fixed URL: the pull asks for one
each time it opens the camera (in the hub's worker thread, so the blocking HTTP call
never holds the event loop), and only then. An answer may be reused for
`reuse_seconds`; after a failed pull it is dropped, so a URL that expired is asked
for again at the reconnect.

Everything the API answers stays here: the URL goes to PyAV and nowhere else. Errors
are fixed words (a status code at most), never the API's text, headers or the URL.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from http.client import HTTPException
from urllib.parse import quote, urlsplit

from gateway.config import PoliceApiSettings

from .errors import SourceError

# A stream URL fits in far less; anything bigger is not an answer we can use.
MAX_ANSWER_BYTES = 64 << 10
_REDIRECTS = (301, 302, 303, 307, 308)


class PoliceApiError(SourceError):
    """The API gave no usable stream URL; the message is safe to show.

    `reason` is the metric label: timeout, unreachable, refused, http_error, bad_answer.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect is the answer itself (answer = "redirect"), never followed: its
    # target is a camera URL, and urllib's own refusal would put it in the message.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class PoliceApi:
    def __init__(
        self, settings: PoliceApiSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        context = ssl.create_default_context(cafile=settings.ca_file)
        # No proxy from the environment: the police API is reached over the dedicated line.
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=context),
            _NoRedirect(),
        )
        self._headers = {"Accept": "application/json"}
        if settings.token is not None:
            self._headers[settings.token_header] = settings.token_prefix + settings.token
        elif settings.username is not None and settings.password is not None:
            pair = f"{settings.username}:{settings.password}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[str, float]] = {}  # reference -> (url, reusable until)
        # For the metrics; written by the pull threads, read at scrape time.
        self.requests = 0
        self.reused = 0
        self.failures: Counter[str] = Counter()

    def stream_url(self, reference: str) -> str:
        """The camera's stream URL now: a recent answer, or the API's. Blocks."""
        now = self._clock()
        with self._lock:
            url, until = self._answers.get(reference, ("", 0.0))
            if now < until:
                self.reused += 1
                return url
        url = self._ask(reference)
        if self.settings.reuse_seconds > 0:
            with self._lock:
                self._answers[reference] = (url, now + self.settings.reuse_seconds)
        return url

    def forget(self, reference: str) -> None:
        """The URL did not work (or stopped working): ask again next time."""
        with self._lock:
            self._answers.pop(reference, None)

    def _ask(self, reference: str) -> str:
        with self._lock:
            self.requests += 1
        try:
            return self._request(reference)
        except PoliceApiError as exc:
            with self._lock:
                self.failures[exc.reason] += 1
            raise

    def _request(self, reference: str) -> str:
        settings = self.settings
        url = settings.url.replace("{ref}", quote(reference, safe=""))
        request = urllib.request.Request(url, headers=self._headers)
        timeout = settings.timeout_seconds
        deadline = time.monotonic() + timeout
        try:
            with self._opener.open(request, timeout=timeout) as response:
                if settings.answer == "redirect":
                    raise PoliceApiError(
                        "bad_answer", f"police API answered {response.status}, not a redirect"
                    )
                body = _read(response, deadline)
        except urllib.error.HTTPError as exc:  # also a redirect, which is not followed
            exc.close()
            location = exc.headers.get("Location") if exc.headers else None
            if settings.answer == "redirect" and exc.code in _REDIRECTS and location:
                return _stream_url(location)
            if exc.code in (401, 403):
                raise PoliceApiError(
                    "refused", f"police API refused the gateway's credentials ({exc.code})"
                ) from None
            raise PoliceApiError("http_error", f"police API answered {exc.code}") from None
        except PoliceApiError:
            raise
        except (TimeoutError, urllib.error.URLError, OSError, HTTPException, ValueError) as exc:
            timed_out = isinstance(exc, TimeoutError) or isinstance(
                getattr(exc, "reason", None), TimeoutError
            )
            if timed_out:
                raise PoliceApiError(
                    "timeout", f"police API did not answer within {timeout:g} s"
                ) from None
            # Only the class name: an exception's words may hold the API's URL.
            raise PoliceApiError(
                "unreachable", f"police API cannot be reached ({type(exc).__name__})"
            ) from None
        return _stream_url(_field(body, settings.url_field))


def _read(response: object, deadline: float) -> bytes:
    """The answer's body, refused when too big or too slow as a whole."""
    body = bytearray()
    while chunk := response.read(16384):  # type: ignore[attr-defined]
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise PoliceApiError("bad_answer", "police API answer is too large")
        if time.monotonic() > deadline:
            raise TimeoutError
    return bytes(body)


def _field(body: bytes, path: str) -> object:
    try:
        node: object = json.loads(body)
    except ValueError:
        raise PoliceApiError("bad_answer", "police API answer is not JSON") from None
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise PoliceApiError("bad_answer", f"police API answer has no {path}")
    return node


def _stream_url(value: object) -> str:
    """The stream URL, if it is one PyAV may open. Never echoed."""
    if isinstance(value, str) and value.startswith(("rtsp://", "rtsps://")):
        try:
            host = urlsplit(value).hostname
        except ValueError:
            host = None
        if host and value.isprintable():
            return value
    raise PoliceApiError("bad_answer", "police API answer holds no rtsp:// or rtsps:// URL")
