#!/usr/bin/env python3
"""Generate the ~2 GB directory of mixed *benign* model files for the throughput part of
bench/formats_peers.sh.

    bench/.venv/bin/python bench/gen_mixed_dir.py [OUT_DIR] [--scale S]

Needs numpy, safetensors, onnx and gguf (requirements-formats-peers.txt; all in bench/.venv).
Writes into OUT_DIR (default: bench/out/mixed), with S = 1.0:

  model-0000{1,2,3}-of-00003.safetensors   3 x ~300 MB  (safetensors.numpy.save_file; 10
                                           float16/float32 tensors each, N(0, 0.02) values)
  model.onnx                               ~630 MB      (4 x 157 MB float32 raw_data
                                           initializers, a 4-step MatMul chain, opset 17,
                                           onnx.checker-valid, single file < 2 GB)
  llama-tiny-{f16,f32}.gguf                2 x ~250 MB  (gguf.GGUFWriter, arch llama, benign
                                           ChatML chat template, tokenizer metadata)

~2.03e9 bytes in all.  Deterministic (fixed seeds) and benign: any finding is a false
positive.  Each array is generated and written one file at a time (peak RSS ~3.3 GB for
the ONNX file, which protobuf serialises in memory).  A file is skipped when it already
exists with the expected size recorded in OUT_DIR.sizes.json (delete the dir to force).
"""

import argparse
import json
import os
import sys

import numpy as np

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def normal(rng, n, dtype):
    # N(0, 0.02) like freshly initialised weights; generated in float32 then cast.
    a = rng.standard_normal(n, dtype=np.float32)
    a *= 0.02
    return a.astype(dtype, copy=False)


def gen_safetensors(path, seed, target_bytes):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    tensors = {}
    per = target_bytes // 10
    for i in range(10):
        dt = np.float16 if i % 2 == 0 else np.float32
        cols = 4096
        rows = max(1, per // (cols * np.dtype(dt).itemsize))
        tensors[f"model.layers.{seed * 10 + i}.mlp.weight"] = normal(rng, rows * cols, dt).reshape(rows, cols)
    save_file(tensors, path, metadata={"format": "pt", "generator": "palisade bench/gen_mixed_dir.py"})


def gen_onnx(path, seed, init_bytes, n_init=4):
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    d = int((init_bytes / 4) ** 0.5)  # square float32 weights so the MatMuls chain
    inits, nodes = [], []
    prev = "X"
    for i in range(n_init):
        w = normal(rng, d * d, np.float32)
        t = TensorProto()
        t.name = f"W{i}"
        t.data_type = TensorProto.FLOAT
        t.dims.extend([d, d])
        t.raw_data = w.tobytes()
        del w
        inits.append(t)
        out = "Y" if i == n_init - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [prev, f"W{i}"], [out], name=f"matmul{i}"))
        prev = out
    graph = helper.make_graph(
        nodes, "mixed_bench_mlp",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, d])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, d])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="palisade-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)  # in-memory model < 2 GB, so the full check applies
    data = model.SerializeToString()
    del model, graph, inits
    with open(path, "wb") as f:
        f.write(data)


def gen_gguf(path, seed, target_bytes, dtype):
    import gguf

    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(path, "llama")
    n_layers = 8
    emb = 2048
    w.add_name("palisade-bench-tiny")
    w.add_context_length(2048)
    w.add_embedding_length(emb)
    w.add_block_count(n_layers)
    w.add_feed_forward_length(5632)
    w.add_head_count(16)
    w.add_head_count_kv(16)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(1 if dtype == np.float16 else 0)
    w.add_tokenizer_model("llama")
    toks = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"] + [f"tok{i}" for i in range(251)]
    w.add_token_list(toks)
    w.add_token_scores([0.0] * len(toks))
    w.add_token_types([1] * len(toks))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template(CHATML)
    itemsize = np.dtype(dtype).itemsize
    per = target_bytes // n_layers
    rows = max(1, per // (emb * itemsize))
    for i in range(n_layers):
        w.add_tensor(f"blk.{i}.ffn_up.weight", normal(rng, rows * emb, dtype).reshape(rows, emb))
    w.add_tensor("output_norm.weight", np.ones(emb, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default=os.path.join(here, "out", "mixed"))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every size by S")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    mb = lambda x: int(x * 1_000_000 * a.scale)  # noqa: E731

    jobs = []
    for k in range(3):
        jobs.append((f"model-0000{k + 1}-of-00003.safetensors",
                     lambda p, k=k: gen_safetensors(p, 100 + k, mb(300))))
    jobs.append(("model.onnx", lambda p: gen_onnx(p, 200, mb(157))))
    jobs.append(("llama-tiny-f16.gguf", lambda p: gen_gguf(p, 300, mb(250), np.float16)))
    jobs.append(("llama-tiny-f32.gguf", lambda p: gen_gguf(p, 301, mb(250), np.float32)))

    sizes_path = os.path.normpath(a.out) + ".sizes.json"  # outside the scanned dir
    try:
        with open(sizes_path) as f:
            sizes = json.load(f)
    except (OSError, ValueError):
        sizes = {}
    if sizes.get("_scale") != a.scale:
        sizes = {"_scale": a.scale}
    total = 0
    for name, fn in jobs:
        p = os.path.join(a.out, name)
        if os.path.isfile(p) and sizes.get(name) == os.path.getsize(p):
            print(f"kept      {name} {sizes[name]:>13,} bytes", file=sys.stderr)
        else:
            tmp = p + ".tmp"
            fn(tmp)
            os.replace(tmp, p)
            sizes[name] = os.path.getsize(p)
            print(f"generated {name} {sizes[name]:>13,} bytes", file=sys.stderr)
            with open(sizes_path, "w") as f:
                json.dump(sizes, f, indent=1)
        total += sizes[name]
    extra = set(os.listdir(a.out)) - {n for n, _ in jobs}
    if extra:
        sys.exit(f"unexpected files in {a.out}: {sorted(extra)} (remove them)")
    print(f"total {total:,} bytes ({total / 1e9:.3f} GB) in {len(jobs)} files", file=sys.stderr)


if __name__ == "__main__":
    main()
