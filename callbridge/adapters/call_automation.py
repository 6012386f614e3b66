"""Call Automation through the real SDK: answer, reject, redirect, dial, hang up, transfer.

Every action is addressed by ACS's ids (the incoming call context or the call connection id),
never by state held here, so whichever replica receives an event can act on any call.

Every request has a deadline that fits its purpose (``CallOperationDeadlines``): the SDK would
wait up to 300 s for a reply (azure-core's ``ConnectionConfiguration.read_timeout``), and its
retry policy's own ``timeout`` is only checked between attempts (``AsyncRetryPolicy.send``), so
a request ACS holds is cut by ``asyncio.timeout`` here, which bounds everything the pipeline
does (an Entra token fetch included). A hang-up is retried here, attempt by attempt, until ACS
accepts it or says the call is gone (``AcsCallActions.hang_up``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, Literal

import structlog
from azure.communication.callautomation import (
    AudioFormat,
    MediaStreamingAudioChannelType,
    MediaStreamingContentType,
    MediaStreamingOptions,
    PhoneNumberIdentifier,
    StreamingTransportType,
)
from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity.aio import DefaultAzureCredential

from callbridge.core.call_token import Direction, mint_call_token
from callbridge.core.numbers import mask
from callbridge.core.profiles import AgentProfile
from callbridge.core.settings import CallOperationDeadlines, Settings

log = structlog.get_logger(__name__)

RejectReason = Literal["none", "busy", "forbidden"]

_AUDIO_FORMATS = {16000: AudioFormat.PCM16_K_MONO, 24000: AudioFormat.PCM24_K_MONO}

HANG_UP_FIRST_RETRY_S: Final = 0.25
"""Wait before the second hang-up attempt; each later wait doubles, up to the next bound."""
HANG_UP_MAX_RETRY_S: Final = 4.0

CALL_GONE_CODES: Final = frozenset({"8522", "8528", "8543"})
"""Error codes that say the call no longer exists. Learn's Call Automation error codes
(MicrosoftDocs/azure-docs, ``resources/troubleshooting/voice-video-calling/includes/codes/
call-automation-sdk.md``): 404 8522 "the resource isn't found ... the call may have already
ended", 400 8528 "Action not supported call terminated", 8543 "Call Doesn't Exist". ACS puts the
subcode in the body's ``error.code`` (a recorded live test of the JS SDK, azure-sdk-for-js
``communication-callingserver``: a request on a hung-up call got 404 ``{"error": {"code":
"8522", "message": "Call not found."}}``)."""


class OperationTimeoutError(TimeoutError):
    """ACS did not answer a Call Automation request within its deadline. ACS may still carry
    it out: nothing here can take a request back."""


@asynccontextmanager
async def deadline(operation: str, seconds: float) -> AsyncIterator[None]:
    """Bound the block at ``seconds``; past it, ``OperationTimeoutError`` names the operation."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        message = f"{operation}: no reply from ACS within {seconds:g} s"
        raise OperationTimeoutError(message) from None


def call_is_gone(error: Exception) -> bool:
    """Whether a failed request says the call no longer exists (``CALL_GONE_CODES``)."""
    if isinstance(error, ResourceNotFoundError):
        return True
    if not isinstance(error, HttpResponseError):
        return False
    body = error.error
    code = str(body.code) if body is not None and body.code is not None else ""
    # Tolerant reader: an unknown code whose message says the call ended is read that way.
    return code in CALL_GONE_CODES or "terminated" in str(error).lower()


def _describe(error: Exception) -> str:
    status = getattr(error, "status_code", None)
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return f"{status} {text}" if status is not None else text


@dataclass(frozen=True, slots=True)
class PlacedCall:
    """An outbound call ACS accepted to place."""

    call_connection_id: str
    correlation_id: str | None


@dataclass(frozen=True, slots=True)
class CallIds:
    """What ACS says a call connection is (``CallControl.call_ids``)."""

    correlation_id: str | None
    callback_url: str | None


