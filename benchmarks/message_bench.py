"""Time the bridge's per-message paths: microseconds per message, run by hand.

Run from the repository root after ``pip install -e .``::

    python benchmarks/message_bench.py [--delta-ms 100]

- an ACS media ``AudioData`` frame (20 ms of PCM16 at 16 and 24 kHz, in the shape the phone
  stand-in sends) parsed into a typed message, its audio decoded;
- the outbound ``AudioData`` message built from one 20 ms frame;
- a ``response.audio.delta`` of ``--delta-ms`` of G.711 (the emulator's deltas are 60 to 140 ms)
  read three ways: through the Voice Live SDK's models, exactly as its connection's ``recv``
  does (bytes to text, ``json.loads``, ``ServerEvent._deserialize``); with ``json.loads`` and a
  dict read; and by slicing the base64 out of the raw text, the floor any reader could reach.
  The slice is a measure, not a parser: JSON allows spacing and escapes (``\\/``) that it
  ignores.

Each figure is the best of rounds that take every path in turn; the machine is shared, so
compare figures from one run.
"""

from __future__ import annotations

import argparse
import base64
import json
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from azure.ai.voicelive.models import ServerEvent

from callbridge.adapters.voice_events import AudioDelta, read_event
from callbridge.core import acs_media
from callbridge.core.codec import ACS_RATES, G711_RATE, frame_bytes
from callbridge.sim.media_messages import audio_message, frame_timestamp
from callbridge.sim.phone import DEFAULT_PARTICIPANT

ROUNDS = 15
CALLS_PER_ROUND = 2000
DELTA_REFERENCE = (
    Path(__file__).resolve().parents[1]
    / "tests/conformance/voicelive/server_response.audio.delta.reference.json"
)
"""The event's shape as Microsoft's API reference shows it; only the audio is made longer."""
_DELTA_KEY = '"delta":"'


def _noise(nbytes: int) -> bytes:
    # Any bytes will do: no path here looks at the audio, only at its size.
    return bytes(i * 97 % 256 for i in range(nbytes))


def _acs_frame(rate: int) -> str:
    data = base64.b64encode(_noise(frame_bytes(rate))).decode("ascii")
    timestamp = frame_timestamp(datetime.now(UTC), 0)
    return audio_message(timestamp, DEFAULT_PARTICIPANT, data, silent=False)


def _audio_delta(delta_ms: int) -> str:
    event = json.loads(DELTA_REFERENCE.read_text())
    event["delta"] = base64.b64encode(_noise(G711_RATE // 1000 * delta_ms)).decode("ascii")
    return json.dumps(event, separators=(",", ":"))


def delta_through_sdk(text: str) -> bytes:
    """As ``VoiceLiveConnection.recv`` reads a message, then the audio out of the model.

    The model's ``delta`` is declared ``bytes`` with ``format="base64"`` (azure-ai-voicelive
    1.3.1, ``models/_models.py``, ``ServerEventResponseAudioDelta``): reading it decodes.
    """
    payload = json.loads(text.encode("utf-8").decode("utf-8"))
    event = ServerEvent._deserialize(payload, [])  # what recv calls
    audio: bytes = event.delta
    return audio


def delta_through_json(text: str) -> bytes:
    payload = json.loads(text)
    if payload.get("type") != "response.audio.delta":
        raise ValueError("not an audio delta")
    return base64.b64decode(payload["delta"])


def delta_sliced(text: str) -> bytes:
    if '"response.audio.delta"' not in text:
        raise ValueError("not an audio delta")
    start = text.index(_DELTA_KEY) + len(_DELTA_KEY)
    return base64.b64decode(text[start : text.index('"', start)])


def race(paths: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best microseconds per call of each path over rounds that run every path in turn."""
    best = dict.fromkeys(paths, float("inf"))
    for _ in range(ROUNDS):
        for name, path in paths.items():
            seconds = timeit.timeit(path, number=CALLS_PER_ROUND)
            best[name] = min(best[name], seconds / CALLS_PER_ROUND * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delta-ms", type=int, default=100, help="audio per delta (100)")
    delta = _audio_delta(parser.parse_args().delta_ms)
    sliced, through_json = delta_sliced(delta), delta_through_json(delta)
    assert delta_through_sdk(delta) == through_json == sliced, "the three reads disagree"
    read = read_event(delta)
    assert isinstance(read, AudioDelta), "read_event took a delta for another event"
    assert read.delta == sliced, "read_event disagrees"

    paths: dict[str, Callable[[], object]] = {}
    for rate in ACS_RATES:
        frame, pcm = _acs_frame(rate), _noise(frame_bytes(rate))
        paths[f"ACS AudioData in, parsed ({rate} Hz)"] = lambda f=frame: acs_media.parse(f)
        paths[f"ACS AudioData out, built ({rate} Hz)"] = lambda p=pcm: acs_media.audio_data(p)
    paths["audio delta: SDK models (as recv)"] = lambda: delta_through_sdk(delta)
    paths["audio delta: callbridge's read_event"] = lambda: read_event(delta)
    paths["audio delta: json.loads + dict"] = lambda: delta_through_json(delta)
    paths["audio delta: raw slice (floor)"] = lambda: delta_sliced(delta)

    print(f"response.audio.delta: {len(delta)} characters ({len(sliced)} bytes of G.711)")
    width = max(map(len, paths))
    for name, us in race(paths).items():
        print(f"{name:<{width}}  {us:8.2f} us/message")


if __name__ == "__main__":
    main()
