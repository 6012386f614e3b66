"""A local Azure AI Voice Live emulator (api-version 2026-07-15, OpenAI-beta event shape).

The emulator is an aiohttp WebSocket server at ``/voice-live/realtime`` that the real
``azure.ai.voicelive.aio.connect()`` reaches with ``endpoint="http://127.0.0.1:PORT"``. It plays
scripted agent turns, detects caller speech with a deterministic energy VAD, and records what it
sent and received, and when, so tests (and users) can check a bridge's timing and protocol use::

    emulator = VoiceLiveEmulator(turns=[AgentTurn(pcm, 16000, "Hello!")], api_key="k")
    endpoint = await emulator.start()
    ...  # connect(endpoint=endpoint, credential=AzureKeyCredential("k"), model="gpt-realtime")
    await emulator.stop()
    emulator.sessions[0].responses[0].first_audio_delta_at
    emulator.session_for("call-123")  # by the x-ms-client-request-id of the upgrade

What it does, as the service does:

* auth by ``api-key`` (constant-time compare) or any ``Authorization: Bearer`` token; 401 before
  the upgrade otherwise; ``api-version=2026-07-15`` is required (400 otherwise);
* ``session.created`` / ``session.update`` → ``session.updated``; audio formats ``pcm16`` (input
  rate from ``input_audio_sampling_rate``), ``pcm16_16000hz``, ``pcm16_8000hz``, ``g711_ulaw``,
  ``g711_alaw``;
* server VAD on appended audio, timed by the audio timeline (ms appended), not the wall clock:
  ``speech_started`` → ``speech_stopped`` (``silence_duration_ms`` after the speech) →
  ``committed`` → ``conversation.item.created`` and, with ``create_response``, the next scripted
  response; a burst shorter than ``speech_duration_ms`` (200 ms for server_vad, 80 ms for the
  azure_semantic_vad types) is no speech; with ``interrupt_response`` a response in progress is
  cancelled at speech onset (``turn_detected``), without it it goes on, and a turn committed
  meanwhile starts no response (noted on the session); see :mod:`.caller_input`;
* input transcription, when the session asks for it: each committed caller turn gets the
  call's next scripted transcript, as one ``...input_audio_transcription.delta`` per word and a
  ``.completed``, ``transcription_delay_ms`` after its commit (``None`` in the script: a
  ``.failed``); see :mod:`.transcription`;
* ``input_audio_echo_cancellation`` as the reference shapes it (server/1 or client/2, the
  documented refusals, the ``features=client_ec_reference:true`` flag, stereo PCM16 input);
  with a client reference the VAD hears the microphone channel with the reference's echo
  taken out by a simple stand-in canceller (one lag, one gain), not a model of the service's
  (:mod:`.echo`); the session records what it was given (``EmulatorSession.echo_cancellation``);
* responses stream faster than real time (``speed``), in irregular chunks that are not 20 ms
  aligned, after a "thinking" delay, in the usual event order;
* ``response.cancel``, ``conversation.item.truncate`` (checked against the audio actually sent),
  ``conversation.item.create|delete|retrieve`` (an unknown id is an ``item_not_found`` error),
  ``input_audio_buffer.commit|clear`` (a commit makes no response; a clear during speech drops
  it); each response records the conversation it answered (``ResponseRecord.context_item_ids``);
* function calling: a turn scripted with ``tool_call=ToolCall("end_call", {...})`` speaks its
  audio, then ends the same response with a ``function_call`` output item
  (``response.output_item.added`` → ``conversation.item.created`` → one or more
  ``response.function_call_arguments.delta`` → ``response.function_call_arguments.done`` →
  ``response.output_item.done``, then ``response.done`` listing both items), but only if the
  response was offered that function (``tools`` of the session, or of ``response.create``)
  and ``tool_choice`` allows it; otherwise the call is skipped and a note explains why
  (``EmulatorSession.notes``). A response cancelled before its audio ends makes no call. A
  ``function_call_output`` item must answer a ``function_call`` item in the conversation
  (else an ``error``); calls and their outputs are recorded (``EmulatorSession.tool_calls``);
* text input: user ``message`` items with ``input_text`` content (``conversation.item.create``)
  are recorded (``EmulatorSession.text_inputs``); the next ``response.create`` plays the next
  turn whatever the text says;
* handshake latency: ``connect_delay_ms`` holds each WebSocket upgrade that long after the
  auth and api-version checks, like the real service's connect time, so that connecting
  ahead of need (pre-warming) can be measured;
* a call spans sessions: sessions opened with the same ``x-ms-client-request-id`` share the
  call's progress, so a session that replaces a lost one plays the call's next turn (no second
  greeting) and the caller's transcripts continue (``sessions_for``,
  ``EmulatorSession.call_session_index``); the context a client replays with
  ``conversation.item.create`` (user, assistant and system messages, function calls and their
  outputs) is recorded in order (``EmulatorSession.client_items``), and each response records
  whether the client or the server VAD created it (``ResponseRecord.trigger``, ``greetings``).

Faults (:mod:`.faults`), given to the emulator or to one call's ``script_session``: ``Drop``
(close code, or abort with no close frame), ``Hang`` (silent, still reading and answering
pings), ``Freeze`` (silent, pings unanswered), ``SlowAccept``, ``Refuse`` (429/503 with
``Retry-After``) and ``Expire`` (``expires_at``, then an ``error`` and a close: what Voice Live
does at expiry is not published, see ``Expire``). Each names the session of the call it hits;
what fired is recorded (``EmulatorSession.faults``, ``VoiceLiveEmulator.refused_upgrades``).

Every client event received and every server event sent is checked strictly against the SDK's
models (:mod:`callbridge.sim.validate`); violations are recorded on the session, and an invalid
client event is answered with an ``error`` event, as the service would. Server events have the
shapes of the API reference 2026-07-15's examples (``tests/conformance/test_voicelive*.py``),
also where SDK 1.3.1's models lack a documented field (``DOCUMENTED_BEYOND_SDK``).

Deliberate simplifications: the VAD is an RMS threshold (``turn_detection.threshold`` is echoed
but not used); the server-side echo reference is accepted, not emulated; responses follow the
script, not the conversation (tool outputs and text inputs are recorded, not understood); a turn
makes at most one function call, and its arguments are streamed at once after the audio;
``auto_truncate``, MCP tools, text-only responses, avatars and the ``input_audio.*`` and
``input_text.*`` events are not emulated (the latter get an ``unsupported_event`` error);
resampling is linear interpolation, good enough for a test instrument.

Modules: :mod:`.audio` (turns, formats, conversion), :mod:`.vad`, :mod:`.echo` (echo
cancellation), :mod:`.records` (what tests read), :mod:`.protocol` (constants, settings,
session config, a call's progress), :mod:`.wire` (sending, event log), :mod:`.conversation`
(items), :mod:`.caller_input` (the input buffer and turn detection), :mod:`.transcription`,
:mod:`.response_parts` (a response's JSON and deltas), :mod:`.responses` (streaming),
:mod:`.faults` (fault injection), :mod:`.connection` (one socket's protocol), :mod:`.server`
(auth, upgrade, the emulator).
"""

