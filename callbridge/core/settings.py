"""callbridge's settings: what a deployment is configured with, as plain typed values.

Loading and validating them (environment variables, the routing file) is
``callbridge.process.config``; everything below the process layer only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from callbridge.core.jwt_policy import ACS_ISSUER, ACS_JWKS_URL
from callbridge.core.profiles import AgentProfile, Routing
from callbridge.core.session_rules import default_transcription_model

LogFormat = Literal["auto", "console", "json"]
EventLoop = Literal["auto", "uvloop", "asyncio"]
"""``auto``: uvloop when it is installed (``callbridge[fast]``, in the image), else asyncio's."""


@dataclass(frozen=True, slots=True)
class VoiceLiveSettings:
    """Where and how to reach Azure AI Voice Live."""

    endpoint: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    """Without a key, Entra ID (``DefaultAzureCredential``) is used."""
    transcription_model: str | None = None
    """None: each profile's calls get the one their model takes (``core.session_rules``)."""
    connect_timeout_s: float = 10.0

    def session_model(self, profile: AgentProfile) -> str | None:
        """The model that answers ``profile``'s calls; None when its Voice Live agent does."""
        return None if profile.agent is not None else profile.model or self.model

    def transcription_model_for(self, profile: AgentProfile) -> str:
        """The input transcription model of ``profile``'s sessions."""
        return self.transcription_model or default_transcription_model(self.session_model(profile))


@dataclass(frozen=True, slots=True)
class CallOperationDeadlines:
    """How long each Call Automation request may take, and how long a hang-up is retried.

    The SDK's transport waits up to 300 s for a reply (azure-core's ``ConnectionConfiguration``:
    ``read_timeout=300``), far longer than any of these operations is worth waiting for; each
    deadline below is what the operation's purpose allows (``adapters.call_automation``).
    """

    answer_s: float = 15.0
    """Answer, reject or redirect an incoming call. How long ACS waits is not published: its
    Call Automation error codes on Learn name the case (subcode 8587, "Incoming Call Not
    Answered Within Time") but give no figure; a call is seen to ring for about 30 s. Half of
    that leaves Event Grid's delivery and the SDK's own retries inside the ring, and frees the
    call's place at ``max_calls`` long before ACS gives up on it."""
    dial_s: float = 10.0
    """Ask ACS to place an outbound call (``POST /api/calls`` waits for it). Our choice: ACS
    replies as soon as it has accepted the request, long before anyone picks up."""
    transfer_s: float = 5.0
    """Hand the caller on. Our choice: the caller hears silence while the request is in flight."""
    hang_up_attempt_s: float = 3.0
    """One hang-up request. Our choice: ACS normally replies within a second."""
    hang_up_budget_s: float = 15.0
    """How long a hang-up is retried before it is given up (the caller hears the fallback clip
    meanwhile). Our choice: long enough to ride out a brief ACS outage."""
    query_s: float = 3.0
    """Ask ACS whether a call is still connected. Our choice: unanswered, the call is assumed
    to go on."""


@dataclass(frozen=True, slots=True)
class AcsSettings:
    """Where and how to reach Azure Communication Services' Call Automation."""

    endpoint: str
    """``https://<resource>.communication.azure.com``."""
    access_key: str | None = field(default=None, repr=False)
    """Without a key, Entra ID (``DefaultAzureCredential``) is used."""
    resource_id: str | None = None
    """The resource's immutable id: the audience of the JWTs ACS signs its requests with."""
    jwt_issuer: str = ACS_ISSUER
    jwks_url: str = ACS_JWKS_URL
    caller_id: str | None = None
    """The ACS number outbound calls come from (E.164)."""
    deadlines: CallOperationDeadlines = CallOperationDeadlines()
    """How long each Call Automation request may take."""


@dataclass(frozen=True, slots=True)
class EntraWebhookAuth:
    """Event Grid delivers with an Entra ID token issued for this app registration."""

    tenant_id: str
    audience: str


@dataclass(frozen=True, slots=True)
class PacingSettings:
    """The frame pacer's timing model (see ``callbridge.bridge.pacer``)."""

    lead_ms: float = 40.0
    """How far ahead of real time agent audio may be released to ACS."""
    playout_delay_ms: float = 60.0
    """Estimated time from a frame being due to the caller hearing it (ACS's playout buffer)."""
    acs_marks: bool = False
    """Mark frames for ACS to acknowledge when played (beta) and measure the playout delay,
    instead of trusting ``playout_delay_ms`` (``core.playback_marks``)."""


