#!/usr/bin/env python3
"""Hash-and-sign benchmark: palisade vs the reference `model-signing` on one ~4.3 GB model
directory (twelve 256 MiB shards, one 1 GiB file, small configs), in one run.

For each hashing mode (files/SHA-256 — both tools' default —, shards/SHA-256 with the
reference's 1 GB shard size, files/BLAKE3) both tools sign the same directory with the same
P-256 key (one untimed warm-up, then REPS alternating runs each), warm page cache; the script checks that both signatures name the
same root digest and the same resources (names and digests), and prints median wall time,
GB/s, max RSS and the speed ratio. Driven by bench/sign_peers.sh.
"""

import argparse
import base64
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

SHARDS = 12
SHARD_BYTES = 256 << 20
BIG_BYTES = 1 << 30


def make_dir(d: pathlib.Path):
    marker = d / ".complete"
    if marker.exists():
        return
    d.mkdir(parents=True, exist_ok=True)
    chunk = 8 << 20
    names = [f"model-{i + 1:05d}-of-{SHARDS:05d}.safetensors" for i in range(SHARDS)]
    for name, size in [(n, SHARD_BYTES) for n in names] + [("consolidated.bin", BIG_BYTES)]:
        with open(d / name, "wb") as f:
            left = size
            while left:
                n = min(chunk, left)
                f.write(os.urandom(n))
                left -= n
    (d / "config.json").write_text('{"model_type": "bench", "architectures": ["BenchModel"]}\n')
    (d / "tokenizer_config.json").write_text('{"model_max_length": 4096}\n')
    marker.write_text("")


def warm(d: pathlib.Path):
    for p in sorted(d.iterdir()):
        if p.is_file():
            with open(p, "rb") as f:
                while f.read(16 << 20):
                    pass


def run(cmd):
    """Wall seconds and max RSS (KiB) of one command."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode(errors="replace")
    if status != 0:
        sys.exit(f"failed ({status}): {' '.join(map(str, cmd))}\n{err}")
    return wall, usage.ru_maxrss


def statement(sig: pathlib.Path):
    b = json.loads(sig.read_text())
    return json.loads(base64.b64decode(b["dsseEnvelope"]["payload"]))


REF_SNIPPET = """
import sys, model_signing
mode, model, key, out = sys.argv[1:5]
h = model_signing.hashing.Config().set_ignored_paths(paths=[".complete"])
if mode == "shards":
    h = h.use_shard_serialization()
elif mode == "blake3":
    h = h.use_file_serialization(hashing_algorithm="blake3")
model_signing.signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(h).sign(model, out)
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--palisade", required=True)
    ap.add_argument("--python", required=True, help="python of the venv with model-signing")
    ap.add_argument("--dir", default="bench/out/sign4g")
    ap.add_argument("--out", default="bench/out/sign")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--modes", default="files,shards,blake3")
    a = ap.parse_args()
    d, out = pathlib.Path(a.dir), pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    make_dir(d)
    total = sum(p.stat().st_size for p in d.iterdir() if p.is_file() and p.name != ".complete")
    key = out / "bench.key"
    if not key.exists():
        subprocess.run([a.palisade, "keygen", "--output", str(out / "bench")], check=True, stdout=subprocess.DEVNULL)
    warm(d)
    rows = []
    for mode in a.modes.split(","):
        pal_args = {"files": [], "shards": ["--shard-size", "1000000000"], "blake3": ["--hash", "blake3"]}[mode]
        pal_sig, ref_sig = out / f"palisade-{mode}.sig", out / f"reference-{mode}.sig"
        pal_cmd = [a.palisade, "sign", str(d), "--key", str(key), "--output", str(pal_sig), "-q",
                   "--ignore-paths", ".complete", *pal_args]
        ref_cmd = [a.python, "-c", REF_SNIPPET, mode, str(d), str(key), str(ref_sig)]
        times = {"palisade": [], "model-signing": []}
        rss = {"palisade": 0, "model-signing": 0}
        for tool_cmd in (pal_cmd, ref_cmd):  # one untimed warm-up run each
            run(tool_cmd)
        for _ in range(a.reps):
            for tool, cmd in [("palisade", pal_cmd), ("model-signing", ref_cmd)]:
                time.sleep(1)  # let the previous process's memory be reclaimed
                w, r = run(cmd)
                times[tool].append(w)
                rss[tool] = max(rss[tool], r)
        ps, rs = statement(pal_sig), statement(ref_sig)
        same_root = ps["subject"][0]["digest"] == rs["subject"][0]["digest"]
        key_of = lambda s: [(r["name"], r["algorithm"], r["digest"]) for r in s["predicate"]["resources"]]
        same_resources = key_of(ps) == key_of(rs)
        if not (same_root and same_resources):
            sys.exit(f"{mode}: digests differ between palisade and model-signing")
        pm, rm = statistics.median(times["palisade"]), statistics.median(times["model-signing"])
        print(mode, {k: [round(x, 2) for x in v] for k, v in times.items()}, flush=True)
        rows.append((mode, len(ps["predicate"]["resources"]), ps["subject"][0]["digest"]["sha256"][:16], pm, rm, rss["palisade"], rss["model-signing"]))
    lines = [
        f"input: {d} — {total / 1e9:.2f} GB in {SHARDS + 3} files ({SHARDS} x 256 MiB, 1 x 1 GiB, 2 small), warm page cache, one warm-up then {a.reps} alternating runs each, median",
        "",
        "| mode | resources | root digest (both) | palisade s | GB/s | RSS MiB | model-signing s | GB/s | RSS MiB | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, n, root, pm, rm, pr, rr in rows:
        lines.append(f"| {mode} | {n} | {root}… | {pm:.2f} | {total / pm / 1e9:.2f} | {pr / 1024:.0f} | {rm:.2f} | {total / rm / 1e9:.2f} | {rr / 1024:.0f} | {rm / pm:.2f}x |")
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
