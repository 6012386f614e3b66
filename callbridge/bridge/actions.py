"""What the agent does to the call itself: tools, hanging up, transferring, goodbyes, limits.

A user tool runs as soon as the model calls it, beside the call, so a slow tool never holds up a
barge-in; its result goes back to the model once the response that called it is done. The
built-in ``end_call`` and ``transfer_call`` wait until the caller has heard the agent's last
words (ACS plays audio a known delay after the pacer releases it): a caller who speaks over a
goodbye keeps the call. At the profile's time limit, or when the replica shuts down, the agent
says goodbye and the call ends within a bound, whatever the model does.

A hang-up ACS does not carry out at once never leaves a silent open line: from
``HOLD_AFTER_S`` on, the agent is let go and the caller hears the fallback clip, looped, while
ACS is asked again (``CallActions.hang_up``). If ACS refuses for the whole retry budget, the
caller goes to the profile's ``fallback_transfer_to`` if it has one (a person can help, and
end the call); otherwise the clip plays on until the caller hangs up (told "goodbye" over and
over, they do) or the time limit lets the line go. Closing the media socket would leave them
in silence on a call ACS still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Coroutine
from typing import Any, Protocol

import aiohttp
import structlog
from azure.ai.voicelive.models import (
    FunctionCallOutputItem,
    InputTextContentPart,
    ResponseFunctionCallItem,
    ServerEventResponseFunctionCallArgumentsDone,
    SystemMessageItem,
)

from callbridge.adapters.recording import CallRecorder
from callbridge.adapters.voice_live import verbatim_request
from callbridge.bridge.clip_playback import hang_up_clip, play_on_hold
from callbridge.bridge.event_fields import text
from callbridge.bridge.interruption import Interruption
from callbridge.bridge.media_line import MediaLine
from callbridge.bridge.pacer import FramePacer
from callbridge.bridge.responses import Responses
from callbridge.bridge.stats import CallStats, ToolCallStat
from callbridge.bridge.voice_link import VoiceLink
from callbridge.core.call_context import CallContext
from callbridge.core.codec import Codec
from callbridge.core.ended_by import EndedBy
from callbridge.core.profiles import AgentProfile
from callbridge.core.tasks import OwnedTasks
from callbridge.tools import END_CALL, TRANSFER_CALL, Tool, run_tool

log = structlog.get_logger(__name__)

PLAYOUT_WAIT_S = 30.0
"""Bound on waiting for the agent's last words to play out before hanging up or transferring."""

PLAYED_OUT_MARGIN_S = 0.1
"""Extra wait after the estimated end of playout before hanging up or transferring."""

GOODBYE_WAIT_S = 15.0
"""At the time limit the agent says goodbye; the call ends at the latest this much later."""

HOLD_AFTER_S = 0.5
"""A hang-up ACS has not accepted this long after it was asked puts the caller on hold. ACS
normally accepts one well within it."""

_GOING_AWAY = aiohttp.WSCloseCode.GOING_AWAY

ToolCall = tuple[str, str, "asyncio.Task[str] | None"]
"""``(call_id, name, running)``: one tool call of a response; ``running`` for user tools."""


class CallActions(Protocol):
    """What the bridge can do to the call itself, through ACS's REST API."""

    async def hang_up(self) -> bool:
        """End the call for everyone, retrying as long as that is worth it; True once ACS has
        accepted or says the call is gone, False if it would not end it."""
        ...

    async def transfer(self, target: str) -> None:
        """Raises an exception if ACS refuses the transfer."""
        ...

    async def connected(self) -> bool | None:
        """Whether ACS still has the call connected; None if it cannot be told."""
        ...