class CallControl:
    """This deployment's Call Automation client and the URLs it gives ACS for each call."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        credential: AzureKeyCredential | DefaultAzureCredential
        if settings.acs.access_key:
            credential = AzureKeyCredential(settings.acs.access_key)
            self._entra: DefaultAzureCredential | None = None
        else:
            credential = self._entra = DefaultAzureCredential()
        self._client = CallAutomationClient(settings.acs.endpoint, credential)
        self._deadlines = settings.acs.deadlines

    async def aclose(self) -> None:
        await self._client.close()
        if self._entra is not None:
            await self._entra.close()

    def media_options(self, token: str, profile: AgentProfile) -> MediaStreamingOptions:
        """Bidirectional mixed audio at the profile's rate, starting at once, DTMF on."""
        # https://host -> wss://host, http://host -> ws://host (the URL is validated at start-up).
        ws_base = "ws" + self._settings.public_url.removeprefix("http")
        return MediaStreamingOptions(
            # The token goes in the path: every Microsoft sample dials a bare path, and no
            # document says ACS keeps a query string on the transportUrl.
            transport_url=f"{ws_base}/ws/{token}",
            transport_type=StreamingTransportType.WEBSOCKET,
            content_type=MediaStreamingContentType.AUDIO,
            audio_channel_type=MediaStreamingAudioChannelType.MIXED,
            start_media_streaming=True,
            enable_bidirectional=True,
            audio_format=_AUDIO_FORMATS[profile.media_rate],
            enable_dtmf_tones=True,
        )

    def callback_url(self, token: str) -> str:
        return f"{self._settings.public_url}/api/callbacks/{token}"

    def call_token(self, call_key: str, profile: AgentProfile, direction: Direction) -> str:
        return mint_call_token(
            self._settings.auth.signing_key,
            call_key=call_key,
            profile=profile.name,
            direction=direction,
        )

    async def answer(
        self, incoming_call_context: str, *, correlation_id: str, profile: AgentProfile
    ) -> str:
        """Answer with media streaming to this deployment; returns the call connection id.

        Raises:
            OperationTimeoutError: no reply within ``CallOperationDeadlines.answer_s`` (the SDK's
                own retries of a 500, 503 or 504 happen within it).
            azure.core.exceptions.HttpResponseError: ACS refused.
        """
        token = self.call_token(correlation_id, profile, "inbound")
        async with deadline("answer", self._deadlines.answer_s):
            properties = await self._client.answer_call(
                incoming_call_context,
                self.callback_url(token),
                operation_context=f"answer:{profile.name}",
                media_streaming=self.media_options(token, profile),
            )
        return str(properties.call_connection_id)

    async def reject(self, incoming_call_context: str, reason: RejectReason) -> None:
        async with deadline("reject", self._deadlines.answer_s):
            await self._client.reject_call(incoming_call_context, call_reject_reason=reason)

    async def redirect(self, incoming_call_context: str, target: str) -> None:
        async with deadline("redirect", self._deadlines.answer_s):
            await self._client.redirect_call(incoming_call_context, PhoneNumberIdentifier(target))

    async def dial(self, target: str, profile: AgentProfile, call_key: str) -> PlacedCall:
        """Place a call from the configured caller id; media flows once the callee answers.

        Raises:
            ValueError: no caller id is configured (ACS requires one for phone numbers).
            OperationTimeoutError: no reply within ``CallOperationDeadlines.dial_s``.
            azure.core.exceptions.HttpResponseError: ACS refused the call.
        """
        caller_id = self._settings.acs.caller_id
        if caller_id is None:
            raise ValueError("ACS_CALLER_ID is not set: outbound calls need an ACS number")
        token = self.call_token(call_key, profile, "outbound")
        async with deadline("dial", self._deadlines.dial_s):
            properties = await self._client.create_call(
                PhoneNumberIdentifier(target),
                self.callback_url(token),
                source_caller_id_number=PhoneNumberIdentifier(caller_id),
                operation_context=f"dial:{profile.name}",
                media_streaming=self.media_options(token, profile),
            )
        log.info("call.dialled", to=mask(target), profile=profile.name)
        return PlacedCall(str(properties.call_connection_id), properties.correlation_id)

    async def call_ids(self, call_connection_id: str) -> CallIds | None:
        """ACS's ids of a call connection: its correlation id and the callback URL it was given
        (``CallConnectionClient.get_call_properties``, a GET of
        ``/calling/callConnections/{callConnectionId}``; the fields are the SDK's
        ``CallConnectionProperties``: ``correlation_id`` from ``correlationId``, ``callback_url``
        from ``callbackUri``, azure-communication-callautomation 1.6.0 ``_models.py`` and
        ``_generated/models/_models.py``). None when ACS says the connection does not exist
        (``call_is_gone``).

        Raises:
            OperationTimeoutError: no reply within ``CallOperationDeadlines.query_s``.
            azure.core.exceptions.HttpResponseError: ACS refused, or failed, otherwise.
        """
        connection = self._client.get_call_connection(call_connection_id)
        try:
            async with deadline("get call", self._deadlines.query_s):
                properties = await connection.get_call_properties()
        except HttpResponseError as exc:
            if call_is_gone(exc):
                return None
            raise
        return CallIds(properties.correlation_id, properties.callback_url)

    def actions(self, call_connection_id: str) -> AcsCallActions:
        return AcsCallActions(self._client, call_connection_id, self._deadlines)

    async def hang_up(self, call_connection_id: str) -> bool:
        """``AcsCallActions.hang_up`` for a call this replica may not be bridging."""
        return await self.actions(call_connection_id).hang_up()


