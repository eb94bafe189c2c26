#!/usr/bin/env bash
# Helpers for the Prometheus that `make demo` runs beside the consumer:
#   demo-prometheus.sh config METRICS_PORT  prints a config scraping the consumer
#                                           every 2 s with deploy/prometheus/alerts.yml
#   demo-prometheus.sh wait PORT            waits until Prometheus is ready and has
#                                           scraped the consumer once
#   demo-prometheus.sh alerts PORT          prints the alerts that are pending or firing;
#                                           exits 1 if any is firing
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
config)
  cat <<YAML
global:
  scrape_interval: 2s
  evaluation_interval: 2s
rule_files:
  - $PWD/deploy/prometheus/alerts.yml
scrape_configs:
  - job_name: paystream-consumer
    static_configs:
      - targets: ["127.0.0.1:$2"]
YAML
  ;;
wait)
  for _ in $(seq 1 150); do
    if curl -fsS "http://127.0.0.1:$2/api/v1/query?query=up%7Bjob%3D%22paystream-consumer%22%7D" 2>/dev/null |
      python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; sys.exit(0 if r and r[0]["value"][1]=="1" else 1)'; then
      exit 0
    fi
    sleep 0.2
  done
  echo "error: Prometheus on 127.0.0.1:$2 did not scrape the consumer within 30 s" >&2
  exit 1
  ;;
alerts)
  base="http://127.0.0.1:$2/api/v1"
  rules=$(curl -fsS "$base/rules?type=alert")
  alerts=$(curl -fsS "$base/alerts")
  python3 - "$rules" "$alerts" <<'PY'
import json, sys
rules = json.loads(sys.argv[1])["data"]["groups"]
alerts = json.loads(sys.argv[2])["data"]["alerts"]
n = sum(len(g["rules"]) for g in rules)
print(f"{n} alert rules loaded from deploy/prometheus/alerts.yml")
firing = [a for a in alerts if a["state"] == "firing"]
pending = [a for a in alerts if a["state"] == "pending"]
for a in firing + pending:
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(a["labels"].items()) if k != "alertname")
    print(f'{a["state"].upper():8} {a["labels"]["alertname"]}{{{labels}}}: {a["annotations"].get("summary", "")}')
if not firing and not pending:
    print("no alert is firing or pending")
elif not firing:
    print(f"no alert is firing ({len(pending)} pending: their condition holds but not yet for their 'for' time)")
sys.exit(1 if firing else 0)
PY
  ;;
*)
  echo "usage: $0 config METRICS_PORT | wait PORT | alerts PORT" >&2
  exit 2
  ;;
esac
