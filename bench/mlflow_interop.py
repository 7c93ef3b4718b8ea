"""MLflow's own client against Palisade's MLflow-compatible routes.

Starts `palisade serve` on a fresh home, pushes two versions of a model with the
Palisade CLI, promotes and tags them, then reads everything back with
`mlflow.MlflowClient` (MLFLOW_TRACKING_TOKEN = a Palisade API key) and checks the
answers. Exits 1 on any mismatch. Run by bench/mlflow_interop.sh.
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--palisade", required=True)
    args = ap.parse_args()
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        server = subprocess.Popen(
            [args.palisade, "serve", "--listen", "127.0.0.1:0", "--home", str(tmp / "home")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            token = None
            while token is None:
                line = server.stdout.readline()
                if not line:
                    raise SystemExit("server exited: " + server.stderr.read())
                if line.startswith("  PALISADE_TOKEN="):
                    token = line.strip().split("=", 1)[1]
            addr = None
            while addr is None:
                line = server.stderr.readline()
                if line.startswith("palisade registry listening on "):
                    addr = line.split()[4]
            env = dict(os.environ, PALISADE_SERVER=addr, PALISADE_TOKEN=token)
            model = tmp / "model"
            model.mkdir()

            def cli(*a):
                subprocess.run([args.palisade, *a], env=env, check=True, capture_output=True)

            for v in (1, 2):
                (model / "weights.bin").write_bytes(f"weights {v}".encode() * 1000)
                cli("push", str(model), "--name", "fraud-detector", "--source-run", f"run-{v}")
            cli("promote", "fraud-detector@1", "--alias", "champion")
            cli("tag", "fraud-detector", "team=risk")
            cli("tag", "fraud-detector@2", "validated=yes")

            os.environ["MLFLOW_TRACKING_TOKEN"] = token
            client = MlflowClient(tracking_uri=addr, registry_uri=addr)
            checks = []

            def check(name, got, want):
                ok = got == want
                checks.append(ok)
                print(f"{'ok  ' if ok else 'FAIL'} {name}: {got!r}" + ("" if ok else f" (want {want!r})"))

            rm = client.get_registered_model("fraud-detector")
            check("get_registered_model name", rm.name, "fraud-detector")
            check("registered model aliases", dict(rm.aliases), {"champion": "1"})
            check("registered model tags", rm.tags, {"team": "risk"})
            check("latest version", [v.version for v in rm.latest_versions], ["2"])
            mv = client.get_model_version("fraud-detector", "2")
            check("get_model_version tags", mv.tags, {"validated": "yes"})
            check("get_model_version run_id", mv.run_id, "run-2")
            check("get_model_version status", mv.status, "READY")
            by_alias = client.get_model_version_by_alias("fraud-detector", "champion")
            check("get_model_version_by_alias", by_alias.version, "1")
            check("version aliases", list(by_alias.aliases), ["champion"])
            found = client.search_registered_models()
            check("search_registered_models", [m.name for m in found], ["fraud-detector"])
            versions = client.search_model_versions("name='fraud-detector'")
            check("search_model_versions", sorted(v.version for v in versions), ["1", "2"])
            check("get_model_version_download_uri",
                  client.get_model_version_download_uri("fraud-detector", "1"), "palisade://fraud-detector/1")
            try:
                client.get_registered_model("missing")
                check("missing model raises", False, True)
            except MlflowException as e:
                check("missing model error code", e.error_code, "RESOURCE_DOES_NOT_EXIST")
            os.environ["MLFLOW_TRACKING_TOKEN"] = "pk_0000000000000000." + "0" * 64
            try:
                MlflowClient(tracking_uri=addr, registry_uri=addr).get_registered_model("fraud-detector")
                check("bad credential refused", False, True)
            except MlflowException:
                check("bad credential refused", True, True)
            print(f"mlflow {mlflow.__version__}: {sum(checks)}/{len(checks)} checks passed")
            return 0 if all(checks) else 1
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
