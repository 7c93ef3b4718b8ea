#!/usr/bin/env python3
"""Turn bench/out/results.tsv (written by pickle_peers.sh) into markdown tables.

    python3 bench/summarize.py --out bench/out --fixtures crates/palisade-scan/tests/fixtures/pickle

Prints the summary on stdout and writes the per-file corpus matrix to OUT/corpus_matrix.md.
The exit-code -> outcome mapping below is the "flagged" criterion documented in
pickle_peers.sh.
"""

import argparse
import collections
import csv
import json
import os
import statistics

TOOLS = ["palisade", "picklescan", "modelscan", "fickling", "modelaudit"]

# rc -> outcome for each tool's CLI (see pickle_peers.sh header for the sources).
RC_MAP = {
    "palisade": {0: "clean", 1: "flagged", 2: "error"},
    "picklescan": {0: "clean", 1: "flagged", 2: "error"},
    "modelscan": {0: "clean", 1: "flagged", 2: "error", 3: "unsupported", 4: "error"},
    "fickling": {0: "clean", 1: "flagged", 2: "error"},
    "modelaudit": {0: "clean", 1: "flagged", 2: "error"},
}


def raw_base(out, row):
    rid = f"{row['tool']}__{row['input']}__{row['run']}".replace("/", "_").replace(" ", "_")
    return os.path.join(out, "raw", rid)


def outcome(out, row):
    tool, rc = row["tool"], row["rc"]
    if rc == "MARKER":
        return "MARKER"
    rc = int(rc)
    if rc == 124:
        return "timeout"
    if rc >= 128:
        return f"crash(sig {rc - 128})"
    o = RC_MAP.get(tool, {}).get(rc, f"error(rc={rc})")
    if tool == "fickling" and o in ("error", "flagged"):
        # fickling's CLI has no catch-all handler: an uncaught exception exits 1 like
        # "unsafe" does, so a traceback on stderr means it crashed, not that it flagged.
        try:
            with open(raw_base(out, row) + ".err", errors="replace") as f:
                err = f.read()
        except OSError:
            err = ""
        if "Traceback (most recent call last)" in err:
            last = err.strip().splitlines()[-1].split(":")[0]
            return f"crash({last})"
        if o == "error" and "failed to parse" in err:
            return "error(unparsed)"
    if o == "error" and reported_dangerous(out, row):
        # Exit 2 (scan error) wins over exit 1 in picklescan/modelscan/modelaudit, but the
        # report still names a dangerous finding: count it as flagged, marked with '*'.
        return "flagged*"
    if o == "error":
        return f"error(rc={rc})"
    return o


def reported_dangerous(out, row):
    """Did a peer's own report name a dangerous finding despite exiting with 'error'?"""
    base = raw_base(out, row)
    tool = row["tool"]
    try:
        if tool == "picklescan":
            with open(base + ".out", errors="replace") as f:
                for line in f:
                    if line.startswith("Infected files:"):
                        return int(line.split(":")[1]) > 0
        elif tool == "modelscan":
            with open(base + ".json") as f:
                return bool(json.load(f).get("issues"))
        elif tool == "modelaudit":
            with open(base + ".json") as f:
                return any(str(i.get("severity", "")).lower() in ("warning", "critical")
                           for i in json.load(f).get("issues", []))
    except (OSError, ValueError):
        pass
    return False


def palisade_detail(out, row):
    try:
        with open(raw_base(out, row) + ".json") as f:
            d = json.load(f)
    except (OSError, ValueError):
        return "no JSON report"
    parts = []
    for fe in d.get("files", []):
        codes = ",".join(f"{x['code']}:{x['severity']}" for x in fe.get("findings", []))
        extra = ""
        for k in ("error", "reason", "incomplete_reason", "message"):
            if fe.get(k):
                extra = f" {k}={str(fe[k])[:120]}"
        parts.append(f"state={fe.get('state')} formats={'+'.join(fe.get('formats', []))}"
                     f"{' findings=' + codes if codes else ''}{extra}")
    return "; ".join(parts) or "no files in report"


