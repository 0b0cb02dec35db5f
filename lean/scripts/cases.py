#!/usr/bin/env python3
"""Boundary cases for the seven seed diodes: one source, two outputs.

The case list below is the single source of the payloads and of the verdicts
written by hand (each with the reason it sits at a boundary). This script

  * evaluates every case with its own implementation of the predicate
    language's meaning (docs/spec-format.md), run on the committed spec files
    `examples/<diode>.json`, and refuses to write anything if a hand-written
    verdict disagrees with it;
  * writes `examples/cases.json` (spec format v1 cases file) and
    `lean/Lagic/Cases.lean` (the same cases as Lean data, one `example` per
    case stating the hand-written verdict, decided by Lean).

So three meanings meet here: the hand verdicts, this evaluator, and Lean's
`eval` (through the generated `example`s and `lake exe export`). The Rust
evaluator, reference diodes and kernel programs are checked against
`examples/cases.json` by the Rust tests.

Usage:
  cases.py            regenerate both files
  cases.py --check    regenerate in memory; exit 1 if either file differs
"""

import json
import sys
from pathlib import Path

LEAN_DIR = Path(__file__).resolve().parent.parent
EXAMPLES = LEAN_DIR.parent / "examples"
CASES_JSON = EXAMPLES / "cases.json"
CASES_LEAN = LEAN_DIR / "Lagic" / "Cases.lean"

DIODES = [
    "minimal",
    "printable16",
    "printable64",
    "json_start",
    "json_prefix",
    "json_depth",
    "hateless",
]

# Payloads with at most this many bytes are decided by `decide` (the kernel
# re-checks the evaluation); longer ones by `native_decide`, since the
# elaborator's evaluation under `decide` is slow and deep on long lists.
DECIDE_MAX_LEN = 16

# --------------------------------------------------------------------------
# The meaning, written from docs/spec-format.md, evaluated on the parsed spec JSON.
# --------------------------------------------------------------------------


def in_class(cls, b):
    return any(lo <= b <= hi for lo, hi in cls)


def window(w, p):
    n = len(p)
    a = w["start"]
    end = n if w["end"] is None else min(w["end"], n)
    return p[a:end] if a < end else b""


CMP = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
}


def matches_at(pat, p, i):
    return i + len(pat) <= len(p) and all(
        in_class(c, p[i + j]) for j, c in enumerate(pat)
    )


def depth_le(w, k, opn, cls, strings, p):
    d = 0
    mode = "code"
    for b in window(w, p):
        if strings and mode == "str":
            if b == 0x5C:
                mode = "esc"
            elif b == 0x22:
                mode = "code"
            continue
        if strings and mode == "esc":
            mode = "str"
            continue
        if strings and mode == "code" and b == 0x22:
            mode = "str"
            continue
        if in_class(opn, b):
            d += 1
            if d > k:
                return False
        elif in_class(cls, b):
            d = max(d - 1, 0)
    return True


def evaluate(pred, p):
    op = pred["op"]
    if op == "true":
        return True
    if op == "false":
        return False
    if op == "not":
        return not evaluate(pred["arg"], p)
    if op == "and":
        return all(evaluate(q, p) for q in pred["args"])
    if op == "or":
        return any(evaluate(q, p) for q in pred["args"])
    if op == "len":
        return CMP[pred["cmp"]](len(p), pred["value"])
    if op == "byte":
        i = pred["index"]
        return i < len(p) and in_class(pred["class"], p[i])
    if op == "all":
        return all(in_class(pred["class"], b) for b in window(pred["window"], p))
    if op == "any":
        return any(in_class(pred["class"], b) for b in window(pred["window"], p))
    if op == "prefix":
        return matches_at(pred["pattern"], p, 0)
    if op == "contains":
        wnd = window(pred["window"], p)
        pat = pred["pattern"]
        return any(matches_at(pat, wnd, i) for i in range(len(wnd) - len(pat) + 1))
    if op == "depth_le":
        return depth_le(
            pred["window"], pred["max"], pred["open"], pred["close"], pred["strings"], p
        )
    raise ValueError(f"unknown op {op!r}")


# --------------------------------------------------------------------------
# Payloads: a payload is a list of segments, ("b", bytes) or ("r", n, byte),
# so that long payloads stay short in both the Python and the Lean source.
# --------------------------------------------------------------------------


def B(x):
    """Literal bytes (str is taken as ASCII)."""
    return ("b", x.encode("ascii") if isinstance(x, str) else bytes(x))


