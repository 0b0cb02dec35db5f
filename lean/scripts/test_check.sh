#!/usr/bin/env bash
# Tests of check.sh that run without a Lean toolchain:
#  1. the skip path (no `lake` on PATH) prints the one line and succeeds;
#  2. with a stand-in `lake` whose exporter copies ../examples, check.sh passes;
#  3. with stand-ins that export a changed value, a missing file, or a
#     reordered-but-equal file, check.sh fails, fails, and passes.
# The stand-in only replaces `lake build` / `lake exe export`; the comparison
# logic under test is the real one.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
examples="$here/../examples"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail=0

expect() { # expect <name> <wanted exit status> <command...>
  local name="$1" want="$2"; shift 2
  local got=0
  "$@" >"$work/out" 2>&1 || got=$?
  if [ "$got" -eq "$want" ]; then
    echo "ok   $name (exit $got)"
  else
    echo "FAIL $name: exit $got, wanted $want"; sed 's/^/     /' "$work/out"; fail=1
  fi
}

# 1. Skip path: a PATH holding only what check.sh needs besides lake.
mkdir -p "$work/nolake"
for tool in bash dirname mktemp rm python3 env; do
  ln -sf "$(command -v "$tool")" "$work/nolake/$tool"
done
expect "skip without lake" 0 env PATH="$work/nolake" "$here/check.sh"
want="Lean check skipped: lake is not on PATH (no Lean toolchain on this machine)"
if [ "$(cat "$work/out")" != "$want" ]; then
  echo "FAIL skip line: got '$(cat "$work/out")'"; fail=1
fi

# 2-3. A stand-in lake; MODE selects what its exporter writes.
mkdir -p "$work/fakebin"
cat >"$work/fakebin/lake" <<FAKE
#!/usr/bin/env bash
set -euo pipefail
case "\$1" in
  build) exit 0 ;;
  exe)
    [ "\$2" = export ] || exit 64
    out="\$3"; mkdir -p "\$out"
    cp "$examples"/*.json "\$out"/
    case "\${MODE:-same}" in
      same) ;;
      changed) python3 - "\$out/json_depth.json" <<'PY'
import json, sys
p = sys.argv[1]; v = json.load(open(p)); v["predicate"]["max"] = 3
json.dump(v, open(p, "w"))
PY
      ;;
      missing) rm "\$out/hateless.json" ;;
      verdict) python3 - "\$out/cases.json" <<'PY'
import json, sys
p = sys.argv[1]; v = json.load(open(p)); v["cases"][0]["holds"] = not v["cases"][0]["holds"]
json.dump(v, open(p, "w"))
PY
      ;;
      reordered) python3 - "\$out" <<'PY'
import json, pathlib, sys
for p in pathlib.Path(sys.argv[1]).glob("*.json"):
    v = json.loads(p.read_text())
    p.write_text(json.dumps(v, sort_keys=True, separators=(",", ":")))
PY
      ;;
    esac ;;
  *) exit 64 ;;
esac
FAKE
chmod +x "$work/fakebin/lake"
expect "export equal to examples" 0 env PATH="$work/fakebin:$PATH" MODE=same "$here/check.sh"
expect "changed depth bound detected" 1 env PATH="$work/fakebin:$PATH" MODE=changed "$here/check.sh"
expect "missing diode detected" 1 env PATH="$work/fakebin:$PATH" MODE=missing "$here/check.sh"
expect "flipped case verdict detected" 1 env PATH="$work/fakebin:$PATH" MODE=verdict "$here/check.sh"
expect "key order and spacing ignored" 0 env PATH="$work/fakebin:$PATH" MODE=reordered "$here/check.sh"

# The Lean-shaped transliteration of the meaning agrees with docs/spec-format.md's.
expect "mirror_semantics.py" 0 python3 "$here/scripts/mirror_semantics.py"

# The Lean-shaped transliteration of the stream semantics (Lagic/Stream.lean):
# its theorems and what it leaves to Python hold on random data.
expect "mirror_stream.py" 0 python3 "$here/scripts/mirror_stream.py"

# The case generator's own check: committed files are what it generates.
expect "cases.py --check" 0 python3 "$here/scripts/cases.py" --check

exit "$fail"
