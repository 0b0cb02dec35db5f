#!/usr/bin/env python3
"""Cross-check the *shape* of Lagic/Semantics.lean without a Lean toolchain.

`lean_eval` below transliterates the Lean definitions one for one (window by
take/drop, `occurs` by suffix recursion, `depth_le` as a scanner run with a
rejecting sink, byte classes as range lists); `cases.evaluate` is the
generator's independent reading of docs/spec-format.md. They must agree on the seven
seed diodes, and on random predicates over every construct, for random and
adversarial payloads. This checks the logic of the Lean definitions, not
that they compile.
"""

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cases  # noqa: E402


# ---- transliteration of Lagic/Semantics.lean -------------------------------

def has(cls, b):  # ByteClass.has / anyRange / ByteRange.has
    for lo, hi in cls:
        if lo <= b and b <= hi:
            return True
    return False


def take(n, l):
    return l[:n]


def drop(n, l):
    return l[n:]


def window(w, p):
    a, stop = w["start"], w["end"]
    return drop(a, p) if stop is None else drop(a, take(stop, p))


def all_in(c, l):
    return l == [] or (has(c, l[0]) and all_in(c, l[1:]))


def any_in(c, l):
    return l != [] and (has(c, l[0]) or any_in(c, l[1:]))


def byte_in(c, l, i):
    if l == []:
        return False
    return has(c, l[0]) if i == 0 else byte_in(c, l[1:], i - 1)


def matches_at(pat, l):
    if pat == []:
        return True
    if l == []:
        return False
    return has(pat[0], l[0]) and matches_at(pat[1:], l[1:])


def occurs(pat, l):
    if l == []:
        return matches_at(pat, [])
    return matches_at(pat, l) or occurs(pat, l[1:])


def run_from(step, s, l):
    for b in l:
        s = step(s, b)
        if s is None:
            return None
    return s


def bracket_step(k, opens, closes, d, b):
    if has(opens, b):
        return None if d + 1 > k else d + 1
    if has(closes, b):
        return max(d - 1, 0)  # Nat subtraction
    return d


def code_step(k, opens, closes, d, b):
    d2 = bracket_step(k, opens, closes, d, b)
    return None if d2 is None else (d2, "code")


def strings_step(k, opens, closes, st, b):
    d, m = st
    if m == "str":
        if b == 0x5C:
            return (d, "esc")
        if b == 0x22:
            return (d, "code")
        return (d, "str")
    if m == "esc":
        return (d, "str")
    if b == 0x22:
        return (d, "str")
    return code_step(k, opens, closes, d, b)


def depth_step(k, opens, closes, strings):
    def step(st, b):
        if strings:
            return strings_step(k, opens, closes, st, b)
        return code_step(k, opens, closes, st[0], b)
    return step


HOLDS = {"<": lambda n, k: n < k, "<=": lambda n, k: n <= k, "==": lambda n, k: n == k,
         "!=": lambda n, k: not n == k, ">=": lambda n, k: n >= k, ">": lambda n, k: n > k}


def lean_eval(pred, p):
    op = pred["op"]
    if op == "true":
        return True
    if op == "false":
        return False
    if op == "not":
        return not lean_eval(pred["arg"], p)
    if op == "and":
        return all(lean_eval(q, p) for q in pred["args"])
    if op == "or":
        return any(lean_eval(q, p) for q in pred["args"])
    if op == "len":
        return HOLDS[pred["cmp"]](len(p), pred["value"])
    if op == "byte":
        return byte_in(pred["class"], p, pred["index"])
    if op == "all":
        return all_in(pred["class"], window(pred["window"], p))
    if op == "any":
        return any_in(pred["class"], window(pred["window"], p))
    if op == "prefix":
        return matches_at(pred["pattern"], p)
    if op == "contains":
        return occurs(pred["pattern"], window(pred["window"], p))
    if op == "depth_le":
        step = depth_step(pred["max"], pred["open"], pred["close"], pred["strings"])
        return run_from(step, (0, "code"), window(pred["window"], p)) is not None
    raise ValueError(op)


# ---- random predicates and payloads -----------------------------------------

HOT = b'{}[]"\\hateHATE \t\r\n\x00\x7f\x80\xff'


def rand_class(rng):
    pts = sorted(rng.sample(range(256), rng.choice([2, 4])))
    if rng.random() < 0.5:
        b = rng.choice(HOT)
        return [[b, b]]
    return [[pts[i], pts[i + 1]] for i in range(0, len(pts), 2)]


def rand_window(rng):
    a = rng.choice([0, 0, 1, 3, 16])
    e = rng.choice([None, None, a, a + 1, a + 5, 16, 64])
    return {"start": a, "end": e}


def rand_pred(rng, depth=0):
    ops = ["len", "byte", "all", "any", "prefix", "contains", "depth_le", "true", "false"]
    if depth < 2:
        ops += ["not", "and", "or"]
    op = rng.choice(ops)
    if op in ("true", "false"):
        return {"op": op}
    if op == "not":
        return {"op": "not", "arg": rand_pred(rng, depth + 1)}
    if op in ("and", "or"):
        return {"op": op, "args": [rand_pred(rng, depth + 1) for _ in range(rng.randint(0, 3))]}
    if op == "len":
        return {"op": "len", "cmp": rng.choice(list(HOLDS)), "value": rng.randint(0, 20)}
    if op == "byte":
        return {"op": "byte", "index": rng.randint(0, 6), "class": rand_class(rng)}
    if op in ("all", "any"):
        return {"op": op, "window": rand_window(rng), "class": rand_class(rng)}
    if op == "prefix":
        return {"op": "prefix", "pattern": [rand_class(rng) for _ in range(rng.randint(1, 3))]}
    if op == "contains":
        return {"op": "contains", "window": rand_window(rng),
                "pattern": [rand_class(rng) for _ in range(rng.randint(1, 3))]}
    return {"op": "depth_le", "window": rand_window(rng), "max": rng.randint(0, 3),
            "open": [[91, 91], [123, 123]], "close": [[93, 93], [125, 125]],
            "strings": rng.random() < 0.7}


def rand_payload(rng):
    n = rng.choice([0, 1, 2, 5, 15, 16, 17, 40, 70])
    return bytes(rng.choice(HOT) if rng.random() < 0.7 else rng.randrange(256) for _ in range(n))


def main():
    sys.setrecursionlimit(20000)
    rng = random.Random(4)
    specs = cases.load_specs()
    checked = 0
    for name, spec in specs.items():
        for diode, segs, _, _ in cases.CASES:
            if diode == name:
                p = cases.payload_bytes(segs)
                assert lean_eval(spec["predicate"], list(p)) == cases.evaluate(spec["predicate"], p)
                checked += 1
        for _ in range(2000):
            p = rand_payload(rng)
            assert lean_eval(spec["predicate"], list(p)) == cases.evaluate(spec["predicate"], p), (name, p)
            checked += 1
    for _ in range(20000):
        pred, p = rand_pred(rng), rand_payload(rng)
        a, b = lean_eval(pred, list(p)), cases.evaluate(pred, p)
        assert a == b, json.dumps({"pred": pred, "payload": p.hex(), "lean": a, "design": b})
        checked += 1
    print(f"Lean-shaped semantics agree with the docs/spec-format.md evaluator on {checked} checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
