"""Frozen dataclasses to and from JSON, checked against their type hints: how the model-dir contract
(runtime/contract/manifest.py) and the device profiles (runtime/device/profile.py) read untrusted JSON.

A value that does not fit its field's type raises ValueError naming the field's path (e.g.
`selection.decoder.8 must be a string`); a dataclass's own __post_init__ checks the rest.
"""

import dataclasses
import functools
import types
import typing
from dataclasses import field


def doc(text: str, omit_empty: bool = False, **kwargs):
    """A dataclass field carrying its description into the JSON Schema. omit_empty: leave the field out of the
    JSON when it is empty, so that files written before the field existed read and write back unchanged."""
    return field(metadata={"doc": text, "omit_empty": omit_empty}, **kwargs)


def _absent(value, f) -> bool:
    """Whether field f of a dataclass is left out of its JSON: an absent optional part, or an empty omit_empty one."""
    return (value is None and f.default is None) or (f.metadata.get("omit_empty", False) and not value)


def to_json(value):
    """A manifest (or part) as plain JSON values: tuples as lists, absent optional parts left out."""
    if dataclasses.is_dataclass(value):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not _absent(getattr(value, f.name), f)}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


@functools.lru_cache(maxsize=None)
def _type_hints(cls) -> dict:
    """typing.get_type_hints of a dataclass, once per class: uncached it was a large share of load()'s time,
    paid on every cold start, and of reading a device profile (one Timing per candidate; docs/results.md)."""
    return typing.get_type_hints(cls)


def _parse(hint, value, where: str):
    """value (from JSON) checked against the type hint and converted (lists to tuples, objects to dataclasses).
    Free-form `dict` fields are taken as they are: JSON nesting was already bounded by json.loads."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _parse(inner, value, where)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be an object" if where else "is not a JSON object")
        hints = _type_hints(hint)
        kwargs = {}
        for f in dataclasses.fields(hint):
            if f.name in value:
                kwargs[f.name] = _parse(hints[f.name], value[f.name], f"{where}.{f.name}".lstrip("."))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where or 'manifest'} lacks field {f.name!r}")
        try:
            return hint(**kwargs)
        except ValueError as err:
            raise ValueError(f"{where + ': ' if where else ''}{err}") from None
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be an object")
        if hint is dict:
            return value
        return {k: _parse(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{where} must be a list")
        if args[-1] is Ellipsis:
            return tuple(_parse(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"{where} must be a list of {len(args)} values, got {len(value)}")
        return tuple(_parse(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{where} must be a finite number, got {short_repr(value)}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {short_repr(value)}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string, got {short_repr(value)}")
        return value
    raise TypeError(f"manifest type {hint!r} has no parser")  # a bug in this module, not in the file


def short_repr(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse(cls, obj):
    """An instance of the manifest class cls (Manifest or one of its parts) from decoded JSON; ValueError
    naming the field on any problem."""
    return _parse(cls, obj, "")