class AgentActions:
    """Carries out one call's tool calls, hang-ups, transfers, goodbyes and time limit."""

    def __init__(
        self,
        *,
        acs: MediaLine,
        voice: VoiceLink,
        context: CallContext,
        profile: AgentProfile,
        tools: dict[str, Tool],
        call: CallActions,
        pacer: FramePacer,
        codec: Codec,
        interruption: Interruption,
        responses: Responses,
        stats: CallStats,
        helpers: OwnedTasks,
        recorder: CallRecorder | None,
    ) -> None:
        self._acs = acs
        self._voice = voice
        self._context = context
        self._profile = profile
        self._tools = tools
        self._call = call
        self._pacer = pacer
        self._codec = codec
        self._interruption = interruption
        self._responses = responses
        self._stats = stats
        self._helpers = helpers
        self._recorder = recorder
        self._tool_calls: dict[str, list[ToolCall]] = {}
        self._tool_names: dict[str, str] = {}
        self._awaiting_goodbye = False
        self._goodbye_response_id: str | None = None
        self._goodbye_done = asyncio.Event()
        self.ending = False
        """Set once the bridge hangs up or transfers the call (cleared if a transfer fails)."""

    # --- Responses and tools -------------------------------------------------------------

    def on_response_created(self, response_id: str) -> None:
        if self._awaiting_goodbye:
            self._awaiting_goodbye = False
            self._goodbye_response_id = response_id

    def on_function_call_item(self, item: ResponseFunctionCallItem) -> None:
        """Remember a tool call's name from its item (``response.output_item.added``)."""
        if isinstance(item.call_id, str) and isinstance(item.name, str):
            self._tool_names[item.call_id] = item.name

    def on_tool_call(self, event: ServerEventResponseFunctionCallArgumentsDone) -> None:
        """The model called a tool: user tools start at once, built-ins wait for the response.

        Tolerant reader: the API reference (2026-07-15) leaves ``name`` out of
        ``response.function_call_arguments.done`` in both its example and its field table, while
        SDK 1.3.1 requires it and its live test reads it. Without it, the name comes from the
        function-call item the same response announced first.
        """
        call_id = text(event.call_id)
        name = text(event.name if event.get("name") is not None else self._tool_names.get(call_id))
        self._tool_names.pop(call_id, None)
        arguments = event.arguments if isinstance(event.arguments, str) else ""
        spec = self._tools.get(name)
        running = None
        if spec is not None and spec.handler is not None:
            running = asyncio.create_task(
                run_tool(spec, arguments, timeout_s=self._profile.limits.tool_timeout_s),
                name=f"tool-{name}",
            )
        self._tool_calls.setdefault(text(event.response_id), []).append((call_id, name, running))
        self._context.tool_called(call_id, name, arguments)
        if self._recorder is not None:
            self._recorder.tool_call(name=name, call_id=call_id, arguments=arguments)
        # Arguments may hold personal data: only the tool's name is logged.
        log.info("agent.tool_call", tool=name, call_id=call_id)

    async def after_response(self, response_id: str) -> None:
        if response_id == self._goodbye_response_id:
            self._goodbye_done.set()
            return
        calls = self._tool_calls.pop(response_id, None)
        if calls:
            interrupted = self._responses.is_muted(response_id)
            self._helpers.spawn(self._finish_tools(calls, interrupted=interrupted), "tools")
        else:
            await self._responses.request_if_wanted()

    def session_replaced(self) -> None:
        """The session whose responses called tools is gone: their ``response.done`` will
        never come, so their results go to the new session now (its context holds the calls)."""
        self._awaiting_goodbye = False
        if self._goodbye_response_id is not None:
            self._goodbye_done.set()  # that goodbye will never finish: end the call now
        for response_id in list(self._tool_calls):
            calls = self._tool_calls.pop(response_id)
            self._helpers.spawn(self._finish_tools(calls, interrupted=False), "tools")

    def close(self) -> None:
        """The call is over: stop the tools still running."""
        for calls in self._tool_calls.values():
            for _, _, running in calls:
                if running is not None:
                    running.cancel()

    async def _finish_tools(self, calls: list[ToolCall], *, interrupted: bool) -> None:
        """Return every tool's result to the model, then carry out a hang-up or transfer."""
        follow_up = False
        call_action: tuple[str, str] | None = None
        for call_id, name, running in calls:
            if interrupted:
                # The caller spoke over this turn: nothing it asked for is carried out.
                if running is not None:
                    running.cancel()
                output = _tool_error("the caller interrupted before this ran")
            elif name in (END_CALL.name, TRANSFER_CALL.name):
                call_action = call_action or (call_id, name)
                continue
            elif running is None:
                output = _tool_error(f"there is no tool named {name!r}")
            else:
                output = await running
                follow_up = True
            self._record_tool(name, call_id, output)
            await self._send_tool_output(call_id, output)
        if call_action is not None:
            call_id, name = call_action
            follow_up = await self._call_action(call_id, name) or follow_up
        await self._responses.request_if_wanted(also=follow_up)

    async def _call_action(self, call_id: str, name: str) -> bool:
        """End or transfer the call once the agent's words are heard; True if the model
        should speak again (the action failed)."""
        if name == END_CALL.name:
            await self._send_tool_output(call_id, json.dumps({"status": "hanging up"}))
            self._record_tool(name, call_id, "")
            self._helpers.spawn(self.end_call(EndedBy.END_CALL), "end-call")
            return False
        target = self._profile.transfer_to
        if target is None:
            output = _tool_error("no transfer target is configured")
        elif not await self.played_out():
            output = _tool_error("the caller interrupted before the transfer")
        else:
            try:
                await self._call.transfer(target)
            except Exception as exc:  # any refusal by ACS: the caller stays with the agent
                log.error("acs.transfer_failed", error=str(exc) or type(exc).__name__)
                output = _tool_error("the transfer failed; the caller is still on the line")
            else:
                self.ending = True
                self._stats.ended_by = EndedBy.TRANSFER_CALL
                log.info("call.transferred")
                output = json.dumps({"status": "transferred"})
        self._record_tool(name, call_id, output)
        await self._send_tool_output(call_id, output)
        return not self.ending

    def _record_tool(self, name: str, call_id: str, output: str) -> None:
        self._stats.tool_calls.append(ToolCallStat(name, call_id, ok='"error"' not in output))
        if self._recorder is not None:
            self._recorder.tool_result(name=name, call_id=call_id, output=output)

    async def _send_tool_output(self, call_id: str, output: str) -> None:
        self._context.tool_returned(call_id, output)
        await self._voice.create_item(FunctionCallOutputItem(call_id=call_id, output=output))

    # --- Ending the call -----------------------------------------------------------------

    async def played_out(self) -> bool:
        """Wait until the caller has heard all queued agent audio; False on a barge-in."""
        barge_ins = len(self._stats.barge_ins)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PLAYOUT_WAIT_S):
                # Time-based: playout at ACS ends a known delay after the last frame's due
                # time, and no event marks it, so poll once per frame.
                while self._pacer.is_playing():  # noqa: ASYNC110
                    await asyncio.sleep(self._codec.frame_ms / 1000)
                # The heard-end estimate is good to a few ms: keep the last syllable whole.
                await asyncio.sleep(PLAYED_OUT_MARGIN_S)
        return len(self._stats.barge_ins) == barge_ins

    async def end_call(
        self,
        reason: EndedBy,
        *,
        force: bool = False,
        close_code: aiohttp.WSCloseCode = aiohttp.WSCloseCode.OK,
    ) -> None:
        """Hang up once the agent's last words are heard; unless forced, a caller speaking
        over them keeps the call going."""
        if self.ending:
            return
        if not await self.played_out() and not force:
            log.info("call.end_cancelled", reason=reason, detail="the caller spoke")
            return
        self.ending = True
        self._stats.ended_by = reason
        log.info("call.hanging_up", reason=reason)
        if await self._hang_up_with_hold():
            await self._acs.close(code=close_code, message=reason.encode())

    async def _hang_up_with_hold(self) -> bool:
        """Hang up, the caller on hold until ACS accepts (see the module docstring); True
        once the call is over or handed on, False once the hold ended with the line."""
        hold = asyncio.create_task(self._hold(), name="on-hold")
        try:
            if await hang_up(self._call) or await self._hand_over():
                return True
            log.error("call.left_on_hold", detail="ACS would not end the call")
            await hold
            return False
        finally:
            hold.cancel()
            await asyncio.gather(hold, return_exceptions=True)

    async def _hold(self) -> None:
        """After ``HOLD_AFTER_S``, the hang-up clip over and over while the line is open."""
        await asyncio.sleep(HOLD_AFTER_S)
        log.info("call.on_hold")
        # The agent has said goodbye: nothing it says now would help, and a caller asking
        # "hello?" must not start it talking over the clip.
        self._helpers.spawn(self._voice.aclose(), "close-voice-live")
        await play_on_hold(
            hang_up_clip(self._profile),
            line=self._acs,
            codec=self._codec,
            pacer=self._pacer,
        )

    async def _hand_over(self) -> bool:
        """Hand the caller to the profile's fallback target, if any; True if ACS took it."""
        target = self._profile.fallback_transfer_to
        if target is None:
            return False
        try:
            await self._call.transfer(target)
        except Exception as exc:  # any refusal by ACS: the caller stays on hold
            log.error("acs.transfer_failed", error=str(exc) or type(exc).__name__)
            return False
        log.info("call.transferred", to="fallback_transfer_to", after="a failed hang-up")
        return True

    async def _goodbye_then_hang_up(
        self, reason: EndedBy, goodbye: Coroutine[Any, Any, None], close_code: aiohttp.WSCloseCode
    ) -> None:
        """Have the agent say goodbye (bounded by ``GOODBYE_WAIT_S``), then hang up."""
        self._awaiting_goodbye = True
        await goodbye
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(GOODBYE_WAIT_S):
                await self._goodbye_done.wait()
        await self.end_call(reason, force=True, close_code=close_code)

    async def shut_down(self, goodbye: str | None) -> None:
        """This replica is stopping: the goodbye (cutting the agent short), then hang up."""
        if self.ending:
            return
        if goodbye is None:
            await self.end_call(EndedBy.SHUTDOWN, force=True, close_code=_GOING_AWAY)
            return

        async def say_goodbye() -> None:
            await self._interruption.interrupt()
            await self._voice.create_response(verbatim_request(goodbye))

        await self._goodbye_then_hang_up(EndedBy.SHUTDOWN, say_goodbye(), _GOING_AWAY)

    async def transfer_failed(self) -> None:
        """ACS could not complete a transfer it had accepted: the caller is still here."""
        if self._stats.ended_by != EndedBy.TRANSFER_CALL:
            return
        self.ending = False
        self._stats.ended_by = None
        await self._tell_agent(
            "The transfer did not go through; the caller is still on the line. Tell them."
        )

    async def time_limit(self) -> None:
        """At the profile's time limit, ask the agent for a goodbye, then hang up; a call
        already ending (ACS has not carried out its hang-up) has its line let go."""
        await asyncio.sleep(self._profile.limits.max_call_s)
        log.info("call.time_limit", max_call_s=self._profile.limits.max_call_s)
        if self.ending:
            log.error("call.released_at_time_limit")
            await self._acs.close(code=aiohttp.WSCloseCode.OK, message=b"time limit")
            return
        await self._goodbye_then_hang_up(
            EndedBy.TIME_LIMIT,
            self._tell_agent(
                "The call has reached its time limit. Say a brief, friendly goodbye now."
            ),
            aiohttp.WSCloseCode.OK,
        )

    async def _tell_agent(self, instruction: str) -> None:
        """A system message to the model, and a response to it."""
        await self._voice.create_item(
            SystemMessageItem(content=[InputTextContentPart(text=instruction)])
        )
        await self._responses.request()


async def hang_up(call: CallActions) -> bool:
    """Hang up through ACS (``CallActions.hang_up``); an exception counts as not ended."""
    try:
        return await call.hang_up()
    except Exception as exc:  # an implementation's bug must not end the bridge
        log.error("acs.hang_up_failed", error=str(exc) or type(exc).__name__)
        return False


def _tool_error(message: str) -> str:
    return json.dumps({"error": message})
