"""The call's conversation, kept across Voice Live sessions: order, cuts, tools, budget."""

from __future__ import annotations

from callbridge.adapters.voice_live import CONTINUED_NOTE, context_items
from callbridge.core.call_context import (
    CUT_OFF_MARK,
    CallContext,
    KeypadInput,
    Omitted,
    ToolExchange,
    Turn,
    cut_at,
)


def test_turns_keep_their_place_though_transcripts_arrive_late() -> None:
    context = CallContext()
    context.agent_said("a1", "Hello, how can I help?", final=True)
    context.caller_turn("c1")  # committed; its transcript comes after the agent's answer began
    context.agent_said("a2", "Your order ", final=False)
    context.agent_said("a2", "ships Monday.", final=False)
    context.caller_said("c1", " Where is my order? ")
    assert context.entries() == [
        Turn("agent", "Hello, how can I help?"),
        Turn("caller", "Where is my order?"),
        Turn("agent", "Your order ships Monday."),
    ]


def test_an_agent_turn_spoken_over_is_cut_where_the_caller_stopped_hearing_it() -> None:
    context = CallContext()
    text = "Your order left the warehouse on Monday and should arrive by Friday."
    context.agent_said("a1", text, final=True)
    context.agent_heard("a1", heard_ms=1500, audio_ms=4000)  # 37.5 %: within "warehouse"
    (turn,) = context.entries()
    assert turn == Turn("agent", "Your order left the" + CUT_OFF_MARK, cut_off=True)
    # The transcript may come after the truncation: the cut still applies.
    late = CallContext()
    late.agent_heard("a1", heard_ms=1500, audio_ms=4000)
    late.agent_said("a1", text, final=True)
    assert late.entries() == [turn]


def test_an_agent_turn_cut_before_its_first_word_leaves_nothing() -> None:
    context = CallContext()
    context.agent_said("a1", "Certainly.", final=True)
    context.agent_heard("a1", heard_ms=10, audio_ms=900)
    assert context.entries() == []


def test_cut_at_keeps_whole_words_only() -> None:
    assert cut_at("one two three", 0.55) == "one two"  # 7 characters: "two" is whole
    assert cut_at("one two three", 0.4) == "one"  # mid-"two"
    assert cut_at("one two three", 1.0) == "one two three"
    assert cut_at("one, two", 0.5) == "one"
    assert cut_at("word", 0.5) == ""


def test_tools_and_keypad_are_kept_with_their_outputs() -> None:
    context = CallContext()
    context.tool_called("call_1", "lookup_order", '{"order_id": "42"}')
    context.keypad("(The caller pressed these keys on the phone keypad: 4 2 #)")
    context.tool_returned("call_1", '{"status": "shipped"}')
    context.tool_returned("call_unknown", "{}")  # no such call: ignored
    assert context.entries() == [
        ToolExchange("call_1", "lookup_order", '{"order_id": "42"}', '{"status": "shipped"}'),
        KeypadInput("(The caller pressed these keys on the phone keypad: 4 2 #)"),
    ]


def test_the_budget_drops_the_oldest_entries_with_a_note() -> None:
    context = CallContext(max_entries=3, max_chars=1000)
    for n in range(5):
        context.caller_said(f"c{n}", f"line {n}")
    assert context.omitted == 2
    assert context.entries() == [Omitted(2), *(Turn("caller", f"line {n}") for n in (2, 3, 4))]
    by_chars = CallContext(max_entries=100, max_chars=10)
    by_chars.caller_said("c0", "0123456789")
    by_chars.caller_said("c1", "abc")
    assert by_chars.entries() == [Omitted(1), Turn("caller", "abc")]


def test_items_left_out_are_skipped() -> None:
    context = CallContext()
    context.caller_said("c1", "hello")
    context.caller_said("c2", "again")
    assert context.entries(leave_out=frozenset({"c2"})) == [Turn("caller", "hello")]


def test_the_context_becomes_conversation_items_for_a_new_session() -> None:
    context = CallContext(max_entries=4)
    context.caller_said("c0", "dropped")
    context.agent_said("a1", "Hello.", final=True)
    context.caller_said("c1", "My order?")
    context.tool_called("t1", "lookup_order", "{}")
    context.tool_returned("t1", '{"status": "shipped"}')
    context.keypad("(keys: 1)")
    items = [item.as_dict() for item in context_items(context.entries())]
    assert [(item["type"], item.get("role")) for item in items] == [
        ("message", "system"),
        ("message", "assistant"),
        ("message", "user"),
        ("function_call", None),
        ("function_call_output", None),
        ("message", "user"),
        ("message", "system"),
    ]
    assert items[0]["content"][0]["text"] == "(1 earlier parts of this call were left out.)"
    assert items[1]["content"] == [{"type": "text", "text": "Hello."}]
    assert items[2]["content"] == [{"type": "input_text", "text": "My order?"}]
    assert items[3] == {
        "type": "function_call",
        "call_id": "t1",
        "name": "lookup_order",
        "arguments": "{}",
    }
    assert items[4]["output"] == '{"status": "shipped"}'
    assert items[-1]["content"][0]["text"] == CONTINUED_NOTE
    assert context_items([]) == []
