#!/usr/bin/env bash
# The whole pipeline on one machine: moto up → 2-shard stream → consumer in
# the background → producer for DEMO_SECONDS at DEMO_RATE events/s with
# duplicates and invalid records → the original Athena query through
# `query` → exactly-once check → metrics report → the alerts a real
# Prometheus (scraping the consumer, with deploy/prometheus/alerts.yml
# loaded) has firing → everything stopped. DEMO_PROMETHEUS=0 leaves
# Prometheus out.
# The demo's table lives in .run/demo (a fresh one each run).
set -euo pipefail
cd "$(dirname "$0")/.."

rate=${DEMO_RATE:-500}
seconds=${DEMO_SECONDS:-60}
stream=payments-demo
demo=.run/demo
bin=bin

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "building consumer, producer and query"
make --no-print-directory build >/dev/null

consumer_pid=""
prometheus_pid=""
cleanup() {
  if [ -n "$prometheus_pid" ] && kill -0 "$prometheus_pid" 2>/dev/null; then
    kill -TERM "$prometheus_pid" 2>/dev/null || true
    wait "$prometheus_pid" 2>/dev/null || true
  fi
  if [ -n "$consumer_pid" ] && kill -0 "$consumer_pid" 2>/dev/null; then
    kill -TERM "$consumer_pid" 2>/dev/null || true
    wait "$consumer_pid" 2>/dev/null || true
  fi
  scripts/moto.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "starting the local AWS stand-in (moto)"
scripts/moto.sh down >/dev/null 2>&1 || true
scripts/moto.sh up
eval "$(scripts/moto.sh env)"

rm -rf "$demo"
mkdir -p "$demo"
export PAYSTREAM_CATALOG="sqlite:$demo/catalog.db"
export PAYSTREAM_WAREHOUSE="file://$PWD/$demo/warehouse"
export PAYSTREAM_STREAM=$stream

step "creating the 2-shard stream $stream"
"$bin/producer" --create-stream --shards 2 --count 0 --duration 1ms --report json >/dev/null 2>"$demo/create.log" || {
  cat "$demo/create.log" >&2; exit 1; }

metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
step "starting the consumer (log: $demo/consumer.log, metrics: http://127.0.0.1:$metrics_port/metrics)"
"$bin/consumer" --metrics-addr "127.0.0.1:$metrics_port" --log-format json --flush-interval 1s >"$demo/consumer.log" 2>&1 &
consumer_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$metrics_port/readyz" >/dev/null 2>&1 && break
  kill -0 "$consumer_pid" 2>/dev/null || { echo "consumer exited:"; tail -20 "$demo/consumer.log"; exit 1; }
  sleep 0.2
done

prom_port=""
if [ "${DEMO_PROMETHEUS:-1}" != 0 ] && ! command -v prometheus >/dev/null 2>&1; then
  echo "  (no prometheus on PATH: the demo runs without it; 'apt-get install prometheus' adds it)"
elif [ "${DEMO_PROMETHEUS:-1}" != 0 ]; then
  scripts/demo-prometheus.sh config "$metrics_port" >"$demo/prometheus.yml"
  prom_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  step "starting Prometheus (http://127.0.0.1:$prom_port, log: $demo/prometheus.log) with the alert rules loaded"
  prometheus --config.file="$demo/prometheus.yml" --storage.tsdb.path="$demo/prometheus" \
    --web.listen-address="127.0.0.1:$prom_port" >"$demo/prometheus.log" 2>&1 &
  prometheus_pid=$!
  scripts/demo-prometheus.sh wait "$prom_port" || { tail -20 "$demo/prometheus.log"; exit 1; }
fi

curl -fsS "http://127.0.0.1:$metrics_port/metrics" >"$demo/metrics-start.txt"
step "producing for ${seconds}s at ${rate} events/s (10% duplicates, 2% invalid)"
# One PutRecords call at a time: moto's Kinesis is not safe for concurrent writes.
"$bin/producer" --rate "$rate" --duration "${seconds}s" --duplicate-rate 0.1 --invalid-rate 0.02 \
  --concurrency 1 --sent-log "$demo/sent.ndjson" --report json >"$demo/producer.json"
python3 - "$demo/producer.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"  sent {s['sent']} records: {s['unique_event_ids']} unique event_ids, {s['duplicates_sent']} duplicates, "
      f"{s['invalid_sent']} invalid; {s['failed_after_retries']} failed; {s['achieved_rate']:.0f}/s "
      f"(PutRecords p50 {s['putrecords_latency_p50_ms']:.1f} ms, p99 {s['putrecords_latency_p99_ms']:.1f} ms)")
PY
unique=$(python3 -c "import json;print(json.load(open('$demo/producer.json'))['unique_event_ids'])")
invalid=$(python3 -c "import json;print(json.load(open('$demo/producer.json'))['invalid_sent'])")

step "waiting for the consumer to commit everything"
rows=0
for _ in $(seq 1 120); do
  rows=$("$bin/query" --format csv "SELECT COUNT(*) AS n FROM netflix_revenue_raw.subscription_payments" 2>/dev/null | tail -1 || echo 0)
  [ "$rows" -ge "$unique" ] 2>/dev/null && break
  sleep 1
done
sleep 2

step "the original Athena query, through query"
"$bin/query" "SELECT subscription_tier, COUNT(*) AS payments, SUM(amount_usd) AS revenue_usd
  FROM netflix_revenue_raw.subscription_payments WHERE status = 'succeeded'
  GROUP BY subscription_tier ORDER BY revenue_usd DESC"

step "exactly once?"
read -r total distinct < <("$bin/query" --format csv "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM netflix_revenue_raw.subscription_payments" | tail -1 | tr ',' ' ')
dead=$(find "$demo/warehouse" -path '*_dead_letter*' -name '*.ndjson' -exec cat {} + 2>/dev/null | python3 -c '
import sys, json
print(len({(r["shard_id"], r["sequence_number"]) for r in map(json.loads, filter(str.strip, sys.stdin))}))')
printf '  %-38s %8s\n' "unique valid event_ids produced" "$unique" "rows in the table" "$total" "distinct event_ids in the table" "$distinct" \
  "invalid records produced" "$invalid" "records in the dead-letter store" "$dead"
if [ "$total" = "$unique" ] && [ "$distinct" = "$unique" ] && [ "$dead" = "$invalid" ]; then
  printf '  \033[32mOK: every produced event is in the table exactly once; every invalid record is dead-lettered.\033[0m\n'
  ok=1
else
  printf '  \033[31mMISMATCH: see %s\033[0m\n' "$demo/consumer.log"
  ok=0
fi

step "pipeline metrics"
curl -fsS "http://127.0.0.1:$metrics_port/metrics" >"$demo/metrics.txt"
"$bin/metrics-report" --before "$demo/metrics-start.txt" "$demo/metrics.txt" | sed 's/^/  /'

if [ -n "$prom_port" ]; then
  step "alerts in Prometheus"
  scripts/demo-prometheus.sh alerts "$prom_port" | sed 's/^/  /' || ok=0
fi

step "stopping"
kill -TERM "$consumer_pid"; wait "$consumer_pid" || true; consumer_pid=""
echo "  The demo table stays in $demo; query it again with:"
echo "    $bin/query --catalog sqlite:$demo/catalog.db --warehouse file://$PWD/$demo/warehouse \"SELECT COUNT(*) FROM netflix_revenue_raw.subscription_payments\""
[ "$ok" = 1 ]
