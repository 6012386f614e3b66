"""The call's timeline as inline SVG: both waveforms on one time axis, with what happened.

Two lanes share the axis: the caller on top, the agent (as sent to ACS) below. Over them: each
side's turns, the latency from the caller's last word to the agent's first heard audio,
barge-ins, the pauses of false interruptions, and point marks (``StopAudio``, tool calls,
keypad presses, the end). Every text that came from the call is escaped.
"""

from __future__ import annotations

from html import escape

import numpy as np

from callbridge.report.audio import envelope
from callbridge.report.view import CallView, Mark

LEFT = 70
"""Room for the lane names, left of the time axis."""
RIGHT = 20
LANE_H = 90
AXIS_H = 26
TOP = 10
MIN_PX_PER_S = 20.0
TARGET_WIDTH = 1100
"""A short call is stretched to about this width; a long one scrolls, at ``MIN_PX_PER_S``."""
MAX_WIDTH = 8000
"""No wider than this however long the call (so a page stays a few hundred kB)."""


def px_per_s(duration_s: float) -> float:
    return min(max(MIN_PX_PER_S, TARGET_WIDTH / duration_s), MAX_WIDTH / duration_s)


def render_timeline(view: CallView) -> str:
    scale = px_per_s(view.duration_s)
    plot_w = max(1, round(view.duration_s * scale))
    width = LEFT + plot_w + RIGHT
    caller_y, agent_y = TOP, TOP + LANE_H
    axis_y = TOP + 2 * LANE_H
    height = axis_y + AXIS_H

    def x(t: float) -> float:
        return round(LEFT + t * scale, 1)

    parts = [
        f'<svg id="timeline-svg" xmlns="http://www.w3.org/2000/svg" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}" data-left="{LEFT}"'
        f' data-px-per-s="{scale:.4f}" role="img" aria-label="call timeline">',
        _lane("caller", "Caller", view.caller_track, caller_y, plot_w),
        _lane("agent", "Agent", view.agent_track, agent_y, plot_w),
        _axis(view.duration_s, scale, axis_y, width),
    ]
    for turn in view.turns:
        lane_y = caller_y if turn.speaker == "caller" else agent_y
        w = max(2.0, x(turn.end) - x(turn.start))
        parts.append(
            f'<rect class="turn {turn.speaker}" x="{x(turn.start)}" y="{lane_y + LANE_H - 12}"'
            f' width="{w:.1f}" height="8"><title>{escape(turn.text or "(no transcript)")}'
            "</title></rect>"
        )
    for turn in view.turns:
        if turn.latency_ms is None or turn.speech_end is None:
            continue
        begin, heard, y = x(turn.speech_end), x(turn.start + view.playout_s), agent_y + 6
        parts.append(
            f'<g class="latency"><line x1="{begin}" y1="{y}" x2="{heard}" y2="{y}"/>'
            f'<text x="{begin}" y="{y + 12}">{turn.latency_ms:.0f} ms</text>'
            f"<title>caller stopped speaking -> agent heard: {turn.latency_ms:.0f} ms</title></g>"
        )
    for pause in view.pauses:
        end = pause.resumed_at if pause.resumed_at is not None else pause.stop_at
        parts.append(
            f'<rect class="pause" x="{x(pause.stop_at)}" y="{agent_y}"'
            f' width="{max(2.0, x(end) - x(pause.stop_at)):.1f}" height="{LANE_H}">'
            "<title>false interruption: the agent paused, then went on</title></rect>"
        )
    for number, barge in enumerate(view.barge_ins, start=1):
        at = x(barge.stop_at if barge.stop_at is not None else barge.at)
        parts.append(
            f'<g class="barge-in"><line x1="{at}" y1="{caller_y}" x2="{at}" y2="{axis_y}"/>'
            f'<text x="{at + 3}" y="{caller_y + 22}">barge-in {number}</text>'
            f"<title>caller heard {barge.heard_ms:.0f} ms; model told audio_end_ms="
            f"{barge.audio_end_ms}</title></g>"
        )
    parts += [_mark(mark, x(mark.at), caller_y, axis_y) for mark in view.marks]
    parts.append(
        f'<line id="cursor" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{axis_y}" visibility="hidden"/>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _lane(side: str, name: str, track: np.ndarray, y: int, plot_w: int) -> str:
    """One side's waveform: a vertical stroke per pixel column, from its min to its max."""
    middle, half = y + LANE_H / 2, LANE_H / 2 - 14
    env = envelope(track, plot_w)
    strokes = []
    for column, (low, high) in enumerate(zip(env.lows, env.highs, strict=True)):
        top, bottom = round(middle - high * half), round(middle - low * half)
        if bottom - top >= 1:
            strokes.append(f"M{LEFT + column} {top}V{bottom}")
    return (
        f'<g class="lane {side}"><text class="lane-name" x="6" y="{middle + 4:.0f}">{name}</text>'
        f'<line class="baseline" x1="{LEFT}" y1="{middle}" x2="{LEFT + plot_w}" y2="{middle}"/>'
        f'<path class="wave {side}" d="{"".join(strokes)}"/></g>'
    )


def _axis(duration_s: float, scale: float, y: int, width: int) -> str:
    step = next(s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if s * scale >= 60)
    ticks = [f'<line class="axis-line" x1="{LEFT}" y1="{y}" x2="{width - RIGHT}" y2="{y}"/>']
    for t in np.arange(0, duration_s + 1e-9, step).tolist():
        tx = round(LEFT + t * scale, 1)
        ticks.append(
            f'<line class="tick" x1="{tx}" y1="{y}" x2="{tx}" y2="{y + 5}"/>'
            f'<text class="tick-label" x="{tx}" y="{y + 18}">{_clock(t)}</text>'
        )
    return f'<g class="axis">{"".join(ticks)}</g>'


LABEL_ROW = {"tool": 34, "dtmf": 46, "end": 58, "event": 70, "stop_audio": 70}
"""How far below the top each kind of mark writes its label, so labels do not overlap."""


def _mark(mark: Mark, at: float, top: int, bottom: int) -> str:
    title = mark.label + (f": {mark.detail}" if mark.detail else "")
    nudge = -3 if mark.kind == "end" else 3  # the end's label sits left of the line
    return (
        f'<g class="mark {mark.kind}"><line x1="{at}" y1="{top}" x2="{at}" y2="{bottom}"/>'
        f'<text x="{at + nudge}" y="{top + LABEL_ROW[mark.kind]}">{escape(mark.label)}</text>'
        f"<title>{escape(title)}</title></g>"
    )


def _clock(t: float) -> str:
    minutes, seconds = divmod(round(t), 60)
    return f"{minutes}:{seconds:02d}"
