#!/usr/bin/env bash
# Makes sure promtool (Prometheus's rule checker and rule unit-test runner) is
# on PATH, installing Debian's prometheus package, which ships it, when it is
# missing. The package also installs a Prometheus server; it is left stopped
# and disabled, because it would listen on :9090, the consumer's default
# metrics port.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
echo "promtool not found; installing Debian's prometheus package, which ships it" >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: promtool is needed to check deploy/prometheus and deploy/grafana, and there is no apt-get here to install it;" \
    "install Prometheus's promtool (the tests are written against Debian bookworm's, 2.42) and put it on PATH" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "error: installing promtool needs root: run 'apt-get install prometheus' as root" >&2
    exit 1
  fi
  sudo=(sudo)
fi
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)

# Was a prometheus service running before? Then it is not ours to stop.
running_before=false
if pgrep -x prometheus >/dev/null 2>&1; then
  running_before=true
fi

# Without package lists (a fresh machine) apt-get knows no prometheus package.
if ! apt-cache show prometheus >/dev/null 2>&1; then
  "${apt[@]}" update -qq >&2
fi
# --no-install-recommends: the recommended node exporter is another server
# (on :9100) that nothing here needs.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
install_prometheus() { "${apt[@]}" install -y -q --no-install-recommends prometheus >>"$log" 2>&1; }
# Stale package lists name files the mirror no longer has: update, try again.
if ! install_prometheus && ! { "${apt[@]}" update -qq >>"$log" 2>&1 && install_prometheus; }; then
  cat "$log" >&2
  echo "error: 'apt-get install prometheus' failed (output above); promtool is needed to check deploy/prometheus and deploy/grafana" >&2
  exit 1
fi

# The package's scripts may start and enable the server (systemd, or its
# init script elsewhere); stop it and keep it from starting at boot.
if [ "$running_before" = false ]; then
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    "${sudo[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/prometheus ]; then
    "${sudo[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    if command -v update-rc.d >/dev/null 2>&1; then
      "${sudo[@]}" update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
  fi
  if pgrep -x prometheus >/dev/null 2>&1; then
    echo "warning: the prometheus package started a Prometheus server that is still running;" \
      "it listens on :9090, the consumer's default --metrics-addr: stop it (systemctl stop prometheus)" >&2
  fi
fi

hash -r
if ! command -v promtool >/dev/null 2>&1; then
  echo "error: the prometheus package was installed but promtool is not on PATH (Debian puts it in /usr/bin)" >&2
  exit 1
fi
echo "promtool installed: $(promtool --version 2>&1 | head -1)" >&2
