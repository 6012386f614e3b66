"""Offline checks of the Azure deployment: infra/ (Bicep), azure.yaml and the azd hooks.

No Bicep compiler can run here, so every Bicep file is parsed with pycep-parser and the
properties the app depends on are checked on the parsed templates. Values are followed through
parameters, variables, module parameters and module outputs (see ``Infra.evaluate``), with
main.bicep's parameters taken from main.parameters.json's defaults and the region azd asks for set
to ``DEPLOY_REGION``, so a check sees what a default ``azd up`` would deploy there. A ``fail()``
the deployment would reach raises ``DeploymentFailedError``. ``bicep build`` and
``azd provision --preview`` still belong in an online pipeline.

The POSIX hooks are also run, against stand-in ``az``, ``azd`` and ``curl`` executables, to check
the commands they issue. The PowerShell hooks are checked as text (no PowerShell here).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, cast

import pytest
from pycep import BicepParser
from pycep.models import BicepElement

from callbridge.core.profiles import DEFAULT_VOICE

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
HOOKS = INFRA / "hooks"
AZURE_YAML = ROOT / "azure.yaml"
PARAMETERS_FILE = INFRA / "main.parameters.json"

SERVICE = "callbridge"
APP_PORT = 8000
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
WEBHOOK_PATH = "/api/incomingCall"
SECRET_HEADER = "x-callbridge-secret"
# Event Grid sends the endpoint's query string with every delivery, the validation handshake
# included, so the postdeploy hooks put the webhook secret there as well as in SECRET_HEADER.
SECRET_QUERY = "secret"
# The app's default CALLBRIDGE_DRAIN_S; SIGKILL must not come before it has run out.
APP_DRAIN_DEFAULT_S = 120
DRAIN_MARGIN_S = 10
# Container Apps refuses a longer terminationGracePeriodSeconds.
MAX_TERMINATION_GRACE_S = 600

# Every resource type the templates may declare, with the API versions allowed for it. A new
# type or version is a deliberate change: check it against Azure/bicep-types-az first.
API_VERSIONS: dict[str, frozenset[str]] = {
    "Microsoft.Resources/resourceGroups": frozenset({"2024-11-01"}),
    "Microsoft.ManagedIdentity/userAssignedIdentities": frozenset({"2023-01-31"}),
    "Microsoft.OperationalInsights/workspaces": frozenset({"2023-09-01"}),
    "Microsoft.Insights/components": frozenset({"2020-02-02"}),
    "Microsoft.ContainerRegistry/registries": frozenset({"2023-07-01"}),
    "Microsoft.CognitiveServices/accounts": frozenset({"2025-06-01"}),
    "Microsoft.Communication/communicationServices": frozenset({"2025-05-01"}),
    "Microsoft.EventGrid/systemTopics": frozenset({"2025-02-15"}),
    "Microsoft.App/managedEnvironments": frozenset({"2025-01-01"}),
    "Microsoft.App/containerApps": frozenset({"2025-01-01"}),
    "Microsoft.Authorization/roleAssignments": frozenset({"2022-04-01"}),
}

ACS = "Microsoft.Communication/communicationServices"
AI_SERVICES = "Microsoft.CognitiveServices/accounts"
CONTAINER_APP = "Microsoft.App/containerApps"
MANAGED_ENVIRONMENT = "Microsoft.App/managedEnvironments"
REGISTRY = "Microsoft.ContainerRegistry/registries"
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"
SYSTEM_TOPIC = "Microsoft.EventGrid/systemTopics"
WORKSPACE = "Microsoft.OperationalInsights/workspaces"
APP_INSIGHTS = "Microsoft.Insights/components"
IDENTITY = "Microsoft.ManagedIdentity/userAssignedIdentities"

# Built-in role definitions, by id (the names are only for messages).
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
COGNITIVE_SERVICES_USER = "a97b65f3-24c7-4388-baec-2e87135dc908"
# Formerly "Azure AI User"; the rename kept the id (azure-ai-docs,
# articles/foundry/includes/role-rename-note.md).
FOUNDRY_USER = "53ca6127-db72-4b80-b1b0-d745d6d5456d"
COMMUNICATION_AND_EMAIL_SERVICE_OWNER = "09976791-48a7-449e-bb21-39d1a415f350"
# A known mix-up for Cognitive Services User: it does not cover Voice Live.
COGNITIVE_SERVICES_OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
BUILT_IN_ROLES = {
    ACR_PULL: "AcrPull",
    COGNITIVE_SERVICES_USER: "Cognitive Services User",
    FOUNDRY_USER: "Foundry User",
    COMMUNICATION_AND_EMAIL_SERVICE_OWNER: "Communication and Email Service Owner",
}
# What Voice Live asks of the identity that calls it, on the account: "Assign the `Cognitive
# Services User` and `Foundry User` roles to your user account or managed identity" (azure-ai-docs,
# voice-live-how-to.md and voice-live-api-reference-2026-07-15.md).
VOICE_LIVE_ROLES = (COGNITIVE_SERVICES_USER, FOUNDRY_USER)
# The app's identity and what it is given, on which resource type.
APP_ROLES = {
    (REGISTRY, ACR_PULL),
    *((AI_SERVICES, role) for role in VOICE_LIVE_ROLES),
    (ACS, COMMUNICATION_AND_EMAIL_SERVICE_OWNER),
}
APP_PRINCIPAL = "identity.properties.principalId"
ACS_PRINCIPAL = "acs.identity.principalId"

# Environment variables of the container, as a default deployment sets them.
PLAIN_ENV = {
    "CALLBRIDGE_HOST": "0.0.0.0",
    "CALLBRIDGE_PORT": str(APP_PORT),
    "VOICE_LIVE_MODEL": "gpt-realtime",
    "CALLBRIDGE_MAX_CALLS": "40",
    "CALLBRIDGE_DRAIN_S": str(APP_DRAIN_DEFAULT_S),
    "LOG_FORMAT": "json",
}
SECRET_ENV = {
    "CALLBRIDGE_SIGNING_KEY",
    "CALLBRIDGE_WEBHOOK_SECRET",
    "CALLBRIDGE_API_KEY",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
}
# Keys the app must never be given in Azure: it authenticates with its identity.
KEY_ENV = {"AZURE_VOICE_LIVE_API_KEY", "ACS_CONNECTION_STRING", "ACS_ACCESS_KEY"}

# The region azd asks for (AZURE_LOCATION, no default), as the checks deploy it: one with HD voices.
DEPLOY_REGION = "eastus2"
# Where Voice Live offers Azure HD voices ("DragonHD" in the name, like the app's DEFAULT_VOICE):
# the Voice Live how-to's list. The Speech regions page also ticks canadacentral and
# francecentral; the templates use only the regions both sources agree on.
HD_VOICE_REGIONS = frozenset(
    {"southeastasia", "centralindia", "swedencentral", "westeurope", "eastus", "eastus2", "westus2"}
)
NON_HD_REGIONS = ("canadacentral", "francecentral", "japaneast", "northeurope")
# The standard (non-HD) Ava voice the app gets instead of its HD default outside those regions.
STANDARD_VOICE = "en-US-AvaNeural"
OTHER_HD_VOICE = "en-US-Andrew:DragonHDLatestNeural"
VOICE_OUTPUT = "VOICE_LIVE_VOICE_DEPLOYED"

# Container Apps' bounds on probe settings.
PROBE_LIMITS = {
    "initialDelaySeconds": (0, 60),
    "periodSeconds": (1, 240),
    "timeoutSeconds": (1, 240),
    "failureThreshold": (1, 10),
    "successThreshold": (1, 10),
}

# Outputs azd itself needs: where to push the image, and which resource group holds the app.
AZD_OUTPUTS = {"AZURE_CONTAINER_REGISTRY_ENDPOINT", "AZURE_RESOURCE_GROUP"}
# Values hooks may read that are not Bicep outputs, and where they come from.
NON_OUTPUT_HOOK_VALUES = {
    "AZURE_SUBSCRIPTION_ID": "set by azd itself",
    "CALLBRIDGE_WEBHOOK_SECRET": "generated by the preprovision hook",
    "CALLBRIDGE_PHONE_NUMBER": "optional, set by the operator",
}
SHELLS = {"posix": ("sh", ".sh"), "windows": ("pwsh", ".ps1")}
HOOK_READS = {
    ".sh": re.compile(r"\b(require_output|env_value)\s+([A-Z][A-Z0-9_]*)\b"),
    ".ps1": re.compile(r"\b(Get-RequiredOutput|Get-EnvValue)\s+'([A-Z][A-Z0-9_]*)'"),
}
REQUIRED_READERS = {"require_output", "Get-RequiredOutput"}

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
AZD_REFERENCE = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:=(?P<default>.*))?\}$")
INTERPOLATION = re.compile(r"\$\{([^}]*)\}")


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# --- parsing -----------------------------------------------------------------------------------


@cache
def _parser() -> BicepParser:
    return BicepParser()


def parse_bicep(path: Path) -> dict[str, Any]:
    """Parse one Bicep file into pycep's JSON-like form; a syntax error fails with the file name."""
    try:
        parsed = _parser().parse(file_path=path)
    except Exception as error:  # lark raises several unrelated exception types
        pytest.fail(f"{rel(path)} does not parse as Bicep: {type(error).__name__}: {error}")
    return cast(dict[str, Any], parsed)


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def unquote(key: str) -> str:
    """Object keys keep their quotes in pycep's output ('azd-env-name')."""
    if len(key) >= 2 and key[0] == key[-1] == "'":
        return key[1:-1]
    return key


