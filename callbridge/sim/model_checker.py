"""Checking JSON values against compiled SDK specs (see :mod:`callbridge.sim.model_specs`).

A ``Checker`` collects the violations of one value as ``"<field path>: <problem>"`` strings.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from azure.ai.voicelive._utils.model_base import Model

from callbridge.sim.model_specs import (
    JSON_SCALARS,
    AnySpec,
    Base64Spec,
    DictSpec,
    ListSpec,
    LiteralSpec,
    ModelSpec,
    PrimitiveSpec,
    Spec,
    UnionSpec,
    UnixTimeSpec,
    describe,
    fields_of,
    resolve_subclass,
)


class Checker:
    """Collects violations for one event; ``path`` strings are JSON-ish (``a.b[0].c``)."""

    def __init__(self, *, allow_unknown_fields: bool) -> None:
        self.allow_unknown_fields = allow_unknown_fields
        self.violations: list[str] = []

    def fail(self, path: str, problem: str) -> None:
        self.violations.append(f"{path}: {problem}" if path else problem)

    def check(self, spec: Spec, value: object, path: str) -> None:
        match spec:
            case AnySpec():
                return
            case PrimitiveSpec(kind=kind):
                self._check_scalar(kind, value, path)
            case Base64Spec():
                self._check_base64(value, path)
            case UnixTimeSpec():
                if not _is_number(value):
                    self.fail(path, f"expected unix timestamp (number), got {json_type(value)}")
            case LiteralSpec(values=values):
                if value not in values or isinstance(value, bool) != any(
                    isinstance(v, bool) for v in values
                ):
                    self.fail(path, f"{_short(value)} is not one of {list(values)}")
            case ListSpec(item=item):
                self._check_list(item, value, path)
            case DictSpec(value=value_spec):
                self._check_dict(value_spec, value, path)
            case UnionSpec():
                self._check_union(spec, value, path)
            case ModelSpec(model=model):
                self.check_model(model, value, path)

    def check_model(self, model: type[Model], value: object, path: str) -> None:
        if not isinstance(value, Mapping):
            self.fail(path, f"expected object ({model.__name__}), got {json_type(value)}")
            return
        resolved = resolve_subclass(model, value)
        if resolved.unknown_discriminator is not None:
            key, found = resolved.unknown_discriminator
            self.fail(_join(path, key), f"unknown {model.__name__} {key} {_short(found)}")
            return
        fields = fields_of(resolved.model)
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
        accepted = JSON_SCALARS[kind]
        if not isinstance(value, accepted) or (kind is not bool and isinstance(value, bool)):
            self.fail(path, f"expected {kind.__name__}, got {json_type(value)}")

    def _check_base64(self, value: object, path: str) -> None:
        if not isinstance(value, str):
            self.fail(path, f"expected base64 string, got {json_type(value)}")
            return
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            self.fail(path, "invalid base64")

    def _check_list(self, item: Spec, value: object, path: str) -> None:
        if not isinstance(value, list):
            self.fail(path, f"expected list, got {json_type(value)}")
            return
        for index, element in enumerate(value):
            self.check(item, element, f"{path}[{index}]")

    def _check_dict(self, value_spec: Spec, value: object, path: str) -> None:
        if not isinstance(value, Mapping):
            self.fail(path, f"expected object, got {json_type(value)}")
            return
        for key, element in value.items():
            if not isinstance(key, str):
                self.fail(path, f"object key {key!r} is not a string")
                continue
            self.check(value_spec, element, _join(path, key))

    def _check_union(self, spec: UnionSpec, value: object, path: str) -> None:
        if value is None:
            if not spec.nullable:
                self.fail(path, "must not be null")
            return
        if len(spec.members) == 1:
            self.check(spec.members[0], value, path)
            return
        attempts: list[tuple[Spec, list[str]]] = []
        for member in spec.members:
            trial = Checker(allow_unknown_fields=self.allow_unknown_fields)
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
        options = " | ".join(describe(member) for member in spec.members)
        self.fail(path, f"{_short(value)} matches none of {options}")


# ---------------------------------------------------------------------------------------------
# Small helpers.
# ---------------------------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_type(value: object) -> str:
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


def _shape_matches(spec: Spec, value: object) -> bool:
    match spec:
        case ModelSpec() | DictSpec():
            return isinstance(value, Mapping)
        case ListSpec():
            return isinstance(value, list)
        case _:
            return False


def _tag_accepted(spec: Spec, violations: list[str], path: str) -> bool:
    """False when ``violations`` concern the model's tag: its discriminator or a constant field.

    SDK unions mix discriminated bases (``AzureVoice``) with classes whose ``type`` is just a
    ``Literal`` field (``OpenAIVoice``); either kind of tag says which member was meant.
    """
    if not isinstance(spec, ModelSpec):
        return True
    tags = [name for name, field in fields_of(spec.model).items() if _is_tag(field.spec)]
    discriminator = spec.model._get_discriminator([])
    if discriminator is not None:
        tags.append(discriminator._rest_name)
    prefixes = tuple(f"{_join(path, tag)}:" for tag in tags)
    return not any(violation.startswith(prefixes) for violation in violations)


def _is_tag(spec: Spec) -> bool:
    return isinstance(spec, LiteralSpec) and len(spec.values) == 1
