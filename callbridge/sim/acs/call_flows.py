"""What ACS does in the background once a call is answered, dialled or transferred.

It rings (and misses the call if nobody answers), dials a callee, connects the call and posts
``CallConnected``, opens the media WebSocket with a ``Phone`` (the caller's side) and posts
the ``MediaStreaming*`` events, waits for the call to end and posts ``CallDisconnected``, and
plays out a transfer. The flows never raise for the app's sake: a refused media socket becomes
``MediaStreamingFailed``, a failing callback endpoint is recorded in ``callbacks``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Final

import aiohttp

from callbridge.sim.acs.call_inputs import Callee
from callbridge.sim.acs.call_state import CallState
from callbridge.sim.acs.events import (
    CALL_ENDED,
    CALLEE_NO_ANSWER,
    CALLEE_UNKNOWN,
    CONNECTED,
    MEDIA_SOCKET_FAILED,
    OK,
    STREAM_INTERRUPTED,
    STREAM_UNSUCCESSFUL,
    TRANSFER_FAILED,
    ResultInformation,
    media_streaming_update,
    participants_update,
    transfer_details,
)
from callbridge.sim.acs.ingress import through_ingress
from callbridge.sim.acs.options import MediaOptions
from callbridge.sim.acs.payload import RAW_ID_PHONE_PREFIX, Identifier
from callbridge.sim.acs.signing import MEDIA_TOKEN_LIFETIME_S
from callbridge.sim.phone import LineChange, Phone

_MEDIA_HANDSHAKE_ERRORS: Final = (aiohttp.ClientError, TimeoutError, OSError)

_LINE_CALLBACKS: Final[dict[LineChange, tuple[str, str, str, ResultInformation]]] = {
    "interrupted": (
        "MediaStreamingFailed",
        "mediaStreamingFailed",
        "streamConnectionInterrupted",
        STREAM_INTERRUPTED,
    ),
    "reestablished": (
        "MediaStreamingStarted",
        "mediaStreamingStarted",
        "streamConnectionReestablished",
        OK,
    ),
    "refused": (
        "MediaStreamingFailed",
        "mediaStreamingFailed",
        "streamConnectionUnsuccessful",
        STREAM_UNSUCCESSFUL,
    ),
}
"""Callback, status, status details and result for each change of the media line."""


class CallFlows(CallState):
    """The background flows of one call; the REST requests of ``SimCall`` start them."""

    async def _ring(self, ring_timeout_s: float) -> None:
        await asyncio.sleep(ring_timeout_s)
        if self.outcome is None:
            self.outcome = "missed"
            self.finish()

    async def _dial(self, callee: Callee | None) -> None:
        try:
            if callee is not None:
                await asyncio.sleep(callee.ring_s)
            if self.disconnect is not None:  # the app hung up while it rang
                self.outcome = "failed"
                await self._post("CallDisconnected", result=CALL_ENDED)
                return
            if callee is None or not callee.answer:
                self.outcome = "failed"
                self.state = "disconnected"
                result = CALLEE_UNKNOWN if callee is None else CALLEE_NO_ANSWER
                await self._post("CreateCallFailed", result=result)
                return
            self.outcome = "answered"
            self.answered_at = time.monotonic()
            await self._connect()
        finally:
            self.finish()

    async def _connect(self) -> None:
        """The connected call: CallConnected, media, and CallDisconnected once it ends."""
        try:
            if self.disconnect is None:  # not hung up already, between answer and now
                self.state = "connected"
            self.connected_at = time.monotonic()
            self._changed()
            # Who is on the call: the person on the phone and the app's identity. A recording
            # shows this before CallConnected, another after: apps must not rely on the order.
            participants = (
                Identifier(RAW_ID_PHONE_PREFIX + self.party.number, self.party.number),
                Identifier(self._env.bot_id, None),
            )
            await self._post(
                "ParticipantsUpdated",
                result=CONNECTED,
                extra=participants_update(participants, sequence_number=1),
            )
            await self._post("CallConnected", result=CONNECTED)
            media = self.setup.media if self.setup else None
            if media is not None and media.start and self._overrides.media_after_s > 0:
                await self._hold_media(self._overrides.media_after_s)
            if media is not None and media.start and self.disconnect is None:
                await self._stream(media)
            await self._wait_for_end()
            await self._post("CallDisconnected", result=CALL_ENDED)
        finally:
            self.finish()

    async def _stream(self, media: MediaOptions) -> None:
        """Open the media socket as ACS does, and run the call's audio until it closes."""
        assert self.call_connection_id is not None  # assigned at answer or create
        phone = Phone(
            through_ingress(media.transport_url),
            script=self.party.script,
            sample_rate=media.sample_rate,
            headers=self._media_headers(),
            rejoin_headers=self._media_headers,
            call_connection_id=self.call_connection_id,
            correlation_id=self.correlation_id,
            participant_raw_id=RAW_ID_PHONE_PREFIX + self.party.number,
            hangup_after_s=self.party.hangup_after_s,
            max_duration_s=self.party.max_duration_s,
            connect_timeout_s=self._env.media_connect_timeout_s,
            playout_delay_ms=self._env.playout_delay_ms,
            faults=self._overrides.media_faults,
            echo=self.party.echo,
        )
        connected = asyncio.Event()
        changes: asyncio.Queue[LineChange | None] = asyncio.Queue()
        run = asyncio.create_task(
            phone.run(hangup=self._hangup, connected=connected, on_line=changes.put_nowait),
            name=f"acs-phone-{self.call_connection_id}",
        )
        opened = asyncio.create_task(connected.wait(), name=f"acs-media-{self.call_connection_id}")
        try:
            await asyncio.wait({run, opened}, return_when=asyncio.FIRST_COMPLETED)
            if connected.is_set():
                self._streaming = True
                await self._post(
                    "MediaStreamingStarted",
                    extra=media_streaming_update("mediaStreamingStarted", "subscriptionStarted"),
                )
            announcer = asyncio.create_task(
                self._announce(changes), name=f"acs-line-{self.call_connection_id}"
            )
            try:
                record = await run
            except _MEDIA_HANDSHAKE_ERRORS as exc:
                if connected.is_set():
                    raise
                await self._media_refused(exc)
                return
            finally:
                changes.put_nowait(None)  # the line's callbacks go out before the last one
                await announcer
        finally:
            self._streaming = False
            for task in (run, opened):
                task.cancel()
            await asyncio.gather(run, opened, return_exceptions=True)
        self.media = record
        if record.sockets[-1].closed_by not in ("dropped", "aborted"):
            # A stream that was interrupted and never came back was reported failed already.
            await self._post(
                "MediaStreamingStopped",
                extra=media_streaming_update("mediaStreamingStopped", "subscriptionStopped"),
            )
        if record.closed_by in ("phone", "timeout"):
            self._end("caller")

    async def _announce(self, changes: asyncio.Queue[LineChange | None]) -> None:
        """Post what ACS posts as the media line drops and comes back, in order.

        ACS publishes the status details (``MediaStreamingStatusDetails`` in every Call
        Automation SDK: ``streamConnectionInterrupted``, ``streamConnectionReestablished``,
        ``streamConnectionUnsuccessful``...) but not which event carries each, nor when. The
        statuses are only started, failed and stopped, so the stand-in posts
        ``MediaStreamingFailed`` (interrupted) at a drop, ``MediaStreamingStarted``
        (reestablished) when a new socket opens, and ``MediaStreamingFailed`` (unsuccessful)
        when the bridge refuses it.
        """
        while (change := await changes.get()) is not None:
            name, status, details, result = _LINE_CALLBACKS[change]
            self._streaming = change == "reestablished"
            await self._post(name, result=result, extra=media_streaming_update(status, details))

    async def _media_refused(self, exc: Exception) -> None:
        self.media_error = f"{type(exc).__name__}: {exc}"
        self._log.info("acs_standin.media_refused", error=self.media_error)
        await self._post(
            "MediaStreamingFailed",
            result=MEDIA_SOCKET_FAILED,
            extra=media_streaming_update(
                "mediaStreamingFailed", "initialWebSocketConnectionFailed"
            ),
        )

    async def _hold_media(self, seconds: float) -> None:
        """A late media socket (``CallOverrides.media_after_s``): wait, unless the call ends."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._hangup.wait()

    async def _wait_for_end(self) -> None:
        """Until someone ends the call; without media the caller gives up in the end."""
        assert self.connected_at is not None
        remaining = self.connected_at + self.party.max_duration_s - time.monotonic()
        try:
            async with asyncio.timeout(remaining):
                await self._hangup.wait()
        except TimeoutError:
            self._end("caller")

    async def _transfer(
        self, target: Identifier, operation_context: str | None, callback_uri: str | None
    ) -> None:
        if self.disconnect is not None:  # the call ended before the transfer could start
            return
        if self._overrides.fail_transfer:
            if self.state == "transferring":
                self.state = "connected"
            await self._post(
                "CallTransferFailed",
                result=TRANSFER_FAILED,
                operation_context=operation_context,
                url=callback_uri,
            )
            return
        self.state = "transferAccepted"
        await self._post(
            "CallTransferAccepted",
            operation_context=operation_context,
            extra=transfer_details(target, self.party.number),
            url=callback_uri,
        )
        self._end("transfer")

    def _media_headers(self) -> dict[str, str]:
        """The media upgrade's JWT, fresh for each socket: the call's override if it has one,
        else a valid one."""
        token = self._bearer(self._overrides.media_token, MEDIA_TOKEN_LIFETIME_S)
        return {"Authorization": f"Bearer {token}"}