class DeploymentFailedError(Exception):
    """The deployment would reach a ``fail(message)``: ARM stops it with that message."""


@dataclass(frozen=True)
class Unknown:
    """A value only known at deployment time, named by the expression that produces it."""

    what: str

    def __str__(self) -> str:
        return self.what


@dataclass(frozen=True)
class Declaration:
    """A resource or module declaration, with an ``if (...)`` condition split off."""

    symbol: str
    config: dict[str, Any]
    condition: Any = None
    has_condition: bool = False


@dataclass(frozen=True)
class Resource(Declaration):
    type: str = ""
    api_version: str = ""
    existing: bool = False


@dataclass(frozen=True)
class Module(Declaration):
    path: str = ""


def _split_condition(config: dict[str, Any]) -> tuple[dict[str, Any], Any, bool]:
    if set(config) == {"condition", "config"}:
        return cast(dict[str, Any], config["config"]), config["condition"], True
    return config, None, False


@dataclass
class Template:
    path: Path
    doc: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.relative_to(INFRA).as_posix()

    @property
    def params(self) -> dict[str, dict[str, Any]]:
        return cast(dict[str, dict[str, Any]], self.doc.get("parameters", {}))

    @property
    def variables(self) -> dict[str, dict[str, Any]]:
        return cast(dict[str, dict[str, Any]], self.doc.get("variables", {}))

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        return cast(dict[str, dict[str, Any]], self.doc.get("outputs", {}))

    @property
    def resources(self) -> dict[str, Resource]:
        found: dict[str, Resource] = {}
        for symbol, attrs in self.doc.get("resources", {}).items():
            config, condition, has_condition = _split_condition(attrs["config"])
            found[symbol] = Resource(
                symbol=symbol,
                config=config,
                condition=condition,
                has_condition=has_condition,
                type=attrs["type"],
                api_version=attrs["api_version"],
                existing=bool(attrs["existing"]),
            )
        return found

    @property
    def modules(self) -> dict[str, Module]:
        found: dict[str, Module] = {}
        for symbol, attrs in self.doc.get("modules", {}).items():
            config, condition, has_condition = _split_condition(attrs["config"])
            found[symbol] = Module(
                symbol=symbol,
                config=config,
                condition=condition,
                has_condition=has_condition,
                path=attrs["detail"]["path"] if attrs["type"] == "local" else "",
            )
        return found

    def decorators(self, param: str) -> dict[str, Any]:
        return {d["type"]: d.get("argument") for d in self.params[param]["decorators"]}

    def has_default(self, param: str) -> bool:
        return self.params[param].get("default") is not None


