"""Call Automation through the real SDK: answer, reject, redirect, dial, hang up, transfer.

Every action is addressed by ACS's ids (the incoming call context or the call connection id),
never by state held here, so whichever replica receives an event can act on any call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
from callbridge.core.settings import Settings

log = structlog.get_logger(__name__)

RejectReason = Literal["none", "busy", "forbidden"]

_AUDIO_FORMATS = {16000: AudioFormat.PCM16_K_MONO, 24000: AudioFormat.PCM24_K_MONO}


@dataclass(frozen=True, slots=True)
class PlacedCall:
    """An outbound call ACS accepted to place."""

    call_connection_id: str
    correlation_id: str | None


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
        """Answer with media streaming to this deployment; returns the call connection id."""
        token = self.call_token(correlation_id, profile, "inbound")
        properties = await self._client.answer_call(
            incoming_call_context,
            self.callback_url(token),
            operation_context=f"answer:{profile.name}",
            media_streaming=self.media_options(token, profile),
        )
        return str(properties.call_connection_id)

    async def reject(self, incoming_call_context: str, reason: RejectReason) -> None:
        await self._client.reject_call(incoming_call_context, call_reject_reason=reason)

    async def redirect(self, incoming_call_context: str, target: str) -> None:
        await self._client.redirect_call(incoming_call_context, PhoneNumberIdentifier(target))

    async def dial(self, target: str, profile: AgentProfile, call_key: str) -> PlacedCall:
        """Place a call from the configured caller id; media flows once the callee answers.

        Raises:
            ValueError: no caller id is configured (ACS requires one for phone numbers).
            azure.core.exceptions.HttpResponseError: ACS refused the call.
        """
        caller_id = self._settings.acs.caller_id
        if caller_id is None:
            raise ValueError("ACS_CALLER_ID is not set: outbound calls need an ACS number")
        token = self.call_token(call_key, profile, "outbound")
        properties = await self._client.create_call(
            PhoneNumberIdentifier(target),
            self.callback_url(token),
            source_caller_id_number=PhoneNumberIdentifier(caller_id),
            operation_context=f"dial:{profile.name}",
            media_streaming=self.media_options(token, profile),
        )
        log.info("call.dialled", to=mask(target), profile=profile.name)
        return PlacedCall(str(properties.call_connection_id), properties.correlation_id)

    def actions(self, call_connection_id: str) -> AcsCallActions:
        return AcsCallActions(self._client, call_connection_id)

    async def hang_up(self, call_connection_id: str) -> None:
        await self.actions(call_connection_id).hang_up()


class AcsCallActions:
    """Hang up or transfer one call, by its connection id (``bridge.actions.CallActions``)."""

    def __init__(self, client: CallAutomationClient, call_connection_id: str) -> None:
        self._connection = client.get_call_connection(call_connection_id)

    async def hang_up(self) -> None:
        """End the call for everyone; a call that has already ended is not an error."""
        try:
            await self._connection.hang_up(is_for_everyone=True)
        except ResourceNotFoundError:
            log.info("acs.call_already_ended")
        except HttpResponseError as exc:
            if "terminated" not in str(exc).lower():
                raise
            log.info("acs.call_already_ended")

    async def connected(self) -> bool | None:
        """Whether ACS still has the call connected (its ``callConnectionState``); None if ACS
        cannot be asked right now."""
        try:
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
        await self._connection.transfer_call_to_participant(
            PhoneNumberIdentifier(target), operation_context="transfer_call"
        )
