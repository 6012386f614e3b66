"""One self-contained HTML page per call: the timeline, the conversation, the figures.

The page fetches nothing: its style, script and drawing are inline, and its Content Security
Policy forbids any fetch, so it opens the same from a laptop, a CI artifact or an e-mail.
Transcripts, tool arguments and every other text from the call are user data: each is
escaped, and the script reads only numbers from the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from html import escape
from typing import Any

from callbridge.report.style import CSS, SCRIPT
from callbridge.report.timeline import render_timeline
from callbridge.report.view import BargeIn, CallView, Mark, Pause, Turn

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
"""Inline style and script only: no network, no other origin, no plugins."""

LEGEND = (
    ("#2f6fd6", "caller"),
    ("#1d9a6c", "agent (as sent to ACS)"),
    ("#b35c00", "latency: caller stopped -> agent heard"),
    ("#d12f2f", "barge-in / StopAudio"),
    ("#f2c14e", "pause (false interruption)"),
    ("#7b3fc4", "tool call"),
    ("#c47a00", "keypad"),
)


def render_page(view: CallView) -> str:
    """The whole page for ``view``."""
    title = escape(view.title)
    facts = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in view.facts.items())
    legend = "".join(f'<span><i style="background:{c}"></i>{escape(n)}</span>' for c, n in LEGEND)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title><style>{CSS}</style></head>
<body>
<header><h1>{title}</h1><dl class="facts">{facts}</dl></header>
<section id="timeline"><h2>Timeline <span id="cursor-time"></span></h2>
<p class="legend">{legend}</p>
<div class="scroll">{render_timeline(view)}</div></section>
<section id="conversation"><h2>Conversation</h2>
<ol class="conversation">{"".join(_entries(view))}</ol></section>
<section id="figures"><h2>Figures</h2>{_figures(view)}</section>
<script>{SCRIPT}</script>
</body></html>
"""


def _entries(view: CallView) -> Iterator[str]:
    """Turns, barge-ins, pauses and marks, in the order they happened."""
    timed: list[tuple[float, str]] = [(turn.start, _turn(turn)) for turn in view.turns]
    timed += [
        (b.stop_at if b.stop_at is not None else b.at, _barge_in(number, b))
        for number, b in enumerate(view.barge_ins, start=1)
    ]
    timed += [(pause.stop_at, _pause(pause)) for pause in view.pauses]
    timed += [(mark.at, _mark(mark)) for mark in view.marks if mark.kind != "stop_audio"]
    for _, html in sorted(timed, key=lambda entry: entry[0]):
        yield html


def _row(kind: str, at: float, who: str, body: str) -> str:
    return (
        f'<li class="{kind}" data-t="{at:.3f}"><span class="time">{_clock(at)}</span>'
        f'<span class="who">{escape(who)}</span><span class="text">{body}</span></li>'
    )


def _turn(turn: Turn) -> str:
    text = escape(turn.text) if turn.text else "<em>(no transcript)</em>"
    if turn.latency_ms is not None:
        text += f'<span class="latency-note">{turn.latency_ms:.0f} ms after the caller</span>'
    return _row(f"turn {turn.speaker}", turn.start, turn.speaker.capitalize(), text)


def _barge_in(number: int, barge: BargeIn) -> str:
    generated = f" of {barge.received_ms:.0f} ms generated" if barge.received_ms is not None else ""
    body = (
        f"The caller heard {barge.heard_ms:.0f} ms of the agent's turn; the model was told"
        f" <code>audio_end_ms={barge.audio_end_ms}</code>{generated}."
    )
    if barge.heard_text or barge.unheard_text:
        body += (
            f'<br>&ldquo;{escape(barge.heard_text)}<span class="unheard">'
            f"{escape(barge.unheard_text)}</span>&rdquo; (struck: not heard; the cut is placed"
            " in proportion to the audio)"
        )
    at = barge.stop_at if barge.stop_at is not None else barge.at
    return _row("barge-in", at, f"Barge-in {number}", body)


def _pause(pause: Pause) -> str:
    if pause.resumed_at is None:
        length = "and did not resume"
    else:
        length = f"for {(pause.resumed_at - pause.stop_at) * 1000:.0f} ms, then went on"
    decided = (
        f" (decided false after {pause.decided_ms} ms)" if pause.decided_ms is not None else ""
    )
    return _row(
        "pause", pause.stop_at, "Pause", f"The agent paused for the caller {length}{decided}."
    )


def _mark(mark: Mark) -> str:
    body = escape(mark.label) + (f": <code>{escape(mark.detail)}</code>" if mark.detail else "")
    return _row(f"mark {mark.kind}", mark.at, mark.kind.replace("_", " "), body)


def _figures(view: CallView) -> str:
    sections = ['<h3>From the recording</h3><table class="figures" id="pacing">']
    sections += [
        f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in view.pacing.items()
    ]
    sections.append("</table>")
    if view.figures is not None:
        sections.append('<h3>From the call report</h3><table class="figures" id="call-report">')
        sections += [
            f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in _flatten(view.figures)
        ]
        sections.append("</table>")
    return "".join(sections)


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """A report's figures as ``dotted.name``, value rows."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flatten(inner, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and any(isinstance(inner, dict | list) for inner in value):
        for index, inner in enumerate(value, start=1):
            yield from _flatten(inner, f"{prefix}[{index}]")
    elif isinstance(value, list):
        yield prefix, ", ".join(map(str, value)) or "none"
    else:
        yield prefix, "n/a" if value is None else str(value)


def _clock(t: float) -> str:
    minutes, seconds = divmod(t, 60)
    return f"{int(minutes)}:{seconds:04.1f}"
