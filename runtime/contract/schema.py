"""JSON Schema of manifest.json, generated from the dataclasses in manifest.py.

    python -m edgevae.runtime.contract.schema > docs/model-dir.schema.json

The committed file is what other languages read; tests/runtime/test_manifest.py fails when it drifts from the classes.
The schema states types and required fields; the cross-field rules (fp32 present, selection naming listed
variants, plain file names, sha256 form) are in the descriptions and in docs/model-dir.md.
"""

import dataclasses
import json
import types
import typing

from .manifest import FORMAT, Manifest

_SCALARS = {str: {"type": "string"}, int: {"type": "integer"}, float: {"type": "number"}}


def _type_schema(hint, definitions: dict) -> dict:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return {"anyOf": [_type_schema(inner, definitions), {"type": "null"}]}
    if dataclasses.is_dataclass(hint):
        if hint.__name__ not in definitions:
            definitions[hint.__name__] = None  # reserve the name before recursing
            definitions[hint.__name__] = _class_schema(hint, definitions)
        return {"$ref": f"#/$defs/{hint.__name__}"}
    if hint is dict:
        return {"type": "object"}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1], definitions)}
    if origin is tuple:
        if args[-1] is Ellipsis:
            return {"type": "array", "items": _type_schema(args[0], definitions)}
        return {"type": "array", "prefixItems": [_type_schema(a, definitions) for a in args],
                "minItems": len(args), "maxItems": len(args)}
    return dict(_SCALARS[hint])


def _class_schema(cls, definitions: dict) -> dict:
    hints = typing.get_type_hints(cls)
    properties, required = {}, []
    for f in dataclasses.fields(cls):
        properties[f.name] = _type_schema(hints[f.name], definitions) | {"description": f.metadata.get("doc", "")}
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    return {"type": "object", "description": (cls.__doc__ or "").strip(), "properties": properties,
            "required": required}


def schema() -> dict:
    definitions = {}
    root = _class_schema(Manifest, definitions)
    root["properties"]["format"]["const"] = FORMAT
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "edgevae-model.schema.json",
            "title": "edgevae model dir manifest (manifest.json)"} | root | {"$defs": definitions}


def schema_text() -> str:
    return json.dumps(schema(), indent=2) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
