"""Builds the ONNX graph of a BERT sentence encoder (all-MiniLM-L6-v2) from its model.safetensors
and config.json with onnx.helper: no PyTorch. The graph follows what torch.onnx.export writes for
Hugging Face's BertModel (MatMul + Add projections, [0, 0, heads, head_dim] reshapes, the
(1 - mask) * -10000 additive mask, erf GELU, LayerNormalization), so ONNX Runtime's graph
optimizations and its transformers optimizer recognize the usual patterns. Outputs:
last_hidden_state (batch, seq, hidden) and sentence_embedding (batch, hidden): masked mean pooling
then L2 normalization, as the model's modules.json says.

    python export_minilm.py MODEL_DIR OUT.onnx
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file


def build(model_dir: Path) -> onnx.ModelProto:
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("hidden_act", "gelu") != "gelu":
        raise SystemExit(f"export_minilm: hidden_act {config['hidden_act']!r} is not supported")
    weights = load_file(str(model_dir / "model.safetensors"))
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    head_dim = hidden // heads
    eps = config["layer_norm_eps"]

    nodes, inits = [], []

    def const(name, value, dtype=np.float32):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def weight(name, transpose=False):
        value = weights[name].astype(np.float32)
        return const(name, value.T.copy() if transpose else value)

    counter = [0]

    def node(op, inputs, **attrs):
        counter[0] += 1
        out = f"{op.lower()}_{counter[0]}"
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def linear(x, prefix):
        # PyTorch's Linear exports as MatMul by the transposed weight, then Add of the bias.
        return node("Add", [node("MatMul", [x, weight(prefix + ".weight", True)]), weight(prefix + ".bias")])

    def layer_norm(x, prefix):
        return node(
            "LayerNormalization",
            [x, weight(prefix + ".weight"), weight(prefix + ".bias")],
            axis=-1,
            epsilon=eps,
        )

    # Embeddings: word + token type + position, then LayerNorm.
    seq_len = node("Gather", [node("Shape", ["input_ids"]), const("one_index", 1, np.int64)], axis=0)
    positions = node(
        "Unsqueeze",
        [node("Range", [const("zero_i64", 0, np.int64), seq_len, const("one_i64", 1, np.int64)]),
         const("axes_0", [0], np.int64)],
    )
    words = node("Gather", [weight("embeddings.word_embeddings.weight"), "input_ids"], axis=0)
    types = node("Gather", [weight("embeddings.token_type_embeddings.weight"), "token_type_ids"], axis=0)
    pos = node("Gather", [weight("embeddings.position_embeddings.weight"), positions], axis=0)
    x = layer_norm(node("Add", [node("Add", [words, types]), pos]), "embeddings.LayerNorm")

    # The extended attention mask, as BertModel builds it: (1 - mask[:, None, None, :]) * -10000.
    mask4 = node(
        "Unsqueeze",
        [node("Unsqueeze", ["attention_mask", const("axes_1", [1], np.int64)]), const("axes_2", [2], np.int64)],
    )
    additive = node(
        "Mul",
        [node("Sub", [const("one_f", 1.0), node("Cast", [mask4], to=TensorProto.FLOAT)]), const("neg_10000", -10000.0)],
    )
    split_heads = const("split_heads", [0, 0, heads, head_dim], np.int64)
    merge_heads = const("merge_heads", [0, 0, hidden], np.int64)
    scale = const("sqrt_head_dim", np.sqrt(head_dim))
    sqrt2 = const("sqrt2", np.sqrt(2.0))
    one, half = const("gelu_one", 1.0), const("gelu_half", 0.5)

    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.query"), split_heads])], perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.key"), split_heads])], perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.value"), split_heads])], perm=[0, 2, 1, 3])
        scores = node("Add", [node("Div", [node("MatMul", [q, k]), scale]), additive])
        probs = node("Softmax", [scores], axis=-1)
        context = node("Reshape", [node("Transpose", [node("MatMul", [probs, v])], perm=[0, 2, 1, 3]), merge_heads])
        attended = layer_norm(node("Add", [linear(context, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm")
        inner = linear(attended, p + "intermediate.dense")
        gelu = node("Mul", [node("Mul", [inner, node("Add", [node("Erf", [node("Div", [inner, sqrt2])]), one])]), half])
        x = layer_norm(node("Add", [linear(gelu, p + "output.dense"), attended]), p + "output.LayerNorm")

    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="last_hidden_state"))
    # Mean over real tokens (ReduceL2 takes its axes as an attribute before opset 18), then L2 normalization (sentence-transformers' Pooling + Normalize).
    keep = node("Cast", [node("Unsqueeze", ["attention_mask", const("axes_m1", [-1], np.int64)])], to=TensorProto.FLOAT)
    summed = node("ReduceSum", [node("Mul", ["last_hidden_state", keep]), const("axes_seq", [1], np.int64)], keepdims=0)
    count = node("Max", [node("ReduceSum", [keep, const("axes_seq2", [1], np.int64)], keepdims=0), const("min_count", 1e-9)])
    mean = node("Div", [summed, count])
    norm = node("Max", [node("ReduceL2", [mean], axes=[-1], keepdims=1), const("min_norm", 1e-12)])
    nodes.append(helper.make_node("Div", [mean, norm], ["sentence_embedding"], name="sentence_embedding"))

    ids = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
           for n in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [
        helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", hidden]),
        helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden]),
    ]
    graph = helper.make_graph(nodes, "bert_sentence_encoder", ids, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="sluice-benches-ort")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: export_minilm.py MODEL_DIR OUT.onnx")
    model = build(Path(sys.argv[1]))
    out = Path(sys.argv[2])
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {len(model.graph.node)} nodes)")


if __name__ == "__main__":
    main()