@dataclass
class Infra:
    """All templates, with an evaluator that follows values across them."""

    templates: dict[str, Template]
    parameters: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def main(self) -> Template:
        return self.templates["main.bicep"]

    def with_overrides(self, **values: Any) -> Infra:
        """The same templates deployed with some of main.bicep's parameters set."""
        return Infra(self.templates, self.parameters, {**self.overrides, **values})

    def module_template(self, template: Template, module: Module) -> Template:
        path = (template.path.parent / module.path).resolve()
        return self.templates[path.relative_to(INFRA).as_posix()]

    def callers(self, template: Template) -> list[tuple[Template, Module]]:
        return [
            (caller, module)
            for caller in self.templates.values()
            for module in caller.modules.values()
            if module.path and self.module_template(caller, module) is template
        ]

    def resources(self, type_: str, *, existing: bool = False) -> list[tuple[Template, Resource]]:
        return [
            (template, resource)
            for template in self.templates.values()
            for resource in template.resources.values()
            if resource.type == type_ and resource.existing == existing
        ]

    def resource(self, type_: str) -> tuple[Template, Resource]:
        found = self.resources(type_)
        assert len(found) == 1, f"expected exactly one {type_}, found {len(found)}"
        return found[0]

    # --- evaluation ---

    def evaluate(self, template: Template, expr: Any) -> Any:
        """The value of ``expr`` in ``template``, as far as it is known before deployment."""
        if isinstance(expr, BicepElement):
            return self._symbol(template, str(expr))
        if isinstance(expr, str):
            return self._interpolate(template, expr)
        if expr is None or isinstance(expr, bool | int | float):
            return expr
        if isinstance(expr, list):
            return [self.evaluate(template, item) for item in expr]
        if isinstance(expr, dict):
            if set(expr) == {"operator"}:
                return self._operator(template, expr["operator"])
            if set(expr) == {"function"}:
                return self._function(template, expr["function"])
            return {
                self._interpolate(template, unquote(key)): self.evaluate(template, value)
                for key, value in expr.items()
            }
        return Unknown(repr(expr))

    def param_value(self, template: Template, name: str) -> Any:
        if template is self.main:
            if name in self.overrides:
                return self.overrides[name]
            if name in self.parameters:
                return self._from_parameters_file(name, self.parameters[name]["value"])
        else:
            for caller, module in self.callers(template):
                if name in module.config.get("params", {}):
                    return self.evaluate(caller, module.config["params"][name])
        default = template.params[name].get("default")
        if default is None:
            return Unknown(f"param {name}")
        return self.evaluate(template, default)

    def _from_parameters_file(self, name: str, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = AZD_REFERENCE.match(value)
        if match is None:
            return coerce(value, self.main.params[name]["type"])
        if match["default"] is None:
            return Unknown(f"azd env {match['name']}")
        return coerce(match["default"], self.main.params[name]["type"])

    def _symbol(self, template: Template, name: str) -> Any:
        if name in template.params:
            return self.param_value(template, name)
        if name in template.variables:
            return self.evaluate(template, template.variables[name]["value"])
        return Unknown(name)

    def _path(self, template: Template, segments: list[str]) -> Any:
        """``a.b.c``: a module output when ``a`` is a module, else a deployment-time value."""
        head = segments[0]
        modules = template.modules
        if head in modules and len(segments) >= 3 and segments[1] == "outputs":
            module_template = self.module_template(template, modules[head])
            output = module_template.outputs.get(segments[2])
            assert output is not None, (
                f"{template.name}: {head}.outputs.{segments[2]} is not an output of "
                f"{module_template.name}"
            )
            value = self.evaluate(module_template, output["value"])
            return value if len(segments) == 3 else Unknown(".".join([str(value), *segments[3:]]))
        if len(segments) == 1:
            return self._symbol(template, head)
        return Unknown(".".join(segments))

    def _interpolate(self, template: Template, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            inner = match[1].strip()
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", inner):
                value = self._path(template, inner.split("."))
                if isinstance(value, Unknown):
                    return "${" + value.what + "}"
                if isinstance(value, str | int) and not isinstance(value, bool):
                    return str(value)
            return match[0]

        return INTERPOLATION.sub(replace, text)

    def _operator(self, template: Template, operator: dict[str, Any]) -> Any:
        kind = operator["type"]
        operands = operator["operands"]
        if kind in {"property_accessor", "index_accessor", "function_accessor"}:
            return self._accessor(template, operator)
        if kind == "conditional":
            condition = self.evaluate(template, operands["condition"])
            if isinstance(condition, bool):
                branch = "true_value" if condition else "false_value"
                return self.evaluate(template, operands[branch])
            return Unknown(f"{condition} ? ... : ...")
        if kind == "not":
            value = self.evaluate(template, operands["bool_value"])
            return not value if isinstance(value, bool) else Unknown(f"!{value}")
        left = self.evaluate(template, operands.get("operand_1"))
        right = self.evaluate(template, operands.get("operand_2"))
        if kind in {"and", "or"}:
            return logical(kind, left, right)
        numbers = all(isinstance(v, int) and not isinstance(v, bool) for v in (left, right))
        if numbers and kind == "add":
            return left + right
        if numbers and kind == "multiply":
            return left * right
        if numbers and kind == "divide":
            return int(left / right)  # Bicep's integer division truncates toward zero
        if numbers and kind == "modulo":
            return left % right
        if kind == "equals":
            return left == right
        return Unknown(f"{kind}({left}, {right})")

    def _accessor(self, template: Template, operator: dict[str, Any]) -> Any:
        segments = accessor_path(operator)
        if segments is None:
            return Unknown(f"{operator['type']}(...)")
        return self._path(template, segments)

    def _function(self, template: Template, function: dict[str, Any]) -> Any:
        kind = function["type"]
        args = [self.evaluate(template, arg) for arg in function["parameters"].values()]
        known = not any(isinstance(arg, Unknown) for arg in args)
        if kind == "string" and known:
            (value,) = args
            return str(value).lower() if isinstance(value, bool) else str(value)
        if kind == "json" and known and isinstance(args[0], str):
            return json.loads(args[0])
        if kind in {"max", "min"} and known:
            return max(args) if kind == "max" else min(args)
        if kind == "empty" and known:
            return len(args[0]) == 0
        if kind == "contains" and known and isinstance(args[0], list | str):
            return args[1] in args[0]  # case-sensitive, as in ARM
        if kind == "to_lower" and known:
            return str(args[0]).lower()
        if kind == "replace" and known:
            return str(args[0]).replace(str(args[1]), str(args[2]))
        if kind == "fail":
            raise DeploymentFailedError(str(args[0]))
        if kind == "concat" and known and all(isinstance(arg, list) for arg in args):
            return [item for arg in args for item in arg]
        if kind == "union" and all(isinstance(arg, dict) for arg in args):
            merged: dict[str, Any] = {}
            for arg in args:
                merged.update(arg)
            return merged
        return Unknown(f"{kind}(...)")


def logical(kind: str, left: Any, right: Any) -> bool | Unknown:
    """``&&`` or ``||``: known when both sides are, or when one side decides it."""
    deciding = kind == "or"  # True decides ||, False decides &&
    if any(side is deciding for side in (left, right)):
        return deciding
    if isinstance(left, bool) and isinstance(right, bool):
        return not deciding
    return Unknown(f"{kind}({left}, {right})")


def accessor_path(operator: dict[str, Any]) -> list[str] | None:
    """``a.b.c`` of a property-accessor chain, or None for index or function accessors."""
    if operator["type"] != "property_accessor":
        return None
    operands = operator["operands"]
    head, tail = operands["operand_1"], operands["operand_2"]
    if not isinstance(head, BicepElement):
        return None
    if isinstance(tail, str):
        return [str(head), str(tail)]
    if isinstance(tail, dict) and set(tail) == {"operator"}:
        rest = accessor_path(tail["operator"])
        return None if rest is None else [str(head), *rest]
    return None


def coerce(text: str, bicep_type: str) -> Any:
    if bicep_type == "int":
        return int(text)
    if bicep_type == "bool":
        assert text.lower() in {"true", "false"}, f"{text!r} is not a bool"
        return text.lower() == "true"
    return text


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


@pytest.fixture(scope="session")
def infra() -> Infra:
    templates = {}
    for path in bicep_files():
        template = Template(path, parse_bicep(path))
        templates[template.name] = template
    assert "main.bicep" in templates, "infra/main.bicep is missing"
    parameters = json.loads(PARAMETERS_FILE.read_text())["parameters"]
    return Infra(templates, parameters, {"location": DEPLOY_REGION})


@pytest.fixture(scope="session")
def app(infra: Infra) -> tuple[Template, Resource]:
    return infra.resource(CONTAINER_APP)


@pytest.fixture(scope="session")
def container(infra: Infra, app: tuple[Template, Resource]) -> dict[str, Any]:
    template, resource = app
    containers = infra.evaluate(template, resource.config["properties"]["template"]["containers"])
    assert len(containers) == 1, "the app runs exactly one container"
    return cast(dict[str, Any], containers[0])


def container_env(infra: Infra) -> dict[str, dict[str, Any]]:
    template, resource = infra.resource(CONTAINER_APP)
    (container,) = infra.evaluate(template, resource.config["properties"]["template"]["containers"])
    env = container["env"]
    assert isinstance(env, list), f"the container's env did not evaluate to a list: {env}"
    names = [entry["name"] for entry in env]
    assert len(names) == len(set(names)), f"duplicate environment variables: {names}"
    return {entry["name"]: entry for entry in env}


# --- every file parses; modules and parameters fit together ----------------------------------


@pytest.mark.parametrize("path", bicep_files(), ids=rel)
def test_bicep_file_parses(path: Path) -> None:
    parsed = parse_bicep(path)
    assert parsed.get("resources") or parsed.get("modules"), f"{rel(path)} declares nothing"


def test_main_is_subscription_scoped_and_tags_the_resource_group(infra: Infra) -> None:
    assert infra.main.doc["globals"]["scope"]["value"] == "subscription"
    template, rg = infra.resource("Microsoft.Resources/resourceGroups")
    tags = infra.evaluate(template, rg.config["tags"])
    assert "azd-env-name" in tags, "azd finds the resource group by its azd-env-name tag"


def test_module_paths_exist(infra: Infra) -> None:
    for template in infra.templates.values():
        for module in template.modules.values():
            assert module.path, f"{template.name}: module {module.symbol} is not a local file"
            target = template.path.parent / module.path
            assert target.is_file(), f"{template.name}: module {module.symbol}: no {target}"


def test_module_parameters_match_the_module(infra: Infra) -> None:
    for template in infra.templates.values():
        for module in template.modules.values():
            target = infra.module_template(template, module)
            passed = set(module.config.get("params", {}))
            declared = set(target.params)
            required = {p for p in declared if not target.has_default(p)}
            assert not passed - declared, (
                f"{template.name}: module {module.symbol} passes parameters {target.name} does "
                f"not declare: {sorted(passed - declared)}"
            )
            assert not required - passed, (
                f"{template.name}: module {module.symbol} leaves required parameters of "
                f"{target.name} unset: {sorted(required - passed)}"
            )


def test_module_outputs_used_exist(infra: Infra) -> None:
    reference = re.compile(r"\b([A-Za-z_]\w*)\.outputs\.([A-Za-z_]\w*)")
    for template in infra.templates.values():
        modules = template.modules
        used: set[tuple[str, str]] = set()
        for node in walk(template.doc):
            if isinstance(node, dict) and node.get("type") == "property_accessor":
                path = accessor_path(node)
                if path and len(path) >= 3 and path[1] == "outputs":
                    used.add((path[0], path[2]))
            elif isinstance(node, str):
                used.update(reference.findall(node))
        for symbol, output in sorted(used):
            assert symbol in modules, f"{template.name}: {symbol}.outputs: {symbol} is no module"
            target = infra.module_template(template, modules[symbol])
            assert output in target.outputs, (
                f"{template.name}: {symbol}.outputs.{output} is not an output of {target.name}"
            )


def test_parameters_file_covers_every_parameter_without_default(infra: Infra) -> None:
    main = infra.main
    required = {name for name in main.params if not main.has_default(name)}
    missing = required - set(infra.parameters)
    unknown = set(infra.parameters) - set(main.params)
    assert not missing, f"main.parameters.json lacks parameters without default: {sorted(missing)}"
    assert not unknown, f"main.parameters.json sets parameters main.bicep lacks: {sorted(unknown)}"


def test_parameters_file_defaults_agree_with_bicep(infra: Infra) -> None:
    main = infra.main
    for name, entry in infra.parameters.items():
        match = AZD_REFERENCE.match(str(entry["value"]))
        assert match is not None, f"{name}: {entry['value']!r} is not an azd ${{VAR}} reference"
        bicep_default = main.params[name].get("default")
        if match["default"] is None or bicep_default is None:
            continue
        if isinstance(bicep_default, BicepElement):
            continue  # a default computed from another parameter
        file_default = coerce(match["default"], main.params[name]["type"])
        assert file_default == bicep_default, (
            f"{name}: main.parameters.json defaults to {file_default!r}, "
            f"main.bicep to {bicep_default!r}"
        )


def test_app_exists_flag_comes_from_azd(infra: Infra) -> None:
    # azd sets SERVICE_<NAME>_RESOURCE_EXISTS once the service's resource exists.
    values = {str(entry["value"]) for entry in infra.parameters.values()}
    assert f"${{SERVICE_{SERVICE.upper()}_RESOURCE_EXISTS=false}}" in values


def test_secrets_are_secure_parameters_from_the_azd_environment(infra: Infra) -> None:
    main = infra.main
    secure = {name for name in main.params if "secure" in main.decorators(name)}
    assert len(secure) == 3, f"expected the three app secrets as @secure() params: {secure}"
    for name in secure:
        assert main.decorators(name).get("min_length", 0) >= 32, f"{name}: @minLength(32)"
        assert not main.has_default(name), f"{name}: a secret has no default"
        match = AZD_REFERENCE.match(str(infra.parameters[name]["value"]))
        assert match is not None, f"{name} must come from the azd environment"
        assert match["default"] is None, f"{name}: no default value in main.parameters.json"
    assert secure_env_names(infra) == generated_secrets(".sh") == generated_secrets(".ps1")


def secure_env_names(infra: Infra) -> set[str]:
    main = infra.main
    names = set()
    for name in main.params:
        if "secure" in main.decorators(name):
            match = AZD_REFERENCE.match(str(infra.parameters[name]["value"]))
            assert match is not None
            names.add(match["name"])
    return names


def test_no_output_exposes_a_secret(infra: Infra) -> None:
    for template in infra.templates.values():
        secure = {p for p in template.params if "secure" in template.decorators(p)}
        for name, output in template.outputs.items():
            text = json.dumps(output["value"])
            assert not re.search(r"KEY|SECRET|PASSWORD|CONNECTION", name.upper()), (
                f"{template.name}: output {name} looks like a secret"
            )
            assert "listKeys" not in text, f"{template.name}: output {name} lists keys"
            assert "ConnectionString" not in text, f"{template.name}: output {name}"
            for param in secure:
                assert not re.search(rf"\b{param}\b", text), (
                    f"{template.name}: output {name} uses the @secure() parameter {param}"
                )


# --- API versions ------------------------------------------------------------------------------


def test_api_versions_are_allowed(infra: Infra) -> None:
    used: set[tuple[str, str]] = set()
    problems = []
    for template in infra.templates.values():
        for resource in template.resources.values():
            used.add((resource.type, resource.api_version))
            allowed = API_VERSIONS.get(resource.type)
            if allowed is None:
                problems.append(f"{template.name}: {resource.symbol}: {resource.type} is new")
            elif resource.api_version not in allowed:
                problems.append(
                    f"{template.name}: {resource.symbol}: {resource.type}@"
                    f"{resource.api_version} is not one of {sorted(allowed)}"
                )
    assert not problems, "resource types or API versions outside the allow-list:\n" + "\n".join(
        problems
    )
    stale = {
        f"{type_}@{version}"
        for type_, versions in API_VERSIONS.items()
        for version in versions
        if (type_, version) not in used
    }
    assert not stale, f"allow-list entries no template uses (remove them): {sorted(stale)}"


def test_api_versions_are_not_previews() -> None:
    previews = [f"{t}@{v}" for t, vs in API_VERSIONS.items() for v in vs if "preview" in v]
    assert not previews, f"preview API versions: {previews}"


# --- resources ---------------------------------------------------------------------------------


def test_communication_services_has_an_identity(infra: Infra) -> None:
    template, acs = infra.resource(ACS)
    config = infra.evaluate(template, acs.config)
    assert config["location"] == "global"
    assert "SystemAssigned" in config.get("identity", {}).get("type", ""), (
        f"{template.name}: the ACS resource needs a managed identity"
    )
    assert config["properties"]["dataLocation"], "ACS needs a data location"


def test_ai_services_for_voice_live_is_keyless_with_a_custom_subdomain(infra: Infra) -> None:
    template, account = infra.resource(AI_SERVICES)
    config = infra.evaluate(template, account.config)
    assert config["kind"] == "AIServices"
    properties = config["properties"]
    subdomain = properties.get("customSubDomainName")
    assert isinstance(subdomain, str), "Entra ID tokens need a custom subdomain"
    assert subdomain, "Entra ID tokens need a custom subdomain"
    assert subdomain == config["name"]
    assert properties.get("disableLocalAuth") is True, "keys must be off: the app uses Entra ID"


def test_voice_live_endpoint_is_the_accounts_subdomain(infra: Infra) -> None:
    env = container_env(infra)
    template, account = infra.resource(AI_SERVICES)
    subdomain = infra.evaluate(template, account.config["properties"]["customSubDomainName"])
    endpoint = env["AZURE_VOICE_LIVE_ENDPOINT"]["value"]
    assert endpoint == f"https://{subdomain}.services.ai.azure.com", endpoint


def test_registry_is_pulled_from_by_identity(infra: Infra, app: tuple[Template, Resource]) -> None:
    template, registry = infra.resource(REGISTRY)
    assert infra.evaluate(template, registry.config)["properties"]["adminUserEnabled"] is False
    app_template, resource = app
    configuration = infra.evaluate(app_template, resource.config["properties"]["configuration"])
    (entry,) = configuration["registries"]
    assert set(entry) == {"server", "identity"}, f"pull by identity, no password: {entry}"
    assert entry["server"] == Unknown("registry.properties.loginServer")
    assert entry["identity"] == Unknown("identity.id"), "the app's user-assigned identity pulls"


def test_container_app_uses_the_user_assigned_identity(
    infra: Infra, app: tuple[Template, Resource]
) -> None:
    identity_template, uami = infra.resource(IDENTITY)
    assert f"{uami.symbol}.properties.principalId" == APP_PRINCIPAL, identity_template.name
    template, resource = app
    identity = infra.evaluate(template, resource.config["identity"])
    assert identity["type"] == "UserAssigned"
    assert list(identity["userAssignedIdentities"]) == ["${identity.id}"]
    env = container_env(infra)
    # DefaultAzureCredential picks a user-assigned identity by AZURE_CLIENT_ID.
    assert env["AZURE_CLIENT_ID"]["value"] == Unknown("identity.properties.clientId")


def test_container_app_is_tagged_for_azd(infra: Infra, app: tuple[Template, Resource]) -> None:
    template, resource = app
    tags = infra.evaluate(template, resource.config["tags"])
    assert tags.get("azd-service-name") == SERVICE
    assert SERVICE in azure_yaml()["services"]


def test_ingress_is_external_on_the_app_port(infra: Infra, app: tuple[Template, Resource]) -> None:
    template, resource = app
    ingress = infra.evaluate(template, resource.config["properties"]["configuration"]["ingress"])
    assert ingress["external"] is True
    assert ingress["targetPort"] == APP_PORT
    assert ingress.get("allowInsecure", False) is False
    assert ingress.get("transport", "auto") in {"auto", "http"}, "WebSocket upgrades need HTTP/1.1"


@pytest.mark.parametrize(
    ("probe_type", "path"),
    [("Liveness", LIVENESS_PATH), ("Readiness", READINESS_PATH), ("Startup", LIVENESS_PATH)],
)
def test_probe_targets_the_app_route(container: dict[str, Any], probe_type: str, path: str) -> None:
    probes = {probe["type"]: probe for probe in container["probes"]}
    assert probe_type in probes, f"no {probe_type} probe"
    probe = probes[probe_type]
    assert probe["httpGet"] == {"path": path, "port": APP_PORT}
    for setting, (low, high) in PROBE_LIMITS.items():
        if setting in probe:
            assert low <= probe[setting] <= high, f"{probe_type}.{setting}={probe[setting]}"


@pytest.mark.parametrize(
    ("literal", "used_by"),
    [
        (LIVENESS_PATH, "the liveness and startup probes, and the postdeploy hook"),
        (READINESS_PATH, "the readiness probe"),
        (WEBHOOK_PATH, "the Event Grid subscription"),
        (SECRET_HEADER, "the Event Grid subscription's delivery header"),
        (SECRET_QUERY, "the Event Grid subscription's endpoint query string"),
    ],
)
def test_the_app_serves_what_the_deployment_uses(literal: str, used_by: str) -> None:
    sources = "\n".join(p.read_text() for p in (ROOT / "callbridge").rglob("*.py"))
    assert f'"{literal}"' in sources, f"{used_by} use {literal}; the app does not mention it"


def test_container_environment(infra: Infra) -> None:
    env = container_env(infra)
    for name, value in PLAIN_ENV.items():
        assert name in env, f"{name} is not set"
        assert env[name].get("value") == value, f"{name}={env[name]}"
    public_url = env["CALLBRIDGE_PUBLIC_URL"]["value"]
    assert public_url.startswith(f"https://ca-{SERVICE}-"), public_url
    # From the environment's default domain, not from the app: no dependency cycle.
    assert public_url.endswith(".${managedEnvironment.properties.defaultDomain}"), public_url
    assert env["ACS_ENDPOINT"]["value"] == "https://${acs.properties.hostName}"
    assert env["ACS_RESOURCE_ID"]["value"] == Unknown("acs.properties.immutableResourceId")
    assert not KEY_ENV & set(env), f"keys in the app's environment: {KEY_ENV & set(env)}"
    assert "CALLBRIDGE_ROUTES" not in env
    # Optional settings are absent, not empty, by default.
    assert "ACS_CALLER_ID" not in env
    assert "VOICE_LIVE_VOICE" not in env


def test_optional_environment_is_set_when_given(infra: Infra) -> None:
    env = container_env(infra.with_overrides(acsCallerId="+14255550100", voiceLiveVoice="marin"))
    assert env["ACS_CALLER_ID"]["value"] == "+14255550100"
    assert env["VOICE_LIVE_VOICE"]["value"] == "marin"


def deployed_voice(infra: Infra) -> tuple[str | None, Any]:
    """The app's VOICE_LIVE_VOICE (None when unset) and main.bicep's voice output."""
    entry = container_env(infra).get("VOICE_LIVE_VOICE")
    output = infra.evaluate(infra.main, infra.main.outputs[VOICE_OUTPUT]["value"])
    return (None if entry is None else entry["value"]), output


def in_region(infra: Infra, region: str, *, account_only: bool = False, **params: Any) -> Infra:
    """Deployed with the AI Services account in ``region``: through the environment's region, or
    through aiServicesLocation with the environment's region on the other side of the HD-voice
    line, so that only the account's region can decide."""
    if not account_only:
        return infra.with_overrides(location=region, **params)
    hd = region.replace(" ", "").lower() in HD_VOICE_REGIONS
    elsewhere = NON_HD_REGIONS[0] if hd else DEPLOY_REGION
    return infra.with_overrides(location=elsewhere, aiServicesLocation=region, **params)


def test_hd_voice_rule_uses_the_documented_regions_and_voices(infra: Infra) -> None:
    variables = infra.main.variables
    regions = infra.evaluate(infra.main, variables["hdVoiceRegions"]["value"])
    assert sorted(regions) == sorted(HD_VOICE_REGIONS), regions
    assert infra.evaluate(infra.main, variables["appDefaultVoice"]["value"]) == DEFAULT_VOICE, (
        "main.bicep must know the app's default voice to tell whether it is an HD voice"
    )
    assert "DragonHD" in DEFAULT_VOICE, "the app's default is no longer an HD voice: revisit"
    assert infra.evaluate(infra.main, variables["standardVoice"]["value"]) == STANDARD_VOICE
    assert DEPLOY_REGION in HD_VOICE_REGIONS
    assert not HD_VOICE_REGIONS & set(NON_HD_REGIONS)


@pytest.mark.parametrize("account_only", [False, True], ids=["location", "ai-services-location"])
@pytest.mark.parametrize("region", sorted(HD_VOICE_REGIONS))
def test_default_hd_voice_where_hd_voices_work(
    infra: Infra, region: str, account_only: bool
) -> None:
    deployed = in_region(infra, region, account_only=account_only)
    assert deployed_voice(deployed) == (None, DEFAULT_VOICE)
    for voice in (DEFAULT_VOICE, OTHER_HD_VOICE, STANDARD_VOICE, "marin"):
        configured = in_region(infra, region, account_only=account_only, voiceLiveVoice=voice)
        assert deployed_voice(configured) == (voice, voice)


@pytest.mark.parametrize("account_only", [False, True], ids=["location", "ai-services-location"])
@pytest.mark.parametrize("region", NON_HD_REGIONS)
def test_default_voice_falls_back_to_standard_outside_hd_regions(
    infra: Infra, region: str, account_only: bool
) -> None:
    deployed = in_region(infra, region, account_only=account_only)
    assert deployed_voice(deployed) == (STANDARD_VOICE, STANDARD_VOICE)
    # A voice that is not an HD voice is kept as it is.
    for voice in (STANDARD_VOICE, "en-GB-SoniaNeural", "marin"):
        configured = in_region(infra, region, account_only=account_only, voiceLiveVoice=voice)
        assert deployed_voice(configured) == (voice, voice)


@pytest.mark.parametrize("account_only", [False, True], ids=["location", "ai-services-location"])
@pytest.mark.parametrize("voice", [DEFAULT_VOICE, OTHER_HD_VOICE, "en-us-ava:dragonhdlatestneural"])
@pytest.mark.parametrize("region", NON_HD_REGIONS)
def test_configured_hd_voice_outside_hd_regions_fails_the_deployment(
    infra: Infra, region: str, voice: str, account_only: bool
) -> None:
    deployed = in_region(infra, region, account_only=account_only, voiceLiveVoice=voice)
    with pytest.raises(DeploymentFailedError) as failure:
        container_env(deployed)
    message = str(failure.value)
    assert f"VOICE_LIVE_VOICE={voice} is an HD voice" in message
    assert f"not offered in {region}," in message
    assert STANDARD_VOICE in message
    assert "AZURE_AI_SERVICES_LOCATION" in message
    with pytest.raises(DeploymentFailedError):
        deployed.evaluate(deployed.main, deployed.main.outputs[VOICE_OUTPUT]["value"])


@pytest.mark.parametrize("spelling", ["East US 2", "EastUS2", "EASTUS2"])
def test_hd_voice_regions_match_however_the_region_is_spelt(infra: Infra, spelling: str) -> None:
    deployed = in_region(infra, spelling, account_only=True)
    assert deployed_voice(deployed) == (None, DEFAULT_VOICE)


def test_secrets_reach_the_app_by_secret_reference(
    infra: Infra, app: tuple[Template, Resource]
) -> None:
    env = container_env(infra)
    template, resource = app
    raw_secrets = resource.config["properties"]["configuration"]["secrets"]
    secrets = {entry["name"]: entry for entry in raw_secrets}
    for name in SECRET_ENV:
        entry = env.get(name)
        assert entry is not None, f"{name} is not set"
        assert set(entry) == {"name", "secretRef"}, f"{name} must use a secretRef: {entry}"
        assert entry["secretRef"] in secrets, f"{name}: no secret {entry['secretRef']!r}"
    connection_secret = secrets.pop("appinsights-connection-string")
    for name, secret in secrets.items():
        value = secret["value"]
        assert isinstance(value, BicepElement), f"secret {name} must come from a parameter"
        assert value in template.params, f"secret {name} must come from a parameter"
        assert "secure" in template.decorators(value), f"{value} must be @secure()"
        assert template.decorators(value).get("min_length", 0) >= 32, f"{value}: @minLength(32)"
    connection = infra.evaluate(template, connection_secret["value"])
    assert connection == Unknown("appInsights.properties.ConnectionString")
    assert template.resources["appInsights"].type == APP_INSIGHTS


def test_scale_rule_and_min_replicas(
    infra: Infra, app: tuple[Template, Resource], container: dict[str, Any]
) -> None:
    template, resource = app
    scale = infra.evaluate(template, resource.config["properties"]["template"]["scale"])
    assert scale["minReplicas"] >= 1, "a cold start is too slow to answer an IncomingCall"
    assert scale["maxReplicas"] >= scale["minReplicas"]
    http_rules = [rule for rule in scale["rules"] if "http" in rule]
    assert len(http_rules) == 1, f"expected one HTTP concurrency rule: {scale['rules']}"
    concurrent = int(http_rules[0]["http"]["metadata"]["concurrentRequests"])
    max_calls = int(PLAIN_ENV["CALLBRIDGE_MAX_CALLS"])
    assert 1 <= concurrent < max_calls, "scale out before replicas refuse calls"
    # The rule follows the per-replica call limit, and stays valid at its lowest value.
    for calls in (1, 7, 200):
        scaled = infra.with_overrides(maxCallsPerReplica=calls)
        rule = scaled.evaluate(template, resource.config["properties"]["template"]["scale"])
        value = int(rule["rules"][0]["http"]["metadata"]["concurrentRequests"])
        assert 1 <= value <= calls
        assert container_env(scaled)["CALLBRIDGE_MAX_CALLS"]["value"] == str(calls)


def test_scale_rule_choice_is_documented(app: tuple[Template, Resource]) -> None:
    text = app[0].path.read_text()
    assert re.search(r"//.*Scale rule", text), "explain the scale rule in a Bicep comment"


def test_termination_grace_covers_the_drain_budget(
    infra: Infra, app: tuple[Template, Resource]
) -> None:
    template, resource = app
    main = infra.main
    assert main.params["drainSeconds"]["default"] == APP_DRAIN_DEFAULT_S
    limits = main.decorators("drainSeconds")
    for drain in (limits["min_value"], APP_DRAIN_DEFAULT_S, limits["max_value"]):
        deployed = infra.with_overrides(drainSeconds=drain)
        grace = deployed.evaluate(
            template, resource.config["properties"]["template"]["terminationGracePeriodSeconds"]
        )
        assert isinstance(grace, int), f"terminationGracePeriodSeconds={grace}"
        assert grace >= drain + DRAIN_MARGIN_S, f"grace {grace}s < drain {drain}s + margin"
        assert grace <= MAX_TERMINATION_GRACE_S, f"grace {grace}s exceeds Container Apps' limit"
        # The app drains for exactly the budget the grace period was computed from.
        assert container_env(deployed)["CALLBRIDGE_DRAIN_S"]["value"] == str(drain)


def test_logs_and_telemetry(infra: Infra) -> None:
    template, workspace = infra.resource(WORKSPACE)
    insights_template, insights = infra.resource(APP_INSIGHTS)
    insights_config = infra.evaluate(insights_template, insights.config)
    assert insights_config["kind"] == "web"
    workspace_id = insights_config["properties"]["WorkspaceResourceId"]
    assert workspace_id == Unknown(f"{workspace.symbol}.id"), "App Insights is workspace-based"
    env_template, environment = infra.resource(MANAGED_ENVIRONMENT)
    logs = infra.evaluate(env_template, environment.config["properties"]["appLogsConfiguration"])
    assert logs["destination"] == "log-analytics"
    assert template is insights_template


def test_role_assignments_use_known_built_in_roles(infra: Infra) -> None:
    found = set()
    for template, assignment in infra.resources(ROLE_ASSIGNMENT):
        where = f"{template.name}: {assignment.symbol}"
        properties = assignment.config["properties"]
        definition = properties["roleDefinitionId"]
        function = definition.get("function", {}) if isinstance(definition, dict) else {}
        assert function.get("type") == "subscription_resource_id", (
            f"{where}: use subscriptionResourceId('Microsoft.Authorization/roleDefinitions', id)"
        )
        parameters = function["parameters"]
        assert parameters["resource_type"] == "Microsoft.Authorization/roleDefinitions"
        role = infra.evaluate(template, parameters["resource_name_1"])
        assert isinstance(role, str), f"{where}: role id {role} must be a literal GUID"
        assert GUID.match(role), f"{where}: {role!r} is not a role definition GUID"
        assert role in BUILT_IN_ROLES, f"{where}: {role} is not a known built-in role"
        assert properties["principalType"] == "ServicePrincipal", (
            f"{where}: principalType avoids replication-delay failures for new identities"
        )
        name = assignment.config["name"]
        assert isinstance(name, dict), f"{where}: name the assignment with guid(...)"
        assert name.get("function", {}).get("type") == "guid", f"{where}: name with guid(...)"
        scope = assignment.config.get("scope")
        assert isinstance(scope, BicepElement), f"{where}: scope it to one resource"
        scope_type = template.resources[str(scope)].type
        principal = infra.evaluate(template, properties["principalId"])
        if assignment.has_condition:
            assert infra.evaluate(template, assignment.condition) is False, (
                f"{where}: optional role assignments are off by default"
            )
            enabled = infra.with_overrides(grantAcsAiServicesAccess=True)
            principal = enabled.evaluate(template, properties["principalId"])
            assert principal == Unknown(ACS_PRINCIPAL), f"{where}: {principal}"
            continue
        assert principal == Unknown(APP_PRINCIPAL), f"{where}: granted to {principal}"
        found.add((scope_type, role))
    missing = {(t, BUILT_IN_ROLES[r]) for t, r in APP_ROLES - found}
    extra = {(t, BUILT_IN_ROLES[r]) for t, r in found - APP_ROLES}
    assert not missing, f"the app's identity lacks roles: {sorted(missing)}"
    assert not extra, f"the app's identity has unexpected roles: {sorted(extra)}"


def test_app_identity_holds_the_roles_voice_live_asks_for(infra: Infra) -> None:
    on_account = []
    for template, assignment in infra.resources(ROLE_ASSIGNMENT):
        properties = assignment.config["properties"]
        parameters = properties["roleDefinitionId"]["function"]["parameters"]
        role = infra.evaluate(template, parameters["resource_name_1"])
        assert role != COGNITIVE_SERVICES_OPENAI_USER, (
            f"{template.name}: {assignment.symbol}: Cognitive Services OpenAI User does not cover "
            "Voice Live; grant Cognitive Services User and Foundry User"
        )
        scope = template.resources[str(assignment.config["scope"])]
        principal = infra.evaluate(template, properties["principalId"])
        if scope.type == AI_SERVICES and principal == Unknown(APP_PRINCIPAL):
            assert not assignment.has_condition, f"{assignment.symbol} must always be granted"
            on_account.append(role)
    assert sorted(on_account) == sorted(VOICE_LIVE_ROLES), (
        "the app's identity must hold exactly Cognitive Services User and Foundry User on the "
        f"AI Services account: {[BUILT_IN_ROLES.get(r, r) for r in on_account]}"
    )


def test_event_grid_system_topic_is_on_acs(infra: Infra) -> None:
    template, topic = infra.resource(SYSTEM_TOPIC)
    config = infra.evaluate(template, topic.config)
    assert config["location"] == "global"
    assert config["properties"]["topicType"] == "Microsoft.Communication.CommunicationServices"
    source = config["properties"]["source"]
    assert isinstance(source, Unknown), f"source must be the ACS resource's id: {source}"
    symbol, _, prop = source.what.partition(".")
    assert prop == "id"
    assert template.resources[symbol].type == ACS


def test_outputs_needed_by_azd_exist(infra: Infra) -> None:
    missing = AZD_OUTPUTS - set(infra.main.outputs)
    assert not missing, f"main.bicep lacks outputs azd needs: {sorted(missing)}"


def test_app_url_output_is_the_public_url(infra: Infra) -> None:
    url = infra.evaluate(infra.main, infra.main.outputs["CALLBRIDGE_URL"]["value"])
    assert url == container_env(infra)["CALLBRIDGE_PUBLIC_URL"]["value"]


# --- azure.yaml --------------------------------------------------------------------------------


def load_simple_yaml(text: str, source: str) -> dict[str, Any]:
    """Block mappings of scalars: all azure.yaml uses. Anything else fails loudly."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        key, colon, value = stripped.partition(":")
        if not colon or key.startswith(("-", "[", "{")) or raw[:indent].count("\t"):
            pytest.fail(f"{source}:{number}: outside the YAML subset this test reads: {raw!r}")
        while indent <= stack[-1][0]:
            stack.pop()
        parent = stack[-1][1]
        value = value.strip()
        if not value:
            child: dict[str, Any] = {}
            parent[key] = child
            stack.append((indent, child))
        else:
            parent[key] = yaml_scalar(value)
    return root


def yaml_scalar(value: str) -> Any:
    if value[0] in "'\"":
        end = value.index(value[0], 1)
        return value[1:end]
    value = value.split(" #", 1)[0].strip()
    if value in {"true", "false"}:
        return value == "true"
    return value


@cache
def azure_yaml() -> dict[str, Any]:
    return load_simple_yaml(AZURE_YAML.read_text(), rel(AZURE_YAML))


def test_azure_yaml_names_the_service() -> None:
    project = azure_yaml()
    assert project["infra"]["provider"] == "bicep"
    assert (ROOT / project["infra"]["path"] / "main.bicep").is_file()
    service = project["services"][SERVICE]
    assert service["host"] == "containerapp"
    assert service["language"] == "python"
    assert (ROOT / service["project"] / service["docker"]["path"]).is_file()
    assert service["docker"]["remoteBuild"] is True, "build in the registry: no local Docker"


@pytest.mark.parametrize("event", ["preprovision", "postdeploy"])
@pytest.mark.parametrize("platform", sorted(SHELLS))
def test_azure_yaml_runs_the_hook_in_both_shells(event: str, platform: str) -> None:
    shell, suffix = SHELLS[platform]
    hook = azure_yaml()["hooks"][event][platform]
    assert hook["shell"] == shell
    assert hook["run"] == f"./infra/hooks/{event}{suffix}"
    assert (ROOT / hook["run"]).is_file()
    assert hook.get("continueOnError", False) is False, "a failed hook must stop azd"


# --- hooks: what they read ---------------------------------------------------------------------


def hook_reads(path: Path) -> dict[str, set[str]]:
    reads: dict[str, set[str]] = {"required": set(), "optional": set()}
    for reader, name in HOOK_READS[path.suffix].findall(path.read_text()):
        reads["required" if reader in REQUIRED_READERS else "optional"].add(name)
    return reads


def generated_secrets(suffix: str) -> set[str]:
    text = (HOOKS / f"preprovision{suffix}").read_text()
    if suffix == ".sh":
        match = re.search(r'^SECRETS="([^"]*)"', text, re.MULTILINE)
        assert match is not None
        return set(match[1].split())
    match = re.search(r"^\$Secrets = @\(([^)]*)\)", text, re.MULTILINE)
    assert match is not None
    return set(re.findall(r"'([A-Z_]+)'", match[1]))


@pytest.mark.parametrize("suffix", [".sh", ".ps1"])
def test_outputs_the_postdeploy_hook_reads_exist(infra: Infra, suffix: str) -> None:
    reads = hook_reads(HOOKS / f"postdeploy{suffix}")
    assert reads["required"], "the hook reads no outputs"
    missing = reads["required"] - set(infra.main.outputs)
    assert not missing, f"postdeploy{suffix} reads outputs main.bicep lacks: {sorted(missing)}"
    others = reads["optional"] - set(infra.main.outputs)
    unexplained = others - set(NON_OUTPUT_HOOK_VALUES)
    assert not unexplained, f"postdeploy{suffix} reads unexplained values: {sorted(unexplained)}"
    assert "CALLBRIDGE_WEBHOOK_SECRET" in generated_secrets(suffix)


def test_both_postdeploy_hooks_read_the_same_values() -> None:
    assert hook_reads(HOOKS / "postdeploy.sh") == hook_reads(HOOKS / "postdeploy.ps1")


# The same configuration, spelled as sh words or as PowerShell array items ('a', 'b').
@pytest.mark.parametrize("suffix", [".sh", ".ps1"])
@pytest.mark.parametrize(
    "pattern",
    [
        r"system-topic'?,? '?event-subscription",
        r"\bcreate\b",
        r"\bupdate\b",
        r"Microsoft\.Communication\.IncomingCall",
        r"x-callbridge-secret",
        r"static'?,? [\"']?\$\{?secret\b",
        r"--max-delivery-attempts",
        r"--event-ttl",
        r"(MAX_DELIVERY_ATTEMPTS|\$MaxDeliveryAttempts) ?= ?2\b",
        r"(EVENT_TTL_MINUTES|\$EventTtlMinutes) ?= ?1\b",
        r"/api/incomingCall",
        # The secret in the endpoint's query string, braced (in PowerShell "$endpoint?" would
        # read a variable named 'endpoint?').
        r"\$\{endpoint\}\?secret=\$\{secret\}",
        r"--endpoint'?,? [\"']?\$(delivery_url|deliveryUrl)\b",
        r"/healthz",
        r"data\.to\.PhoneNumber\.Value'?,? '?StringIn",
        r"--endpoint-type'?,? '?webhook",
    ],
)
def test_postdeploy_hook_configures_the_subscription(suffix: str, pattern: str) -> None:
    text = (HOOKS / f"postdeploy{suffix}").read_text()
    assert re.search(pattern, text), f"postdeploy{suffix}: nothing matches /{pattern}/"


@pytest.mark.parametrize("name", ["preprovision.ps1", "postdeploy.ps1"])
def test_powershell_hooks_never_print_a_secret(name: str) -> None:
    for number, line in enumerate((HOOKS / name).read_text().splitlines(), 1):
        if re.search(r"Write-(Host|Output|Information|Verbose)|Console\]::|Stop-Hook ", line):
            assert not re.search(r"\$\{?(secret|current|deliveryUrl)\b", line, re.IGNORECASE), (
                f"{name}:{number} may print a secret: {line.strip()}"
            )


# --- hooks: what the POSIX ones do (against stand-in az, azd and curl) -------------------------

STUB_AZ = r"""#!/bin/sh
{ for arg in "$@"; do printf '%s\n' "$arg"; done; echo '<<end>>'; } >> "$STUB_DIR/az.log"
case "$*" in
    "account show"*) exit 0 ;;
    *" event-subscription show "*)
        [ -n "${STUB_EXISTING:-}" ] || { echo "ResourceNotFound" >&2; exit 3; }
        printf '%s\n' "$STUB_EXISTING" ;;
    *" event-subscription "*) exit "${STUB_SUBSCRIBE_RC:-0}" ;;
