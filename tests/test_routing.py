"""The routing file: dialed number -> agent profile, validated in full at load time."""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from callbridge.assets import asset_path
from callbridge.core.interruption_policy import InterruptionSettings
from callbridge.core.profiles import (
    BUILTIN_TOOLS,
    DEFAULT_INSTRUCTIONS,
    AgentProfile,
    CallLimits,
    Routing,
    VoiceLiveAgent,
)
from callbridge.process.routing_file import RoutingError, load_routing

BASE = AgentProfile(
    instructions="Base instructions.",
    voice="en-US-Base:DragonHDLatestNeural",
    greeting="Base greeting.",
    model="gpt-base",
    limits=CallLimits(max_call_s=600.0, tool_timeout_s=5.0),
)

FULL = """
# Numbers not listed use default_profile.
default_profile = "support"

[numbers]
"+18005550100" = "support"
"+1 (800) 555-0101" = "sales"

[profiles.support]
instructions_file = "prompts/support.md"
greeting = "Hello, you've reached Contoso support."
voice = "en-US-Ava:DragonHDLatestNeural"
model = "gpt-realtime"
audio_format = "pcm16"
media_rate = 24000
tools = ["end_call", "transfer_call", "lookup_order"]
tools_module = "tests.agent_tools"
transfer_to = "+1 800 555 0123"

[profiles.support.limits]
max_call_s = 1800
tool_timeout_s = 8

[profiles.sales.agent]
name = "sales-agent"
project = "contoso-project"
version = "3"
"""


