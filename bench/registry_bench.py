#!/usr/bin/env python3
"""Registry benchmark: push and pull of a ~1 GB model through `palisade serve` (encrypted at
rest, digests verified both ways) and promotion latency. Driven by bench/registry_bench.sh.

Push = `palisade push` (hash locally, stream each file to PUT /api/v1/blobs/{digest}, where
the server encrypts and checks it, then create the version). Pull = `palisade pull` (the
server decrypts and verifies into a temporary file, streams it; the client re-hashes every
file and the root digest). Promotion latency = PUT /api/v1/models/{m}/aliases/{a} round
trips (each appends an audit event and signs a checkpoint), measured from Python.
"""

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request


def timed(cmd, env):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--palisade", required=True)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--promotions", type=int, default=200)
    a = ap.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="palisade-registry-bench-"))
    try:
        model = work / "model"
        model.mkdir()
        with open(model / "weights.bin", "wb") as f:
            for _ in range(a.size_mb):
                f.write(os.urandom(1 << 20))
        (model / "config.json").write_text('{"model_type": "bench"}\n')
        total = sum(p.stat().st_size for p in model.iterdir())
        home = work / "home"
        server = subprocess.Popen(
            [a.palisade, "serve", "--home", str(home), "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        token = None
        addr = None
        line = server.stdout.readline()
        if line.startswith("First start"):
            token = server.stdout.readline().strip().split("=", 1)[1]
        for line in server.stderr:
            if line.startswith("palisade registry listening on "):
                addr = line.split()[4]
                break
        env = dict(os.environ, PALISADE_SERVER=addr, PALISADE_TOKEN=token)
        push, pull = [], []
        for i in range(a.reps):
            # A fresh model name and different content each time, so nothing deduplicates.
            with open(model / "config.json", "w") as f:
                f.write('{"model_type": "bench", "rep": %d}\n' % i)
            with open(model / "weights.bin", "r+b") as f:
                f.write(os.urandom(64))
            push.append(timed([a.palisade, "push", str(model), "--name", f"bench{i}"], env))
            out = work / f"pulled{i}"
            pull.append(timed([a.palisade, "pull", f"bench{i}@1", "-o", str(out)], env))
            shutil.rmtree(out)
        lat = []
        for i in range(a.promotions):
            req = urllib.request.Request(
                f"{addr}/api/v1/models/bench0/aliases/production",
                data=json.dumps({"version": 1}).encode(),
                method="PUT",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            t = time.perf_counter()
            with urllib.request.urlopen(req) as r:
                r.read()
            lat.append((time.perf_counter() - t) * 1000)
        server.terminate()
        server.wait(timeout=30)
        lat.sort()
        pm, lm = statistics.median(push), statistics.median(pull)
        print(f"model: {total / 1e6:.0f} MB (random weights + config), {a.reps} runs each, median")
        print(f"push: {pm:.2f} s = {total / pm / 1e6:.0f} MB/s   (runs: {', '.join(f'{x:.2f}' for x in push)})")
        print(f"pull: {lm:.2f} s = {total / lm / 1e6:.0f} MB/s   (runs: {', '.join(f'{x:.2f}' for x in pull)})")
        print(f"promotion latency over {a.promotions} requests: p50 {lat[len(lat) // 2]:.2f} ms, p99 {lat[int(len(lat) * 0.99) - 1]:.2f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
