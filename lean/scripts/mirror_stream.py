#!/usr/bin/env python3
"""Cross-check Lagic/Stream.lean without a Lean toolchain.

Transliterates the definitions of Lagic/Stream.lean one for one
(`prefixSoFar`, `byteSoFar`, `sat`/`streamEval`, `concatSegs`,
`runSegments`, `allStep`, `carried`) on top of mirror_semantics.py's
transliteration of Semantics.lean, and checks on random data:

1. the theorems stated in Stream.lean: `runSegments_concat` (for the
   `depth_le` and `all` scanners), `allIn_eq_run`, `occurs_split`,
   `occurs_carry`, `prefixSoFar_closed`, `byteSoFar_closed`,
   `prefixSoFar_of_matchesAt`, `byteSoFar_of_byteIn`;
2. what Stream.lean does not prove: carrying `carried` of `carried` across
   many segments stays exact for `contains`; and for every predicate the
   stream check accepts (the rules of predicate_ir::stream, transliterated
   below), `streamEval` is prefix-closed and implied by `eval`;
3. hand verdicts of `streamEval` on the stream example specs.

This checks the logic of the Lean definitions, not that they compile.
"""

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mirror_semantics as m  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


# ---- transliteration of Lagic/Stream.lean ----------------------------------

def prefix_so_far(pat, l):
    if pat == [] or l == []:
        return True
    return m.has(pat[0], l[0]) and prefix_so_far(pat[1:], l[1:])


def byte_so_far(c, l, i):
    if l == []:
        return True
    return m.has(c, l[0]) if i == 0 else byte_so_far(c, l[1:], i - 1)


def sat(q, pos, p):
    op = q["op"]
    if op == "not":
        return not sat(q["arg"], not pos, p)
    if op == "and":
        return all(sat(r, pos, p) for r in q["args"])
    if op == "or":
        return any(sat(r, pos, p) for r in q["args"])
    if op == "byte":
        return byte_so_far(q["class"], p, q["index"]) if pos else m.byte_in(q["class"], p, q["index"])
    if op == "prefix":
        return prefix_so_far(q["pattern"], p) if pos else m.matches_at(q["pattern"], p)
    return m.lean_eval(q, p)


def stream_eval(q, p):
    return sat(q, True, p)


def concat_segs(segs):
    out = []
    for s in segs:
        out = out + s
    return out


def run_segments(step, st, segs):
    for seg in segs:
        st = None if st is None else m.run_from(step, st, seg)
    return st


def all_step(c):
    return lambda _s, b: () if m.has(c, b) else None


def carried(pat, l):
    return l[max(len(l) - max(len(pat) - 1, 0), 0):]


# ---- the stream check of predicate_ir::stream (closed / upward) ------------

def closed(q):
    op = q["op"]
    if op in ("true", "false", "byte", "prefix", "all", "depth_le"):
        return True
    if op == "len":
        return q["cmp"] in ("<", "<=") or (q["cmp"] in ("==", ">=") and q["value"] == 0)
    if op == "any":
        return q["class"] == []
    if op == "contains":
        return False
    if op == "not":
        return upward(q["arg"])
    return all(closed(r) for r in q["args"])


def upward(q):
    op = q["op"]
    if op in ("true", "false", "byte", "prefix", "any", "contains"):
        return True
    if op == "len":
        return q["cmp"] in (">", ">=") or (q["cmp"] in ("!=", "<") and q["value"] == 0)
    if op == "all":
        return q["class"] == [[0, 255]]
    if op == "depth_le":
        return False
    if op == "not":
        return closed(q["arg"])
    return all(upward(r) for r in q["args"])


# ---- checks ------------------------------------------------------------------

def rand_segments(rng, p):
    segs, i = [], 0
    while i < len(p):
        n = rng.randint(0, 6)
        segs.append(p[i:i + n])
        i += n
    if rng.random() < 0.3:
        segs.insert(rng.randint(0, len(segs)), [])
    return segs


