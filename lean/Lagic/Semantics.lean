import Lagic.Syntax

/-!
# The predicate language: meaning

`eval p P` is the normative meaning of docs/spec-format.md, for a payload `P` given as
a list of bytes (`n = P.length`):

* `byte i C`: `i < n` and `P[i] ∈ C`;
* a window `[a, b)` selects `P[a .. min(b, n))`, empty when `a ≥ n`;
* `all W C` / `any W C`: every / some byte of the window is in `C`;
* `prefix pat`: `n ≥ |pat|` and `P[j] ∈ pat[j]` for every `j`;
* `contains W pat`: `pat` occurs entirely inside the window;
* `len op k`: `n op k`;
* `depth_le W k open close strings`: a scan of the window, as `depthStep`
  spells out, that fails as soon as the depth exceeds `k`.

Every function here is structurally recursive (no well-founded recursion),
so `decide` and `rfl` can evaluate `eval` on concrete payloads, and the
proofs in `Lagic.Proofs` can unfold it definitionally.

`depth_le` is written as a run of a deterministic scanner with a rejecting
sink (`runFrom`, state `none`): the same shape the compiler lowers scans to,
and the reason a scan can be resumed across segments (`runFrom_append` in
`Lagic.Proofs`).
-/

namespace Lagic

/-- `b ∈ [r.lo, r.hi]`. -/
def ByteRange.has (r : ByteRange) (b : UInt8) : Bool :=
  decide (r.lo.toNat ≤ b.toNat) && decide (b.toNat ≤ r.hi.toNat)

/-- `b` lies in one of the ranges. -/
def anyRange (b : UInt8) : List ByteRange → Bool
  | [] => false
  | r :: rs => r.has b || anyRange b rs

/-- Membership in a byte class. -/
def ByteClass.has (c : ByteClass) (b : UInt8) : Bool :=
  anyRange b c.ranges

/-- `n op k`. -/
def Cmp.holds : Cmp → Nat → Nat → Bool
  | .lt, n, k => decide (n < k)
  | .le, n, k => decide (n ≤ k)
  | .eq, n, k => decide (n = k)
  | .ne, n, k => !decide (n = k)
  | .ge, n, k => decide (n ≥ k)
  | .gt, n, k => decide (n > k)

/-- The bytes a window selects: `P[a .. min(b, n))`, empty when `a ≥ min(b, n)`. -/
def window : Window → List UInt8 → List UInt8
  | ⟨a, none⟩, p => p.drop a
  | ⟨a, some b⟩, p => (p.take b).drop a

/-- Every byte is in `c`. -/
def allIn (c : ByteClass) : List UInt8 → Bool
  | [] => true
  | b :: bs => c.has b && allIn c bs

/-- Some byte is in `c`. -/
def anyIn (c : ByteClass) : List UInt8 → Bool
  | [] => false
  | b :: bs => c.has b || anyIn c bs

/-- The byte at index `i` exists and is in `c`. (The list comes first so
that `byteIn c [] i` reduces to `false` for every `i`.) -/
def byteIn (c : ByteClass) : List UInt8 → Nat → Bool
  | [], _ => false
  | b :: _, 0 => c.has b
  | _ :: bs, i + 1 => byteIn c bs i

/-- The pattern matches at the start of the list: the list is at least as
long as the pattern and byte `j` is in class `j`. -/
def matchesAt : List ByteClass → List UInt8 → Bool
  | [], _ => true
  | _ :: _, [] => false
  | c :: cs, b :: bs => c.has b && matchesAt cs bs

/-- The pattern occurs entirely inside the list (at some start position,
the empty suffix included). -/
def occurs (pat : List ByteClass) : List UInt8 → Bool
  | [] => matchesAt pat []
  | b :: bs => matchesAt pat (b :: bs) || occurs pat bs

/-- Runs a deterministic scanner over the bytes; `none` is the rejecting
sink (once reached, the scan has failed whatever follows). -/
def runFrom {σ : Type} (step : σ → UInt8 → Option σ) : σ → List UInt8 → Option σ
  | s, [] => some s
  | s, b :: bs => (step s b).bind (fun s' => runFrom step s' bs)

