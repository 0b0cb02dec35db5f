import Lagic.Proofs

/-!
# Stream mode: the stream meaning, and judging segment by segment

In stream mode (spec format v2, docs/stream.md) a predicate judges the byte
stream of a TCP connection, which arrives in segments. This file holds:

* **The stream meaning** `streamEval`: `eval`, except that `byte` and
  `prefix` in positive positions (under an even number of `not`s) are read
  "as far as the stream goes" (`byteSoFar`, `prefixSoFar`). It mirrors
  `predicate_ir::stream::stream_eval` (Rust) and `stream_eval` in
  `scripts/mirror_stream.py`. Proved here: the lenient readings are
  prefix-closed (`prefixSoFar_closed`, `byteSoFar_closed`) and weaker than
  the exact ones (`prefixSoFar_of_matchesAt`, `byteSoFar_of_byteIn`).
* **Segments.** `concatSegs` joins segments; `runSegments` runs a scanner
  segment by segment, carrying its state. `runSegments_concat`: that equals
  running it over the concatenated stream (from `runFrom_append`).
* **Constructs as carried state**, over the whole stream (window
  `Window.whole`):
  - `all`: `all_segments` (a one-state scanner, `allIn_eq_run`);
  - `depth_le`: `depthLe_segments` (its scanner, as `eval` defines it);
  - `contains` (so `not contains`): `occurs_carry`: the pattern occurs in
    `l ++ u` iff it occurs in `l` or in `carried pat l ++ u`, where
    `carried pat l` is the last `|pat| - 1` bytes of `l`. So the state a
    `contains` judgment carries across a segment boundary is one flag and
    `|pat| - 1` bytes.
  - `len`: the length of a concatenation is the sum of the lengths
    (`List.length_append`), a counter.

Not proved here (checked in Python by `scripts/mirror_stream.py`): that
iterating `occurs_carry` over many segments with the carried bytes of the
carried bytes stays exact; windows other than the whole stream; that
`streamEval` of every predicate the Rust check accepts is prefix-closed
(the per-construct facts above and in `Lagic.Proofs` are the ingredients).
-/

namespace Lagic

/-! ## The stream meaning -/

/-- `prefix` read as far as the stream goes: the first `min(n, |pat|)`
bytes match. -/
def prefixSoFar : List ByteClass → List UInt8 → Bool
  | [], _ => true
  | _ :: _, [] => true
  | c :: cs, b :: bs => c.has b && prefixSoFar cs bs

/-- `byte i C` read as far as the stream goes: byte `i` is not there yet,
or it is in `C`. -/
def byteSoFar (c : ByteClass) : List UInt8 → Nat → Bool
  | [], _ => true
  | b :: _, 0 => c.has b
  | _ :: bs, i + 1 => byteSoFar c bs i

mutual
/-- `q` over the stream `p`, read leniently when `pos` (positive position)
and exactly otherwise. -/
def sat (q : Pred) (pos : Bool) (p : List UInt8) : Bool :=
  match q with
  | .not r => !(sat r (!pos) p)
  | .and rs => allTrue (satEach rs pos p)
  | .or rs => anyTrue (satEach rs pos p)
  | .byte i c => if pos then byteSoFar c p i else byteIn c p i
  | .startsWith pat => if pos then prefixSoFar pat p else matchesAt pat p
  | r => eval r p
termination_by structural q

/-- `sat` of each predicate of a list, in order. -/
def satEach (qs : List Pred) (pos : Bool) (p : List UInt8) : List Bool :=
  match qs with
  | [] => []
  | r :: rs => sat r pos p :: satEach rs pos p
termination_by structural qs
end

/-- The stream meaning of a predicate on the stream so far. -/
def streamEval (q : Pred) (p : List UInt8) : Bool :=
  sat q true p

theorem prefixSoFar_closed :
    ∀ (pat : List ByteClass) (s t : List UInt8),
      prefixSoFar pat (s ++ t) = true → prefixSoFar pat s = true
  | [], _, _, _ => rfl
  | _ :: _, [], _, _ => rfl
  | c :: cs, b :: bs, t, h => by
    have h' : (c.has b && prefixSoFar cs (bs ++ t)) = true := h
    show (c.has b && prefixSoFar cs bs) = true
    exact band_intro (band_left h') (prefixSoFar_closed cs bs t (band_right h'))

theorem prefixSoFar_of_matchesAt :
    ∀ (pat : List ByteClass) (s : List UInt8),
      matchesAt pat s = true → prefixSoFar pat s = true
  | [], _, _ => rfl
  | _ :: _, [], _ => rfl
  | c :: cs, b :: bs, h => by
    have h' : (c.has b && matchesAt cs bs) = true := h
    show (c.has b && prefixSoFar cs bs) = true
    exact band_intro (band_left h') (prefixSoFar_of_matchesAt cs bs (band_right h'))

