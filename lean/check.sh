#!/usr/bin/env bash
# Lean-side check for CI: build the Lake package (which also checks every
# proof and every case `example`), run the exporter into a temporary
# directory, and compare each exported file with ../examples as parsed JSON.
# Where no Lean toolchain is installed, say so in one line and succeed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
examples="$here/../examples"

if ! command -v lake >/dev/null 2>&1; then
  echo "Lean check skipped: lake is not on PATH (no Lean toolchain on this machine)"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$here"
lake build
lake exe export "$tmp"
python3 "$here/scripts/compare_json.py" "$tmp" "$examples"
