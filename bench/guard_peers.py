#!/usr/bin/env python3
"""Runs Palisade's guard and the peer tools on the same generated PII/secrets set.

Palisade: `palisade guard eval --task pii` (one process, its in-process detection time).
Presidio: AnalyzerEngine with its pattern recognisers (a blank spaCy pipeline: the
trained spaCy models are not on PyPI, and NER adds no checksum-validated types).
llm-guard: the rule-based Secrets scanner (detect-secrets), imported without the
package's model-loading scanners.

Entity-level precision/recall on (type, value); secrets line-level. Prints a table and
writes JSON to the path given as the third argument.
Usage: guard_peers.py DATA.jsonl PALISADE_BIN OUT.json
"""

import contextlib
import importlib.util
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import types

TYPES = {"EMAIL_ADDRESS": "EMAIL", "CREDIT_CARD": "CREDIT_CARD", "IBAN_CODE": "IBAN", "US_SSN": "US_SSN",
         "PHONE_NUMBER": "PHONE", "IP_ADDRESS": "IP_ADDRESS", "CRYPTO": "CRYPTO_WALLET"}
OURS = set(TYPES.values())


def score(rows, preds):
    tp = fp = fn = 0
    per = {}
    for r, p in zip(rows, preds):
        gold = [(e["type"], e["value"].strip()) for e in r["entities"]]
        for e in p:
            if e[0] not in OURS:
                continue
            k = per.setdefault(e[0], [0, 0, 0])
            if e in gold:
                gold.remove(e)
                tp += 1
                k[0] += 1
            else:
                fp += 1
                k[1] += 1
        for g in gold:
            fn += 1
            per.setdefault(g[0], [0, 0, 0])[2] += 1
    prf = lambda t, f, n: {"precision": t / (t + f) if t + f else 0.0, "recall": t / (t + n) if t + n else 0.0}
    return {"overall": prf(tp, fp, fn), "kinds": {k: prf(*v) for k, v in sorted(per.items())}}


def line_metrics(labels, flagged):
    tp = sum(1 for l, f in zip(labels, flagged) if l and f)
    fp = sum(1 for l, f in zip(labels, flagged) if not l and f)
    fn = sum(1 for l, f in zip(labels, flagged) if l and not f)
    return {"precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0}


def main():
    data, palisade, out = sys.argv[1:4]
    rows = [json.loads(l) for l in open(data)]
    total_bytes = sum(len(r["text"].encode()) for r in rows)
    results = {"rows": len(rows), "bytes": total_bytes}

    # Palisade
    with tempfile.TemporaryDirectory() as d:
        pred_path = os.path.join(d, "pred.jsonl")
        t = time.perf_counter()
        proc = subprocess.run([palisade, "guard", "eval", "--task", "pii", data, "--predictions", pred_path, "--format", "json"],
                              check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t
        own = json.loads(proc.stdout)
        preds = [[(e["type"], e["value"].strip()) for e in json.loads(l)["entities"]] for l in open(pred_path)]
    secret_kinds = lambda p: any(k not in OURS for k, _ in p)
    results["palisade"] = {"pii": score(rows, preds), "seconds": own["seconds"], "process_seconds": wall,
                           "secrets": line_metrics([r["secret"] for r in rows], [secret_kinds(p) for p in preds])}

    # Presidio
    logging.disable(logging.CRITICAL)
    import spacy
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    blank = os.path.join(tempfile.mkdtemp(), "blank_en")
    spacy.blank("en").to_disk(blank)
    engine = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": blank}]}).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
    analyzer.analyze("warm up 4111 1111 1111 1111", language="en")
    for threshold in (0.0, 0.5):
        t = time.perf_counter()
        preds = []
        for r in rows:
            res = analyzer.analyze(r["text"], language="en", entities=list(TYPES), score_threshold=threshold)
            preds.append([(TYPES[x.entity_type], r["text"][x.start:x.end].strip()) for x in res])
        secs = time.perf_counter() - t
        results["presidio@%.1f" % threshold] = {"pii": score(rows, preds), "seconds": secs}

    # llm-guard Secrets (rule-based; its package __init__ would import model-based scanners)
    base = importlib.util.find_spec("llm_guard").submodule_search_locations[0]
    for name, sub in (("llm_guard", ""), ("llm_guard.input_scanners", "input_scanners")):
        m = types.ModuleType(name)
        m.__path__ = [os.path.join(base, sub)]
        sys.modules[name] = m
    import structlog
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    from llm_guard.input_scanners.secrets import Secrets
    scanner = Secrets(redact_mode="all")
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        flagged = [not scanner.scan(r["text"])[1] for r in rows]
    secs = time.perf_counter() - t
    results["llm-guard-secrets"] = {"secrets": line_metrics([r["secret"] for r in rows], flagged), "seconds": secs}

    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    p = results["palisade"]
    print(f"{len(rows)} lines, {total_bytes} bytes")
    print(f"{'tool':<22} {'PII precision':>13} {'PII recall':>10} {'seconds':>9} {'Palisade speed-up':>18}")
    for name in ("palisade", "presidio@0.0", "presidio@0.5"):
        r = results[name]
        print(f"{name:<22} {r['pii']['overall']['precision']:>13.4f} {r['pii']['overall']['recall']:>10.4f} {r['seconds']:>9.3f} {r['seconds'] / p['seconds']:>17.0f}x")
    print("per kind (recall): " + "; ".join(
        f"{k}: palisade {p['pii']['kinds'].get(k, {}).get('recall', 0):.3f} / presidio@0.0 {results['presidio@0.0']['pii']['kinds'].get(k, {}).get('recall', 0):.3f}"
        for k in sorted(OURS)))
    print(f"{'tool':<22} {'secret precision':>16} {'recall':>8} {'seconds':>9}")
    for name, r in (("palisade", p), ("llm-guard-secrets", results["llm-guard-secrets"])):
        print(f"{name:<22} {r['secrets']['precision']:>16.4f} {r['secrets']['recall']:>8.4f} {r['seconds']:>9.3f}")
    print(f"palisade process wall time incl. start-up: {p['process_seconds']:.3f} s")


if __name__ == "__main__":
    main()
