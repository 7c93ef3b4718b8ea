#!/usr/bin/env python3
"""Turn OUT/results.tsv written by bench/formats_peers.sh into markdown tables.

    python3 bench/formats_coverage.py --out bench/out/formats \
        --formats crates/palisade-scan/tests/fixtures/formats \
        --pickles crates/palisade-scan/tests/fixtures/pickle --mixed bench/out/mixed

Prints the summary on stdout and writes the per-entry matrix to OUT/coverage_matrix.md.
"Flagged" uses summarize.outcome, i.e. exactly the criteria of pickle_peers.sh.

Per format and tool the cell is  detected / missed / FP / unsupported / errors:
  detected     malicious entries the tool flagged (incl. flagged*)
  missed       malicious entries it did not flag (clean, unsupported or error)
  FP           benign entries it flagged
  unsupported  entries (either verdict) modelscan refused with exit 3
  errors       entries (either verdict) ending in an error exit, a timeout or a crash
so for malicious entries  detected + missed = count, and unsupported/errors overlap missed/clean.
"""

import argparse
import collections
import csv
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from summarize import fmt_s, outcome, palisade_detail  # noqa: E402  (same criteria as part 1)

TOOLS = ["palisade", "modelscan", "modelaudit"]


def is_err(o):
    return o.startswith(("error", "timeout", "crash"))


def load_manifests(formats, pickles):
    man = collections.OrderedDict()
    with open(os.path.join(formats, "manifest.json")) as f:
        for e in json.load(f):
            man[("formats", e["file"])] = dict(e, fmt=e["format"])
    with open(os.path.join(pickles, "manifest.json")) as f:
        for e in json.load(f):
            man[("pickle", e["file"])] = dict(e, fmt=f"pickle-family/{e.get('container', '?')}")
    return man


