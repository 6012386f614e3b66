"""A local Azure Communication Services (ACS) control plane for the real Call Automation SDK.

``AcsStandin`` plays three parts of the platform around an app under test:

* **ACS's REST API.** The real ``azure.communication.callautomation.aio.CallAutomationClient``
  reaches it with ``CallAutomationClient(standin.endpoint, AzureKeyCredential(
  standin.access_key))``. Every request is HMAC-checked as ACS checks it (401 ``Denied``
  otherwise). Answer, create, reject, redirect, get, hang up, terminate, transfer, play and
  cancel are emulated; anything else is a 501.
* **Event Grid.** ``validate_subscription`` runs the webhook handshake; ``ring`` POSTs an
  ``IncomingCall`` with the ``aeg-*`` headers (once, or as duplicate deliveries), and
  ``deliver`` POSTs any batch of events.
* **The call itself.** After an answer (or when a dialled callee picks up) it does what ACS
  does, asynchronously: it posts ``CallConnected`` and opens the media WebSocket to
  ``transportUrl`` with a ``Phone`` (``callbridge.sim.phone``) that follows the caller's script.
  Then it posts ``MediaStreamingStarted`` and, when the call ends, ``MediaStreamingStopped`` and
  ``CallDisconnected``. Every callback and media upgrade carries an RS256 JWT that verifies
  against the JWKS at ``standin.jwks_url``.

Usage, inbound::

    async with AcsStandin(ring_timeout_s=5) as acs:
        client = CallAutomationClient(acs.endpoint, AzureKeyCredential(acs.access_key))
        ...  # the app under test answers IncomingCall with this client
        call = await acs.ring("http://127.0.0.1:8000/api/incomingCall?code=s3cret",
                              script=[Say(clip, At(0.5))], hangup_after_s=1.0)
        await call.wait_ended(10)
        call.outcome, call.disconnect, call.callback_names  # "answered", "caller", [...]
        call.request_body["mediaStreamingOptions"], call.media.heard_audio

Usage, outbound::

    acs.on_dial("+14255550150", script=[...], hangup_after_s=1.0)   # the callee picks up
    props = await client.create_call(PhoneNumberIdentifier("+14255550150"), callback_url,
                                     source_caller_id_number=PhoneNumberIdentifier(acs.acs_number),
                                     media_streaming=...)
    call = acs.call(props.call_connection_id)
    await call.wait_ended(10)

Negative tests: ``acs.mint_token(audience=..., issuer=..., lifetime_s=..., issued_at=...,
forged=True)``; ``ring(media_token=..., callback_token=...)`` override the JWTs one call
sends; ``ring(fail_transfer=True)`` makes transfers fail; ``on_dial(number, answer=False)``
and unknown numbers give ``CreateCallFailed``.

Faults (``ring``, ``incoming_call`` and ``on_dial`` take them per call): ``media_faults=
[MediaDrop(at_s, rejoin_after_s, abort), MediaStall(at_s, for_s)]`` drop the media socket (and
open a new one, with ``MediaStreamingFailed``/``MediaStreamingStarted`` callbacks around it) or
stall the caller's frames; ``rest_faults=[RestFault("answer" | "hang_up" | "transfer", status,
times, delay_s)]`` fail or hold REST requests, also for every call with
``AcsStandin(rest_faults=...)`` (see :mod:`.faults` for what the SDK's retries make of them).

Choices where ACS documents nothing: a second answer, reject or redirect of one incoming call
is a 409 ``IncomingCallAlreadyHandled`` (the SDK raises ``ResourceExistsError``); an app that
closes the media socket leaves the call up until it hangs up or the caller gives up
(``max_duration_s``); ``CreateCallFailed`` and ``CallTransferFailed`` carry the stand-in's own
result codes.

Deliberate simplifications: callback and transport URLs may be plain ``http``/``ws`` (ACS
insists on TLS); no retries of failed deliveries (``deliveries=2`` gives duplicates);
``Repeatability-Request-ID`` is not honoured; play and cancel are accepted no-ops (no
``Play*`` events); a media socket is reopened only after an injected ``MediaDrop``;
participants, recording, recognition and ``:startMediaStreaming`` are not emulated (501).

Modules: :mod:`.hmac_auth` (request signatures), :mod:`.signing` (JWTs, JWKS), :mod:`.errors`
(ACS error bodies), :mod:`.faults` (REST faults), :mod:`.payload` (reading requests,
identifiers), :mod:`.options` (answer/create options), :mod:`.events` (Event Grid and
CloudEvents JSON), :mod:`.delivery` (POSTs to the app), :mod:`.records` (what tests read),
:mod:`.call_inputs` (a call's party, callee, environment and overrides), :mod:`.call_state` (one
call's record and its callbacks), :mod:`.call_flows` (what ACS does in the background),
:mod:`.calls` (the REST requests on one call), :mod:`.rest` (the REST surface), :mod:`.server`
(the stand-in).
"""

from callbridge.sim.acs.call_inputs import Callee, CallOverrides, Party
from callbridge.sim.acs.calls import SimCall
from callbridge.sim.acs.errors import AcsError
from callbridge.sim.acs.faults import RestFault, RestOperation
from callbridge.sim.acs.records import (
    CallbackRecord,
    ConnectionState,
    DeliveryRecord,
    Direction,
    Disconnect,
    OperationRecord,
    Outcome,
)
from callbridge.sim.acs.server import (
    DEFAULT_ACS_NUMBER,
    DEFAULT_CALLER_NUMBER,
    SUBSCRIPTION_NAME,
    AcsStandin,
)
from callbridge.sim.acs.signing import (
    CALLBACK_TOKEN_LIFETIME_S,
    DEFAULT_ISSUER,
    MEDIA_TOKEN_LIFETIME_S,
    TokenSource,
)
from callbridge.sim.phone import MediaDrop, MediaFault, MediaStall

__all__ = [
    "CALLBACK_TOKEN_LIFETIME_S",
    "DEFAULT_ACS_NUMBER",
    "DEFAULT_CALLER_NUMBER",
    "DEFAULT_ISSUER",
    "MEDIA_TOKEN_LIFETIME_S",
    "SUBSCRIPTION_NAME",
    "AcsError",
    "AcsStandin",
    "CallOverrides",
    "CallbackRecord",
    "Callee",
    "ConnectionState",
    "DeliveryRecord",
    "Direction",
    "Disconnect",
    "MediaDrop",
    "MediaFault",
    "MediaStall",
    "OperationRecord",
    "Outcome",
    "Party",
    "RestFault",
    "RestOperation",
    "SimCall",
    "TokenSource",
]