def write(tmp_path: Path, text: str, name: str = "routes.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    """The problems ``load_routing`` reports, each checked to name the file first."""
    with pytest.raises(RoutingError) as caught:
        load_routing(path, BASE)
    lines = str(caught.value).splitlines()
    assert list(caught.value.problems) == lines
    prefix = f"{path}: "
    assert all(line.startswith(prefix) for line in lines), lines
    return [line.removeprefix(prefix) for line in lines]


@pytest.fixture
def full(tmp_path: Path) -> Routing:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "support.md").write_text("You are Contoso support.\n")
    return load_routing(write(tmp_path, FULL), BASE)


# --- A valid file ---------------------------------------------------------------------------


def test_full_file_round_trip(full: Routing) -> None:
    """Every key of the documented format lands in the profile it belongs to, typed."""
    assert full.default_profile == "support"
    assert full.redirect_to is None
    assert dict(full.numbers) == {"+18005550100": "support", "+18005550101": "sales"}
    assert set(full.profiles) == {"support", "sales"}
    assert full.profile("support") == AgentProfile(
        name="support",
        instructions="You are Contoso support.",
        voice="en-US-Ava:DragonHDLatestNeural",
        greeting="Hello, you've reached Contoso support.",
        audio_format="pcm16",
        media_rate=24000,
        model="gpt-realtime",
        agent=None,
        tools=("end_call", "transfer_call", "lookup_order"),
        tools_module="tests.agent_tools",
        transfer_to="+18005550123",
        limits=CallLimits(max_call_s=1800.0, tool_timeout_s=8.0),
    )


def test_profiles_inherit_every_key_they_do_not_set(full: Routing) -> None:
    """``sales`` sets only its agent; everything else comes from the base profile."""
    sales = full.profile("sales")
    assert sales == replace(
        BASE,
        name="sales",
        agent=VoiceLiveAgent(name="sales-agent", project="contoso-project", version="3"),
        model=None,  # an agent answers instead of the base's model
    )
    assert sales.instructions == "Base instructions." != DEFAULT_INSTRUCTIONS


@pytest.mark.parametrize(
    ("dialed", "profile"),
    [
        ("+18005550100", "support"),
        ("4:+18005550100", "support"),  # ACS raw id
        ("+18005550101", "sales"),
        ("4:+18005550101", "sales"),
        ("+1 800 555 0101", "sales"),
        ("+18005550199", "support"),  # not listed: the default
        ("anonymous", "support"),  # not a number at all: still the default
    ],
)
def test_profile_for_matches_listed_numbers_then_the_default(
    full: Routing, dialed: str, profile: str
) -> None:
    found = full.profile_for(dialed)
    assert found is not None
    assert found.name == profile


def test_without_a_default_unlisted_numbers_are_rejected(tmp_path: Path) -> None:
    routing = load_routing(write(tmp_path, '[numbers]\n"+18005550100" = "a"\n[profiles.a]\n'), BASE)
    assert routing.profile_for("4:+18005550100") == replace(BASE, name="a")
    assert routing.profile_for("+18005550199") is None
    assert routing.redirect_to is None


def test_unrouted_calls_can_be_redirected(tmp_path: Path) -> None:
    text = """
        unrouted = "redirect"
        redirect_to = "+1 (800) 555-0199"
        [numbers]
        "+18005550100" = "a"
        [profiles.a]
    """
    routing = load_routing(write(tmp_path, text), BASE)
    assert routing.profile_for("+18005550101") is None
    assert routing.redirect_to == "+18005550199"


def test_explicit_reject_is_the_default_behaviour(tmp_path: Path) -> None:
    text = 'unrouted = "reject"\n[numbers]\n"+18005550100" = "a"\n[profiles.a]\n'
    routing = load_routing(write(tmp_path, text), BASE)
    assert routing.profile_for("+18005550101") is None
    assert routing.redirect_to is None


def test_limits_merge_key_by_key_with_the_base(tmp_path: Path) -> None:
    text = 'default_profile = "a"\n[profiles.a.limits]\ntool_timeout_s = 2.5\n'
    profile = load_routing(write(tmp_path, text), BASE).profile("a")
    assert profile.limits == CallLimits(max_call_s=600.0, tool_timeout_s=2.5)


def test_interruptions_tune_the_decision_and_add_backchannels(tmp_path: Path) -> None:
    text = (
        'default_profile = "a"\n[profiles.a.interruptions]\nmin_interruption_ms = 700\n'
        'backchannels = ["Vale", "ajá"]\n'
    )
    settings = load_routing(write(tmp_path, text), BASE).profile("a").interruptions
    assert settings.min_interruption_ms == 700.0
    assert settings.decision_window_ms == InterruptionSettings().decision_window_ms
    assert settings.is_backchannel("Vale, ajá. Okay.")  # added to the English defaults
    with pytest.raises(RoutingError) as caught:
        load_routing(write(tmp_path, text.replace("700", "-1").replace('"ajá"', "3")), BASE)
    assert [line.split(": ", 1)[1] for line in caught.value.problems] == [
        "profiles.a.interruptions.min_interruption_ms = -1: must be a positive number",
        'profiles.a.interruptions.backchannels = ["Vale", 3]: must be a list of words such as'
        ' ["vale", "ajá"]',
    ]


def test_a_model_replaces_an_inherited_agent(tmp_path: Path) -> None:
    """Otherwise the base's agent would silently win over the model the profile names."""
    base = replace(BASE, model=None, agent=VoiceLiveAgent("base-agent", "base-project"))
    text = 'default_profile = "a"\n[profiles.a]\nmodel = "gpt-realtime-mini"\n[profiles.b]\n'
    routing = load_routing(write(tmp_path, text), base)
    assert (routing.profile("a").model, routing.profile("a").agent) == ("gpt-realtime-mini", None)
    assert routing.profile("b").agent == VoiceLiveAgent("base-agent", "base-project")


def test_agent_version_is_optional(tmp_path: Path) -> None:
    text = 'default_profile = "a"\n[profiles.a.agent]\nname = "n"\nproject = "p"\n'
    assert load_routing(write(tmp_path, text), BASE).profile("a").agent == VoiceLiveAgent("n", "p")


def test_instructions_file_is_relative_to_the_routing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not to the working directory: the service may be started from anywhere."""
    config = tmp_path / "etc" / "callbridge"
    (config / "prompts").mkdir(parents=True)
    (config / "prompts" / "a.md").write_text("  Prompt A, from a file.\n\n", encoding="utf-8")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    text = 'default_profile = "a"\n[profiles.a]\ninstructions_file = "prompts/a.md"\n'
    routing = load_routing(write(config, text), BASE)
    assert routing.profile("a").instructions == "Prompt A, from a file."


def test_inline_instructions(tmp_path: Path) -> None:
    text = 'default_profile = "a"\n[profiles.a]\ninstructions = """\nBe brief.\n"""\n'
    assert load_routing(write(tmp_path, text), BASE).profile("a").instructions == "Be brief.\n"


@pytest.mark.parametrize(
    ("text", "tools"),
    [
        # User tools: the module is imported and must define them.
        (
            'tools = ["end_call", "lookup_order"]\ntools_module = "tests.agent_tools"',
            ("end_call", "lookup_order"),
        ),
        ('tools = ["transfer_call"]', ("transfer_call",)),  # transfer_to from the base
        ("tools = []", ()),  # no tools, even if the base has some
    ],
)
def test_valid_tool_settings(tmp_path: Path, text: str, tools: tuple[str, ...]) -> None:
    base = replace(BASE, tools=("end_call",), transfer_to="+18005550123")
    path = write(tmp_path, f'default_profile = "a"\n[profiles.a]\n{text}\n')
    assert load_routing(path, base).profile("a").tools == tools


def test_tools_module_inherited_from_the_base_allows_user_tools(tmp_path: Path) -> None:
    base = replace(BASE, tools_module="tests.agent_tools")
    text = 'default_profile = "a"\n[profiles.a]\ntools = ["lookup_order"]\n'
    assert load_routing(write(tmp_path, text), base).profile("a").tools == ("lookup_order",)


# --- Errors ---------------------------------------------------------------------------------

A = '[profiles.a]\n[numbers]\n"+18005550100" = "a"\n'
"""A valid file to append a profile's keys to: one profile, one number."""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            'default_profile = "a"\nnumber = {}\n[profiles.a]\n',
            ['number: unknown key; did you mean "numbers"?'],
            id="unknown-top-key",
        ),
        pytest.param(
            A + '[profiles.b]\ngreting = "Hi"\n',
            ['profiles.b.greting: unknown key; did you mean "greeting"?'],
            id="unknown-profile-key",
        ),
        pytest.param(
            A + "[profiles.b]\ncolour = 1\n",
            [
                "profiles.b.colour: unknown key; valid keys: instructions, instructions_file,"
                " greeting, voice, model, agent, audio_format, media_rate, echo_reference, tools,"
                " tools_module, transfer_to, fallback_audio, fallback_transfer_to, limits,"
                " interruptions, record"
            ],
            id="unknown-key-lists-valid-keys",
        ),
        pytest.param(
            A + "[profiles.b.limits]\nmax_call_secs = 60\n",
            ['profiles.b.limits.max_call_secs: unknown key; did you mean "max_call_s"?'],
            id="unknown-limits-key",
        ),
        pytest.param(
            A + '[profiles.b.agent]\nname = "n"\nproject = "p"\nversoin = "1"\n',
            ['profiles.b.agent.versoin: unknown key; did you mean "version"?'],
            id="unknown-agent-key",
        ),
        pytest.param(
            A + '[profiles.b]\ntools = "end_call"\n',
            ['profiles.b.tools = "end_call": must be a list of tool names, e.g. ["end_call"]'],
            id="tools-string-not-list",
        ),
        pytest.param(
            A + '[profiles.b]\ntools = ["end_call", 3]\n',
            ['profiles.b.tools = ["end_call", 3]: must be a list of tool names, e.g. ["end_call"]'],
            id="tools-non-string-item",
        ),
        pytest.param(
            A + "[profiles.b]\nmedia_rate = 8000\n",
            ["profiles.b.media_rate = 8000: must be 16000 or 24000"],
            id="media-rate-value",
        ),
        pytest.param(
            A + "[profiles.b]\nmedia_rate = true\n",
            ["profiles.b.media_rate = true: must be 16000 or 24000"],
            id="media-rate-bool",
        ),
        pytest.param(
            A + "[profiles.b]\nmedia_rate = 16000.0\n",
            ["profiles.b.media_rate = 16000.0: must be 16000 or 24000"],
            id="media-rate-float",
        ),
        pytest.param(
            A + '[profiles.b]\naudio_format = "opus"\n',
            ['profiles.b.audio_format = "opus": must be "g711_ulaw" or "pcm16"'],
            id="audio-format",
        ),
        pytest.param(
            A + "[profiles.b]\ngreeting = 42\n",
            ['profiles.b.greeting = 42: must be a string (quote it: "42")'],
            id="greeting-not-string",
        ),
        pytest.param(
            A + '[profiles.b]\nvoice = "  "\n',
            ['profiles.b.voice = "  ": must not be empty; remove the key instead'],
            id="empty-string",
        ),
        pytest.param(
            A + '[profiles.b]\ninstructions = "x"\ninstructions_file = "x.md"\n',
            ["profiles.b.instructions_file: set instructions or instructions_file, not both"],
            id="instructions-and-file",
        ),
        pytest.param(
            A + "[profiles.b]\nlimits = 60\n",
            ["profiles.b.limits = 60: must be a table ([profiles.b.limits])"],
            id="limits-not-table",
        ),
        pytest.param(
            A + '[profiles.b.limits]\nmax_call_s = 0\ntool_timeout_s = "8"\n',
            [
                "profiles.b.limits.max_call_s = 0: must be a positive number of seconds",
                'profiles.b.limits.tool_timeout_s = "8": must be a positive number of seconds',
            ],
            id="limits-zero-and-string",
        ),
        pytest.param(
            A + "[profiles.b.limits]\nmax_call_s = -5\ntool_timeout_s = true\n",
            [
                "profiles.b.limits.max_call_s = -5: must be a positive number of seconds",
                "profiles.b.limits.tool_timeout_s = true: must be a positive number of seconds",
            ],
            id="limits-negative-and-bool",
        ),
        pytest.param(
            A + "[profiles.b.limits]\nmax_call_s = inf\ntool_timeout_s = nan\n",
            [
                "profiles.b.limits.max_call_s = inf: must be a positive number of seconds",
                "profiles.b.limits.tool_timeout_s = nan: must be a positive number of seconds",
            ],
            id="limits-not-finite",
        ),
        pytest.param(
            A + '[profiles.b]\ntools = ["end_cal", "lookup_order"]\n',
            [
                'profiles.b.tools: "end_cal" needs tools_module: it is not a built-in tool'
                ' (end_call, transfer_call); did you mean "end_call"?',
                'profiles.b.tools: "lookup_order" needs tools_module: it is not a built-in tool'
                " (end_call, transfer_call)",
            ],
            id="user-tools-need-tools-module",
        ),
        pytest.param(
            A + '[profiles.b]\ntools = ["end_call", "end_call", "bad name"]\n',
            [
                'profiles.b.tools: "end_call" is listed twice',
                'profiles.b.tools: "bad name" is not a tool name'
                " (letters, digits, _ and -; at most 64)",
            ],
            id="tool-names",
        ),
        pytest.param(
            A + '[profiles.b]\ntools_module = "my-agent/tools"\n',
            [
                'profiles.b.tools_module = "my-agent/tools":'
                " must be a Python module name, e.g. myagent.tools"
            ],
            id="tools-module-name",
        ),
        pytest.param(
            A + '[profiles.b]\ntools = ["end_call", "transfer_call"]\n',
            ['profiles.b.transfer_to: required when tools include "transfer_call"'],
            id="transfer-call-without-transfer-to",
        ),
        pytest.param(
            A + '[profiles.b]\ntools = ["transfer_call"]\ntransfer_to = "555-0123"\n',
            [
                'profiles.b.transfer_to = "555-0123": must be an E.164 number:'
                ' "+", country code, number (e.g. "+18005550100")'
            ],
            id="transfer-to-not-e164",
        ),
        pytest.param(
            A + '[profiles.b]\nmodel = "gpt-realtime"\n[profiles.b.agent]\nname = "n"\n'
            'project = "p"\n',
            ["profiles.b: sets both model and agent; a profile uses one or the other"],
            id="model-and-agent",
        ),
        pytest.param(
            A + '[profiles.b.agent]\nversion = "1"\n',
            [
                "profiles.b.agent.name: required for a Voice Live agent",
                "profiles.b.agent.project: required for a Voice Live agent",
            ],
            id="agent-missing-name-and-project",
        ),
        pytest.param(
            A + '[profiles.b.agent]\nname = "n"\nproject = "p"\nversion = 3\n',
            ['profiles.b.agent.version = 3: must be a string (quote it: "3")'],
            id="agent-version-not-string",
        ),
        pytest.param(
            A + '[profiles.b]\nagent = "sales-agent"\n',
            ['profiles.b.agent = "sales-agent": must be a table ([profiles.b.agent])'],
            id="agent-not-table",
        ),
        pytest.param(
            A + '[profiles."b c"]\n',
            [
                'profiles."b c": a profile name is letters, digits, _ and -,'
                " starting with a letter or digit"
            ],
            id="profile-name",
        ),
        pytest.param(
            A + '[profiles]\nb = "x"\n',
            ['profiles.b = "x": must be a table ([profiles.b])'],
            id="profile-not-table",
        ),
        pytest.param(
            '[profiles.a]\n[numbers]\n"800-555-0100" = "a"\n',
            [
                'numbers.800-555-0100 = "a": the number must be an E.164 number:'
                ' "+", country code, number (e.g. "+18005550100")'
            ],
            id="number-not-e164",
        ),
        pytest.param(
            A + '"+1 800 555 0100" = "a"\n',
            ['numbers."+1 800 555 0100" = "a": same number as "+18005550100"'],
            id="duplicate-number-after-canonicalisation",
        ),
        pytest.param(
            '[profiles.sales]\n[numbers]\n"+18005550100" = "salse"\n',
            [
                'numbers."+18005550100" = "salse": no such profile; did you mean "sales"?'
                " (defined: sales)"
            ],
            id="number-to-undefined-profile",
        ),
        pytest.param(
            '[profiles.a]\n[numbers]\n"+18005550100" = 1\n',
            ['numbers."+18005550100" = 1: must be a string (quote it: "1")'],
            id="number-target-not-string",
        ),
        pytest.param(
            'numbers = ["+18005550100"]\ndefault_profile = "a"\n[profiles.a]\n',
            ['numbers = ["+18005550100"]: must be a table ([numbers])'],
            id="numbers-not-table",
        ),
        pytest.param(
            'default_profile = "b"\n[profiles.a]\n',
            ['default_profile = "b": no such profile (defined: a)'],
            id="default-profile-undefined",
        ),
        pytest.param(
            'unrouted = "drop"\nredirect_to = "+18005550199"\n' + A,
            ['unrouted = "drop": must be "reject" or "redirect"'],
            id="unrouted-value",
        ),
        pytest.param(
            'unrouted = "redirect"\n' + A,
            ['redirect_to: required when unrouted = "redirect"'],
            id="redirect-without-redirect-to",
        ),
        pytest.param(
            'redirect_to = "+18005550199"\n' + A,
            [
                'redirect_to = "+18005550199": only used when unrouted = "redirect";'
                " set that, or remove redirect_to"
            ],
            id="redirect-to-without-redirect",
        ),
        pytest.param(
            'unrouted = "redirect"\nredirect_to = "0800 555 0199"\n' + A,
            [
                'redirect_to = "0800 555 0199": must be an E.164 number:'
                ' "+", country code, number (e.g. "+18005550100")'
            ],
            id="redirect-to-not-e164",
        ),
        pytest.param(
            'default_profile = "a"\nunrouted = "reject"\n[profiles.a]\n',
            [
                'unrouted = "reject": has no effect: default_profile answers every number'
                " not listed; remove one"
            ],
            id="unrouted-with-default",
        ),
        pytest.param(
            'default_profile = "a"\n',
            [
                "no profiles; add at least one [profiles.NAME] table",
                'default_profile = "a": no such profile (defined: none)',
            ],
            id="no-profiles",
        ),
        pytest.param(
            "[profiles]\n",
            ["profiles: no profiles; add at least one [profiles.NAME] table"],
            id="empty-profiles",
        ),
        pytest.param(
            "[profiles.a]\n",
            ["no number reaches a profile; list numbers under [numbers] or set default_profile"],
            id="nothing-routed",
        ),
    ],
)
def test_each_problem_names_its_dotted_key(tmp_path: Path, text: str, expected: list[str]) -> None:
    """Exactly the expected lines: one problem is reported once, without knock-on errors."""
    assert problems(write(tmp_path, text)) == expected