def peer_note(out, row, o):
    """One line explaining a peer's error/unsupported outcome, from its own output."""
    base = os.path.join(out, "raw", f"{row['tool']}__{row['input']}__{row['run']}"
                        .replace("/", "_").replace(" ", "_"))
    try:
        if row["tool"] == "modelscan":
            with open(base + ".json") as f:
                errs = json.load(f).get("errors") or []
            if errs:
                e = errs[0]
                return f"{e.get('category')}: {str(e.get('description'))[:110]}"
        if row["tool"] == "modelaudit":
            with open(base + ".json") as f:
                d = json.load(f)
            issues = d.get("issues", [])
            for i in issues:
                if str(i.get("severity", "")).lower() in ("error", "critical", "warning"):
                    return f"{i.get('severity')}: {str(i.get('message'))[:110]}"
            head = f"success={d.get('success')}, has_errors={d.get('has_errors')}"
            if issues:
                return f"{head}; first info issue: {str(issues[0].get('message'))[:110]}"
            return f"{head}; no issues reported (inconclusive)"
    except (OSError, ValueError, AttributeError):
        pass
    try:
        with open(base + ".err", errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
        if lines:
            return lines[-1][:130]
    except OSError:
        pass
    return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--formats", required=True)
    ap.add_argument("--pickles", required=True)
    ap.add_argument("--mixed", required=True)
    a = ap.parse_args()
    out = a.out
    p = print

    with open(os.path.join(out, "results.tsv")) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    markers = [r for r in rows if r["rc"].startswith("MARKER")]
    rows = [r for r in rows if not r["rc"].startswith("MARKER")]
    tools = [t for t in TOOLS if any(r["tool"] == t for r in rows)]

    try:
        with open(os.path.join(out, "env.txt")) as f:
            p("```")
            p(f.read().rstrip())
            p("```")
            p()
    except OSError:
        pass

    # ---- coverage -----------------------------------------------------------------------
    man = load_manifests(a.formats, a.pickles)
    res = collections.defaultdict(dict)  # (input, file) -> tool -> (outcome, row)
    for r in rows:
        if r["input"] in ("formats", "pickle"):
            res[(r["input"], r["run"])][r["tool"]] = (outcome(out, r), r)

    if res:
        fmts = sorted({e["fmt"] for k, e in man.items() if k in res},
                      key=lambda s: (s.startswith("pickle-family"), s))

        def tally(keys, tool):
            c = collections.Counter()
            for k in keys:
                if tool not in res.get(k, {}):
                    continue
                o = res[k][tool][0]
                v = man[k]["verdict"]
                c[v] += 1
                fl = o.startswith("flagged")
                if v == "malicious":
                    c["det" if fl else "miss"] += 1
                elif fl:
                    c["fp"] += 1
                if o == "unsupported":
                    c["uns"] += 1
                if is_err(o):
                    c["err"] += 1
            return c

        def cell(c):
            return f"{c['det']} / {c['miss']} / {c['fp']} / {c['uns']} / {c['err']}"

        n_f = sum(1 for k in res if k[0] == "formats")
        n_p = sum(1 for k in res if k[0] == "pickle")
        p(f"Coverage on the labelled corpora: {n_f} entries of formats/manifest.json + {n_p} of "
          f"pickle/manifest.json, one invocation per entry. Cell = detected / missed / false "
          f"positives / unsupported / errors.")
        p()
        p("| format | mal | ben | " + " | ".join(tools) + " |")
        p("|---|---:|---:|" + "---|" * len(tools))
        groups = [(f, [k for k, e in man.items() if e["fmt"] == f and k in res]) for f in fmts]
        fkeys = [k for k in man if k in res and k[0] == "formats"]
        pkeys = [k for k in man if k in res and k[0] == "pickle"]
        subtotals = [("**formats corpus total**", fkeys), ("**pickle corpus total**", pkeys),
                     ("**all**", fkeys + pkeys)]
        for name, keys in groups + subtotals:
            nm = sum(1 for k in keys if man[k]["verdict"] == "malicious")
            nb = len(keys) - nm
            p(f"| {name} | {nm} | {nb} | " + " | ".join(cell(tally(keys, t)) for t in tools) + " |")
        p()
        p("| tool | corpus | malicious detected | benign false positives | unsupported | errors | corpus seconds (sum of wall times) |")
        p("|---|---|---:|---:|---:|---:|---:|")
        for t in tools:
            for name, keys in (("formats", fkeys), ("pickle", pkeys), ("both", fkeys + pkeys)):
                c = tally(keys, t)
                secs = sum(float(res[k][t][1].get("hr_seconds") or res[k][t][1]["seconds"])
                           for k in keys if t in res[k]
                           and (res[k][t][1].get("hr_seconds") or res[k][t][1]["seconds"]) != "NA")
                dr = c["det"] / c["malicious"] if c["malicious"] else float("nan")
                fr = c["fp"] / c["benign"] if c["benign"] else float("nan")
                p(f"| {t} | {name} | {c['det']}/{c['malicious']} ({dr:.1%}) | "
                  f"{c['fp']}/{c['benign']} ({fr:.1%}) | {c['uns']} | {c['err']} | {fmt_s(secs)} |")
        p()

        def others(k):
            return ",".join(t for t in tools if t != "palisade"
                            and res[k].get(t, ("",))[0].startswith("flagged")) or "none"

        if "palisade" in tools:
            miss = [k for k in man if k in res and "palisade" in res[k]
                    and man[k]["verdict"] == "malicious"
                    and not res[k]["palisade"][0].startswith("flagged")]
            fp = [k for k in man if k in res and "palisade" in res[k]
                  and man[k]["verdict"] == "benign" and res[k]["palisade"][0].startswith("flagged")]
            errs = [k for k in man if k in res and "palisade" in res[k]
                    and is_err(res[k]["palisade"][0])]
            p(f"palisade misses on malicious entries: {len(miss)}")
            for k in miss:
                o, r = res[k]["palisade"]
                p(f"- `{k[0]}/{k[1]}` ({man[k]['fmt']}) -> {o} [{palisade_detail(out, r)}]; "
                  f"technique: {man[k].get('technique', '?')}; flagged by peers: {others(k)}")
            p()
            p(f"palisade false positives on benign entries: {len(fp)}")
            for k in fp:
                o, r = res[k]["palisade"]
                p(f"- `{k[0]}/{k[1]}` ({man[k]['fmt']}) -> {o} [{palisade_detail(out, r)}]; "
                  f"flagged by peers: {others(k)}")
            p()
            p(f"palisade errors / incomplete scans: {len(errs)}")
            for k in errs:
                o, r = res[k]["palisade"]
                p(f"- `{k[0]}/{k[1]}` ({man[k]['verdict']}) -> {o} [{palisade_detail(out, r)}]")
            p()
            only = [k for k in man if k in res and man[k]["verdict"] == "malicious"
                    and res[k].get("palisade", ("",))[0].startswith("flagged")
                    and others(k) == "none"]
            p(f"malicious entries flagged by palisade and by no peer: {len(only)} "
              f"({sum(1 for k in only if k[0] == 'formats')} formats, "
              f"{sum(1 for k in only if k[0] == 'pickle')} pickle)")
            for k in only:
                p(f"- `{k[0]}/{k[1]}` ({man[k]['fmt']}; {man[k].get('technique', '?')}): " +
                  ", ".join(f"{t} {res[k][t][0]}" for t in tools if t != "palisade" and t in res[k]))
            p()
            fpo = collections.defaultdict(list)
            for k in man:
                if k in res and man[k]["verdict"] == "benign":
                    for t in tools:
                        if t != "palisade" and res[k].get(t, ("",))[0].startswith("flagged"):
                            fpo[t].append(k)
            for t, ks in fpo.items():
                p(f"{t} false positives ({len(ks)}):")
                for k in ks:
                    p(f"- `{k[0]}/{k[1]}` ({man[k]['fmt']}) -- {peer_note(out, res[k][t][1], 'flagged')}")
                p()

        for t in tools:
            if t == "palisade":
                continue
            bad = [k for k in man if k in res and t in res[k]
                   and (is_err(res[k][t][0]) or res[k][t][0] == "flagged*")]
            if not bad:
                continue
            p(f"{t} errors / flagged-with-error ({len(bad)}):")
            for k in bad:
                o, r = res[k][t]
                p(f"- `{k[0]}/{k[1]}` ({man[k]['verdict']}) -> {o}, {fmt_s(float(r['seconds']))} s"
                  f" -- {peer_note(out, r, o)}")
            p()
        if "modelscan" in tools:
            dep = collections.Counter()
            for k in res:
                if "modelscan" in res[k] and res[k]["modelscan"][0] == "unsupported":
                    note = peer_note(out, res[k]["modelscan"][1], "unsupported")
                    if note.startswith("DEPENDENCY"):
                        dep[man[k]["fmt"]] += 1
            if dep:
                p("modelscan 'unsupported' entries where it reported a missing-dependency error "
                  "(tensorflow extra not installed): " +
                  ", ".join(f"{f}: {n}" for f, n in sorted(dep.items())))
                p()

        with open(os.path.join(out, "coverage_matrix.md"), "w") as f:
            f.write("| entry | format | verdict | " + " | ".join(tools) + " | technique |\n")
            f.write("|---|---|---|" + "---|" * len(tools) + "---|\n")
            for k in sorted(res, key=lambda k: (k[0] != "formats", man[k]["fmt"], man[k]["verdict"], k[1])):
                f.write(f"| {k[0]}/{k[1]} | {man[k]['fmt']} | {man[k]['verdict']} | " +
                        " | ".join(res[k].get(t, ("-",))[0] for t in tools) +
                        f" | {man[k].get('technique', '')} |\n")
        p(f"(per-entry matrix: {os.path.join(out, 'coverage_matrix.md')})")
        p()

    # ---- throughput ---------------------------------------------------------------------
    tp = [r for r in rows if r["input"] in ("mixed", "mixed_cold")]
    if tp:
        files = sorted((e for e in os.scandir(a.mixed) if e.is_file(follow_symlinks=False)),
                       key=lambda e: e.name)
        total = sum(e.stat().st_size for e in files)
        p(f"Throughput on {a.mixed}: {len(files)} files, {total:,} bytes "
          f"({total / 1e9:.3f} GB): " + ", ".join(f"{e.name} {e.stat().st_size / 1e6:.0f} MB" for e in files))
        p()
        p("| tool | page cache | seconds (median; min-max) | GB/s | peak RSS MiB | read from disk MB | verdict | time / palisade |")
        p("|---|---|---:|---:|---:|---:|---|---:|")
        base = None
        for t in tools:
            for inp, label in (("mixed", "warm"), ("mixed_cold", "cold")):
                rs = [r for r in tp if r["tool"] == t and r["input"] == inp]
                if not rs:
                    continue
                # high-resolution wall clock ($EPOCHREALTIME) when present, else GNU time's
                secs = [float(r.get("hr_seconds") or r["seconds"]) for r in rs
                        if (r.get("hr_seconds") or r["seconds"]) != "NA"]
                rss = [int(r["maxrss_kb"]) for r in rs if r["maxrss_kb"] != "NA"]
                fsin = [int(r["fs_inputs"]) for r in rs if r.get("fs_inputs", "NA") not in ("NA", "")]
                m = statistics.median(secs)
                if t == "palisade" and inp == "mixed":
                    base = m
                f3 = lambda x: f"{x:.3f}" if x < 10 else fmt_s(x)  # noqa: E731
                rng = f" ({f3(min(secs))}-{f3(max(secs))}, n={len(secs)})" if len(secs) > 1 else ""
                outs = sorted({outcome(out, r) for r in rs})
                verdict = "/".join({"clean": "clean", "flagged": "FLAGGED (false positive)",
                                    "flagged*": "FLAGGED* (false positive)"}.get(o, o) for o in outs)
                ratio = f"{m / base:.0f}x" if base and t != "palisade" else "-"
                gbs = total / 1e9 / m if m > 0 else float("inf")
                p(f"| {t} | {label} | {f3(m)}{rng} | {gbs:.2f} | {max(rss) / 1024:.1f} | "
                  f"{max(fsin) * 512 / 1e6:.1f} | {verdict} | {ratio} |")
        p()
        pf = [r for r in rows if r["input"] == "mixed_file" and r["tool"] == "palisade"]
        if pf:
            p("palisade on each file alone (warm cache, one run each):")
            p()
            p("| file | MB | seconds | GB/s | peak RSS MiB | verdict |")
            p("|---|---:|---:|---:|---:|---|")
            for r in sorted(pf, key=lambda r: r["run"]):
                sz = os.path.getsize(r["file"])
                sec = float(r.get("hr_seconds") or r["seconds"])
                p(f"| {r['run']} | {sz / 1e6:.0f} | {sec:.3f} | {sz / 1e9 / sec:.1f} | "
                  f"{int(r['maxrss_kb']) / 1024:.1f} | {outcome(out, r)} |")
            p()
        if base:
            gbs = total / 1e9 / base
            p(f"palisade throughput target (>= 1 GB/s, warm cache, median): "
              f"**{'MET' if gbs >= 1 else 'NOT MET'}** ({gbs:.2f} GB/s)")
            p()
        for t in tools:
            if t == "palisade":
                continue
            for r in tp:
                if r["tool"] == t:
                    o = outcome(out, r)
                    if o != "clean":
                        p(f"- {t} on the mixed dir -> {o}: {peer_note(out, r, o)}")
        p()

    if markers:
        p("!!! sentinel files appeared: " + ", ".join(
            f"{r['rc'][7:]} after {r['tool']} on {r['file']}" for r in markers))
    else:
        p("No sentinel file (/tmp/palisade-marker, /tmp/evil, /tmp/evil.pkl, /evil.pkl, /evil) "
          "ever appeared: no tool executed a payload or extracted outside its directory.")


if __name__ == "__main__":
    main()
