"""Refuse ONNX graphs that would make onnxruntime read files (tensors stored as external data) or that hold
control flow (nodes with subgraphs: Loop, Scan, If, ...) their model dir did not declare.

A graph handed to onnxruntime as bytes resolves an external-data `location` against the process's current
folder, outside every hash in the manifest, so a model dir whose hashes all match could turn any file of the
user's into pixels. The model-dir format says graphs are self-contained; this walks the protobuf wire format
(without the onnx package, which the runtime must not import) through every place a tensor can sit --
initializers, sparse initializers, Constant and other node attributes, subgraphs of If/Loop/Scan, and
functions -- and refuses any tensor with `external_data` entries or `data_location = EXTERNAL`.

A VAE is a straight chain of layers. A node with a subgraph can loop for as long as its graph says (a Loop of
1e12 iterations passes every hash), so such nodes are refused at load unless the manifest's `control_flow`
names their operator; the run deadline (runtime/inference/run_guard.py) still bounds those that are declared.

Field numbers are those of onnx/onnx.proto3.
"""

from .safe_files import escape

MAX_DEPTH = 32  # nested subgraphs; our graphs have none
NODE_OP_TYPE, NODE_ATTRIBUTE = 4, 5
ATTRIBUTE_GRAPHS = (6, 11)  # AttributeProto.g and .graphs

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


def _fields(data: bytes, pos: int, end: int):
    """The fields of the message at data[pos:end]: (number, wire type, value), where value is a varint's value
    or the (start, stop) of a length-delimited field (None for fixed-size ones)."""
    while pos < end:
        key, pos = _varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos, end)
        elif wire in (1, 5):
            value, pos = None, pos + (8 if wire == 1 else 4)
        elif wire == 2:
            length, pos = _varint(data, pos, end)
            value, pos = (pos, pos + length), pos + length
        else:  # groups (3, 4) are not used by ONNX; 6, 7 do not exist
            raise GraphRefused(MALFORMED)
        if pos > end:
            raise GraphRefused(MALFORMED)
        yield number, wire, value


def check_self_contained(data: bytes, control_flow=()) -> None:
    """GraphRefused unless no tensor anywhere in the ONNX model `data` refers to external data and every node
    holding a subgraph is of an operator named in control_flow."""
    stack = [(MODEL, 0, len(data), 0)]  # (kind, start, end, depth)
    undeclared = None  # the first node with an undeclared subgraph: reported once external data was ruled out
    while stack:
        kind, pos, end, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise GraphRefused(f"nests subgraphs deeper than {MAX_DEPTH}")
        children = CHILDREN[kind]
        op_type, subgraph = "", False  # of this message, when it is a node
        for number, wire, value in _fields(data, pos, end):
            if kind == TENSOR and number == TENSOR_DATA_LOCATION and wire == 0 and value == EXTERNAL:
                raise GraphRefused("stores a tensor as external data (graphs must be self-contained files)")
            if wire != 2:
                continue
            if kind == TENSOR and number == TENSOR_EXTERNAL_DATA:
                raise GraphRefused("refers to external data (graphs must be self-contained files)")
            if kind == NODE and number == NODE_OP_TYPE:
                op_type = data[value[0]:value[1]].decode("utf-8", "replace")
            if kind == NODE and number == NODE_ATTRIBUTE:
                subgraph = subgraph or any(n in ATTRIBUTE_GRAPHS and w == 2 for n, w, _ in _fields(data, *value))
            if number in children:
                stack.append((children[number], *value, depth + 1))
        if subgraph and op_type not in control_flow and undeclared is None:
            undeclared = op_type
    if undeclared is not None:
        raise GraphRefused(f"has a {escape(undeclared)} node with a subgraph: control flow that can run without "
                           "bound, which the manifest's control_flow does not declare")