def test_missing_file(tmp_path: Path) -> None:
    assert problems(tmp_path / "routes.toml") == [
        "cannot read the routing file: No such file or directory"
    ]


def test_unreadable_file_is_a_routing_error(tmp_path: Path) -> None:
    """A directory, say, where the file should be; the OS's reason is passed on."""
    [problem] = problems(tmp_path)
    assert problem.startswith("cannot read the routing file: ")


def test_invalid_toml_says_where(tmp_path: Path) -> None:
    path = write(tmp_path, 'default_profile = "a"\n[profiles.a\n')
    assert problems(path) == [
        "invalid TOML: Expected ']' at the end of a table declaration (at line 2, column 12)"
    ]


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_bytes(b'default_profile = "caf\xe9"\n')
    assert problems(path) == ["not UTF-8 text (TOML files are UTF-8)"]


@pytest.mark.parametrize(
    ("prompt", "problem"),
    [
        (None, "no such file: {file}"),
        ("  \n\n", "{file} is empty"),
        (b"\xff\xfe", "{file} is not UTF-8 text"),
    ],
)
def test_instructions_file_must_hold_text(
    tmp_path: Path, prompt: str | bytes | None, problem: str
) -> None:
    file = tmp_path / "prompts" / "a.md"
    if prompt is not None:
        file.parent.mkdir()
        if isinstance(prompt, bytes):
            file.write_bytes(prompt)
        else:
            file.write_text(prompt)
    path = write(tmp_path, A + '[profiles.b]\ninstructions_file = "prompts/a.md"\n')
    assert problems(path) == [
        f'profiles.b.instructions_file = "prompts/a.md": {problem.format(file=file)}'
    ]