class AcsCallActions:
    """Hang up or transfer one call, by its connection id (``bridge.actions.CallActions``)."""

    def __init__(
        self,
        client: CallAutomationClient,
        call_connection_id: str,
        deadlines: CallOperationDeadlines,
    ) -> None:
        self._connection = client.get_call_connection(call_connection_id)
        self._deadlines = deadlines

    async def hang_up(self) -> bool:
        """End the call for everyone, retrying until ACS accepts or says the call is gone.

        Each attempt has ``hang_up_attempt_s`` and is logged; the SDK's own retries are off
        (``retry_total=0``, a per-request option its ``AsyncRetryPolicy.configure_retries``
        reads), so every attempt is one request, seen here. Failures are retried after 0.25 s,
        0.5 s, 1 s... (at most ``HANG_UP_MAX_RETRY_S``) within ``hang_up_budget_s``.

        Returns:
            True once ACS accepted the hang-up or said the call is gone; False when it refused
            or did not answer for the whole budget (logged as ``acs.hang_up_failed``).
        """
        started = time.monotonic()
        give_up_at = started + self._deadlines.hang_up_budget_s
        retry_in = HANG_UP_FIRST_RETRY_S
        attempt = 0
        while True:
            attempt += 1
            attempt_s = min(self._deadlines.hang_up_attempt_s, give_up_at - time.monotonic())
            try:
                async with deadline("hang-up", max(attempt_s, 0.0)):
                    await self._connection.hang_up(is_for_everyone=True, retry_total=0)
            except Exception as exc:  # each failure is judged and logged below
                waited_s = round(time.monotonic() - started, 2)
                if call_is_gone(exc):
                    log.info("acs.call_already_ended", attempt=attempt, error=_describe(exc))
                    return True
                if time.monotonic() + retry_in >= give_up_at:
                    log.error(
                        "acs.hang_up_failed",
                        attempts=attempt,
                        waited_s=waited_s,
                        error=_describe(exc),
                    )
                    return False
                log.warning(
                    "acs.hang_up_retry", attempt=attempt, error=_describe(exc), retry_in_s=retry_in
                )
                await asyncio.sleep(retry_in)
                retry_in = min(retry_in * 2, HANG_UP_MAX_RETRY_S)
            else:
                waited_ms = round((time.monotonic() - started) * 1000)
                log.info("acs.hung_up", attempts=attempt, waited_ms=waited_ms)
                return True

    async def connected(self) -> bool | None:
        """Whether ACS still has the call connected (its ``callConnectionState``); None if ACS
        cannot be asked right now."""
        try:
            async with deadline("get call", self._deadlines.query_s):
                properties = await self._connection.get_call_properties()
        except ResourceNotFoundError:
            return False
        except Exception as exc:  # unreachable or refusing: the caller's fate is unknown
            log.warning("acs.call_state_unknown", error=str(exc) or type(exc).__name__)
            return None
        return str(properties.call_connection_state).lower() not in (
            "disconnected",
            "disconnecting",
        )

    async def transfer(self, target: str) -> None:
        """Raises ``OperationTimeoutError`` past ``transfer_s`` (the SDK retries a 500, 503 or 504
        within it), or whatever the SDK raises if ACS refuses."""
        async with deadline("transfer", self._deadlines.transfer_s):
            await self._connection.transfer_call_to_participant(
                PhoneNumberIdentifier(target), operation_context="transfer_call"
            )