def R(n, byte):
    """`n` copies of one byte (an int, or a one-character str)."""
    return ("r", n, ord(byte) if isinstance(byte, str) else byte)


def payload_bytes(segs):
    out = bytearray()
    for s in segs:
        out += s[1] if s[0] == "b" else bytes([s[2]]) * s[1]
    return bytes(out)


def lean_payload(segs):
    if not segs:
        return "bs []"
    parts = []
    for s in segs:
        if s[0] == "b":
            parts.append("bs [" + ", ".join(str(b) for b in s[1]) + "]")
        else:
            parts.append(f"rep {s[1]} {s[2]}")
    return " ++ ".join(parts)


# --------------------------------------------------------------------------
# The cases. (diode, payload segments, hand-written verdict, note)
# --------------------------------------------------------------------------

# minimal and printable16 are the same predicate: `all [0,16) text`,
# text = 0x09 0x0A 0x0D 0x20-0x7E. They share these cases.
TEXT16 = [
    ([], True, "empty payload: the window is empty"),
    ([B("A")], True, "one text byte"),
    ([B([0x00])], False, "one NUL byte"),
    ([R(15, "A")], True, "15 text bytes"),
    ([R(16, "A")], True, "16 text bytes: the whole window"),
    ([R(16, "A"), B([0xFF])], True, "17 bytes, 0xFF at index 16 is outside the window"),
    ([R(15, "A"), B([0x7F])], False, "DEL 0x7F at index 15, the last window position"),
    ([R(15, "A"), B([0x1F])], False, "0x1F at index 15, just below space"),
    ([B([0x80]), R(15, "A")], False, "0x80 at index 0"),
    ([B("GET / HTTP/1.1\r\n")], True, "16 bytes of HTTP request line with CR LF"),
    ([B("\tA\n"), B([0x0D])], True, "TAB, LF and CR are text"),
    ([B("A"), B([0x0B])], False, "vertical tab 0x0B is not text"),
    ([B([0x0C])], False, "form feed 0x0C is not text"),
    ([B([0x20, 0x7E])], True, "space 0x20 and tilde 0x7E, the ends of printable"),
    ([R(16, "A"), R(48, 0x00)], True, "NULs only after the first 16 bytes"),
    ([B([0xFF]), R(63, "A")], False, "0xFF at index 0 of a 64-byte payload"),
    ([R(15, "A"), B([0x00]), R(4, "A")], False,
     "NUL at index 15 of a 20-byte payload: the window's last byte, payload longer"),
]

CASES = []
for diode in ("minimal", "printable16"):
    for segs, holds, note in TEXT16:
        CASES.append((diode, segs, holds, note))

CASES += [
    ("printable64", segs, holds, note)
    for segs, holds, note in [
        ([], True, "empty payload"),
        ([R(63, "a")], True, "63 text bytes"),
        ([R(64, "a")], True, "64 text bytes: the whole window"),
        ([R(64, "a"), B([0x00])], True, "65 bytes, NUL at index 64 is outside the window"),
        ([R(63, "a"), B([0x7F])], False, "DEL 0x7F at index 63, the last window position"),
        ([R(63, "a"), B([0x80])], False, "0x80 at index 63"),
        ([R(63, "a"), B([0x00]), R(8, "a")], False,
         "NUL at index 63 of a 72-byte payload: the window's last byte, payload longer"),
        ([R(16, "a"), B([0xFF]), R(47, "a")], False,
         "0xFF at index 16: inside [0,64), outside [0,16)"),
        ([B([0x1F])], False, "one byte 0x1F"),
        ([B("Hello\r\n\tworld\r\n")], True, "CR, LF and TAB"),
        ([R(1400, "x")], True, "1400 text bytes"),
        ([R(64, "a"), R(10, 0xFF)], True, "0xFF only after the first 64 bytes"),
        ([B([0x20, 0x7E, 0x0A])], True, "space, tilde, LF"),
        ([R(15, "a"), B([0x0B])], False, "vertical tab at index 15"),
    ]
]

