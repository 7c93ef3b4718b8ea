#!/usr/bin/env bash
# Starts the services the test suite talks to, when they are not already up, and fails
# loudly when one cannot be started:
# - PostgreSQL on 127.0.0.1:5432 (the machine's own cluster);
# - an S3-compatible server on 127.0.0.1:5055 for the registry's object-store test:
#   moto (PyPI, pinned below) in a virtualenv under ~/.cache, started in the background.
set -euo pipefail

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "== starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  pg_isready -h 127.0.0.1 -p 5432 || { echo "error: PostgreSQL did not start" >&2; exit 1; }
fi

S3_PORT=5055
if ! curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/"; then
  MOTO="$HOME/.cache/palisade-moto"
  if [ ! -x "$MOTO/bin/moto_server" ]; then
    echo "== installing moto (S3-compatible test server) into $MOTO"
    python3 -m venv "$MOTO"
    "$MOTO/bin/pip" install -q 'moto[server]==5.2.5'
  fi
  echo "== starting moto on 127.0.0.1:$S3_PORT"
  nohup "$MOTO/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" > "$HOME/.cache/palisade-moto.log" 2>&1 &
  for _ in $(seq 1 30); do curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" && break; sleep 1; done
  curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" || { echo "error: moto did not start" >&2; exit 1; }
fi
