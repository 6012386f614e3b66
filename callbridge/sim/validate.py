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

This relies on private SDK internals (``Model``, ``_attr_to_rest_field``, ``_rest_name``,
``_format``, ``_get_discriminator``, ``__mapping__``). The project pins
``azure-ai-voicelive==1.3.1``; ``tests/test_validate.py`` compiles every SDK model so an SDK
upgrade that moves these internals fails loudly in the tests rather than silently here.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import enum
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from azure.ai.voicelive import _unions as sdk_unions
from azure.ai.voicelive import models as sdk_models
from azure.ai.voicelive._utils.model_base import Model
from azure.ai.voicelive.models import ClientEvent, ServerEvent

__all__ = [
    "describe_model_fields",
    "validate_client_event",
    "validate_server_event",
]

# The SDK writes forward references as "_models.X" / "_unions.X"; these are the modules
# those prefixes name inside azure.ai.voicelive.models._models.
_FORWARD_REF_NAMESPACES: Final[Mapping[str, types.ModuleType]] = {
    "_models": sdk_models,
    "_unions": sdk_unions,
}


# ---------------------------------------------------------------------------------------------
# Compiled type specs: each SDK annotation is compiled once into one of these small values.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _AnySpec:
    """Anything goes (``typing.Any``)."""


@dataclass(frozen=True, slots=True)
class _PrimitiveSpec:
    """A JSON scalar: ``bool``, ``int``, ``float`` or ``str`` (also open SDK enums)."""

    kind: type


@dataclass(frozen=True, slots=True)
class _Base64Spec:
    """A ``bytes`` field declared ``format="base64"``: a base64 string on the wire."""


@dataclass(frozen=True, slots=True)
class _UnixTimeSpec:
    """A ``datetime`` field declared ``format="unix-timestamp"``: seconds as a JSON number."""


@dataclass(frozen=True, slots=True)
class _LiteralSpec:
    values: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class _ListSpec:
    item: _Spec


@dataclass(frozen=True, slots=True)
class _DictSpec:
    value: _Spec


@dataclass(frozen=True, slots=True)
class _UnionSpec:
    members: tuple[_Spec, ...]
    nullable: bool


@dataclass(frozen=True, slots=True)
class _ModelSpec:
    model: type[Model]


_Spec: TypeAlias = (
    _AnySpec
    | _PrimitiveSpec
    | _Base64Spec
    | _UnixTimeSpec
    | _LiteralSpec
    | _ListSpec
    | _DictSpec
    | _UnionSpec
    | _ModelSpec
)


@dataclass(frozen=True, slots=True)
class _Field:
    rest_name: str
    spec: _Spec
    required: bool


_JSON_SCALARS: Final[Mapping[type, tuple[type, ...]]] = {
    bool: (bool,),
    int: (int,),
    float: (int, float),
    str: (str,),
}


def _resolve_forward_ref(annotation: object) -> object:
    """Turn ``ForwardRef('_models.X')`` or the string ``'_models.X'`` into the SDK object."""
    if isinstance(annotation, typing.ForwardRef):
        annotation = annotation.__forward_arg__
    if not isinstance(annotation, str):
        return annotation
    namespace, _, name = annotation.rpartition(".")
    module = _FORWARD_REF_NAMESPACES.get(namespace)
    if module is None or not hasattr(module, name):
        raise TypeError(f"cannot resolve SDK forward reference {annotation!r}")
    return getattr(module, name)