CASES += [
    ("json_start", segs, holds, note)
    for segs, holds, note in [
        ([], False, "empty payload has no first byte"),
        ([B("{")], True, "just '{'"),
        ([B("[")], False, "'[' is not '{'"),
        ([B(" {")], False, "leading space"),
        ([B('{"a":1}')], True, "a small JSON object"),
        ([B("{"), R(1398, "a")], True, "1399 bytes: just under the limit"),
        ([B("{"), R(1399, "a")], False, "1400 bytes: at the limit"),
        ([B("{"), R(1400, "a")], False, "1401 bytes: over the limit"),
        ([B("}")], False, "closing brace"),
        ([B("{"), B([0xFF, 0x00])], True, "only the first byte is constrained"),
        ([B("\n{")], False, "'{' after a newline"),
        ([B("z")], False, "0x7A, just below '{'"),
        ([B("|")], False, "0x7C, just above '{'"),
    ]
]

CASES += [
    ("json_prefix", segs, holds, note)
    for segs, holds, note in [
        ([], False, "empty payload has no first byte"),
        ([B("{")], True, "'{'"),
        ([B("[")], True, "'['"),
        ([B("]")], False, "']'"),
        ([B("}")], False, "'}'"),
        ([B(" [")], False, "leading space"),
        ([B("[1,2]")], True, "a JSON array"),
        ([B("{"), R(1400, "a")], True, "1401 bytes: no length limit"),
        ([B("Z")], False, "0x5A, just below '['"),
        ([B("\\")], False, "0x5C, just above '['"),
        ([B("z")], False, "0x7A, just below '{'"),
        ([B("|")], False, "0x7C, just above '{'"),
        ([B("\r\n{")], False, "CR LF before '{'"),
    ]
]

CASES += [
    ("json_depth", segs, holds, note)
    for segs, holds, note in [
        ([], True, "empty payload"),
        ([B('{"a":[1]}')], True, "depth 2"),
        ([B("[[[1]]]")], False, "depth 3"),
        ([B("[[1]]")], True, "depth 2, arrays only"),
        ([B('{"a":"[[[["}')], True, "brackets inside a string"),
        ([B('{"a":"\\"[[["}')], True, "escaped quote keeps the string open"),
        ([B('{"a":"\\\\"}[[[')], False, "escaped backslash closes the string; then depth 3"),
        ([B("]]]][[")], True, "closes before opens stay at 0"),
        ([B("]][[[")], False, "closes before opens, then depth 3"),
        ([B('"[[["')], True, "a string only"),
        ([B('"[[[[')], True, "an unterminated string"),
        ([B("[[],[[]]]")], False, "depth 3 in a second element"),
        ([B("{[}{[")], False, "mixed brackets count together"),
        ([B("'[[['")], False, "single quotes do not make strings"),
        ([B('\\"[[["')], True, "a backslash outside a string escapes nothing"),
        ([B("[["), R(1397, "1"), B("]]")], True, "1401 bytes at depth 2"),
        ([R(1398, " "), B("[[[")], False, "1401 bytes, depth 3 reached at the last byte"),
    ]
]

CASES += [
    ("hateless", segs, holds, note)
    for segs, holds, note in [
        ([B("I hate bananas")], False, "I hate bananas"),
        ([B("I love bananas")], True, "I love bananas"),
        ([], True, "empty payload"),
        ([B("hat")], True, "near miss: hat"),
        ([B("ate")], True, "near miss: ate"),
        ([B("HaTe")], False, "mixed case"),
        ([B("HATE")], False, "upper case"),
        ([R(1396, "a"), B("hate")], False, "1400 bytes, the word ends at the last byte"),
        ([R(1397, "a"), B("hat")], True, "1400 bytes, the word cut short at the end"),
        ([B("h a t e")], True, "spaced letters"),
        ([B("hhate")], False, "a repeated first letter"),
        ([B("hahate")], False, "a false start then the word"),
        ([B("whatever")], False, "inside another word"),
        ([B("that ear")], True, "hat and e split by a space"),
        ([B([0xE8]), B("ate")], True, "0xE8 is 'h' with the high bit set, not a letter"),
        ([B("hat\ne")], True, "a newline inside the word"),
        ([R(1401, "b")], True, "1401 bytes without the word"),
    ]
]


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def load_specs():
    specs = {}
    for name in DIODES:
        with open(EXAMPLES / f"{name}.json") as f:
            spec = json.load(f)
        assert spec["name"] == name, f"{name}.json names itself {spec['name']!r}"
        specs[name] = spec
    return specs


def verify(specs):
    bad = []
    for diode, segs, holds, note in CASES:
        got = evaluate(specs[diode]["predicate"], payload_bytes(segs))
        if got != holds:
            bad.append(f"{diode}: {note!r}: hand verdict {holds}, evaluator {got}")
    return bad


