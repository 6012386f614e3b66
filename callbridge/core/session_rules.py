"""What a Voice Live session accepts, by what answers the call: a model family, or an agent.

From the Voice Live API reference 2026-07-15 (MicrosoftDocs/azure-ai-docs,
``articles/ai-services/speech-service/voice-live-api-reference-2026-07-15.md``,
RealtimeAudioInputTranscriptionSettings), the version callbridge pins:

    model: Supported with ``gpt-realtime`` and ``gpt-realtime-mini``: ``whisper-1``,
    ``gpt-4o-transcribe``, ``gpt-4o-mini-transcribe``, ``gpt-4o-transcribe-diarize``,
    ``mai-transcribe``, ``mai-transcribe-2``. Supported with all other models and agents:
    ``azure-speech``, ``mai-transcribe``, and ``mai-transcribe-2``.

and from the Voice Live how-to (``voice-live-how-to.md``): "The ``instructions`` property isn't
supported when you're using a custom agent", and the agents how-to: "Key-based authentication
isn't supported in Agent mode."

The public record is not one voice here: the older how-to allows ``mai-transcribe`` only with
non-multimodal models, and the SDK's live tests run ``gpt-realtime-mini`` with ``azure-speech``
too. callbridge writes strictly: it only ever sends a pair the reference lists, and defaults to
the pair the SDK's own live tests use (``whisper-1`` with the realtime models, ``azure-speech``
otherwise).
"""

from __future__ import annotations

from typing import Final

REALTIME_FAMILY: Final = ("gpt-realtime", "gpt-4o-realtime", "gpt-4o-mini-realtime")
"""Model name prefixes of the OpenAI realtime family (``gpt-realtime``, ``gpt-realtime-mini``
and dated versions; the older ``gpt-4o(-mini)-realtime`` names likewise)."""

REALTIME_TRANSCRIPTION: Final = (
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-transcribe-diarize",
    "mai-transcribe",
    "mai-transcribe-2",
)
OTHER_TRANSCRIPTION: Final = ("azure-speech", "mai-transcribe", "mai-transcribe-2")
"""For every other model, and for agents."""

AGENT_OWNED_FIELDS: Final = ("instructions",)
"""Session fields an agent session must not carry: the agent is configured in Foundry."""


def is_realtime_family(model: str) -> bool:
    return model.startswith(REALTIME_FAMILY)


def supported_transcription_models(model: str | None) -> tuple[str, ...]:
    """The transcription models Voice Live takes with ``model`` (None: an agent answers)."""
    if model is not None and is_realtime_family(model):
        return REALTIME_TRANSCRIPTION
    return OTHER_TRANSCRIPTION


def default_transcription_model(model: str | None) -> str:
    """The transcription model callbridge uses with ``model`` unless one is configured."""
    return supported_transcription_models(model)[0]