def fmt_s(x):
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    out = args.out

    with open(os.path.join(out, "results.tsv")) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    markers = [r for r in rows if r["rc"] == "MARKER"]
    rows = [r for r in rows if r["rc"] != "MARKER"]
    tools = [t for t in TOOLS if any(r["tool"] == t for r in rows)]

    p = print
    try:
        with open(os.path.join(out, "env.txt")) as f:
            p("```")
            p(f.read().rstrip())
            p("```")
            p()
    except OSError:
        pass

    # ---- (a)/(b) ------------------------------------------------------------------------
    labels = {"a": "(a) 15 MB list pickle", "b": "(b) 1 GiB torch zip (warm cache)",
              "b_cold": "(b) 1 GiB torch zip (cold cache)"}
    p("| tool | input | seconds (median; min-max) | peak RSS MiB (max) | flagged? |")
    p("|---|---|---:|---:|---|")
    med = {}
    for tool in tools:
        for inp in ("a", "b", "b_cold"):
            rs = [r for r in rows if r["tool"] == tool and r["input"] == inp]
            if not rs:
                continue
            secs = [float(r["seconds"]) for r in rs if r["seconds"] != "NA"]
            rss = [int(r["maxrss_kb"]) for r in rs if r["maxrss_kb"] != "NA"]
            outs = sorted({outcome(out, r) for r in rs})
            m = statistics.median(secs) if secs else float("nan")
            med[(tool, inp)] = m
            rng = f" ({fmt_s(min(secs))}-{fmt_s(max(secs))}, n={len(secs)})" if len(secs) > 1 else ""
            fl = {"flagged": "YES (false positive)", "flagged*": "YES* (false positive)",
                  "clean": "no"}.get(outs[0], outs[0]) \
                if len(outs) == 1 else "/".join(outs)
            p(f"| {tool} | {labels[inp]} | {fmt_s(m)}{rng} | "
              f"{max(rss) / 1024:.1f} | {fl} |")
    p()
    if ("palisade", "a") in med:
        for tool in tools:
            if tool != "palisade" and (tool, "a") in med and med[("palisade", "a")] > 0:
                p(f"- {tool} / palisade wall time on (a): "
                  f"**{med[(tool, 'a')] / med[('palisade', 'a')]:.1f}x**")
        p()

    # ---- corpus -------------------------------------------------------------------------
    man_path = os.path.join(args.fixtures, "manifest.json")
    corpus = [r for r in rows if r["input"] == "corpus"]
    if corpus and os.path.isfile(man_path):
        with open(man_path) as f:
            manifest = {e["file"]: e for e in json.load(f)}
        groups = collections.OrderedDict()
        for name, e in manifest.items():
            groups.setdefault((name.split("/")[0], e["verdict"]), []).append(name)
        p(f"Detection on the fixture corpus ({len(set(r['run'] for r in corpus))} files "
          f"listed in manifest.json; one invocation per file):")
        p()
        cols = [g for g in (("malicious", "malicious"), ("benign", "benign"), ("random", "benign"))
                if g in groups]
        hdr = ["tool"] + [f"{d}/ ({v}) flagged" for d, v in cols] + \
              ["errors (mal/ben)", "unsupported (mal/ben)", "corpus seconds"]
        p("| " + " | ".join(hdr) + " |")
        p("|" + "---|" * len(hdr))
        matrix = collections.defaultdict(dict)
        for r in corpus:
            matrix[r["run"]][r["tool"]] = (outcome(out, r), r)
        for tool in tools:
            cells = [tool]
            err = collections.Counter()
            uns = collections.Counter()
            for d, v in cols:
                names = [n for n in groups[(d, v)] if tool in matrix.get(n, {})]
                fl = sum(1 for n in names if matrix[n][tool][0].startswith("flagged"))
                cells.append(f"{fl} / {len(names)}")
            for n, res in matrix.items():
                if tool not in res:
                    continue
                v = manifest.get(n, {}).get("verdict", "?")
                o = res[tool][0]
                if o.startswith(("error", "timeout", "crash")):
                    err[v] += 1
                elif o == "unsupported":
                    uns[v] += 1
            cells.append(f"{err['malicious']} / {err['benign']}")
            cells.append(f"{uns['malicious']} / {uns['benign']}")
            tsec = sum(float(r["seconds"]) for r in corpus
                       if r["tool"] == tool and r["seconds"] != "NA")
            cells.append(fmt_s(tsec))
            p("| " + " | ".join(cells) + " |")
        p()

        # palisade specifics: misses, false positives, errors
        if "palisade" in tools:
            def other_flags(n):
                return ",".join(t for t in tools if t != "palisade"
                                and matrix[n].get(t, ("",))[0].startswith("flagged")) or "none"
            miss, fp, errs = [], [], []
            for n in sorted(matrix):
                if "palisade" not in matrix[n]:
                    continue
                o, r = matrix[n]["palisade"]
                v = manifest.get(n, {}).get("verdict")
                if v == "malicious" and not o.startswith("flagged"):
                    miss.append((n, o, r))
                elif v == "benign" and o.startswith("flagged"):
                    fp.append((n, o, r))
                elif v == "benign" and o != "clean":
                    errs.append((n, o, r))
            p(f"palisade misses on malicious fixtures: {len(miss)}")
            for n, o, r in miss:
                p(f"- `{n}` -> {o} [{palisade_detail(out, r)}]; technique: "
                  f"{manifest[n].get('technique', '?')}; flagged by peers: {other_flags(n)}")
            p()
            p(f"palisade false positives on benign fixtures: {len(fp)}")
            for n, o, r in fp:
                p(f"- `{n}` -> {o} [{palisade_detail(out, r)}]; flagged by peers: {other_flags(n)}")
            p()
            if errs:
                p(f"palisade errors / incomplete on benign fixtures: {len(errs)}")
                for n, o, r in errs:
                    p(f"- `{n}` -> {o} [{palisade_detail(out, r)}]")
                p()
            only = [n for n in sorted(matrix)
                    if manifest.get(n, {}).get("verdict") == "malicious"
                    and matrix[n].get("palisade", ("",))[0].startswith("flagged")
                    and not any(matrix[n].get(t, ("",))[0].startswith("flagged")
                                for t in tools if t != "palisade")]
            p(f"malicious fixtures flagged by palisade and by no peer: {len(only)}")
            for n in only:
                p(f"- `{n}` ({manifest[n].get('technique', '?')}): " + ", ".join(
                    f"{t} {matrix[n][t][0]}" for t in tools if t != "palisade" and t in matrix[n]))
            p()

        with open(os.path.join(out, "corpus_matrix.md"), "w") as f:
            f.write("| file | verdict | " + " | ".join(tools) + " |\n")
            f.write("|---|---|" + "---|" * len(tools) + "\n")
            for n in sorted(matrix, key=lambda n: (manifest.get(n, {}).get("verdict", ""), n)):
                f.write(f"| {n} | {manifest.get(n, {}).get('verdict', '?')} | " +
                        " | ".join(matrix[n].get(t, ("-",))[0] for t in tools) + " |\n")
        p(f"(per-file matrix: {os.path.join(out, 'corpus_matrix.md')})")
        p()

    if markers:
        p("!!! /tmp/palisade-marker appeared after: " +
          ", ".join(f"{r['tool']} on {r['file']}" for r in markers))
    else:
        p("/tmp/palisade-marker never appeared (no payload was executed by any tool).")


if __name__ == "__main__":
    main()