def render_json():
    cases = [
        {
            "diode": diode,
            "payload_hex": payload_bytes(segs).hex(),
            "holds": holds,
            "note": note,
        }
        for diode, segs, holds, note in CASES
    ]
    return json.dumps({"version": 1, "cases": cases}, indent=2) + "\n"


def lean_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def lean_ident(diode):
    # Lean names of the diodes (Lagic/Diodes.lean).
    return {
        "minimal": "minimal",
        "printable16": "printable16",
        "printable64": "printable64",
        "json_start": "jsonStart",
        "json_prefix": "jsonPrefix",
        "json_depth": "jsonDepth",
        "hateless": "hateless",
    }[diode]


def render_lean():
    out = [
        "/-",
        "GENERATED by lean/scripts/cases.py from its case list; do not edit by hand.",
        "Regenerate with `python3 lean/scripts/cases.py` (it also writes",
        "examples/cases.json and checks every verdict with its own evaluator).",
        "-/",
        "import Lagic.Diodes",
        "",
        "/-!",
        "# Boundary cases of the seed diodes",
        "",
        "`seedCases` is what `lake exe export` writes to `cases.json`, with each verdict",
        "computed by `eval`. The `example`s below state the verdicts written by hand in",
        "the generator, so Lean checks them: if `eval`, the hand verdicts or the Rust",
        "side drift apart, either this file stops compiling or the exported",
        "`cases.json` differs from the committed one.",
        "-/",
        "",
        "namespace Lagic",
        "",
        "-- Headroom for `decide`, which evaluates `eval` in the elaborator.",
        "set_option maxRecDepth 4096",
        "",
        "/-- One test payload for one diode, with the verdict written by hand. -/",
        "structure Case where",
        "  diode : Diode",
        "  payload : List UInt8",
        "  expected : Bool",
        "  note : String",
        "",
        "/-- Literal bytes (a helper that fixes the element type). -/",
        "def bs (l : List UInt8) : List UInt8 := l",
        "",
        "/-- `n` copies of byte `b`. -/",
        "def rep (n : Nat) (b : UInt8) : List UInt8 := List.replicate n b",
        "",
        "/-- Every case, in the order of `cases.json`. -/",
        "def seedCases : List Case := [",
    ]
    rows = []
    for diode, segs, holds, note in CASES:
        rows.append(
            f"  {{ diode := {lean_ident(diode)}, payload := {lean_payload(segs)},\n"
            f"    expected := {'true' if holds else 'false'}, note := {lean_string(note)} }}"
        )
    out.append(",\n".join(rows))
    out += [
        "]",
        "",
        "/-- Lean's `eval` agrees with every hand-written verdict (all cases at once). -/",
        "theorem seedCases_agree :",
        "    seedCases.all (fun c => eval c.diode.pred c.payload == c.expected) = true := by",
        "  native_decide",
        "",
        "/-! One `example` per case: short payloads by `decide`, long ones by `native_decide`. -/",
        "",
    ]
    for diode, segs, holds, note in CASES:
        n = len(payload_bytes(segs))
        tactic = "decide" if n <= DECIDE_MAX_LEN else "native_decide"
        out.append(f"-- {diode}, {n} bytes: {note}")
        out.append(
            f"example : eval {lean_ident(diode)}.pred ({lean_payload(segs)}) = "
            f"{'true' if holds else 'false'} := by {tactic}"
        )
    out += ["", "end Lagic", ""]
    return "\n".join(out)


def main():
    check = "--check" in sys.argv[1:]
    specs = load_specs()
    bad = verify(specs)
    if bad:
        print("hand-written verdicts disagree with the evaluator:", file=sys.stderr)
        for line in bad:
            print("  " + line, file=sys.stderr)
        return 1
    per = {d: sum(1 for c in CASES if c[0] == d) for d in DIODES}
    short = [d for d, k in per.items() if k < 10]
    if short:
        print(f"fewer than 10 cases for: {', '.join(short)}", file=sys.stderr)
        return 1
    outputs = {CASES_JSON: render_json(), CASES_LEAN: render_lean()}
    if check:
        stale = [str(p) for p, text in outputs.items()
                 if not p.exists() or p.read_text() != text]
        if stale:
            print("out of date (run lean/scripts/cases.py): " + ", ".join(stale),
                  file=sys.stderr)
            return 1
        print(f"cases up to date: {len(CASES)} cases, {per}")
        return 0
    for p, text in outputs.items():
        p.write_text(text)
    print(f"wrote {len(CASES)} cases ({per}) to {CASES_JSON} and {CASES_LEAN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
