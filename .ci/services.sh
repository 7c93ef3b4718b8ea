#!/usr/bin/env bash
# Starts the services the test suite talks to, when they are not already up, and fails
# loudly when one cannot be started:
# - PostgreSQL on 127.0.0.1:5432 (the machine's own cluster);
# - Redis on 127.0.0.1:6379 (the gateway's shared rate limits), with the machine's command;
# - an S3-compatible server on 127.0.0.1:5055 for the registry's object-store test:
#   moto (PyPI, pinned below) in a virtualenv under ~/.cache, started in the background.
set -euo pipefail

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "== starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  pg_isready -h 127.0.0.1 -p 5432 || { echo "error: PostgreSQL did not start" >&2; exit 1; }
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping > /dev/null 2>&1; then
  echo "== starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping > /dev/null 2>&1 && break; sleep 1; done
  redis-cli -h 127.0.0.1 -p 6379 ping > /dev/null || { echo "error: Redis did not start" >&2; exit 1; }
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