def _compile(annotation: object, wire_format: str | None = None) -> _Spec:
    """Compile one SDK type annotation (as found on a model class) into a ``_Spec``."""
    annotation = _resolve_forward_ref(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return _AnySpec()
    if origin is typing.Union or origin is types.UnionType:
        nullable = type(None) in args
        compiled = (_compile(arg, wire_format) for arg in args if arg is not type(None))
        # dict.fromkeys de-duplicates (str | OpenAIVoiceName is just str) and keeps order.
        members = tuple(dict.fromkeys(compiled))
        if len(members) == 1 and not nullable:
            return members[0]
        return _UnionSpec(members, nullable)
    if origin is typing.Literal:
        return _LiteralSpec(tuple(a.value if isinstance(a, enum.Enum) else a for a in args))
    if origin is list:
        return _ListSpec(_compile(args[0]) if args else _AnySpec())
    if origin is dict:
        return _DictSpec(_compile(args[1]) if len(args) == 2 else _AnySpec())
    if not isinstance(annotation, type):
        raise TypeError(f"unsupported SDK annotation {annotation!r}")
    if issubclass(annotation, enum.Enum):
        # SDK enums are "open": the service may send values the SDK does not list yet.
        return _PrimitiveSpec(str)
    if issubclass(annotation, Model):
        return _ModelSpec(annotation)
    if annotation is bytes:
        if wire_format != "base64":
            raise TypeError(f"bytes field with unsupported wire format {wire_format!r}")
        return _Base64Spec()
    if issubclass(annotation, datetime.datetime):
        if wire_format != "unix-timestamp":
            raise TypeError(f"datetime field with unsupported wire format {wire_format!r}")
        return _UnixTimeSpec()
    if annotation in _JSON_SCALARS:
        return _PrimitiveSpec(annotation)
    raise TypeError(f"unsupported SDK annotation {annotation!r}")


def _is_optional(annotation: object) -> bool:
    annotation = _resolve_forward_ref(annotation)
    origin = typing.get_origin(annotation)
    is_union = origin is typing.Union or origin is types.UnionType
    return is_union and type(None) in typing.get_args(annotation)


@functools.cache
def _fields_of(model: type[Model]) -> Mapping[str, _Field]:
    """The wire fields of an SDK model class, keyed by JSON name (computed once per class)."""
    # Model.__new__ fills the class-level _attr_to_rest_field table on first use.
    model.__new__(model)
    annotations: dict[str, object] = {}
    for klass in reversed(model.__mro__):
        annotations.update(getattr(klass, "__annotations__", {}))
    # Private SDK table, declared on instances only, hence the narrow ignore.
    rest_fields = model._attr_to_rest_field  # type: ignore[misc]
    fields: dict[str, _Field] = {}
    for attr, rest_field in rest_fields.items():
        annotation = annotations.get(attr, Any)
        rest_name: str = rest_field._rest_name
        spec = _compile(annotation, rest_field._format)
        fields[rest_name] = _Field(rest_name, spec, required=not _is_optional(annotation))
    return fields


def describe_model_fields(model: type[Model]) -> Mapping[str, tuple[str, bool]]:
    """``{json_name: (spec description, required)}`` for an SDK model; for tests and docs."""
    return {name: (_describe(f.spec), f.required) for name, f in _fields_of(model).items()}


# ---------------------------------------------------------------------------------------------
# Checking values against specs.
# ---------------------------------------------------------------------------------------------


class _Checker:
    """Collects violations for one event; ``path`` strings are JSON-ish (``a.b[0].c``)."""

    def __init__(self, *, allow_unknown_fields: bool) -> None:
        self.allow_unknown_fields = allow_unknown_fields
        self.violations: list[str] = []

    def fail(self, path: str, problem: str) -> None:
        self.violations.append(f"{path}: {problem}" if path else problem)

    def check(self, spec: _Spec, value: object, path: str) -> None:
        match spec:
            case _AnySpec():
                return
            case _PrimitiveSpec(kind=kind):
                self._check_scalar(kind, value, path)
            case _Base64Spec():
                self._check_base64(value, path)
            case _UnixTimeSpec():
                if not _is_number(value):
                    self.fail(path, f"expected unix timestamp (number), got {_json_type(value)}")
            case _LiteralSpec(values=values):
                if value not in values or isinstance(value, bool) != any(
                    isinstance(v, bool) for v in values
                ):
                    self.fail(path, f"{_short(value)} is not one of {list(values)}")
            case _ListSpec(item=item):
                self._check_list(item, value, path)
            case _DictSpec(value=value_spec):
                self._check_dict(value_spec, value, path)
            case _UnionSpec():
                self._check_union(spec, value, path)
            case _ModelSpec(model=model):
                self.check_model(model, value, path)

    def check_model(self, model: type[Model], value: object, path: str) -> None:
        if not isinstance(value, Mapping):
            self.fail(path, f"expected object ({model.__name__}), got {_json_type(value)}")
            return
        resolved = _resolve_subclass(model, value)
        if resolved.unknown_discriminator is not None:
            key, found = resolved.unknown_discriminator
            self.fail(_join(path, key), f"unknown {model.__name__} {key} {_short(found)}")
            return
        fields = _fields_of(resolved.model)
        for name, field in fields.items():
            field_path = _join(path, name)
            if name not in value:
                if field.required:
                    self.fail(field_path, "required field missing")
                continue
            field_value = value[name]
            if field_value is None:
                if field.required:
                    self.fail(field_path, "required field is null")
                continue
            self.check(field.spec, field_value, field_path)
        if not self.allow_unknown_fields:
            for name in value:
                if name not in fields:
                    self.fail(
                        _join(path, str(name)), f"unknown field for {resolved.model.__name__}"
                    )

    def _check_scalar(self, kind: type, value: object, path: str) -> None:
        # bool is a subclass of int in Python but a distinct JSON type: reject it explicitly.
        accepted = _JSON_SCALARS[kind]
        if not isinstance(value, accepted) or (kind is not bool and isinstance(value, bool)):
            self.fail(path, f"expected {kind.__name__}, got {_json_type(value)}")

    def _check_base64(self, value: object, path: str) -> None:
        if not isinstance(value, str):
            self.fail(path, f"expected base64 string, got {_json_type(value)}")
            return
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            self.fail(path, "invalid base64")

    def _check_list(self, item: _Spec, value: object, path: str) -> None:
        if not isinstance(value, list):
            self.fail(path, f"expected list, got {_json_type(value)}")
            return
        for index, element in enumerate(value):
            self.check(item, element, f"{path}[{index}]")

    def _check_dict(self, value_spec: _Spec, value: object, path: str) -> None:
        if not isinstance(value, Mapping):
            self.fail(path, f"expected object, got {_json_type(value)}")
            return
        for key, element in value.items():
            if not isinstance(key, str):
                self.fail(path, f"object key {key!r} is not a string")
                continue
            self.check(value_spec, element, _join(path, key))

    def _check_union(self, spec: _UnionSpec, value: object, path: str) -> None:
        if value is None:
            if not spec.nullable:
                self.fail(path, "must not be null")
            return
        if len(spec.members) == 1:
            self.check(spec.members[0], value, path)
            return
        attempts: list[tuple[_Spec, list[str]]] = []
        for member in spec.members:
            trial = _Checker(allow_unknown_fields=self.allow_unknown_fields)
            trial.check(member, value, path)
            if not trial.violations:
                return
            attempts.append((member, trial.violations))
        # When exactly one member has the right JSON shape (say, the only model member for an
        # object), or exactly one model member accepts the object's discriminator, its own
        # violations say far more than "matches no member".
        same_shape = [(m, errors) for m, errors in attempts if _shape_matches(m, value)]
        if len(same_shape) > 1:
            same_shape = [(m, e) for m, e in same_shape if _tag_accepted(m, e, path)]
        if len(same_shape) == 1:
            self.violations.extend(same_shape[0][1])
            return
        options = " | ".join(_describe(member) for member in spec.members)
        self.fail(path, f"{_short(value)} matches none of {options}")


@dataclass(frozen=True, slots=True)
class _Resolution:
    model: type[Model]
    unknown_discriminator: tuple[str, object] | None = None


def _resolve_subclass(model: type[Model], data: Mapping[str, Any]) -> _Resolution:
    """Follow discriminators to the concrete SDK class, as ``Model._deserialize`` does.

    Mirrors the SDK's own dispatch (including multi-level ones such as ``type`` then ``role``
    for message items) without building a model instance.
    """
    used: list[str] = []
    while True:
        mapping: Mapping[str, type[Model]] | None = getattr(model, "__mapping__", None)
        discriminator = model._get_discriminator(used)
        if mapping is None or discriminator is None:
            return _Resolution(model)
        key: str = discriminator._rest_name
        used.append(key)
        found = data.get(key)
        if not isinstance(found, str) or found not in mapping:
            # A leaf class lists its own discriminator too; only an abstract base is unresolved.
            if mapping and model not in mapping.values():
                return _Resolution(model, (key, found))
            return _Resolution(model)
        subclass = mapping[found]
        if subclass is model or not issubclass(subclass, model):
            # Either already concrete, or a sibling class: the Literal check reports the latter.
            return _Resolution(model)
        model = subclass


# ---------------------------------------------------------------------------------------------
# Small helpers.
# ---------------------------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_type(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "bool"
        case int():
            return "int"
        case float():
            return "float"
        case str():
            return "str"
        case list():
            return "list"
        case Mapping():
            return "object"
    return type(value).__name__


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shape_matches(spec: _Spec, value: object) -> bool:
    match spec:
        case _ModelSpec() | _DictSpec():
            return isinstance(value, Mapping)
        case _ListSpec():
            return isinstance(value, list)
        case _:
            return False


def _tag_accepted(spec: _Spec, violations: list[str], path: str) -> bool:
    """False when ``violations`` concern the model's tag: its discriminator or a constant field.

    SDK unions mix discriminated bases (``AzureVoice``) with classes whose ``type`` is just a
    ``Literal`` field (``OpenAIVoice``); either kind of tag says which member was meant.
    """
    if not isinstance(spec, _ModelSpec):
        return True
    tags = [name for name, field in _fields_of(spec.model).items() if _is_tag(field.spec)]
    discriminator = spec.model._get_discriminator([])
    if discriminator is not None:
        tags.append(discriminator._rest_name)
    prefixes = tuple(f"{_join(path, tag)}:" for tag in tags)
    return not any(violation.startswith(prefixes) for violation in violations)


def _is_tag(spec: _Spec) -> bool:
    return isinstance(spec, _LiteralSpec) and len(spec.values) == 1


def _describe(spec: _Spec) -> str:
    match spec:
        case _AnySpec():
            return "any"
        case _PrimitiveSpec(kind=kind):
            return kind.__name__
        case _Base64Spec():
            return "base64"
        case _UnixTimeSpec():
            return "unix-timestamp"
        case _LiteralSpec(values=values):
            return " | ".join(repr(v) for v in values)
        case _ListSpec(item=item):
            return f"list[{_describe(item)}]"
        case _DictSpec(value=value):
            return f"dict[str, {_describe(value)}]"
        case _UnionSpec(members=members, nullable=nullable):
            text = " | ".join(_describe(m) for m in members)
            return f"{text} | null" if nullable else text
        case _ModelSpec(model=model):
            return model.__name__


# ---------------------------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------------------------


def _validate_event(base: type[Model], event: object, *, allow_unknown_fields: bool) -> list[str]:
    if not isinstance(event, Mapping):
        return [f"<event>: expected a JSON object, got {_json_type(event)}"]
    event_type = event.get("type")
    if not isinstance(event_type, str):
        return [f"<event>: type: expected str, got {_json_type(event_type)}"]
    resolved = _resolve_subclass(base, event)
    if resolved.model is base:
        return [f"{event_type}: unknown {base.__name__} type"]
    checker = _Checker(allow_unknown_fields=allow_unknown_fields)
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