theorem byteSoFar_closed (c : ByteClass) :
    ∀ (s t : List UInt8) (i : Nat), byteSoFar c (s ++ t) i = true → byteSoFar c s i = true
  | [], _, _, _ => rfl
  | _ :: _, _, 0, h => h
  | _ :: bs, t, i + 1, h => byteSoFar_closed c bs t i h

theorem byteSoFar_of_byteIn (c : ByteClass) :
    ∀ (s : List UInt8) (i : Nat), byteIn c s i = true → byteSoFar c s i = true
  | [], _, _ => rfl
  | _ :: _, 0, h => h
  | _ :: bs, i + 1, h => byteSoFar_of_byteIn c bs i h

/-! ## Segments -/

/-- The stream a list of segments carries, in order. -/
def concatSegs : List (List UInt8) → List UInt8
  | [] => []
  | seg :: segs => seg ++ concatSegs segs

/-- A scanner run segment by segment, the state carried from each segment
to the next (`none` is the rejecting sink). -/
def runSegments {σ : Type} (step : σ → UInt8 → Option σ) :
    Option σ → List (List UInt8) → Option σ
  | st, [] => st
  | st, seg :: segs => runSegments step (st.bind (fun s => runFrom step s seg)) segs

theorem runSegments_none {σ : Type} (step : σ → UInt8 → Option σ) :
    ∀ (segs : List (List UInt8)), runSegments step none segs = none
  | [] => rfl
  | _ :: segs => runSegments_none step segs

/-- **Judging segment by segment with the carried state equals judging the
concatenated stream**, for every scanner. -/
theorem runSegments_concat {σ : Type} (step : σ → UInt8 → Option σ) :
    ∀ (s : σ) (segs : List (List UInt8)),
      runSegments step (some s) segs = runFrom step s (concatSegs segs)
  | _, [] => rfl
  | s, seg :: segs => by
    show runSegments step (runFrom step s seg) segs = runFrom step s (seg ++ concatSegs segs)
    rw [runFrom_append]
    cases runFrom step s seg with
    | none => exact runSegments_none step segs
    | some s' => exact runSegments_concat step s' segs

/-! ## `all` and `depth_le` over the whole stream -/

/-- The one-state scanner of `all C`: a byte outside `C` is the sink. -/
def allStep (c : ByteClass) (_ : Unit) (b : UInt8) : Option Unit :=
  cond (c.has b) (some ()) none

theorem allIn_eq_run (c : ByteClass) :
    ∀ l : List UInt8, allIn c l = run (allStep c) () l
  | [] => rfl
  | b :: bs => by
    show (c.has b && allIn c bs)
      = ((cond (c.has b) (some ()) none).bind (fun s => runFrom (allStep c) s bs)).isSome
    cases c.has b with
    | false => rfl
    | true => exact allIn_eq_run c bs