esac
"""
STUB_AZD = r"""#!/bin/sh
[ "$1" = env ] || exit 2
case "$2" in
    get-value)
        [ -f "$STUB_DIR/env/$3" ] || { echo "ERROR: key '$3' not found" >&2; exit 1; }
        cat "$STUB_DIR/env/$3"; echo ;;
    set) echo "$3" >> "$STUB_DIR/azd-set.log"; printf '%s' "$4" > "$STUB_DIR/env/$3" ;;
    *) exit 2 ;;
esac
"""
STUB_CURL = r"""#!/bin/sh
for arg in "$@"; do last=$arg; done
echo "$last" >> "$STUB_DIR/curl.log"
calls=$(wc -l < "$STUB_DIR/curl.log")
[ "$calls" -gt "${STUB_CURL_FAILURES:-0}" ]
"""
SECRET = "5ec2e7" * 11
APP_URL = "https://ca-callbridge-abc.example.azurecontainerapps.io"
# What Event Grid is given, and what the hook may show of it.
DELIVERY_URL = f"{APP_URL}{WEBHOOK_PATH}?{SECRET_QUERY}={SECRET}"
SHOWN_ENDPOINT = f"{APP_URL}{WEBHOOK_PATH}"


@dataclass
class HookRun:
    returncode: int
    output: str
    az_calls: list[list[str]]
    curl_urls: list[str]
    azd_env: dict[str, str]
    azd_set: list[str]

    def subscription_calls(self) -> list[list[str]]:
        return [
            call
            for call in self.az_calls
            if call[:3] == ["eventgrid", "system-topic", "event-subscription"]
        ]

    def action(self) -> list[str]:
        return [call[3] for call in self.subscription_calls() if call[3] != "show"]

    def flag(self, call: list[str], name: str, count: int = 1) -> list[str]:
        assert name in call, f"{name} not passed: {call}"
        start = call.index(name) + 1
        return call[start : start + count]

    def assert_secret_hidden(self, secret: str = SECRET) -> None:
        """Neither the secret nor the endpoint's query string reaches stdout or stderr."""
        assert secret not in self.output
        assert f"?{SECRET_QUERY}=" not in self.output, self.output
        for call in self.subscription_calls():
            if call[3] != "show":
                assert self.flag(call, "--output") == ["none"], "az must not echo the endpoint"


