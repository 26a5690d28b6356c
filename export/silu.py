"""Which Sigmoids static int8 leaves fp32: an output head's, never the one inside a SiLU.

torch exports SiLU as x * sigmoid(x): a Sigmoid and a Mul reading the same x. Quantized with Q/DQ around both,
onnxruntime's CPU QDQ transformer runs them as QLinearSigmoid (a 256-entry lookup table) and QLinearMul
(com.microsoft), so the activation stays uint8 from GroupNorm to the next Conv. That form is int8's: on the
GroupNorm/SiLU decoders it was the fastest of three at batch 1 and 8, within 0.02 dB of the others' PSNR
(docs/results.md, "SiLU in int8"). Excluding the Sigmoid alone changed nothing (its neighbours put the same Q/DQ
around it, and onnxruntime fused them into the same QLinearSigmoid: byte-identical graphs); excluding both nodes
left a DQ per reader, which stops onnxruntime's QuickGelu fusion, and ran slowest; a com.microsoft QuickGelu
written into the graph ran fp32 between DQ and Q, slower at batch 8.

Any other Sigmoid is left out of quantization, which keeps it fp32 where no int8 node reads it: an output head's
Bernoulli means, where an int8 sigmoid would round probabilities below 1/510 to 0 and only the BCE's probability
floor would bound the loss (export/variants.py). One that an int8 node reads (a gate, g * sigmoid(y)) gets its Q
from that reader, and onnxruntime runs it as QLinearSigmoid all the same; none of the exported families has one.
"""

import onnx

# how the settings records (manifest quality, search report) name what this module decides
HEAD_SIGMOID = "Sigmoid outside x * sigmoid(x)"
SILU_INT8 = "int8: QLinearSigmoid + QLinearMul"


def silu_pairs(model: onnx.ModelProto) -> list[tuple[str, str]]:
    """(Sigmoid node, Mul node) of every x * sigmoid(x) in model, in graph order of the Mul."""
    sigmoids = {n.output[0]: n for n in model.graph.node if n.op_type == "Sigmoid"}
    pairs = []
    for node in model.graph.node:
        if node.op_type != "Mul" or len(node.input) != 2:
            continue
        for k in (0, 1):
            sigmoid = sigmoids.get(node.input[k])
            if sigmoid is not None and sigmoid.input[0] == node.input[1 - k]:
                pairs.append((sigmoid.name, node.name))
                break
    return pairs


def head_sigmoids(model: onnx.ModelProto) -> list[str]:
    """Names of the Sigmoid nodes of model outside any x * sigmoid(x), or whose output the graph returns: the
    ones int8 leaves out of quantization."""
    in_silu = {sigmoid for sigmoid, _ in silu_pairs(model)}
    returned = {o.name for o in model.graph.output}
    return [n.name for n in model.graph.node
            if n.op_type == "Sigmoid" and (n.name not in in_silu or n.output[0] in returned)]
