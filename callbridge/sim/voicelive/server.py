"""The emulator server: auth, the WebSocket upgrade, session records, serving until stopped."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Final

import structlog
from aiohttp import WSCloseCode, web

from callbridge.sim.voicelive.audio import AgentTurn
from callbridge.sim.voicelive.connection import Connection
from callbridge.sim.voicelive.faults import Fault, Refuse, SlowAccept, faults_for
from callbridge.sim.voicelive.protocol import API_VERSION, REALTIME_PATH, CallProgress, Settings
from callbridge.sim.voicelive.records import EmulatorSession, FaultRecord, RefusedUpgrade

_log = structlog.get_logger(__name__)

CLIENT_REQUEST_ID_HEADER: Final = "x-ms-client-request-id"
_MAX_CLIENT_MESSAGE_BYTES: Final = 16 * 1024 * 1024  # the service takes appends up to 15 MiB
_CLOSE_HANDSHAKE_TIMEOUT_S: Final = 2.0


class VoiceLiveEmulator:
    """A Voice Live service stand-in: serve it, point the SDK at it, read its records.

    ``turns``: scripted agent turns; the first response plays the first (the greeting), each
    later response the next, and the last repeats once they run out.
    ``caller_transcripts``: what the n-th committed caller turn "said" (else a placeholder;
    ``None``: its transcription fails), sent when the session asks for input transcription.
    ``speed``: how much faster than real time audio deltas are sent (the service bursts).
    ``response_delay_ms``: "model thinking" time before a response's first output.
    ``chunk_pattern_ms``: delta sizes in ms, cycled; deliberately irregular, not 20 ms aligned.
    ``vad_threshold_rms``: PCM16 RMS above which a 20 ms window counts as voiced.
    ``transcription_delay_ms``: how long after each commit its transcription completes (the
    deltas come during it).
    ``allow_unknown_client_fields``: accept client fields the SDK models do not define.
    ``session_updated_delay_ms``: how long an accepted ``session.update`` waits for its
    ``session.updated``; ``None``: it never comes (a service that hangs, a fault to test with).
    ``connect_delay_ms``: how long the WebSocket upgrade takes to complete once the request has
    passed the auth and api-version checks, like the real service's handshake time (0 = at
    once); ``session.created`` follows the upgrade as usual.
    ``max_sessions_kept``: how many closed sessions' records to keep; older closed ones are
    dropped, so a long-running emulator does not grow without bound.
    ``faults``: faults to inject into every call (see :mod:`.faults`).

    Sessions opened with the same ``x-ms-client-request-id`` are one call: its scripted turns
    and caller transcripts continue from one session to the next (:meth:`sessions_for`).
    """

    def __init__(
        self,
        *,
        turns: Sequence[AgentTurn],
        api_key: str,
        caller_transcripts: Sequence[str | None] = (),
        speed: float = 2.0,
        response_delay_ms: int = 200,
        chunk_pattern_ms: Sequence[int] = (100, 60, 140),
        vad_threshold_rms: float = 400.0,
        transcription_delay_ms: int = 150,
        model: str = "gpt-realtime",
        allow_unknown_client_fields: bool = False,
        max_sessions_kept: int = 1000,
        connect_delay_ms: int = 0,
        session_updated_delay_ms: int | None = 0,
        faults: Sequence[Fault] = (),
    ) -> None:
        if not turns:
            raise ValueError("the emulator needs at least one AgentTurn")
        if not api_key:
            raise ValueError("api_key must not be empty")
        if speed <= 0:
            raise ValueError("speed must be positive")
        if not chunk_pattern_ms or min(chunk_pattern_ms) <= 0:
            raise ValueError("chunk_pattern_ms must be positive durations")
        if max_sessions_kept < 0:
            raise ValueError("max_sessions_kept must not be negative")
        if connect_delay_ms < 0:
            raise ValueError("connect_delay_ms must not be negative")
        if session_updated_delay_ms is not None and session_updated_delay_ms < 0:
            raise ValueError("session_updated_delay_ms must not be negative")
        self._api_key = api_key.encode()
        self._settings = Settings(
            turns=tuple(turns),
            caller_transcripts=tuple(caller_transcripts),
            speed=speed,
            response_delay_ms=response_delay_ms,
            chunk_pattern_ms=tuple(chunk_pattern_ms),
            vad_threshold_rms=vad_threshold_rms,
            transcription_delay_ms=transcription_delay_ms,
            default_model=model,
            allow_unknown_client_fields=allow_unknown_client_fields,
            session_updated_delay_ms=session_updated_delay_ms,
        )
        self._max_sessions_kept = max_sessions_kept
        self._connect_delay_s = connect_delay_ms / 1000
        self._scripts: dict[str, Settings] = {}
        self._faults = tuple(faults)
        self._call_faults: dict[str, tuple[Fault, ...]] = {}
        self._calls: dict[str, CallProgress] = {}
        self._refused: list[RefusedUpgrade] = []
        self._stopping = asyncio.Event()
        self._sessions: list[EmulatorSession] = []
        self._accepted = 0
        self._session_opened = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._endpoint: str | None = None

    # ------------------------------------------------------------------ records

    @property
    def sessions(self) -> Sequence[EmulatorSession]:
        """The kept session records (all open ones, the latest closed ones), oldest first."""
        return tuple(self._sessions)

    @property
    def refused_upgrades(self) -> Sequence[RefusedUpgrade]:
        """The upgrades ``Refuse`` faults turned away, oldest first."""
        return tuple(self._refused)

    @property
    def violations(self) -> list[str]:
        """Protocol violations on every kept session, prefixed with the session index."""
        return [f"session {s.index}: {v}" for s in self._sessions for v in s.violations]

    @property
    def endpoint(self) -> str:
        """``http://host:port`` for ``connect(endpoint=...)``; available after :meth:`start`."""
        if self._endpoint is None:
            raise RuntimeError("the emulator is not started")
        return self._endpoint

    def session_for(self, client_request_id: str) -> EmulatorSession | None:
        """The latest kept session opened with this ``x-ms-client-request-id``, if any."""
        return next(
            (s for s in reversed(self._sessions) if s.client_request_id == client_request_id),
            None,
        )

    def sessions_for(self, client_request_id: str) -> Sequence[EmulatorSession]:
        """The kept sessions of the call with this ``x-ms-client-request-id``, oldest first."""
        return tuple(s for s in self._sessions if s.client_request_id == client_request_id)

    def script_session(
        self,
        client_request_id: str,
        turns: Sequence[AgentTurn],
        caller_transcripts: Sequence[str | None] = (),
        *,
        speed: float | None = None,
        response_delay_ms: int | None = None,
        transcription_delay_ms: int | None = None,
        faults: Sequence[Fault] = (),
    ) -> None:
        """Give the sessions opened with this ``x-ms-client-request-id`` their own script: these
        turns and transcripts (and pace, and transcription delay) instead of the emulator's, so
        one emulator can serve calls that each follow a different scenario; ``faults`` hit this
        call only (besides the emulator's)."""
        if not turns:
            raise ValueError("a scripted session needs at least one AgentTurn")
        self._call_faults[client_request_id] = tuple(faults)
        settings = self._settings
        self._scripts[client_request_id] = replace(
            settings,
            turns=tuple(turns),
            caller_transcripts=tuple(caller_transcripts),
            speed=settings.speed if speed is None else speed,
            response_delay_ms=_given(response_delay_ms, settings.response_delay_ms),
            transcription_delay_ms=_given(transcription_delay_ms, settings.transcription_delay_ms),
        )

    async def wait_for_session(self, index: int = 0) -> EmulatorSession:
        """Wait until connection number ``index`` has been accepted (bound it with a timeout).

        Raises ``LookupError`` if that session has closed and been dropped already.
        """
        async with self._session_opened:
            await self._session_opened.wait_for(lambda: self._accepted > index)
        session = next((s for s in self._sessions if s.index == index), None)
        if session is None:
            raise LookupError(f"emulator session {index} was closed and dropped")
        return session

    async def wait_all_closed(self) -> None:
        """Wait until every connection accepted so far has closed (bound it with a timeout)."""
        for session in list(self._sessions):
            await session.wait_closed()

    # ------------------------------------------------------------------ serving

    def make_app(self) -> web.Application:
        """The aiohttp application; closing it closes every emulator connection."""
        app = web.Application()
        app.router.add_get(REALTIME_PATH, self._handle_realtime)
        app.on_shutdown.append(self._close_all)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port) and return the endpoint URL."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already started")
        self._stopping.clear()
        runner = web.AppRunner(self.make_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self._endpoint = f"http://{bound_host}:{bound_port}"
        _log.info("voicelive_emulator.started", endpoint=self._endpoint)
        return self._endpoint

    async def stop(self) -> None:
        """Close every connection, wait for their tasks, and stop listening."""
        runner, self._runner = self._runner, None
        self._stopping.set()  # upgrades still in their connect delay give up
        if runner is not None:
            await runner.cleanup()  # runs on_shutdown → _close_all
            _log.info("voicelive_emulator.stopped", endpoint=self._endpoint)

    async def __aenter__(self) -> VoiceLiveEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _close_all(self, _app: web.Application) -> None:
        for session in list(self._sessions):  # closing drops sessions from the list
            if not session.is_closed:
                await session.close(WSCloseCode.GOING_AWAY, "emulator shutting down")

    async def _handle_realtime(self, request: web.Request) -> web.StreamResponse:
        requested_at = time.monotonic()
        if not self._authorized(request):
            _log.warning("voicelive_emulator.auth_rejected", remote=request.remote)
            return _http_error(401, "Unauthorized", "missing or invalid api-key")
        api_version = request.query.get("api-version")
        if api_version != API_VERSION:
            return _http_error(400, "BadRequest", f"unsupported api-version {api_version!r}")
        agent = request.query.get("agent-name")
        if (agent is None) != (request.query.get("agent-project-name") is None):
            return _http_error(400, "BadRequest", "agent-name and agent-project-name go together")
        if agent is not None and "api-key" in request.headers:
            # The agents how-to: "Key-based authentication isn't supported in Agent mode." The
            # service's exact refusal is not documented; an upgrade refused as unauthorized is
            # what a client can tell apart.
            return _http_error(
                401, "Unauthorized", "key-based authentication isn't supported in agent mode"
            )
        client_request_id = request.headers.get(CLIENT_REQUEST_ID_HEADER)
        progress = self._progress_of(client_request_id)
        call_session_index = progress.next_session_index()
        faults = faults_for(
            (*self._faults, *self._call_faults.get(client_request_id or "", ())),
            call_session_index,
        )
        refusal = next((f for f in faults if isinstance(f, Refuse)), None)
        if refusal is not None:
            self._refused.append(
                RefusedUpgrade(requested_at, client_request_id, call_session_index, refusal.status)
            )
            return _throttled(refusal)
        slow = next((f for f in faults if isinstance(f, SlowAccept)), None)
        delay_s = self._connect_delay_s if slow is None else slow.delay_ms / 1000
        if delay_s > 0 and await self._stopping_within(delay_s):
            return _http_error(503, "ServiceUnavailable", "the emulator is shutting down")
        # autoping=False: the connection answers pings itself, so that a Freeze fault can stop.
        ws = web.WebSocketResponse(
            max_msg_size=_MAX_CLIENT_MESSAGE_BYTES,
            timeout=_CLOSE_HANDSHAKE_TIMEOUT_S,
            autoping=False,
        )
        await ws.prepare(request)
        settings = self._scripts.get(client_request_id or "", self._settings)
        record = EmulatorSession(
            index=self._accepted,
            model=request.query.get("model", settings.default_model),
            agent=agent,
            opened_at=time.monotonic(),
            client_request_id=client_request_id,
            call_session_index=call_session_index,
            upgrade_requested_at=requested_at,
            features=_features(request.query.getall("features", [])),
        )
        if slow is not None:
            record.faults.append(
                FaultRecord("slow_accept", requested_at, f"upgrade held {slow.delay_ms} ms")
            )
        connection = Connection(
            ws=ws,
            transport=request.transport,
            record=record,
            settings=settings,
            progress=progress,
            faults=faults,
        )
        self._sessions.append(record)
        self._accepted += 1
        async with self._session_opened:
            self._session_opened.notify_all()
        try:
            await connection.run()
        finally:
            self._drop_old_closed_sessions()
        return ws

    async def _stopping_within(self, delay_s: float) -> bool:
        """Wait ``delay_s``; True as soon as the emulator starts stopping."""
        try:
            async with asyncio.timeout(delay_s):
                await self._stopping.wait()
        except TimeoutError:
            return False
        return True

    def _progress_of(self, client_request_id: str | None) -> CallProgress:
        """The progress of the call with this id; a session without one is a call of its own."""
        if client_request_id is None:
            return CallProgress()
        return self._calls.setdefault(client_request_id, CallProgress())

    def _drop_old_closed_sessions(self) -> None:
        closed = [s for s in self._sessions if s.is_closed]
        for session in closed[: max(0, len(closed) - self._max_sessions_kept)]:
            self._sessions.remove(session)
            # A call is forgotten with its last kept session: a long run stays bounded.
            call = session.client_request_id
            if call is not None and not self.sessions_for(call):
                self._calls.pop(call, None)

    def _authorized(self, request: web.Request) -> bool:
        api_key = request.headers.get("api-key")
        if api_key is not None:
            return hmac.compare_digest(api_key.encode(), self._api_key)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        # Tokens are not verifiable offline: any bearer token stands for a Entra ID login.
        return scheme.lower() == "bearer" and bool(token.strip())


def _given(value: int | None, default: int) -> int:
    return default if value is None else value


def _features(values: Sequence[str]) -> frozenset[str]:
    """The preview features a URL turns on: ``features=name:true`` (the API reference
    2026-07-15 names one, ``client_ec_reference:true``). How several are given is not
    published: the emulator takes repeated parameters and comma-separated pairs alike."""
    pairs = (pair.partition(":") for value in values for pair in value.split(","))
    return frozenset(name.strip() for name, _, flag in pairs if flag.strip().lower() == "true")


def _http_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _throttled(refusal: Refuse) -> web.Response:
    """A refused upgrade (see :class:`Refuse` for what is published about it)."""
    code, message = (
        ("TooManyRequests", "rate limit exceeded, retry later")
        if refusal.status == 429
        else ("ServiceUnavailable", "the service is temporarily unavailable, retry later")
    )
    response = _http_error(refusal.status, code, message)
    response.headers["Retry-After"] = str(refusal.retry_after_s)
    return response


async def serve_emulator(
    host: str,
    port: int,
    turns: Sequence[AgentTurn],
    *,
    api_key: str,
    caller_transcripts: Sequence[str | None] = (),
    speed: float = 2.0,
    response_delay_ms: int = 200,
    on_started: Callable[[str], None] | None = None,
    connect_delay_ms: int = 0,
) -> None:
    """Run an emulator until cancelled (the ``callbridge emulate`` command).

    ``on_started`` receives the endpoint URL once listening (useful with ``port=0``). Only
    the latest 1000 closed sessions' records are kept, so a long run stays bounded.
    """
    emulator = VoiceLiveEmulator(
        turns=turns,
        api_key=api_key,
        caller_transcripts=caller_transcripts,
        speed=speed,
        response_delay_ms=response_delay_ms,
        connect_delay_ms=connect_delay_ms,
    )
    endpoint = await emulator.start(host, port)
    try:
        if on_started is not None:
            on_started(endpoint)
        await asyncio.Event().wait()
    finally:
        await emulator.stop()