@dataclass(frozen=True, slots=True)
class ContinuitySettings:
    """How a call survives a Voice Live session ending or a socket dying under it.

    Each figure either follows a published limit (cited) or is our own trade-off between a
    caller hearing dead air and a call being given up too soon; the docstrings say which.
    """

    session_max_s: float = 1800.0
    """A Voice Live session is rolled over before this age, or before its ``expires_at``,
    whichever is sooner. Published caps: Voice Live, "maximum connection length <= 60 minutes
    per session" (Learn, "Speech service quotas and limits", Voice Live section); Azure OpenAI
    Realtime, "The maximum session duration is 30 minutes" (Learn, "Use the GPT Realtime API for
    speech and audio"); OpenAI's Realtime guide, 60 minutes. Which of these binds a Voice Live
    session whose model is a realtime model is not published, so the default is the lowest,
    30 minutes; ``session.created`` carries ``expires_at`` and an earlier one wins."""
    voice_live_stall_s: float = 5.0
    """The longest dead air a stalled session may cost the caller: one is found within half of
    it (``callbridge.bridge.liveness``), leaving the rest for the reconnect and the answer; it
    also sets the WebSocket heartbeat (every half of it). Not published: Voice Live documents
    no event cadence or keep-alive, so we chose the longest dead air we would let a caller hear
    on a live line."""
    reconnect_budget_s: float = 5.0
    """Time allowed to reconnect to Voice Live after an unexpected drop before the fallback
    clip plays. Our choice, like ``voice_live_stall_s``: a reconnect normally takes one TLS and
    WebSocket handshake plus ``session.update``; a caller waiting longer in silence is better
    told what is happening."""
    media_rejoin_s: float = 10.0
    """How long a call whose ACS media socket closed waits for ACS to open a new one. Not
    published: the media streaming docs say neither whether nor how soon ACS reconnects a
    dropped media socket, so we wait a bounded time and then end the call."""
    media_stall_s: float = 3.0
    """No ACS media frame this long means the socket is dead. ACS streams "50 frames per
    second", a "20-ms rate" (Learn, "Audio streaming overview"), silence included: ``AudioData``
    carries a ``silent`` flag (Learn, audio streaming quickstart). 3 s is 150 missed frames, far
    beyond network jitter."""


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Who may reach which endpoint. Everything is checked unless ``enabled`` is False."""

    enabled: bool = True
    signing_key: bytes = field(default=b"", repr=False)
    """Signs per-call tokens; every replica of a deployment shares it."""
    webhook_secret: str | None = field(default=None, repr=False)
    """Shared secret Event Grid sends with each delivery (header or query parameter)."""
    webhook_entra: EntraWebhookAuth | None = None
    api_key: str | None = field(default=None, repr=False)
    """Guards ``POST /api/calls``; outbound calling over HTTP is off without it."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``callbridge serve`` needs."""

    voice_live: VoiceLiveSettings
    acs: AcsSettings
    auth: AuthSettings
    public_url: str
    """Where ACS and Event Grid reach this deployment, e.g. ``https://callbridge.example.com``."""
    routing: Routing
    pacing: PacingSettings = PacingSettings()
    continuity: ContinuitySettings = ContinuitySettings()
    prewarm_ttl_s: float = 10.0
    """A pre-warmed Voice Live session not claimed by a media socket within this is closed."""
    max_calls: int = 40
    """Concurrent calls per replica; above it new calls are rejected as busy. 40 keeps one event
    loop (one core) under half busy: see docs/operating.md, "Sizing with callbridge bench"."""
    drain_s: float = 120.0
    """On SIGTERM, calls in progress may go on this long before they are ended."""
    drain_goodbye: str | None = None
    """Spoken to callers whose call is ended by a shutdown, before the hang-up."""
    recordings_dir: Path | None = None
    """Where calls of profiles with ``record`` on are recorded."""
    appinsights_connection_string: str | None = field(default=None, repr=False)
    """Exports metrics and traces to Application Insights (needs ``callbridge[azure]``)."""
    host: str = "127.0.0.1"
    port: int = 8000
    log_format: LogFormat = "auto"
    log_level: str = "INFO"
    log_transcripts: bool = False
    """Whether what callers and agents say is logged (``CALLBRIDGE_LOG_TRANSCRIPTS``)."""
    event_loop: EventLoop = "auto"
    """Which event loop ``serve`` runs on (``CALLBRIDGE_EVENT_LOOP``)."""