def rand_pattern(rng):
    return [m.rand_class(rng) for _ in range(rng.randint(0, 4))]


def main():
    sys.setrecursionlimit(20000)
    rng = random.Random(10)
    checked = 0
    whole = {"start": 0, "end": None}
    for _ in range(4000):
        p = list(m.rand_payload(rng))
        segs = rand_segments(rng, p)
        assert concat_segs(segs) == p
        # runSegments_concat, for depth_le and all.
        step = m.depth_step(rng.randint(0, 3), [[91, 91], [123, 123]], [[93, 93], [125, 125]],
                            rng.random() < 0.7)
        assert run_segments(step, (0, "code"), segs) == m.run_from(step, (0, "code"), p)
        c = m.rand_class(rng)
        assert (run_segments(all_step(c), (), segs) is not None) == m.all_in(c, p)
        depth = {"op": "depth_le", "window": whole, "max": 2, "open": [[91, 91]],
                 "close": [[93, 93]], "strings": True}
        assert m.lean_eval(depth, p) == (run_segments(
            m.depth_step(2, [[91, 91]], [[93, 93]], True), (0, "code"), segs) is not None)
        # occurs_carry, once and iterated over every segment boundary.
        pat = rand_pattern(rng)
        cut = rng.randint(0, len(p))
        l, u = p[:cut], p[cut:]
        assert m.occurs(pat, l + u) == (m.occurs(pat, l) or m.occurs(pat, carried(pat, l) + u))
        found, tail = m.occurs(pat, []), []
        for seg in segs:
            found = found or m.occurs(pat, tail + seg)
            tail = carried(pat, tail + seg)
        assert found == m.occurs(pat, p), (pat, segs)
        # occurs_split with a = take, t = drop.
        a, t = l[:rng.randint(0, len(l))], None
        t = l[len(a):]
        if a == [] or len(pat) <= len(t) + 1:
            assert m.occurs(pat, a + t + u) == (m.occurs(pat, a + t) or m.occurs(pat, t + u))
        # Lenient readings: closed, and implied by the exact ones.
        i = rng.randint(0, 6)
        if prefix_so_far(pat, l + u):
            assert prefix_so_far(pat, l)
        if m.matches_at(pat, p):
            assert prefix_so_far(pat, p)
        if byte_so_far(c, l + u, i):
            assert byte_so_far(c, l, i)
        if m.byte_in(c, p, i):
            assert byte_so_far(c, p, i)
        checked += 1
    accepted = 0
    for _ in range(20000):
        q, p = m.rand_pred(rng), list(m.rand_payload(rng))
        if m.lean_eval(q, p):
            assert stream_eval(q, p), json.dumps(q)
        if closed(q):
            accepted += 1
            if stream_eval(q, p):
                for k in range(len(p) + 1):
                    assert stream_eval(q, p[:k]), (json.dumps(q), p, k)
        checked += 1
    assert accepted > 2000, accepted
    # Hand verdicts on the stream examples (whole-stream view).
    verdicts = [
        ("hateless", b"I ha", True), ("hateless", b"I hate", False),
        ("json_start", b"", True), ("json_start", b"{", True), ("json_start", b"x", False),
        ("json_prefix", b"[", True), ("json_prefix", b" [", False),
        ("json_depth", b"[[1]", True), ("json_depth", b"[[[", False),
        ("minimal", b"abc", True), ("minimal", b"ab\x00", False),
    ]
    for name, payload, want in verdicts:
        spec = json.loads((ROOT / "examples" / "stream" / f"{name}.json").read_text())
        assert spec["mode"] == "stream", name
        assert stream_eval(spec["predicate"], list(payload)) == want, (name, payload)
        checked += 1
    print(f"Lean-shaped stream semantics: {checked} checks passed "
          f"({accepted} random predicates passed the stream check)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
