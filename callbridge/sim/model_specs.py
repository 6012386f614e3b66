"""The azure-ai-voicelive models' wire metadata, compiled into small type specs.

Each SDK annotation is compiled once into a ``Spec`` value: a JSON scalar, base64 or unix-time
field, ``Literal``, list, string-keyed object, union or nested model. ``fields_of`` gives a
model's wire fields, ``resolve_subclass`` follows discriminators to the concrete class as the
SDK does, and ``describe`` writes a spec for humans. Checking values against specs is
:mod:`callbridge.sim.model_checker`'s job.

This relies on private SDK internals (``Model``, ``_attr_to_rest_field``, ``_rest_name``,
``_format``, ``_get_discriminator``, ``__mapping__``); see :mod:`callbridge.sim.validate`.
"""

from __future__ import annotations

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
class AnySpec:
    """Anything goes (``typing.Any``)."""


@dataclass(frozen=True, slots=True)
class PrimitiveSpec:
    """A JSON scalar: ``bool``, ``int``, ``float`` or ``str`` (also open SDK enums)."""

    kind: type


@dataclass(frozen=True, slots=True)
class Base64Spec:
    """A ``bytes`` field declared ``format="base64"``: a base64 string on the wire."""


@dataclass(frozen=True, slots=True)
class UnixTimeSpec:
    """A ``datetime`` field declared ``format="unix-timestamp"``: seconds as a JSON number."""


@dataclass(frozen=True, slots=True)
class LiteralSpec:
    values: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class ListSpec:
    item: Spec


@dataclass(frozen=True, slots=True)
class DictSpec:
    value: Spec


@dataclass(frozen=True, slots=True)
class UnionSpec:
    members: tuple[Spec, ...]
    nullable: bool


@dataclass(frozen=True, slots=True)
class ModelSpec:
    model: type[Model]


Spec: TypeAlias = (
    AnySpec
    | PrimitiveSpec
    | Base64Spec
    | UnixTimeSpec
    | LiteralSpec
    | ListSpec
    | DictSpec
    | UnionSpec
    | ModelSpec
)


@dataclass(frozen=True, slots=True)
class ModelField:
    rest_name: str
    spec: Spec
    required: bool


JSON_SCALARS: Final[Mapping[type, tuple[type, ...]]] = {
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


def _compile(annotation: object, wire_format: str | None = None) -> Spec:
    """Compile one SDK type annotation (as found on a model class) into a ``Spec``."""
    annotation = _resolve_forward_ref(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return AnySpec()
    if origin is typing.Union or origin is types.UnionType:
        nullable = type(None) in args
        compiled = (_compile(arg, wire_format) for arg in args if arg is not type(None))
        # dict.fromkeys de-duplicates (str | OpenAIVoiceName is just str) and keeps order.
        members = tuple(dict.fromkeys(compiled))
        if len(members) == 1 and not nullable:
            return members[0]
        return UnionSpec(members, nullable)
    if origin is typing.Literal:
        return LiteralSpec(tuple(a.value if isinstance(a, enum.Enum) else a for a in args))
    if origin is list:
        return ListSpec(_compile(args[0]) if args else AnySpec())
    if origin is dict:
        return DictSpec(_compile(args[1]) if len(args) == 2 else AnySpec())
    if not isinstance(annotation, type):
        raise TypeError(f"unsupported SDK annotation {annotation!r}")
    if issubclass(annotation, enum.Enum):
        # SDK enums are "open": the service may send values the SDK does not list yet.
        return PrimitiveSpec(str)
    if issubclass(annotation, Model):
        return ModelSpec(annotation)
    if annotation is bytes:
        if wire_format != "base64":
            raise TypeError(f"bytes field with unsupported wire format {wire_format!r}")
        return Base64Spec()
    if issubclass(annotation, datetime.datetime):
        if wire_format != "unix-timestamp":
            raise TypeError(f"datetime field with unsupported wire format {wire_format!r}")
        return UnixTimeSpec()
    if annotation in JSON_SCALARS:
        return PrimitiveSpec(annotation)
    raise TypeError(f"unsupported SDK annotation {annotation!r}")


def _is_optional(annotation: object) -> bool:
    annotation = _resolve_forward_ref(annotation)
    origin = typing.get_origin(annotation)
    is_union = origin is typing.Union or origin is types.UnionType
    return is_union and type(None) in typing.get_args(annotation)


@functools.cache
def fields_of(model: type[Model]) -> Mapping[str, ModelField]:
    """The wire fields of an SDK model class, keyed by JSON name (computed once per class)."""
    # Model.__new__ fills the class-level _attr_to_rest_field table on first use.
    model.__new__(model)
    annotations: dict[str, object] = {}
    for klass in reversed(model.__mro__):
        annotations.update(getattr(klass, "__annotations__", {}))
    # Private SDK table, declared on instances only, hence the narrow ignore.
    rest_fields = model._attr_to_rest_field  # type: ignore[misc]
    fields: dict[str, ModelField] = {}
    for attr, rest_field in rest_fields.items():
        annotation = annotations.get(attr, Any)
        rest_name: str = rest_field._rest_name
        spec = _compile(annotation, rest_field._format)
        fields[rest_name] = ModelField(rest_name, spec, required=not _is_optional(annotation))
    return fields


def describe_model_fields(model: type[Model]) -> Mapping[str, tuple[str, bool]]:
    """``{json_name: (spec description, required)}`` for an SDK model; for tests and docs."""
    return {name: (describe(f.spec), f.required) for name, f in fields_of(model).items()}


@dataclass(frozen=True, slots=True)
class Resolution:
    """The concrete class data resolves to, or the discriminator (key, value) it could not."""

    model: type[Model]
    unknown_discriminator: tuple[str, object] | None = None


def resolve_subclass(model: type[Model], data: Mapping[str, Any]) -> Resolution:
    """Follow discriminators to the concrete SDK class, as ``Model._deserialize`` does.

    Mirrors the SDK's own dispatch (including multi-level ones such as ``type`` then ``role``
    for message items) without building a model instance.
    """
    used: list[str] = []
    while True:
        mapping: Mapping[str, type[Model]] | None = getattr(model, "__mapping__", None)
        discriminator = model._get_discriminator(used)
        if mapping is None or discriminator is None:
            return Resolution(model)
        key: str = discriminator._rest_name
        used.append(key)
        found = data.get(key)
        if not isinstance(found, str) or found not in mapping:
            # A leaf class lists its own discriminator too; only an abstract base is unresolved.
            if mapping and model not in mapping.values():
                return Resolution(model, (key, found))
            return Resolution(model)
        subclass = mapping[found]
        if subclass is model or not issubclass(subclass, model):
            # Either already concrete, or a sibling class: the Literal check reports the latter.
            return Resolution(model)
        model = subclass


def describe(spec: Spec) -> str:
    """A spec as people write types, e.g. ``list[str] | null`` or ``AzureVoice``."""
    match spec:
        case AnySpec():
            return "any"
        case PrimitiveSpec(kind=kind):
            return kind.__name__
        case Base64Spec():
            return "base64"
        case UnixTimeSpec():
            return "unix-timestamp"
        case LiteralSpec(values=values):
            return " | ".join(repr(v) for v in values)
        case ListSpec(item=item):
            return f"list[{describe(item)}]"
        case DictSpec(value=value):
            return f"dict[str, {describe(value)}]"
        case UnionSpec(members=members, nullable=nullable):
            text = " | ".join(describe(m) for m in members)
            return f"{text} | null" if nullable else text
        case ModelSpec(model=model):
            return model.__name__
