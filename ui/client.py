"""The UI's only connection to the agent: HTTP calls and the event stream, off the GUI thread.

Threads (RELIABILITY.md §5, STYLE.md §2 "Threads → GUI"):

* ``ApiWorker`` lives in its own ``QThread`` and owns one ``httpx.Client``; it
  runs the calls one by one, in the order they were asked for.
* ``EventStream`` is a ``QThread`` whose ``run`` owns a second ``httpx.Client``
  and reads ``/api/v1/events`` (Server-Sent Events).  On every (re)connect it
  loads a fresh snapshot (station, pumps, prices, sync status) before passing
  on events, so a UI that reconnects after the agent restarted is exact again.
  When the agent is down it says so (``link_changed(False, reason)``) and retries
  with a capped exponential backoff (0.25 s → 5 s).
* ``ApiClient`` is the GUI-thread façade: ``call(...)`` hands a request to the
  worker with a queued signal and later invokes the bound-method callback with
  the reply, on the GUI thread.  The GUI thread never does I/O.

Credentials: the station token (from the token file) authenticates the event
stream and the login call.  After a cashier logs in, ``set_session(token)``
makes the worker send the cashier's session token on every other call, so the
agent acts in the cashier's name and role; ``set_session(None)`` goes back to
the station token (logged out: only login and the emergency stop are offered).
The switch travels through the same queued connection as the calls, so calls
asked for before it still go out with the old token.  ``call(..., station=True)``
forces the station token for one call; ``save_to=path`` makes the worker write
the reply's bytes to ``path`` (a PDF export) and answer ``{"path", "bytes"}``:
the file is written on the worker thread, never on the GUI thread.

Every signal between threads carries plain Python data (``dict``/``list``/``str``)
that is not touched again by the sender.  Limits: calls are serialized (a slow
call delays the next one; the agent answers in milliseconds); SSE events are
delivered at most once, a reconnect resynchronizes by snapshot, not by replay.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from PySide6.QtCore import QObject, QThread, Signal, Slot

log = logging.getLogger(__name__)

__all__ = ["ApiClient", "ApiError", "ApiReply", "EventStream"]

BACKOFF_START_S = 0.25
BACKOFF_MAX_S = 5.0
HEARTBEAT_S = 1.0  #: asked of the agent; a silent stream for 4× this is taken as dead


@dataclass(frozen=True)
class ApiError:
    """A refused or failed call: ``status`` 0 means the agent was not reachable."""

    status: int
    code: str
    message: str
    details: dict[str, Any]


@dataclass(frozen=True)
class ApiReply:
    status: int
    body: Any


def _error_from(resp: httpx.Response) -> ApiError:
    try:
        err = resp.json().get("error", {})
    except (ValueError, AttributeError):
        err = {}
    return ApiError(resp.status_code, str(err.get("code") or f"http_{resp.status_code}"),
                    str(err.get("message") or resp.reason_phrase), dict(err.get("details") or {}))


class ApiWorker(QObject):
    """Runs HTTP calls in its thread; replies with ``finished(call_id, ApiReply | ApiError)``."""

    finished = Signal(int, object)

    def __init__(self, base_url: str, token: str) -> None:
        super().__init__()
        self._base_url, self._token = base_url, token
        self._session: str | None = None  #: the logged-in cashier's session token
        self._http: httpx.Client | None = None

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(base_url=self._base_url, timeout=httpx.Timeout(8.0, connect=2.0))
        return self._http

    @Slot(object)
    def set_session(self, token: object) -> None:
        self._session = str(token) if token else None

    @Slot(int, str, str, object, object)
    def run_call(self, call_id: int, method: str, path: str, payload: object, opts: object) -> None:
        options: dict[str, Any] = opts if isinstance(opts, dict) else {}
        token = self._token if options.get("station") or not self._session else self._session
        try:
            headers = {"Authorization": f"Bearer {token}"}
            if token != self._token:  # a cashier's session: the device proves itself too (LAN gate, binding)
                headers["X-Terminal-Token"] = self._token
            kwargs: dict[str, Any] = {"headers": headers}
            if method == "GET" and isinstance(payload, dict):
                kwargs["params"] = payload
            elif payload is not None:
                kwargs["json"] = payload
            resp = self._client().request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.finished.emit(call_id, ApiError(0, "agent_down", str(exc) or type(exc).__name__, {}))
            return
        if resp.status_code >= 400:
            self.finished.emit(call_id, _error_from(resp))
            return
        save_to = options.get("save_to")
        if save_to:
            try:
                with open(str(save_to), "wb") as fh:
                    fh.write(resp.content)
            except OSError as exc:
                self.finished.emit(call_id, ApiError(-1, "save_failed", str(exc), {"path": str(save_to)}))
                return
            self.finished.emit(call_id, ApiReply(resp.status_code, {"path": str(save_to),
                                                                   "bytes": len(resp.content)}))
            return
        ctype = resp.headers.get("content-type", "")
        if not resp.content:
            body: Any = None
        elif "json" in ctype or not ctype:
            try:
                body = resp.json()
            except ValueError:
                body = resp.text
        elif ctype.startswith("text/"):
            body = resp.text
        else:
            body = resp.content
        self.finished.emit(call_id, ApiReply(resp.status_code, body))

    @Slot()
    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """``(event, data)`` pairs from SSE lines; comments (keep-alives) yield ``("", "")``."""
    event, data = "", list[str]()
    for line in lines:
        if line == "":
            if data or event:
                yield event or "message", "\n".join(data)
            event, data = "", list[str]()
        elif line.startswith(":"):
            yield "", ""
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


class EventStream(QThread):
    """Reads the agent's event stream and reconnects by itself; see the module docstring."""

    #: (topic, data) for every event
    received = Signal(str, object)
    #: (up, detail): the agent became reachable / unreachable
    link_changed = Signal(bool, str)
    #: {"station": ..., "pumps": [...], "prices": ..., "sync": ...} after every (re)connect
    snapshot = Signal(object)

    def __init__(self, base_url: str, token: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("event-stream")
        self._base_url, self._token = base_url, token
        self._stop = threading.Event()
        self.connects = 0  #: successful connects (tests)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        backoff = BACKOFF_START_S
        up: bool | None = None
        headers = {"Authorization": f"Bearer {self._token}"}
        with httpx.Client(base_url=self._base_url, headers=headers,
                          timeout=httpx.Timeout(2.0, read=4 * HEARTBEAT_S)) as http:
            while not self._stop.is_set():
                try:
                    with http.stream("GET", "/api/v1/events", params={"heartbeat_s": HEARTBEAT_S}) as resp:
                        if resp.status_code != 200:
                            raise httpx.HTTPStatusError(f"event stream: HTTP {resp.status_code}",
                                                        request=resp.request, response=resp)
                        snap = self._load_snapshot(http)
                        self.connects += 1
                        backoff = BACKOFF_START_S
                        if up is not True:
                            up = True
                            self.link_changed.emit(True, "")
                        self.snapshot.emit(snap)
                        for topic, data in parse_sse(resp.iter_lines()):
                            if self._stop.is_set():
                                return
                            if not topic or topic == "hello":
                                continue
                            try:
                                body = json.loads(data) if data else {}
                            except ValueError:
                                log.warning("bad event data for %s: %.80r", topic, data)
                                continue
                            self.received.emit(topic, body)
                    reason = "event stream ended"
                except httpx.HTTPStatusError as exc:
                    reason = str(exc)
                except (httpx.HTTPError, OSError) as exc:
                    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if self._stop.is_set():
                    return
                if up is not False:
                    up = False
                    self.link_changed.emit(False, reason)
                self._stop.wait(backoff)
                backoff = min(BACKOFF_MAX_S, backoff * 2)

    @staticmethod
    def _load_snapshot(http: httpx.Client) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, path in (("station", "/api/v1/station"), ("pumps", "/api/v1/pumps"),
                          ("prices", "/api/v1/prices"), ("sync", "/api/v1/sync/status")):
            resp = http.get(path)
            if resp.status_code == 200:
                out[key] = resp.json()
            elif resp.status_code in (401, 403):
                raise httpx.HTTPStatusError(f"{path}: HTTP {resp.status_code} (token?)", request=resp.request,
                                            response=resp)
        return out


Callback = Callable[[Any], None]


class ApiClient(QObject):
    """GUI-thread façade: ``call`` and the stream's signals, re-emitted on the GUI thread."""

    _request = Signal(int, str, str, object, object)
    _session = Signal(object)
    #: (topic, data) for every event of the stream
    received = Signal(str, object)
    link_changed = Signal(bool, str)
    snapshot = Signal(object)
    #: every failed call, after its own error callback (for the status line)
    call_failed = Signal(object)

    def __init__(self, base_url: str, token: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.base_url = base_url
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[Callback | None, Callback | None]] = {}
        self._thread = QThread(self)
        self._thread.setObjectName("api-worker")
        self._worker = ApiWorker(base_url, token)  # no parent: moved to its thread, deleted on finish
        self._worker.moveToThread(self._thread)
        self._request.connect(self._worker.run_call)
        self._session.connect(self._worker.set_session)
        self._worker.finished.connect(self._on_finished)
        self._thread.finished.connect(self._worker.deleteLater)
        self.stream = EventStream(base_url, token, self)
        self.stream.received.connect(self.received)
        self.stream.link_changed.connect(self._on_link)
        self.stream.snapshot.connect(self.snapshot)
        self.up = False
        self.link_detail = ""
        self.session_token: str | None = None
        self.paths: set[str] = set()  #: API paths of the agent (from /openapi.json), to enable features

    def start(self) -> None:
        self._thread.start()
        self.stream.start()

    def stop(self) -> None:
        """Stop both threads (waits up to ~2 heartbeats for the stream)."""
        self.stream.stop()
        self._thread.quit()
        if self._thread.wait(5000):
            self._worker.close()  # its thread has ended: no concurrent use of the client
        else:
            log.warning("API worker did not stop within 5 s")
        if not self.stream.wait(int(8 * HEARTBEAT_S * 1000)):
            log.warning("event stream did not stop in time")

    def call(self, method: str, path: str, payload: object = None, *, on_ok: Callback | None = None,
             on_error: Callback | None = None, station: bool = False, save_to: str | None = None) -> int:
        """Queue a call; ``on_ok(body)`` or ``on_error(ApiError)`` runs later on the GUI thread.

        ``station=True`` sends the station token even while a cashier is logged in (login);
        ``save_to`` writes the reply's bytes to that file on the worker thread (exports).
        """
        call_id = next(self._ids)
        self._pending[call_id] = (on_ok, on_error)
        opts: dict[str, Any] = {}
        if station:
            opts["station"] = True
        if save_to:
            opts["save_to"] = save_to
        self._request.emit(call_id, method, path, payload, opts)
        return call_id

    def set_session(self, token: str | None) -> None:
        """Use a cashier's session token for the next calls (``None``: the station token again)."""
        self.session_token = token
        self._session.emit(token)

    def has(self, path: str) -> bool:
        """Whether the agent publishes ``path`` in its OpenAPI document."""
        return path in self.paths

    @Slot(int, object)
    def _on_finished(self, call_id: int, result: object) -> None:
        on_ok, on_error = self._pending.pop(call_id, (None, None))
        if isinstance(result, ApiError):
            if on_error is not None:
                on_error(result)
            self.call_failed.emit(result)
        elif on_ok is not None and isinstance(result, ApiReply):
            on_ok(result.body)

    @Slot(bool, str)
    def _on_link(self, up: bool, detail: str) -> None:
        self.up, self.link_detail = up, detail
        if up:
            self.call("GET", "/openapi.json", on_ok=self._on_openapi)
        self.link_changed.emit(up, detail)

    def _on_openapi(self, body: Any) -> None:
        if isinstance(body, dict):
            self.paths = set(body.get("paths", {}))
