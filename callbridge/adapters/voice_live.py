"""The Voice Live side of a call: session configuration and connection.

Connection goes through the real ``azure-ai-voicelive`` SDK with the API version pinned, so a
new SDK default cannot silently change the wire protocol under a running deployment.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from azure.ai.voicelive.aio import VoiceLiveConnection, WebsocketConnectionOptions, connect
from azure.ai.voicelive.models import (
    AssistantMessageItem,
    AudioEchoCancellation,
    AudioInputTranscriptionOptions,
    AudioNoiseReduction,
    AzureSemanticVad,
    AzureStandardVoice,
    ConversationRequestItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    InputTextContentPart,
    Modality,
    OpenAIVoice,
    OpenAIVoiceName,
    OutputTextContentPart,
    RequestSession,
    ResponseCreateParams,
    SystemMessageItem,
    UserMessageItem,
)
from azure.core.credentials import AzureKeyCredential
from azure.identity.aio import DefaultAzureCredential

from callbridge.core.call_context import Entry, KeypadInput, Omitted, ToolExchange, Turn
from callbridge.core.codec import Codec
from callbridge.core.profiles import AgentProfile
from callbridge.core.settings import VoiceLiveSettings
from callbridge.tools import Tool

API_VERSION = "2026-07-15"

SESSION_UPDATE_EVENT_ID = "callbridge-session-update"
"""The ``event_id`` of callbridge's ``session.update``: the reference says an ``error`` carries
the ``event_id`` of the client event that caused it."""

LIVENESS_PROBE_EVENT_ID = "callbridge-liveness-probe"
"""The ``event_id`` of the probe that asks a quiet session to prove it is alive."""

_OPENAI_VOICES = frozenset(voice.value for voice in OpenAIVoiceName)


def _voice(name: str) -> OpenAIVoice | AzureStandardVoice:
    if name in _OPENAI_VOICES:
        return OpenAIVoice(name=name)
    return AzureStandardVoice(name=name)


def session_request(
    profile: AgentProfile, codec: Codec, transcription_model: str, tools: Sequence[Tool] = ()
) -> RequestSession:
    """The ``session.update`` body for one call.

    Turn detection is told not to cancel or truncate on its own: the service assumes its audio
    is heard the moment it is produced, while a phone line plays it later. callbridge knows what
    the caller heard, so it owns barge-in (cancel only if active, truncate to the heard ms).

    An agent's session carries no ``instructions``: the agent has its own, and the service
    refuses them (``core.session_rules.AGENT_OWNED_FIELDS``).
    """
    owned_by_profile = {} if profile.agent is not None else {"instructions": profile.instructions}
    return RequestSession(
        modalities=[Modality.TEXT, Modality.AUDIO],
        **owned_by_profile,
        voice=_voice(profile.voice),
        input_audio_format=codec.voice_live_input_format,
        input_audio_sampling_rate=codec.voice_live_input_rate,
        output_audio_format=codec.voice_live_output_format,
        turn_detection=AzureSemanticVad(
            interrupt_response=False,
            auto_truncate=False,
            # callbridge asks for every answer itself, so a backchannel spoken over the agent
            # is never answered (``bridge.interruption``).
            create_response=False,
        ),
        input_audio_noise_reduction=AudioNoiseReduction(type="azure_deep_noise_suppression"),
        input_audio_echo_cancellation=_echo_cancellation(profile),
        input_audio_transcription=AudioInputTranscriptionOptions(model=transcription_model),
        tools=[_function_tool(spec) for spec in tools],
        tool_choice="auto",
    )


CLIENT_REFERENCE_QUERY = {"features": "client_ec_reference:true"}
"""The preview feature a client echo reference needs on the WebSocket URL (API reference
2026-07-15, RealtimeInputAudioEchoCancellationSettings: "client_ec_reference preview feature
flag", ``&features=client_ec_reference:true``)."""


def _echo_cancellation(profile: AgentProfile) -> AudioEchoCancellation:
    """The service's echo cancellation: with the reference callbridge sends as channel 1 of
    stereo input (``bridge.caller_echo``), or with its own output as the reference (the
    default, ``reference_source: server``). The reference says ``reference_source`` and
    ``channels`` cannot change mid-session: every session of a call is configured alike."""
    if profile.sends_echo_reference:
        return AudioEchoCancellation(reference_source="client", channels=2)
    return AudioEchoCancellation()


def liveness_probe() -> dict[str, str]:
    """A client event the service must answer and that changes nothing: retrieving an item
    that does not exist. The ``error`` it brings back proves the session alive; its
    ``event_id`` tells the bridge not to count it as a failure."""
    return {
        "type": "conversation.item.retrieve",
        "event_id": LIVENESS_PROBE_EVENT_ID,
        "item_id": LIVENESS_PROBE_EVENT_ID,
    }


async def configure_session(connection: VoiceLiveConnection, request: RequestSession) -> None:
    """Send ``session.update``, tagged so an ``error`` it causes can be told from others."""
    await connection.session.update(session=request, event_id=SESSION_UPDATE_EVENT_ID)


def _function_tool(spec: Tool) -> FunctionTool:
    return FunctionTool(
        name=spec.name, description=spec.description, parameters=dict(spec.parameters)
    )


def greeting_request(profile: AgentProfile) -> ResponseCreateParams | None:
    """The first response: the profile's greeting verbatim, or ``None`` to let the model greet."""
    if profile.greeting is None:
        return None
    return verbatim_request(profile.greeting)


def verbatim_request(text: str) -> ResponseCreateParams:
    """A response that speaks ``text`` word for word in the session's voice."""
    return ResponseCreateParams(
        pre_generated_assistant_message=AssistantMessageItem(
            content=[OutputTextContentPart(text=text)]
        )
    )


CONTINUED_NOTE = (
    "The conversation above happened earlier in this same phone call. Carry on from where it "
    "stands; do not greet the caller again."
)
"""Ends a replayed context, so the model neither greets again nor repeats itself."""


def context_items(entries: Sequence[Entry]) -> list[ConversationRequestItem]:
    """A call's conversation so far as ``conversation.item.create`` items for a new session.

    Caller turns and keypad input become user messages, the agent's turns assistant messages
    (text: the new session has no audio of them), a tool call its ``function_call`` item and,
    once it returned, its ``function_call_output``.
    """
    items: list[ConversationRequestItem] = []
    for entry in entries:
        match entry:
            case Turn(role="caller", text=text) | KeypadInput(text=text):
                items.append(UserMessageItem(content=[InputTextContentPart(text=text)]))
            case Turn(role="agent", text=text):
                items.append(AssistantMessageItem(content=[OutputTextContentPart(text=text)]))
            case ToolExchange(call_id=call_id, name=name, arguments=arguments, output=output):
                items.append(FunctionCallItem(call_id=call_id, name=name, arguments=arguments))
                if output is not None:
                    items.append(FunctionCallOutputItem(call_id=call_id, output=output))
            case Omitted(entries=count):
                items.append(_system(f"({count} earlier parts of this call were left out.)"))
    if items:
        items.append(_system(CONTINUED_NOTE))
    return items


def _system(text: str) -> SystemMessageItem:
    return SystemMessageItem(content=[InputTextContentPart(text=text)])


@asynccontextmanager
async def open_voice_live(
    settings: VoiceLiveSettings,
    profile: AgentProfile,
    *,
    correlation_id: str,
    heartbeat_s: float | None = None,
) -> AsyncIterator[VoiceLiveConnection]:
    """Connect to Voice Live for one call: the profile's model or agent, with an API key if
    configured, else with Entra ID.

    ACS's correlation id of the call travels as ``x-ms-client-request-id``, so one id finds
    the call in both services' logs. ``heartbeat_s``: ping the service this often; a pong
    missing for half of it closes the connection (aiohttp's heartbeat; the SDK's default is
    30 s, far too slow to notice a frozen path on a live call).

    Raises:
        TimeoutError: the handshake took longer than ``settings.connect_timeout_s`` (the SDK
            ignores its own handshake timeout).
        azure.ai.voicelive.aio.ConnectionError: the service refused or could not be reached.
    """
    async with AsyncExitStack() as stack:
        credential: AzureKeyCredential | DefaultAzureCredential
        if settings.api_key:
            credential = AzureKeyCredential(settings.api_key)
        else:
            credential = await stack.enter_async_context(DefaultAzureCredential())
        headers = {"x-ms-client-request-id": correlation_id}
        options: WebsocketConnectionOptions = {}
        if heartbeat_s is not None:
            options["heartbeat"] = heartbeat_s
        agent = profile.agent
        if agent is not None:
            manager = connect(
                endpoint=settings.endpoint,
                credential=credential,
                api_version=API_VERSION,
                headers=headers,
                connection_options=options,
                agent_name=agent.name,
                project_name=agent.project,
                agent_version=agent.version,
                query=_preview_features(profile),
            )
        else:
            manager = connect(
                endpoint=settings.endpoint,
                credential=credential,
                api_version=API_VERSION,
                headers=headers,
                connection_options=options,
                model=settings.session_model(profile),
                query=_preview_features(profile),
            )
        connection = await _handshake(manager, settings.connect_timeout_s)
        stack.push_async_exit(manager)
        yield connection


def _preview_features(profile: AgentProfile) -> dict[str, str]:
    return CLIENT_REFERENCE_QUERY if profile.sends_echo_reference else {}


_ABANDONED: set[asyncio.Future[Any]] = set()
"""Handshakes given up on, still running: held here until they end (see ``_handshake``)."""


async def _handshake(
    manager: AbstractAsyncContextManager[VoiceLiveConnection], timeout_s: float
) -> VoiceLiveConnection:
    """Enter the SDK's connection manager within ``timeout_s``, never cancelling its handshake.

    azure-ai-voicelive 1.3.1 (``aio/_patch.py``, ``__aenter__``) closes the aiohttp
    ``ClientSession`` it creates only when ``ws_connect`` raises an ``aiohttp.ClientError``: a
    handshake cancelled by a timeout, or by the call ending, leaks the session. So a handshake
    that outlives its bound (or its caller) is left to end on its own, which aiohttp's own
    session timeout bounds, and a connection it then brings is closed at once.
    """
    handshake = asyncio.ensure_future(manager.__aenter__())
    try:
        async with asyncio.timeout(timeout_s):
            return await asyncio.shield(handshake)
    except BaseException:
        _ABANDONED.add(handshake)
        handshake.add_done_callback(_close_late_connection)
        raise


def _close_late_connection(handshake: asyncio.Future[Any]) -> None:
    _ABANDONED.discard(handshake)
    if handshake.cancelled() or handshake.exception() is not None:
        return  # failed: the SDK closed its session, or the loop is shutting down
    closing = asyncio.ensure_future(handshake.result().close())
    _ABANDONED.add(closing)
    closing.add_done_callback(_ABANDONED.discard)