class HookRunner:
    """Runs a POSIX hook with stand-in az, azd and curl first on PATH, and records their use."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.stubs = workdir / "bin"
        self.stubs.mkdir()
        (workdir / "env").mkdir()
        for name, text in {"az": STUB_AZ, "azd": STUB_AZD, "curl": STUB_CURL}.items():
            (self.stubs / name).write_text(text)
            (self.stubs / name).chmod(0o755)

    def __call__(
        self,
        script: str,
        *,
        env: Mapping[str, str] | None = None,
        azd_env: Mapping[str, str] | None = None,
        path: str | None = None,
    ) -> HookRun:
        for name, value in (azd_env or {}).items():
            (self.workdir / "env" / name).write_text(value)
        sh = shutil.which("sh")
        assert sh is not None, "no POSIX sh on PATH"
        result = subprocess.run(
            [sh, str(HOOKS / script)],
            env={
                "PATH": f"{self.stubs}:{os.defpath if path is None else path}",
                "STUB_DIR": str(self.workdir),
                "POSTDEPLOY_HEALTH_INTERVAL_S": "0",
                **(env or {}),
            },
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return HookRun(
            returncode=result.returncode,
            output=result.stdout + result.stderr,
            az_calls=[
                call.strip("\n").split("\n")
                for call in self._log("az.log").split("<<end>>\n")
                if call
            ],
            curl_urls=self._log("curl.log").split(),
            azd_env={p.name: p.read_text() for p in (self.workdir / "env").iterdir()},
            azd_set=self._log("azd-set.log").split(),
        )

    def _log(self, name: str) -> str:
        path = self.workdir / name
        return path.read_text() if path.exists() else ""


@pytest.fixture
def run_hook(tmp_path: Path) -> HookRunner:
    return HookRunner(tmp_path)


DEPLOYED = {
    "CALLBRIDGE_URL": APP_URL,
    "AZURE_RESOURCE_GROUP": "rg-dev",
    "EVENTGRID_SYSTEM_TOPIC_NAME": "evgt-acs-abc",
    "CALLBRIDGE_WEBHOOK_SECRET": SECRET,
}


def test_postdeploy_creates_the_subscription(run_hook: HookRunner) -> None:
    run = run_hook("postdeploy.sh", env=DEPLOYED)
    assert run.returncode == 0, run.output
    assert run.curl_urls == [f"{APP_URL}/healthz"]
    assert run.action() == ["create"]
    (create,) = [c for c in run.subscription_calls() if c[3] == "create"]
    assert run.flag(create, "--resource-group") == ["rg-dev"]
    assert run.flag(create, "--system-topic-name") == ["evgt-acs-abc"]
    assert run.flag(create, "--endpoint") == [DELIVERY_URL]
    assert run.flag(create, "--endpoint-type") == ["webhook"]
    assert run.flag(create, "--included-event-types") == ["Microsoft.Communication.IncomingCall"]
    assert run.flag(create, "--max-delivery-attempts") == ["2"]
    assert run.flag(create, "--event-ttl") == ["1"]
    assert run.flag(create, "--delivery-attribute-mapping", 4) == [
        "x-callbridge-secret",
        "static",
        SECRET,
        "true",
    ]
    assert "--advanced-filter" not in create
    assert "--subscription" not in create
    assert f"go to {SHOWN_ENDPOINT}\n" in run.output
    run.assert_secret_hidden()


@pytest.mark.parametrize(
    ("existing", "action"),
    [
        ("2,1,0", "update"),  # already right: update in place
        ("30,1440,0", "create"),  # retry policy differs: `update` cannot change it
        ("2,1,1", "create"),  # a number filter to remove: `update` cannot clear it
    ],
)
def test_postdeploy_updates_an_existing_subscription(
    run_hook: HookRunner, existing: str, action: str
) -> None:
    run = run_hook("postdeploy.sh", env={**DEPLOYED, "STUB_EXISTING": existing})
    assert run.returncode == 0, run.output
    assert run.action() == [action]
    (call,) = [c for c in run.subscription_calls() if c[3] == action]
    assert run.flag(call, "--endpoint") == [DELIVERY_URL]
    assert run.flag(call, "--delivery-attribute-mapping", 4) == [
        "x-callbridge-secret",
        "static",
        SECRET,
        "true",
    ]
    assert ("--max-delivery-attempts" in call) == (action == "create")
    assert f"go to {SHOWN_ENDPOINT}\n" in run.output
    run.assert_secret_hidden()


def test_postdeploy_filters_on_the_dialed_numbers(run_hook: HookRunner) -> None:
    numbers = "+14255550100, +14255550101"
    run = run_hook(
        "postdeploy.sh",
        env={**DEPLOYED, "CALLBRIDGE_PHONE_NUMBER": numbers, "AZURE_SUBSCRIPTION_ID": "sub-1"},
    )
    assert run.returncode == 0, run.output
    (create,) = [c for c in run.subscription_calls() if c[3] == "create"]
    assert run.flag(create, "--advanced-filter", 4) == [
        "data.to.PhoneNumber.Value",
        "StringIn",
        "+14255550100",
        "+14255550101",
    ]
    assert run.flag(create, "--subscription") == ["sub-1"]


@pytest.mark.parametrize("number", ["14255550100", "+1425555O100", "+0123456789", "+1*"])
def test_postdeploy_refuses_a_malformed_number(run_hook: HookRunner, number: str) -> None:
    run = run_hook("postdeploy.sh", env={**DEPLOYED, "CALLBRIDGE_PHONE_NUMBER": number})
    assert run.returncode != 0
    assert "CALLBRIDGE_PHONE_NUMBER" in run.output
    assert run.subscription_calls() == []


def test_postdeploy_waits_for_healthz(run_hook: HookRunner) -> None:
    run = run_hook("postdeploy.sh", env={**DEPLOYED, "STUB_CURL_FAILURES": "2"})
    assert run.returncode == 0, run.output
    assert run.curl_urls == [f"{APP_URL}/healthz"] * 3
    assert run.action() == ["create"]


@pytest.mark.parametrize(("timeout_s", "attempts"), [("0", 1), ("3", 4)])
def test_postdeploy_gives_up_when_the_app_never_answers(
    run_hook: HookRunner, timeout_s: str, attempts: int
) -> None:
    # Polling every 0 s still counts 1 s per attempt, so the wait is bounded.
    env = {**DEPLOYED, "STUB_CURL_FAILURES": "1000", "POSTDEPLOY_HEALTH_TIMEOUT_S": timeout_s}
    run = run_hook("postdeploy.sh", env=env)
    assert run.returncode != 0
    assert "/healthz did not answer" in run.output
    assert len(run.curl_urls) == attempts
    assert run.subscription_calls() == []
    run.assert_secret_hidden()


def test_postdeploy_fails_loudly_when_subscribing_fails(run_hook: HookRunner) -> None:
    run = run_hook("postdeploy.sh", env={**DEPLOYED, "STUB_SUBSCRIBE_RC": "1"})
    assert run.returncode != 0
    assert run.action() == ["create"]
    assert "azd hooks run postdeploy" in run.output
    assert f"Event Grid must reach {SHOWN_ENDPOINT})" in run.output
    run.assert_secret_hidden()


def test_postdeploy_reads_the_azd_environment_when_run_by_hand(run_hook: HookRunner) -> None:
    run = run_hook("postdeploy.sh", azd_env=DEPLOYED)
    assert run.returncode == 0, run.output
    assert run.action() == ["create"]


@pytest.mark.parametrize(
    "missing", ["CALLBRIDGE_URL", "AZURE_RESOURCE_GROUP", "EVENTGRID_SYSTEM_TOPIC_NAME"]
)
def test_postdeploy_needs_the_provisioned_outputs(run_hook: HookRunner, missing: str) -> None:
    env = {k: v for k, v in DEPLOYED.items() if k != missing}
    run = run_hook("postdeploy.sh", env=env)
    assert run.returncode != 0
    assert f"{missing} is not set" in run.output
    assert run.subscription_calls() == []


def test_postdeploy_needs_the_webhook_secret(run_hook: HookRunner) -> None:
    env = {**DEPLOYED, "CALLBRIDGE_WEBHOOK_SECRET": "short"}
    run = run_hook("postdeploy.sh", env=env)
    assert run.returncode != 0
    assert "CALLBRIDGE_WEBHOOK_SECRET" in run.output
    assert run.subscription_calls() == []


# The hooks put the secret in the URL unencoded: generated ones are hex, and one set by hand is
# refused unless it keeps to URL-unreserved characters.
@pytest.mark.parametrize(
    ("secret", "accepted"),
    [
        ("Ab0-_.~" * 5, True),
        ("5ec2e7" * 5 + "&x=1", False),
        ("5ec2e7" * 5 + "+/=", False),
        ("5ec2e7" * 5 + "%41", False),
        ("5ec2e7" * 5 + "#frag", False),
        ("5ec2e7" * 5 + "\u00e9t\u00e9", False),
    ],
)
def test_postdeploy_puts_only_a_url_safe_secret_in_the_endpoint(
    run_hook: HookRunner, secret: str, accepted: bool
) -> None:
    run = run_hook("postdeploy.sh", env={**DEPLOYED, "CALLBRIDGE_WEBHOOK_SECRET": secret})
    run.assert_secret_hidden(secret)
    if accepted:
        assert run.returncode == 0, run.output
        (create,) = [c for c in run.subscription_calls() if c[3] == "create"]
        assert run.flag(create, "--endpoint") == [f"{SHOWN_ENDPOINT}?{SECRET_QUERY}={secret}"]
    else:
        assert run.returncode != 0
        assert "CALLBRIDGE_WEBHOOK_SECRET may only use" in run.output
        assert run.subscription_calls() == []


def test_preprovision_generates_each_secret_once(run_hook: HookRunner) -> None:
    first = run_hook("preprovision.sh")
    assert first.returncode == 0, first.output
    secrets = generated_secrets(".sh")
    assert set(first.azd_env) == secrets
    values = list(first.azd_env.values())
    assert len(set(values)) == len(values), "each secret is drawn separately"
    for value in values:
        assert re.fullmatch(r"[0-9a-f]{64}", value), "256 random bits, hex"
        assert value not in first.output
    second = run_hook("preprovision.sh")
    assert second.returncode == 0, second.output
    assert second.azd_env == first.azd_env, "a second run must not rotate secrets"
    assert sorted(second.azd_set) == sorted(secrets), "only the first run sets values"


def test_preprovision_works_without_openssl(run_hook: HookRunner, tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("od", "tr", "cat", "printf", "wc"):
        found = shutil.which(tool)
        if found:
            (tools / tool).symlink_to(found)
    run = run_hook("preprovision.sh", path=str(tools))
    assert run.returncode == 0, run.output
    for value in run.azd_env.values():
        assert re.fullmatch(r"[0-9a-f]{64}", value)


def test_preprovision_refuses_a_short_secret(run_hook: HookRunner) -> None:
    run = run_hook("preprovision.sh", azd_env={"CALLBRIDGE_API_KEY": "too-short"})
    assert run.returncode != 0
    assert "CALLBRIDGE_API_KEY is shorter than 32" in run.output
    assert "too-short" not in run.output
