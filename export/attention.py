"""What static int8 leaves fp32 in attention: every MatMul whose two inputs are both activations (q.k^T and
probabilities.v) and the Softmax reading one of them; a MatMul with a weight stays int8.

Leaving out such a MatMul alone changes nothing that runs: its int8 neighbours put DQ on its inputs and (for a
quantized Softmax) Q on its output, and onnxruntime's QDQ transformer fuses DQ -> MatMul -> Q into QLinearMatMul
all the same (the SiLU story of export/silu.py again). Leaving out the Softmax as well removes the Q/DQ on the
scores and on the probabilities, which uint8 holds worst (scores are exponentiated; probabilities sit mostly near
0 in [0, max]): onnxruntime then runs q.k^T as MatMulIntegerToFloat (int8 q and k from their int8 projections,
fp32 out) and Softmax and probabilities.v in fp32. On the seeded diffusers AutoencoderKL's decoder that was
faster at batch 1 and 8 and raised PSNR (docs/results.md, "AutoencoderKL int8 below 30 dB").

A graph without attention (the conv, MLP and GroupNorm/SiLU VAEs) has no such MatMul: its int8 graph is unchanged.
"""

import onnx

# how the settings records (manifest quality, search report) name what this module decides
ATTENTION_FP32 = "attention: MatMul of two activations, Softmax between two"


def activation_matmuls(model: onnx.ModelProto) -> list[str]:
    """Names of the MatMul nodes of model neither of whose inputs is an initializer or a Constant node's output,
    in graph order."""
    constants = {i.name for i in model.graph.initializer} | {s.values.name for s in model.graph.sparse_initializer}
    constants |= {out for n in model.graph.node if n.op_type == "Constant" for out in n.output}
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and not any(name in constants for name in n.input)]


def attention_fp32_nodes(model: onnx.ModelProto) -> list[str]:
    """activation_matmuls of model and each Softmax between two of them (reading one's output, read by another),
    in graph order."""
    names = set(activation_matmuls(model))
    matmuls = [n for n in model.graph.node if n.name in names]
    produced, read = {n.output[0] for n in matmuls}, {i for n in matmuls for i in n.input}
    names |= {n.name for n in model.graph.node if n.op_type == "Softmax" and n.input[0] in produced and n.output[0] in read}
    return [n.name for n in model.graph.node if n.name in names]