def test_every_problem_is_reported_together(tmp_path: Path) -> None:
    text = """
        default_profile = "nobody"
        colour = "blue"

        [numbers]
        "+18005550100" = "support"
        "+1 (800) 555-0100" = "sales"
        "12345" = "support"

        [profiles.support]
        media_rate = 8000
        tools = ["transfer_call", "lookup_order"]

        [profiles.support.limits]
        max_call_s = -1

        [profiles.sales]
        model = "gpt-realtime"
        greting = "Hi"

        [profiles.sales.agent]
        project = "p"
    """
    found = problems(write(tmp_path, text))
    assert found == [
        "colour: unknown key; valid keys: default_profile, unrouted, redirect_to, numbers,"
        " profiles",
        "profiles.support.media_rate = 8000: must be 16000 or 24000",
        "profiles.support.limits.max_call_s = -1: must be a positive number of seconds",
        'profiles.support.tools: "lookup_order" needs tools_module:'
        " it is not a built-in tool (end_call, transfer_call)",
        'profiles.support.transfer_to: required when tools include "transfer_call"',
        'profiles.sales.greting: unknown key; did you mean "greeting"?',
        "profiles.sales.agent.name: required for a Voice Live agent",
        "profiles.sales: sets both model and agent; a profile uses one or the other",
        'numbers."+1 (800) 555-0100" = "sales": same number as "+18005550100"',
        'numbers.12345 = "support": the number must be an E.164 number:'
        ' "+", country code, number (e.g. "+18005550100")',
        'default_profile = "nobody": no such profile (defined: support, sales)',
    ]


