#!/usr/bin/env bash
# Starts or stops the local AWS stand-in (moto_server) on 127.0.0.1.
#   scripts/moto.sh up    start on a free port, wait until ready, print the endpoint
#   scripts/moto.sh down  stop it
#   scripts/moto.sh env   print export lines for AWS_ENDPOINT_URL and test credentials
# State lives in .run/ (pid, port, log).
set -euo pipefail
cd "$(dirname "$0")/.."
run=.run
mkdir -p "$run"
pidf=$run/moto.pid
portf=$run/moto.port

running() { [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }

case "${1:-}" in
up)
  if running; then
    echo "moto_server already running on http://127.0.0.1:$(cat "$portf") (pid $(cat "$pidf"))"
    exit 0
  fi
  scripts/ensure-moto.sh
  port=${MOTO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')}
  moto_server -H 127.0.0.1 -p "$port" >"$run/moto.log" 2>&1 &
  echo $! >"$pidf"
  echo "$port" >"$portf"
  for _ in $(seq 1 150); do
    if curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then
      echo "moto_server ready on http://127.0.0.1:$port (pid $(cat "$pidf"); log $run/moto.log)"
      exit 0
    fi
    if ! running; then
      echo "error: moto_server exited; see $run/moto.log:" >&2
      tail -20 "$run/moto.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "error: moto_server did not answer on port $port within 30 s; see $run/moto.log" >&2
  exit 1
  ;;
down)
  if running; then
    kill "$(cat "$pidf")" 2>/dev/null || true
    for _ in $(seq 1 50); do running || break; sleep 0.1; done
    running && kill -9 "$(cat "$pidf")" 2>/dev/null || true
    echo "moto_server stopped"
  else
    echo "moto_server was not running"
  fi
  rm -f "$pidf" "$portf"
  ;;
env)
  running || { echo "error: moto_server is not running; run make aws-up" >&2; exit 1; }
  echo "export AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$portf")"
  echo "export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test"
  ;;
*)
  echo "usage: scripts/moto.sh up|down|env" >&2
  exit 2
  ;;
esac
