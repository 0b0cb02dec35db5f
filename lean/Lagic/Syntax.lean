/-!
# The predicate language: syntax

One Lean type per construct of spec format v1 (see `docs/spec-format.md` and
`examples/*.json`). The JSON exporter (`Lagic.Json`) maps each constructor
to the JSON object of the same construct, so the names below line up with
the JSON `op` strings and field names, except where a Lean keyword is in the
way (noted at each such field).

Invariants are not enforced by the types (the Rust parser checks them on the
JSON): a byte class is meant to be written as sorted, merged, inclusive
ranges, and a pattern to be non-empty. The meaning (`Lagic.Semantics`) is
total on every value anyway.
-/

namespace Lagic

/-- An inclusive byte range `[lo, hi]`; JSON `[lo, hi]`. -/
structure ByteRange where
  lo : UInt8
  hi : UInt8

/-- A set of byte values, written as inclusive ranges; JSON: an array of
`[lo, hi]` pairs, sorted and merged. -/
structure ByteClass where
  ranges : List ByteRange

/-- A window `[start, stop)` over the payload; `stop = none` is unbounded.
JSON `{"start": a, "end": b or null}` (`end` is a Lean keyword). -/
structure Window where
  start : Nat
  stop : Option Nat

/-- The whole payload, `[0, ∞)`. -/
def Window.whole : Window := ⟨0, none⟩

/-- Comparison operator of `len`; JSON `"<" "<=" "==" "!=" ">=" ">"`. -/
inductive Cmp where
  | lt
  | le
  | eq
  | ne
  | ge
  | gt

/-- A content predicate over a payload. -/
inductive Pred where
  /-- JSON `{"op":"true"}`. -/
  | always
  /-- JSON `{"op":"false"}`. -/
  | never
  /-- JSON `{"op":"not","arg":p}`. -/
  | not (arg : Pred)
  /-- JSON `{"op":"and","args":[..]}`; the empty conjunction holds. -/
  | and (args : List Pred)
  /-- JSON `{"op":"or","args":[..]}`; the empty disjunction fails. -/
  | or (args : List Pred)
  /-- JSON `{"op":"len","cmp":c,"value":k}`. -/
  | len (cmp : Cmp) (value : Nat)
  /-- JSON `{"op":"byte","index":i,"class":c}` (`class` is a Lean keyword). -/
  | byte (index : Nat) (cls : ByteClass)
  /-- JSON `{"op":"all","window":w,"class":c}`. -/
  | all (window : Window) (cls : ByteClass)
  /-- JSON `{"op":"any","window":w,"class":c}`. -/
  | any (window : Window) (cls : ByteClass)
  /-- JSON `{"op":"prefix","pattern":[..]}` (`prefix` is a Lean keyword). -/
  | startsWith (pattern : List ByteClass)
  /-- JSON `{"op":"contains","window":w,"pattern":[..]}`. -/
  | contains (window : Window) (pattern : List ByteClass)
  /-- JSON `{"op":"depth_le","window":w,"max":k,"open":o,"close":c,"strings":s}`
  (`open` is a Lean keyword). -/
  | depthLe (window : Window) (max : Nat) (opens closes : ByteClass) (strings : Bool)

/-- What to do with traffic the predicate does not judge. -/
inductive Action where
  | pass
  | drop

/-- The packet policy of a spec file; the defaults are docs/design.md's. -/
structure Policy where
  arp : Action := .pass
  ipv6Nd : Action := .pass
  otherIp : Action := .drop
  nonIp : Action := .drop

/-- A diode: a named predicate with its packet policy, i.e. one spec file. -/
structure Diode where
  name : String
  description : String
  policy : Policy := {}
  pred : Pred

end Lagic