def test_tools_module_problems_come_in_the_same_pass_with_file_and_key(tmp_path: Path) -> None:
    """A module that does not import, a tool its module lacks, and a mistake elsewhere in the
    file are all reported at once, each under its file and key."""
    text = """
        default_profile = "support"

        [profiles.support]
        tools = ["end_call", "lookup_ordr"]
        tools_module = "tests.agent_tools"

        [profiles.sales]
        tools = ["quote"]
        tools_module = "tests.no_such_tools"
        greting = "Hi"
    """
    path = write(tmp_path, text)
    with pytest.raises(RoutingError) as error:
        load_routing(path, BASE)
    assert error.value.problems == (
        f'{path}: profiles.support.tools: "lookup_ordr" is neither a built-in tool nor a @tool'
        ' in tests.agent_tools; did you mean "lookup_order"?',
        f'{path}: profiles.sales.greting: unknown key; did you mean "greeting"?',
        f'{path}: profiles.sales.tools_module = "tests.no_such_tools": cannot be imported:'
        " ModuleNotFoundError: No module named 'tests.no_such_tools'",
    )


def test_an_inherited_tools_module_that_does_not_import_is_not_blamed_on_the_file(
    tmp_path: Path,
) -> None:
    """``AGENT_TOOLS_MODULE`` is reported once, as that variable (``load_settings``)."""
    base = replace(BASE, tools_module="tests.no_such_tools")
    text = 'default_profile = "a"\n[profiles.a]\ntools = ["lookup_order"]\n'
    assert load_routing(write(tmp_path, text), base).profile("a").tools == ("lookup_order",)