from callbridge.sim.voicelive.audio import (
    AgentTurn,
    AudioFormat,
    ToolCall,
    encode_output_audio,
    load_turns,
    output_audio_format,
    resample_pcm16,
)
from callbridge.sim.voicelive.faults import (
    Drop,
    Expire,
    Fault,
    Freeze,
    Hang,
    Refuse,
    SlowAccept,
)
from callbridge.sim.voicelive.protocol import API_VERSION, REALTIME_PATH
from callbridge.sim.voicelive.records import (
    CancelRecord,
    ClientItemRecord,
    EchoCancellation,
    EchoPath,
    EmulatorSession,
    EventRecord,
    FaultRecord,
    RefusedUpgrade,
    ResponseRecord,
    SpeechRecord,
    TextInputRecord,
    ToolCallRecord,
    TruncateRecord,
)
from callbridge.sim.voicelive.server import (
    CLIENT_REQUEST_ID_HEADER,
    VoiceLiveEmulator,
    serve_emulator,
)
from callbridge.sim.voicelive.vad import EnergyVad, SpeechEnd, SpeechOnset
from callbridge.sim.voicelive.wire import DOCUMENTED_BEYOND_SDK

__all__ = [
    "API_VERSION",
    "CLIENT_REQUEST_ID_HEADER",
    "DOCUMENTED_BEYOND_SDK",
    "REALTIME_PATH",
    "AgentTurn",
    "AudioFormat",
    "CancelRecord",
    "ClientItemRecord",
    "Drop",
    "EchoCancellation",
    "EchoPath",
    "EmulatorSession",
    "EnergyVad",
    "EventRecord",
    "Expire",
    "Fault",
    "FaultRecord",
    "Freeze",
    "Hang",
    "Refuse",
    "RefusedUpgrade",
    "ResponseRecord",
    "SlowAccept",
    "SpeechEnd",
    "SpeechOnset",
    "SpeechRecord",
    "TextInputRecord",
    "ToolCall",
    "ToolCallRecord",
    "TruncateRecord",
    "VoiceLiveEmulator",
    "encode_output_audio",
    "load_turns",
    "output_audio_format",
    "resample_pcm16",
    "serve_emulator",
]
