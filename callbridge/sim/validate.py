"""Strict validation of Voice Live events against the azure-ai-voicelive models.

The SDK deserializes leniently: a wrong type comes back raw, a missing required field comes
back as ``None``, nothing raises. That makes it useless as a contract check, so this module
walks the SDK's own model metadata and checks a wire event exactly:

* the event ``type`` (and every nested discriminator) maps to a known SDK class;
* required fields are present and not ``null``;
* primitives have the exact JSON type (``true`` is not an ``int``; an ``int`` is a ``float``);
* ``Literal`` values, lists, string-keyed objects, nested models and unions;
* ``bytes`` fields hold valid base64, unix-timestamp fields hold numbers;
* SDK enums are open (the service may add values), so they are checked as strings;
* fields the SDK does not know are reported, unless ``allow_unknown_fields`` is set.

Violations come back as strings ``"<event type>: <field path>: <problem>"``.

Its parts: :mod:`callbridge.sim.model_specs` compiles the SDK metadata and
:mod:`callbridge.sim.model_checker` checks values against it; this module is the event-level
API on top of them.

This relies on private SDK internals (``Model``, ``_attr_to_rest_field``, ``_rest_name``,
``_format``, ``_get_discriminator``, ``__mapping__``). The project pins
``azure-ai-voicelive==1.3.1``; ``tests/test_validate.py`` compiles every SDK model so an SDK
upgrade that moves these internals fails loudly in the tests rather than silently here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azure.ai.voicelive._utils.model_base import Model
from azure.ai.voicelive.models import ClientEvent, ServerEvent

from callbridge.sim.model_checker import Checker, json_type
from callbridge.sim.model_specs import describe_model_fields, resolve_subclass

__all__ = [
    "describe_model_fields",
    "validate_client_event",
    "validate_server_event",
]


def _validate_event(base: type[Model], event: object, *, allow_unknown_fields: bool) -> list[str]:
    if not isinstance(event, Mapping):
        return [f"<event>: expected a JSON object, got {json_type(event)}"]
    event_type = event.get("type")
    if not isinstance(event_type, str):
        return [f"<event>: type: expected str, got {json_type(event_type)}"]
    resolved = resolve_subclass(base, event)
    if resolved.model is base:
        return [f"{event_type}: unknown {base.__name__} type"]
    checker = Checker(allow_unknown_fields=allow_unknown_fields)
    checker.check_model(resolved.model, event, "")
    return [f"{event_type}: {violation}" for violation in checker.violations]


def validate_server_event(
    event: Mapping[str, Any], *, allow_unknown_fields: bool = False
) -> list[str]:
    """Violations of a service→client event against the SDK models (``[]`` when valid)."""
    return _validate_event(ServerEvent, event, allow_unknown_fields=allow_unknown_fields)


def validate_client_event(
    event: Mapping[str, Any], *, allow_unknown_fields: bool = False
) -> list[str]:
    """Violations of a client→service event against the SDK models (``[]`` when valid)."""
    return _validate_event(ClientEvent, event, allow_unknown_fields=allow_unknown_fields)
