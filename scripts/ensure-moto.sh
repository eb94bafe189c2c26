#!/usr/bin/env bash
# Makes sure moto_server (the local AWS emulator) is on PATH, installing
# moto with pip when it is missing.
set -euo pipefail
if command -v moto_server >/dev/null 2>&1; then
  exit 0
fi
echo "moto_server not found; installing moto[server] with pip" >&2
py=$(command -v python3 || command -v python || true)
if [ -z "$py" ]; then
  echo "error: python3 is needed to run moto_server (the local AWS emulator); install python3 and pip" >&2
  exit 1
fi
"$py" -m pip install --quiet 'moto[server]' || "$py" -m pip install --quiet --user 'moto[server]'
hash -r
if ! command -v moto_server >/dev/null 2>&1; then
  echo "error: moto was installed but moto_server is not on PATH; add pip's script folder ($("$py" -m site --user-base)/bin) to PATH" >&2
  exit 1
fi
