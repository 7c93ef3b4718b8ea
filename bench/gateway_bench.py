#!/usr/bin/env python3
"""Gateway latency and throughput, side by side (issue 6).

Runs, in one process tree on this machine:
  - the mock OpenAI upstream (Rust, `palisade-gateway --example mock_upstream`),
  - nginx as a plain reverse proxy in front of it (when installed: Debian's `nginx`),
    the floor any proxy pays for the extra loopback hop — no auth, no parsing,
  - `palisade serve` in front of it (API-key auth, a per-key rate limit that is checked
    on every request but never binds, access log on), twice: the default work-stealing
    runtime and `--threading per-thread`,
  - LiteLLM's proxy in front of the same mock (per-key auth with an rpm limit through
    `custom_auth`, no database; see bench/litellm_proxy.md),
and drives each with oha (a separate process, open loop at fixed rates with latency
correction, then closed loop to saturation) using the same non-streaming chat request.

Prints Markdown tables: latency at fixed rates (direct vs through Palisade, the added
p50/p99), saturation throughput of the three, and the ratio to LiteLLM.

Usage: see bench/gateway_peers.sh (it builds the binaries and the virtualenv).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request

UPSTREAM_KEY = "sk-mock-upstream"
LITELLM_KEY = "sk-bench-key-1"
BODY = json.dumps({
    "model": "mock-gpt",
    "messages": [{"role": "user", "content": "Summarise the plot of Hamlet in two sentences, please."}],
    "max_tokens": 64,
})


def wait_http(url, timeout=60.0, headers=None):
    start = time.time()
    while time.time() - start < timeout:
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status < 500:
                    return time.time() - start
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up in {timeout} s")


def post(url, token, body):
    req = urllib.request.Request(url, data=body.encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read())


def cpu_seconds(pid):
    """CPU time (user + system) used so far by a process and its direct children (nginx's
    workers), from /proc."""
    def own(p):
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            return 0
        return int(fields[11]) + int(fields[12])
    ticks = own(pid)
    for child in os.listdir("/proc"):
        if child.isdigit():
            try:
                stat = open(f"/proc/{child}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                ticks += own(int(child))
    return ticks / os.sysconf("SC_CLK_TCK")


def oha(args, url, token, rate=None, duration="10s", connections=32, pid=None):
    cmd = [args.oha, "-z", duration, "-c", str(connections), "--no-tui", "--output-format", "json",
           "-m", "POST", "-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json",
           "-d", BODY]
    if rate is not None:
        cmd += ["-q", str(rate), "--latency-correction"]
    cmd.append(url)
    cpu_before = cpu_seconds(pid) if pid else None
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    r = json.loads(out)
    s = r["summary"]
    done = s["requestsPerSec"] * s["total"]
    cpu_us = (cpu_seconds(pid) - cpu_before) * 1e6 / done if pid and done else None
    pct = r["latencyPercentiles"]
    codes = r.get("statusCodeDistribution", {})
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    total = sum(codes.values()) or 1
    return {
        "rps": s["requestsPerSec"],
        "p50_ms": pct["p50"] * 1000,
        "p99_ms": pct["p99"] * 1000,
        "ok_share": ok / total,
        "codes": codes,
        "errors": r.get("errorDistribution", {}),
        "cpu_us": cpu_us,
    }


def median(runs):
    """The run-wise median of each measure (p50, p99, rate), and the worst 2xx share."""
    def mid(key):
        xs = sorted(r[key] for r in runs)
        return xs[len(xs) // 2]
    return {"rps": mid("rps"), "p50_ms": mid("p50_ms"), "p99_ms": mid("p99_ms"),
            "ok_share": min(r["ok_share"] for r in runs), "runs": len(runs),
            "cpu_us": mid("cpu_us") if all(r.get("cpu_us") is not None for r in runs) else None,
            "p50_all": [round(r["p50_ms"], 3) for r in runs], "p99_all": [round(r["p99_ms"], 3) for r in runs]}


def start_mock(args, logs):
    p = subprocess.Popen([args.mock, f"127.0.0.1:{args.mock_port}", UPSTREAM_KEY],
                         stderr=open(os.path.join(logs, "mock.log"), "w"))
    wait_http(f"http://127.0.0.1:{args.mock_port}/v1/models")
    return p


def start_nginx(args, logs, home):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        return None
    d = os.path.join(home, "nginx")
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(textwrap.dedent(f"""\
            worker_processes {args.palisade_workers or 2};
            daemon off;
            pid {d}/nginx.pid;
            error_log {logs}/nginx.err warn;
            events {{ worker_connections 4096; }}
            http {{
              access_log off;
              client_body_temp_path {d}/tmp;
              proxy_temp_path {d}/tmp;
              upstream mock {{ server 127.0.0.1:{args.mock_port}; keepalive 256; }}
              server {{
                listen 127.0.0.1:{args.nginx_port};
                location / {{
                  proxy_pass http://mock;
                  proxy_http_version 1.1;
                  proxy_set_header Connection "";
                }}
              }}
            }}
            """))
    p = subprocess.Popen([nginx, "-c", conf, "-p", d], stderr=open(os.path.join(logs, "nginx.out"), "w"))
    wait_http(f"http://127.0.0.1:{args.nginx_port}/v1/models")
    return p


def start_palisade(args, logs, home, guard, threading="work-stealing", port=None):
    port = port or args.palisade_port
    tag = f"palisade-{threading}" + ("-guarded" if guard else "")
    cfg = os.path.join(home, "palisade.toml")
    with open(cfg, "w") as f:
        f.write(textwrap.dedent(f"""\
            [gateway]
            [[gateway.upstreams]]
            name = "mock"
            url = "http://127.0.0.1:{args.mock_port}/v1"
            api_key_env = "BENCH_UPSTREAM_KEY"
            [[gateway.models]]
            name = "mock-gpt"
            kind = "openai"
            guard = {{ input = {str(guard).lower()}, output = {str(guard).lower()} }}
            [[gateway.models.backends]]
            name = "a"
            upstream = "mock"
            [[gateway.rate_limits]]
            name = "per-key"
            scope = "key"
            requests = 1000000000
            window_secs = 60
            """))
    env = dict(os.environ, BENCH_UPSTREAM_KEY=UPSTREAM_KEY)
    out = open(os.path.join(logs, f"{tag}.out"), "w")
    workers = ["--workers", str(args.palisade_workers)] if args.palisade_workers else []
    p = subprocess.Popen([args.palisade, "--config", cfg, "--log-json", "serve", "--home", os.path.join(home, "state"),
                          "--listen", f"127.0.0.1:{port}", "--threading", threading] + workers,
                         stdout=out, stderr=open(os.path.join(logs, f"{tag}.log"), "w"), env=env)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/health")
    admin = None
    for _ in range(50):
        text = open(os.path.join(logs, f"{tag}.out")).read()
        for line in text.splitlines():
            if line.strip().startswith("PALISADE_TOKEN="):
                admin = line.strip().split("=", 1)[1]
        if admin:
            break
        time.sleep(0.1)
    if not admin:
        raise SystemExit("no admin key in palisade's output")
    req = urllib.request.Request(f"{base}/api/v1/keys", method="POST",
                                 data=json.dumps({"subject": "bench", "roles": ["invoker"]}).encode(),
                                 headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        token = json.loads(r.read())["token"]
    return p, token


LITELLM_AUTH = textwrap.dedent("""\
    import hmac

    from fastapi import Request
    from litellm.proxy._types import ProxyException, UserAPIKeyAuth

    KEYS = {"sk-bench-key-1": {"rpm_limit": 1_000_000}}


    async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
        presented = (api_key or "").encode()
        for key, limits in KEYS.items():
            if hmac.compare_digest(presented, key.encode()):
                return UserAPIKeyAuth(api_key=key, **limits)
        raise ProxyException(message="Invalid API key", type="auth_error", param="api_key", code=401)
    """)


def start_litellm(args, logs, home):
    d = os.path.join(home, "litellm")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "bench_auth.py"), "w") as f:
        f.write(LITELLM_AUTH)
    with open(os.path.join(d, "config.yaml"), "w") as f:
        f.write(textwrap.dedent(f"""\
            model_list:
              - model_name: mock-gpt
                litellm_params:
                  model: openai/mock-gpt
                  api_base: http://127.0.0.1:{args.mock_port}/v1
                  api_key: {UPSTREAM_KEY}
            litellm_settings:
              drop_params: true
              telemetry: false
              num_retries: 0
              request_timeout: 30
            general_settings:
              master_key: sk-bench-master-key
              custom_auth: bench_auth.user_api_key_auth
              disable_spend_logs: true
              disable_reset_budget: true
              background_health_checks: false
            """))
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY_DISABLED="true",
               LITELLM_LOG="ERROR", PYTHONPATH=d)
    cmd = [os.path.join(args.venv, "bin", "litellm"), "--config", "config.yaml", "--host", "127.0.0.1",
           "--port", str(args.litellm_port), "--num_workers", str(args.litellm_workers)]
    if args.litellm_workers > 1:
        cmd += ["--timeout_worker_healthcheck", "120"]
    p = subprocess.Popen(cmd, cwd=d, stdout=open(os.path.join(logs, "litellm.out"), "w"),
                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
    p.own_group = True
    took = wait_http(f"http://127.0.0.1:{args.litellm_port}/health/liveliness", timeout=180)
    if args.litellm_workers > 1:
        time.sleep(30)  # the other workers import after the first answers (litellm_proxy.md)
    return p, took


def stop(p):
    if p is None or p.poll() is not None:
        return
    group = getattr(p, "own_group", False)  # LiteLLM: its workers too

    def send(sig):
        if group:
            os.killpg(p.pid, sig)
        else:
            p.send_signal(sig)

    send(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        p.wait(5)


def require_free(port):
    import socket
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"port {port} is in use (a process from an earlier run?); stop it first")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--palisade", required=True)
    ap.add_argument("--mock", required=True)
    ap.add_argument("--oha", required=True)
    ap.add_argument("--venv", required=True, help="virtualenv with litellm[proxy] (bench/requirements-gateway-peers.txt)")
    ap.add_argument("--rates", default="500,1000,2000,5000")
    ap.add_argument("--litellm-rates", default="20,40")
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--reps", type=int, default=3, help="interleaved runs per rate and target (medians reported)")
    ap.add_argument("--litellm-workers", type=int, default=1)
    ap.add_argument("--mock-port", type=int, default=18080)
    ap.add_argument("--palisade-port", type=int, default=18090)
    ap.add_argument("--litellm-port", type=int, default=14000)
    ap.add_argument("--nginx-port", type=int, default=18070)
    ap.add_argument("--palisade-pt-port", type=int, default=18091,
                    help="the second Palisade, with `--threading per-thread`")
    ap.add_argument("--palisade-workers", type=int, default=0, help="worker threads (default: one per CPU)")
    ap.add_argument("--skip-litellm", action="store_true")
    args = ap.parse_args()

    for port in (args.mock_port, args.palisade_port, args.palisade_pt_port, args.litellm_port, args.nginx_port):
        require_free(port)
    home = tempfile.mkdtemp(prefix="palisade-gw-bench-")
    logs = os.path.join(home, "logs")
    os.makedirs(logs)
    procs = []
    results = {}
    try:
        mock = start_mock(args, logs)
        procs.append(mock)
        direct = f"http://127.0.0.1:{args.mock_port}/v1/chat/completions"
        pal, token = start_palisade(args, logs, home, guard=False)
        procs.append(pal)
        via = f"http://127.0.0.1:{args.palisade_port}/v1/chat/completions"
        status, answer = post(via, token, BODY)
        assert status == 200 and answer["object"] == "chat.completion", answer
        pt_home = os.path.join(home, "per-thread")
        os.makedirs(pt_home)
        pal_pt, token_pt = start_palisade(args, logs, pt_home, guard=False, threading="per-thread",
                                          port=args.palisade_pt_port)
        procs.append(pal_pt)
        via_pt = f"http://127.0.0.1:{args.palisade_pt_port}/v1/chat/completions"
        status, answer = post(via_pt, token_pt, BODY)
        assert status == 200 and answer["object"] == "chat.completion", answer
        # Warm up every path.
        oha(args, direct, UPSTREAM_KEY, rate=1000, duration="3s")
        oha(args, via, token, rate=1000, duration="3s")
        oha(args, via_pt, token_pt, rate=1000, duration="3s")

        ngx = start_nginx(args, logs, home)
        if ngx is not None:
            procs.append(ngx)
        floor = f"http://127.0.0.1:{args.nginx_port}/v1/chat/completions"
        rows = []
        for rate in [int(r) for r in args.rates.split(",")]:
            # Interleaved repetitions, medians: a shared VM's noise hits all three alike.
            runs = {"d": [], "v": [], "t": [], "n": []}
            for _ in range(args.reps):
                runs["d"].append(oha(args, direct, UPSTREAM_KEY, rate=rate, duration=args.duration))
                runs["v"].append(oha(args, via, token, rate=rate, duration=args.duration, pid=pal.pid))
                runs["t"].append(oha(args, via_pt, token_pt, rate=rate, duration=args.duration, pid=pal_pt.pid))
                if ngx:
                    runs["n"].append(oha(args, floor, UPSTREAM_KEY, rate=rate, duration=args.duration, pid=ngx.pid))
            rows.append((rate, median(runs["d"]), median(runs["v"]), median(runs["t"]),
                         median(runs["n"]) if ngx else None))
        results["fixed"] = [{"rate": r, "direct": d, "palisade": v, "palisade_pt": t, "nginx": n}
                            for r, d, v, t, n in rows]
        sat_direct = oha(args, direct, UPSTREAM_KEY, duration=args.duration, connections=64)
        sat_pal = oha(args, via, token, duration=args.duration, connections=64)
        sat_pt = oha(args, via_pt, token_pt, duration=args.duration, connections=64)
        results["saturation"] = {"direct": sat_direct, "palisade": sat_pal, "palisade_pt": sat_pt}
        if ngx is not None:
            results["saturation"]["nginx"] = oha(args, floor, UPSTREAM_KEY, duration=args.duration, connections=64)
            stop(ngx)
            procs.remove(ngx)
        stop(pal)
        procs.remove(pal)
        stop(pal_pt)
        procs.remove(pal_pt)

        # The same with guardrails on both phases.
        guarded_home = os.path.join(home, "guarded")
        os.makedirs(guarded_home)
        pal_g, token_g = start_palisade(args, logs, guarded_home, guard=True)
        procs.append(pal_g)
        oha(args, via, token_g, rate=1000, duration="3s")
        results["guarded"] = [{"rate": r, "palisade": oha(args, via, token_g, rate=r, duration=args.duration)}
                              for r in [int(x) for x in args.rates.split(",")][:3]]
        results["guarded_saturation"] = oha(args, via, token_g, duration=args.duration, connections=64)
        stop(pal_g)
        procs.remove(pal_g)

        if not args.skip_litellm:
            lite, took = start_litellm(args, logs, home)
            procs.append(lite)
            lurl = f"http://127.0.0.1:{args.litellm_port}/v1/chat/completions"
            status, answer = post(lurl, LITELLM_KEY, BODY)
            assert status == 200, answer
            oha(args, lurl, LITELLM_KEY, rate=20, duration="5s", connections=8)
            results["litellm_startup_s"] = took
            results["litellm_fixed"] = [{"rate": r, "litellm": oha(args, lurl, LITELLM_KEY, rate=r, duration=args.duration, connections=16)}
                                        for r in [int(x) for x in args.litellm_rates.split(",")]]
            results["litellm_saturation"] = oha(args, lurl, LITELLM_KEY, duration=args.duration, connections=16)
            stop(lite)
            procs.remove(lite)
    finally:
        for p in procs:
            stop(p)
    print_tables(results)
    with open(os.path.join(logs, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nraw results: {os.path.join(logs, 'results.json')}")
    shutil.rmtree(os.path.join(home, "state"), ignore_errors=True)


def cpu(m):
    return f"{m['cpu_us']:.0f} µs" if m.get("cpu_us") is not None else "–"


def print_tables(r):
    print("\n### Added latency (non-streaming chat, open loop, latency-corrected; medians of interleaved runs)\n")
    for key, title in (("palisade", "work-stealing (default)"), ("palisade_pt", "`--threading per-thread`")):
        print(f"\nPalisade, {title}:\n")
        print("| rate (req/s) | direct p50 | direct p99 | via Palisade p50 | via Palisade p99 | added p50 | added p99 | CPU / request | 2xx |")
        print("|---|---|---|---|---|---|---|---|---|")
        for row in r["fixed"]:
            d, v = row["direct"], row[key]
            print(f"| {row['rate']} (got {v['rps']:.0f}) | {d['p50_ms']:.3f} ms | {d['p99_ms']:.3f} ms | {v['p50_ms']:.3f} ms | "
                  f"{v['p99_ms']:.3f} ms | {v['p50_ms'] - d['p50_ms']:.3f} ms | {v['p99_ms'] - d['p99_ms']:.3f} ms | "
                  f"{cpu(v)} | {v['ok_share'] * 100:.1f} % |")
    if any(row.get("nginx") for row in r["fixed"]):
        print("\nThe floor: nginx as a plain reverse proxy (keep-alive upstream, no auth, no parsing) on the same hop:\n")
        print("| rate | nginx p50 | nginx p99 | nginx added p50 | nginx added p99 | nginx CPU / request | Palisade (work-stealing / per-thread) added p50 − nginx added p50 |")
        print("|---|---|---|---|---|---|---|")
        for row in r["fixed"]:
            d, v, t, n = row["direct"], row["palisade"], row["palisade_pt"], row.get("nginx")
            if n:
                print(f"| {row['rate']} | {n['p50_ms']:.3f} ms | {n['p99_ms']:.3f} ms | {n['p50_ms'] - d['p50_ms']:.3f} ms | "
                      f"{n['p99_ms'] - d['p99_ms']:.3f} ms | {cpu(n)} | {v['p50_ms'] - n['p50_ms']:.3f} / {t['p50_ms'] - n['p50_ms']:.3f} ms |")
    if "guarded" in r:
        print("\nWith the guardrails on (request and response phases):\n")
        print("| rate | p50 | p99 | 2xx |")
        print("|---|---|---|---|")
        for row in r["guarded"]:
            v = row["palisade"]
            print(f"| {row['rate']} | {v['p50_ms']:.3f} ms | {v['p99_ms']:.3f} ms | {v['ok_share'] * 100:.1f} % |")
    print("\n### Saturation (closed loop)\n")
    print("| target | connections | req/s | p50 | p99 | 2xx |")
    print("|---|---|---|---|---|---|")
    s = r["saturation"]
    for name, v, c in [("mock directly", s["direct"], 64), ("Palisade", s["palisade"], 64),
                       ("Palisade, per-thread", s["palisade_pt"], 64)] + \
            ([("nginx (plain proxy)", s["nginx"], 64)] if "nginx" in s else []) + \
            ([("Palisade, guardrails on", r["guarded_saturation"], 64)] if "guarded_saturation" in r else []) + \
            ([("LiteLLM", r["litellm_saturation"], 16)] if "litellm_saturation" in r else []):
        print(f"| {name} | {c} | {v['rps']:.0f} | {v['p50_ms']:.2f} ms | {v['p99_ms']:.2f} ms | {v['ok_share'] * 100:.1f} % |")
    if "litellm_saturation" in r:
        print("\nLiteLLM at fixed rates:\n")
        print("| rate | p50 | p99 | 2xx |")
        print("|---|---|---|---|")
        for row in r["litellm_fixed"]:
            v = row["litellm"]
            print(f"| {row['rate']} (got {v['rps']:.0f}) | {v['p50_ms']:.2f} ms | {v['p99_ms']:.2f} ms | {v['ok_share'] * 100:.1f} % |")
        lp, pp = r["litellm_saturation"], r["saturation"]["palisade"]
        print(f"\nThroughput ratio at saturation: Palisade {pp['rps']:.0f} req/s (p99 {pp['p99_ms']:.2f} ms) vs "
              f"LiteLLM {lp['rps']:.0f} req/s (p99 {lp['p99_ms']:.2f} ms) = **{pp['rps'] / max(lp['rps'], 1e-9):.0f}×**, "
              f"with Palisade's p99 {'below' if pp['p99_ms'] <= lp['p99_ms'] else 'above'} LiteLLM's.")
        print(f"LiteLLM start-up to first liveliness answer: {r['litellm_startup_s']:.1f} s.")


if __name__ == "__main__":
    sys.exit(main())