theorem all_segments (c : ByteClass) (segs : List (List UInt8)) :
    eval (.all Window.whole c) (concatSegs segs)
      = (runSegments (allStep c) (some ()) segs).isSome := by
  rw [runSegments_concat]
  show allIn c ((concatSegs segs).drop 0) = (runFrom (allStep c) () (concatSegs segs)).isSome
  rw [drop_zero']
  exact allIn_eq_run c (concatSegs segs)

theorem depthLe_segments (k : Nat) (o c : ByteClass) (strings : Bool)
    (segs : List (List UInt8)) :
    eval (.depthLe Window.whole k o c strings) (concatSegs segs)
      = (runSegments (depthStep k o c strings) (some DepthState.init) segs).isSome := by
  rw [runSegments_concat]
  show (runFrom (depthStep k o c strings) DepthState.init ((concatSegs segs).drop 0)).isSome
    = (runFrom (depthStep k o c strings) DepthState.init (concatSegs segs)).isSome
  rw [drop_zero']

/-! ## `contains`: one flag and `|pat| - 1` bytes cross a segment boundary -/

theorem bool_or_assoc (a b c : Bool) : ((a || b) || c) = (a || (b || c)) := by
  cases a <;> cases b <;> rfl

/-- `matchesAt` reads only the first `|pat|` bytes. -/
theorem matchesAt_long (pat : List ByteClass) (s v : List UInt8) (h : pat.length ≤ s.length) :
    matchesAt pat (s ++ v) = matchesAt pat s := by
  cases hm : matchesAt pat s with
  | true => exact matchesAt_append pat s v hm
  | false =>
    cases hv : matchesAt pat (s ++ v) with
    | false => rfl
    | true =>
      have hs := matchesAt_of_append pat s v h hv
      rw [hm] at hs
      exact absurdB hs

theorem occurs_absorb (pat : List ByteClass) (t u : List UInt8) :
    occurs pat (t ++ u) = (occurs pat t || occurs pat (t ++ u)) := by
  cases ho : occurs pat t with
  | false => rfl
  | true => exact occurs_append pat t u ho

/-- A stream `a ++ t ++ u`, where `t` is all of the stream before `u` or at
least `|pat| - 1` bytes long: an occurrence is wholly inside `a ++ t` or
inside `t ++ u`. -/
theorem occurs_split (pat : List ByteClass) (t u : List UInt8) :
    ∀ a : List UInt8, (a = [] ∨ pat.length ≤ t.length + 1) →
      occurs pat (a ++ (t ++ u)) = (occurs pat (a ++ t) || occurs pat (t ++ u))
  | [], _ => occurs_absorb pat t u
  | x :: a', h => by
    have hl : pat.length ≤ t.length + 1 := by
      cases h with
      | inl hnil => exact absurd hnil (List.cons_ne_nil x a')
      | inr hlen => exact hlen
    have hm : pat.length ≤ (x :: (a' ++ t)).length := by
      show pat.length ≤ (a' ++ t).length + 1
      rw [List.length_append]
      omega
    have e : matchesAt pat (x :: (a' ++ (t ++ u))) = matchesAt pat (x :: (a' ++ t)) := by
      have e0 := matchesAt_long pat (x :: (a' ++ t)) u hm
      rw [List.cons_append, List.append_assoc] at e0
      exact e0
    show (matchesAt pat (x :: (a' ++ (t ++ u))) || occurs pat (a' ++ (t ++ u)))
      = ((matchesAt pat (x :: (a' ++ t)) || occurs pat (a' ++ t)) || occurs pat (t ++ u))
    rw [bool_or_assoc, occurs_split pat t u a' (Or.inr hl), e]

/-- The bytes a `contains` judgment carries across a segment boundary: the
last `|pat| - 1` bytes of the stream so far (all of it when shorter). -/
def carried (pat : List ByteClass) (l : List UInt8) : List UInt8 :=
  l.drop (l.length - (pat.length - 1))

theorem take_zero' (l : List UInt8) : l.take 0 = [] := by
  cases l <;> rfl

theorem carry_cond (pat : List ByteClass) (l : List UInt8) :
    l.take (l.length - (pat.length - 1)) = [] ∨
      pat.length ≤ (l.drop (l.length - (pat.length - 1))).length + 1 := by
  cases Nat.lt_or_ge l.length (pat.length - 1) with
  | inl _ =>
    apply Or.inl
    have hn : l.length - (pat.length - 1) = 0 := by omega
    rw [hn, take_zero']
  | inr _ =>
    apply Or.inr
    rw [List.length_drop]
    omega

/-- **Carried state of `contains`.** Judging `contains` on `l ++ u` needs
only the verdict on `l` and the last `|pat| - 1` bytes of `l`. -/
theorem occurs_carry (pat : List ByteClass) (l u : List UInt8) :
    occurs pat (l ++ u) = (occurs pat l || occurs pat (carried pat l ++ u)) := by
  show occurs pat (l ++ u)
    = (occurs pat l || occurs pat (l.drop (l.length - (pat.length - 1)) ++ u))
  have hsplit := occurs_split pat (l.drop (l.length - (pat.length - 1))) u
    (l.take (l.length - (pat.length - 1))) (carry_cond pat l)
  rw [← List.append_assoc, List.take_append_drop] at hsplit
  exact hsplit

/-- The same for the whole-stream `contains` of a spec. -/
theorem contains_carry (pat : List ByteClass) (l u : List UInt8) :
    eval (.contains Window.whole pat) (l ++ u)
      = (eval (.contains Window.whole pat) l || occurs pat (carried pat l ++ u)) := by
  show occurs pat ((l ++ u).drop 0) = (occurs pat (l.drop 0) || occurs pat (carried pat l ++ u))
  rw [drop_zero', drop_zero']
  exact occurs_carry pat l u

/-! ## Concrete checks -/

/-- "ha" then "te": `contains "hate"` is found only by the carried bytes. -/
example : occurs hateWord ([0x68, 0x61] ++ [0x74, 0x65]) = true := by decide

/-- The carried bytes of "xhat" for a 4-byte pattern are the last three. -/
example : carried hateWord [0x78, 0x68, 0x61, 0x74] = [0x68, 0x61, 0x74] := by decide

end Lagic
