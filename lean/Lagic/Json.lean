import Lean.Data.Json
import Lagic.Diodes
import Lagic.Cases

/-!
# JSON export (spec format v1)

Maps the syntax of `Lagic.Syntax` to the JSON that `lagic compile` reads,
one object per construct, with the field names of spec format v1:

* byte class: `[[lo, hi], ..]`; window: `{"start": a, "end": b | null}`;
* predicate: `{"op": .., ..}` as listed at each constructor of `Pred`;
* spec file: `{"version": 1, "name", "description", "policy", "predicate"}`;
* cases file: `{"version": 1, "cases": [{"diode", "payload_hex", "holds",
  "note"}, ..]}`, where `holds` is computed here by `eval`.

`Json.mkObj` keeps object keys sorted, so the text differs from the
committed files in key order and spacing; the contract is the parsed JSON
value, which is what `check.sh` compares.
-/

namespace Lagic
open Lean

/-- The spec format version written here. -/
def formatVersion : Nat := 1

/-- A natural number as a JSON number. -/
def natJson (n : Nat) : Json := ToJson.toJson n

def ByteClass.toJson (c : ByteClass) : Json :=
  Json.arr (c.ranges.map (fun r => Json.arr #[natJson r.lo.toNat, natJson r.hi.toNat])).toArray

def Window.toJson (w : Window) : Json :=
  Json.mkObj [("start", natJson w.start),
              ("end", match w.stop with
                | none => Json.null
                | some b => natJson b)]

def patternJson (pat : List ByteClass) : Json :=
  Json.arr (pat.map ByteClass.toJson).toArray

def Cmp.symbol : Cmp → String
  | .lt => "<"
  | .le => "<="
  | .eq => "=="
  | .ne => "!="
  | .ge => ">="
  | .gt => ">"

/-- A predicate object: `op` plus the construct's fields (`mkObj` orders keys itself). -/
def opObj (op : String) (fields : List (String × Json)) : Json :=
  Json.mkObj (("op", Json.str op) :: fields)

mutual
def Pred.toJson : Pred → Json
  | .always => opObj "true" []
  | .never => opObj "false" []
  | .not q => opObj "not" [("arg", Pred.toJson q)]
  | .and qs => opObj "and" [("args", Json.arr (predsJson qs).toArray)]
  | .or qs => opObj "or" [("args", Json.arr (predsJson qs).toArray)]
  | .len c k => opObj "len" [("cmp", Json.str c.symbol), ("value", natJson k)]
  | .byte i c => opObj "byte" [("index", natJson i), ("class", c.toJson)]
  | .all w c => opObj "all" [("window", w.toJson), ("class", c.toJson)]
  | .any w c => opObj "any" [("window", w.toJson), ("class", c.toJson)]
  | .startsWith pat => opObj "prefix" [("pattern", patternJson pat)]
  | .contains w pat => opObj "contains" [("window", w.toJson), ("pattern", patternJson pat)]
  | .depthLe w k o c s =>
    opObj "depth_le" [("window", w.toJson), ("max", natJson k), ("open", o.toJson),
                      ("close", c.toJson), ("strings", Json.bool s)]

/-- The predicates of an `and`/`or`, in order. -/
def predsJson : List Pred → List Json
  | [] => []
  | q :: qs => Pred.toJson q :: predsJson qs
end

def Action.toJson : Action → Json
  | .pass => Json.str "pass"
  | .drop => Json.str "drop"

def Policy.toJson (p : Policy) : Json :=
  Json.mkObj [("arp", p.arp.toJson), ("ipv6_nd", p.ipv6Nd.toJson),
              ("other_ip", p.otherIp.toJson), ("non_ip", p.nonIp.toJson)]

/-- A whole spec file. -/
def Diode.toJson (d : Diode) : Json :=
  Json.mkObj [("version", natJson formatVersion), ("name", Json.str d.name),
              ("description", Json.str d.description), ("policy", d.policy.toJson),
              ("predicate", d.pred.toJson)]

/-- A lower-case hex digit of `n < 16`. -/
def hexDigit (n : Nat) : Char :=
  if n < 10 then Char.ofNat (48 + n) else Char.ofNat (87 + n)

/-- Bytes as lower-case hex, two digits per byte. -/
def hexString (p : List UInt8) : String :=
  String.mk (p.foldr (fun b acc => hexDigit (b.toNat / 16) :: hexDigit (b.toNat % 16) :: acc) [])

/-- One case, with the verdict computed by `eval` (not the hand-written one). -/
def Case.toJson (c : Case) : Json :=
  Json.mkObj [("diode", Json.str c.diode.name), ("payload_hex", Json.str (hexString c.payload)),
              ("holds", Json.bool (eval c.diode.pred c.payload)), ("note", Json.str c.note)]

/-- The cases file. -/
def casesJson (cs : List Case) : Json :=
  Json.mkObj [("version", natJson formatVersion),
              ("cases", Json.arr (cs.map Case.toJson).toArray)]

end Lagic