# --- Routing itself -------------------------------------------------------------------------


def test_single_profile_answers_every_number() -> None:
    routing = Routing.single(BASE)
    assert routing.profile_for("+18005550100") is BASE
    assert routing.profile_for("4:+442079460018") is BASE
    assert routing.profile_for("anonymous") is BASE
    assert routing.profile(BASE.name) is BASE
    assert (dict(routing.numbers), routing.redirect_to) == ({}, None)


def test_unknown_profile_name_is_a_key_error(full: Routing) -> None:
    with pytest.raises(KeyError, match="nobody"):
        full.profile("nobody")


def test_routing_is_read_only(full: Routing) -> None:
    """One table serves every call; nothing may change it under them."""
    with pytest.raises(TypeError):
        full.numbers["+18005550199"] = "sales"  # type: ignore[index]


def test_routing_refuses_inconsistent_tables() -> None:
    with pytest.raises(ValueError, match="inconsistent routing"):
        Routing({"a": replace(BASE, name="a")}, {"+18005550100": "b"}, None, None)
    with pytest.raises(ValueError, match="default_profile"):
        Routing({"a": replace(BASE, name="a")}, {}, "b", None)
    with pytest.raises(ValueError, match="redirect_to"):
        Routing({"a": replace(BASE, name="a")}, {}, None, "555-0199")


