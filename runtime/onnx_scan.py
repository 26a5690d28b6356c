"""Refuse ONNX graphs that would make onnxruntime read files: tensors stored as external data.

A graph handed to onnxruntime as bytes resolves an external-data `location` against the process's current
folder, outside every hash in the manifest, so a model dir whose hashes all match could turn any file of the
user's into pixels. The model-dir format says graphs are self-contained; this walks the protobuf wire format
(without the onnx package, which the runtime must not import) through every place a tensor can sit --
initializers, sparse initializers, Constant and other node attributes, subgraphs of If/Loop/Scan, and
functions -- and refuses any tensor with `external_data` entries or `data_location = EXTERNAL`.

Field numbers are those of onnx/onnx.proto3.
"""

MAX_DEPTH = 32  # nested subgraphs; our graphs have none

# message kind -> {field number: kind of the sub-message held there}
MODEL, GRAPH, NODE, ATTRIBUTE, FUNCTION, TENSOR, SPARSE = range(7)
CHILDREN = {
    MODEL: {7: GRAPH, 25: FUNCTION},
    GRAPH: {1: NODE, 5: TENSOR, 15: SPARSE},
    NODE: {5: ATTRIBUTE},
    ATTRIBUTE: {5: TENSOR, 6: GRAPH, 10: TENSOR, 11: GRAPH, 22: SPARSE, 23: SPARSE},
    FUNCTION: {7: NODE},
    SPARSE: {1: TENSOR, 2: TENSOR},
    TENSOR: {},
}
TENSOR_EXTERNAL_DATA, TENSOR_DATA_LOCATION, EXTERNAL = 13, 14, 1
MALFORMED = "is not a valid ONNX graph (malformed protobuf)"


class GraphRefused(ValueError):
    """The bytes are not a self-contained ONNX graph."""


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise GraphRefused(MALFORMED)
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def check_self_contained(data: bytes) -> None:
    """GraphRefused unless no tensor anywhere in the ONNX model `data` refers to external data."""
    stack = [(MODEL, 0, len(data), 0)]  # (kind, start, end, depth)
    while stack:
        kind, pos, end, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise GraphRefused(f"nests subgraphs deeper than {MAX_DEPTH}")
        children = CHILDREN[kind]
        while pos < end:
            key, pos = _varint(data, pos, end)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, pos = _varint(data, pos, end)
                if kind == TENSOR and number == TENSOR_DATA_LOCATION and value == EXTERNAL:
                    raise GraphRefused("stores a tensor as external data (graphs must be self-contained files)")
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            elif wire == 2:
                length, pos = _varint(data, pos, end)
                if pos + length > end:
                    raise GraphRefused(MALFORMED)
                if kind == TENSOR and number == TENSOR_EXTERNAL_DATA:
                    raise GraphRefused("refers to external data (graphs must be self-contained files)")
                if number in children:
                    stack.append((children[number], pos, pos + length, depth + 1))
                pos += length
            else:  # groups (3, 4) are not used by ONNX; 6, 7 do not exist
                raise GraphRefused(MALFORMED)
        if pos != end:
            raise GraphRefused(MALFORMED)