/-- The scan never reached the sink. -/
def run {σ : Type} (step : σ → UInt8 → Option σ) (s : σ) (l : List UInt8) : Bool :=
  (runFrom step s l).isSome

/-- Scanner mode of `depth_le` with `strings`: outside a string, inside one,
or right after a backslash inside one. -/
inductive Mode where
  | code
  | str
  | esc

/-- State of the `depth_le` scanner: bracket depth and mode. -/
structure DepthState where
  depth : Nat
  mode : Mode

/-- The start state: depth 0, outside any string. -/
def DepthState.init : DepthState := ⟨0, .code⟩

/-- ASCII double quote `"`. -/
def quoteByte : Nat := 0x22
/-- ASCII backslash `\`. -/
def backslashByte : Nat := 0x5C

/-- Bracket counting on one byte at depth `d`: an opener goes one deeper
and fails past `k`; a closer goes one up, never below 0 (`Nat` subtraction
truncates); any other byte leaves the depth alone. -/
def bracketStep (k : Nat) (opens closes : ByteClass) (d : Nat) (b : UInt8) : Option Nat :=
  if opens.has b then
    if d + 1 > k then none else some (d + 1)
  else if closes.has b then some (d - 1)
  else some d

/-- A byte outside any string: counted by `bracketStep`, mode stays `code`. -/
def codeStep (k : Nat) (opens closes : ByteClass) (d : Nat) (b : UInt8) : Option DepthState :=
  (bracketStep k opens closes d b).map (fun d' => DepthState.mk d' Mode.code)

/-- One byte of `depth_le` with `strings`, in docs/spec-format.md's order: inside a
string a backslash escapes the next byte and a quote ends the string; the
escaped byte is skipped; outside a string a quote starts one, and every
other byte is counted by `codeStep`. -/
def stringsStep (k : Nat) (opens closes : ByteClass) : DepthState → UInt8 → Option DepthState
  | ⟨d, .str⟩, b =>
    if b.toNat == backslashByte then some ⟨d, .esc⟩
    else if b.toNat == quoteByte then some ⟨d, .code⟩
    else some ⟨d, .str⟩
  | ⟨d, .esc⟩, _ => some ⟨d, .str⟩
  | ⟨d, .code⟩, b =>
    if b.toNat == quoteByte then some ⟨d, .str⟩
    else codeStep k opens closes d b

/-- One byte of `depth_le`: with `strings`, `stringsStep`; without, every
byte is counted by `codeStep` (the mode never leaves `code`). -/
def depthStep (k : Nat) (opens closes : ByteClass) (strings : Bool)
    (st : DepthState) (b : UInt8) : Option DepthState :=
  if strings then stringsStep k opens closes st b
  else codeStep k opens closes st.depth b

/-- Every Boolean of the list is `true` (`and` of the list). -/
def allTrue : List Bool → Bool
  | [] => true
  | b :: bs => b && allTrue bs

/-- Some Boolean of the list is `true` (`or` of the list). -/
def anyTrue : List Bool → Bool
  | [] => false
  | b :: bs => b || anyTrue bs

/-
`eval` recurses through the nested `List Pred` of `and`/`or` by way of one
companion function, `evalEach`: structural recursion over a nested type
admits one function per type in the mutual block, and structural (not
well-founded) recursion keeps `eval` reducible, so `decide` and `rfl` can
run it and the proofs can unfold it.
-/
mutual
/-- The meaning of a predicate on a payload. -/
def eval (q : Pred) (p : List UInt8) : Bool :=
  match q with
  | .always => true
  | .never => false
  | .not r => !(eval r p)
  | .and rs => allTrue (evalEach rs p)
  | .or rs => anyTrue (evalEach rs p)
  | .len c k => c.holds p.length k
  | .byte i c => byteIn c p i
  | .all w c => allIn c (window w p)
  | .any w c => anyIn c (window w p)
  | .startsWith pat => matchesAt pat p
  | .contains w pat => occurs pat (window w p)
  | .depthLe w k o c s => run (depthStep k o c s) DepthState.init (window w p)
termination_by structural q

/-- The meaning of each predicate of a list, in order. -/
def evalEach (qs : List Pred) (p : List UInt8) : List Bool :=
  match qs with
  | [] => []
  | r :: rs => eval r p :: evalEach rs p
termination_by structural qs
end

end Lagic