def test_builtin_tools() -> None:
    assert BUILTIN_TOOLS == ("end_call", "transfer_call")


def test_record_is_a_flag(tmp_path: Path) -> None:
    """A profile may opt in to recording; anything but true/false names the key."""
    path = tmp_path / "routes.toml"
    path.write_text(
        'default_profile = "a"\n[profiles.a]\nrecord = true\n[profiles.b]\nrecord = 1\n'
    )
    with pytest.raises(RoutingError, match=r"profiles\.b\.record = 1: must be true or false"):
        load_routing(path, AgentProfile())
    path.write_text('default_profile = "a"\n[profiles.a]\nrecord = true\n')
    assert load_routing(path, AgentProfile()).profile("a").record


# --- Fallback keys ---------------------------------------------------------------------------


def test_fallback_keys_are_read_relative_to_the_routing_file(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    shutil.copy(asset_path("fallback_transfer"), tmp_path / "clips" / "sorry.wav")
    path = write(
        tmp_path,
        A + '[profiles.b]\nfallback_audio = "clips/sorry.wav"\n'
        'fallback_transfer_to = "+1 800 555 0111"\n',
    )
    routing = load_routing(path, BASE)
    b = routing.profile("b")
    assert b.fallback_audio == str(tmp_path.resolve() / "clips" / "sorry.wav")
    assert b.fallback_transfer_to == "+18005550111"


def test_fallback_keys_default_to_the_base_profiles(tmp_path: Path) -> None:
    base = replace(BASE, fallback_audio="/srv/clips/sorry.wav", fallback_transfer_to="+18005550199")
    routing = load_routing(write(tmp_path, A), base)
    a = routing.profile("a")
    assert (a.fallback_audio, a.fallback_transfer_to) == ("/srv/clips/sorry.wav", "+18005550199")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param(
            'fallback_transfer_to = "555-0123"\n',
            [
                'profiles.b.fallback_transfer_to = "555-0123": must be an E.164 number: "+",'
                ' country code, number (e.g. "+18005550100")'
            ],
            id="transfer-not-e164",
        ),
        pytest.param(
            "fallback_audio = 5\n",
            ['profiles.b.fallback_audio = 5: must be a string (quote it: "5")'],
            id="audio-not-a-string",
        ),
        pytest.param(
            'fallback_audio = "nowhere.wav"\n',
            ['profiles.b.fallback_audio = "nowhere.wav": no such file: {dir}/nowhere.wav'],
            id="audio-missing",
        ),
        pytest.param(
            'fallback_audio = "routes.toml"\n',
            ['profiles.b.fallback_audio = "routes.toml": {dir}/routes.toml: not a PCM WAV file'],
            id="audio-not-wav",
        ),
    ],
)
def test_fallback_keys_are_checked(tmp_path: Path, lines: str, expected: list[str]) -> None:
    reported = problems(write(tmp_path, A + "[profiles.b]\n" + lines))
    assert len(reported) == len(expected)
    for line, start in zip(reported, expected, strict=True):
        assert line.startswith(start.format(dir=tmp_path.resolve())), line
