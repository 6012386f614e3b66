"""What an app asks for when it answers or places a call: where callbacks go, and the media
stream.

``answer_call`` and ``create_call`` share these fields (``callbackUri``, ``operationContext``,
``mediaStreamingOptions``). They are read strictly where a wrong value would change the call
(an unknown ``audioFormat`` is a 400, as the service's enum check makes it) and leniently
elsewhere (unknown keys are ignored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from callbridge.sim.acs.errors import bad_request
from callbridge.sim.acs.payload import Payload

AUDIO_FORMAT_RATES: Final = {"pcm16kmono": 16000, "pcm24kmono": 24000}
"""``audioFormat`` → PCM16 sample rate; ACS offers no other format."""

DEFAULT_SAMPLE_RATE: Final = 16000
"""The rate when ``audioFormat`` is omitted: the service default."""


@dataclass(frozen=True, slots=True)
class MediaOptions:
    """``mediaStreamingOptions``: where and how ACS streams the call's audio."""

    transport_url: str
    sample_rate: int
    start: bool
    """``startMediaStreaming``: connect as soon as the call is connected."""
    bidirectional: bool
    dtmf: bool


@dataclass(frozen=True, slots=True)
class CallSetup:
    """The fields common to answer and create requests."""

    callback_uri: str
    operation_context: str | None
    media: MediaOptions | None
    api_version: str
    """The request's ``api-version``: the call's callbacks carry it as ``data.version``."""


def read_setup(payload: Payload) -> CallSetup:
    """Read ``callbackUri``, ``operationContext`` and ``mediaStreamingOptions``.

    Raises:
        AcsError: 400 on a missing callback URI, transport URL, or an unknown audio format.
    """
    callback_uri = payload.required_text("callbackUri")
    media = payload.child("mediaStreamingOptions")
    return CallSetup(
        callback_uri=callback_uri,
        operation_context=payload.text("operationContext"),
        media=None if media is None else _read_media(media),
        api_version=payload.api_version,
    )


def _read_media(media: Payload) -> MediaOptions:
    transport_url = media.required_text("transportUrl")
    audio_format = media.text("audioFormat")
    if audio_format is None:
        rate = DEFAULT_SAMPLE_RATE
    elif (known := AUDIO_FORMAT_RATES.get(audio_format.lower())) is not None:
        rate = known
    else:
        raise bad_request(f"mediaStreamingOptions.audioFormat {audio_format!r} is not supported.")
    return MediaOptions(
        transport_url=transport_url,
        sample_rate=rate,
        start=media.flag("startMediaStreaming"),
        bidirectional=media.flag("enableBidirectional"),
        dtmf=media.flag("enableDtmfTones"),
    )
