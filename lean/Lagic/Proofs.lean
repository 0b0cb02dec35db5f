import Lagic.Diodes

/-!
# Properties of the language and of the seed diodes

What is proved here (names in backticks):

* **Stream lemma.** A scanner run over `l ++ u` is the run over `l` resumed
  on `u` from the state it reached (`runFrom_append`). This is why a scan's
  state can be carried across TCP segments.
* **Prefix closure, by construct.** `PrefixClosed p`: whenever `p` holds on
  `s ++ t` it holds on `s`. It holds for `true`, `false`, `len <`, `len <=`,
  `all W C` (any window), `depth_le`, `not q` for every extension-closed `q`
  (`contains`, `any`, `byte`, `prefix`, `len >`, `len >=`), and `and`/`or` of
  prefix-closed predicates: `always_closed`, `never_closed`, `lenLt_closed`,
  `lenLe_closed`, `all_closed`, `depthLe_closed`, `not_closed`,
  `notContains_closed`, `notAny_closed`, `notByte_closed`,
  `notStartsWith_closed`, `and_closedFrom`, `or_closedFrom`.
* **Where plain prefix closure fails.** `prefix pat` is false on payloads
  shorter than `pat`, so `prefix "{"` fails on `[]` yet holds on `[] ++ "{"`:
  `jsonPrefix_not_prefixClosed`, `jsonStart_not_prefixClosed`. What holds is
  closure *from length `h`* (`ClosedFrom h p`: for prefixes `s` with
  `h ≤ |s|`): `startsWith_closedFrom` (from `|pat|`), and every prefix-closed
  predicate is closed from every `h` (`closedFrom_of_prefixClosed`). In the
  stream model the first segment that carries data carries the first byte,
  so closure from length 1 is exactly what a one-byte `prefix` needs.
* **The seven seed diodes.** `minimal_prefixClosed`,
  `printable16_prefixClosed`, `printable64_prefixClosed`,
  `jsonDepth_prefixClosed`, `hateless_prefixClosed`, and
  `jsonStart_closedFrom1`, `jsonPrefix_closedFrom1`, and all seven at once
  as closure from length 1, `seedDiodes_closedFrom1`.
* **Relations between diodes.** `printable64_implies_printable16`,
  `jsonStart_implies_jsonPrefix`, `minimal_pred_eq_printable16` (equal
  ASTs) and `minimal_eval_eq_printable16`.

Proof style: the meaning is structurally recursive, so most steps are
definitional unfolding (`show`, type ascriptions) plus a few `Bool` facts
proved here by case analysis; only long-standing core lemmas are used.
-/

namespace Lagic

-- Headroom for the `decide` examples at the end.
set_option maxRecDepth 4096

/-! ## `Bool` facts, by case analysis -/

theorem false_ne_true' : (false = true) → False := by
  intro h
  cases h

theorem absurdB {p : Prop} (h : false = true) : p :=
  (false_ne_true' h).elim

theorem band_left {a b : Bool} (h : (a && b) = true) : a = true := by
  cases a with
  | true => rfl
  | false => exact absurdB h

theorem band_right {a b : Bool} (h : (a && b) = true) : b = true := by
  cases a with
  | true => exact h
  | false => exact absurdB h

theorem band_intro {a b : Bool} (ha : a = true) (hb : b = true) : (a && b) = true := by
  cases a with
  | true => exact hb
  | false => exact absurdB ha

theorem bor_inl {a b : Bool} (h : a = true) : (a || b) = true := by
  cases a with
  | true => rfl
  | false => exact absurdB h

theorem bor_inr {a b : Bool} (h : b = true) : (a || b) = true := by
  cases a with
  | true => rfl
  | false => exact h

theorem bor_elim {a b : Bool} (h : (a || b) = true) : a = true ∨ b = true := by
  cases a with
  | true => exact Or.inl rfl
  | false => exact Or.inr h

/-! ## Lists: what a longer payload's windows look like -/

theorem drop_zero' (l : List UInt8) : l.drop 0 = l := by
  cases l <;> rfl

theorem take_append_ex : ∀ (n : Nat) (s t : List UInt8), ∃ u, (s ++ t).take n = s.take n ++ u
  | n, [], t => ⟨t.take n, by cases n <;> rfl⟩
  | 0, _ :: _, _ => ⟨[], rfl⟩
  | n + 1, x :: xs, t =>
    match take_append_ex n xs t with
    | ⟨u, hu⟩ => ⟨u, by
        show x :: (xs ++ t).take n = x :: (xs.take n ++ u)
        rw [hu]⟩

theorem drop_append_ex : ∀ (n : Nat) (l u : List UInt8), ∃ v, (l ++ u).drop n = l.drop n ++ v
  | n, [], u => ⟨u.drop n, by cases n <;> rfl⟩
  | 0, _ :: _, u => ⟨u, rfl⟩
  | n + 1, _ :: xs, u =>
    match drop_append_ex n xs u with
    | ⟨v, hv⟩ => ⟨v, hv⟩

/-- The window of a payload is a prefix of the same window of any extension
of the payload. -/
theorem window_append : ∀ (w : Window) (s t : List UInt8),
    ∃ u, window w (s ++ t) = window w s ++ u
  | ⟨a, none⟩, s, t =>
    match drop_append_ex a s t with
    | ⟨u, hu⟩ => ⟨u, hu⟩
  | ⟨a, some b⟩, s, t =>
    match take_append_ex b s t with
    | ⟨u, hu⟩ =>
      match drop_append_ex a (s.take b) u with
      | ⟨v, hv⟩ => ⟨v, by
          show ((s ++ t).take b).drop a = (s.take b).drop a ++ v
          rw [hu]
          exact hv⟩

/-- A shorter `take` is a prefix of a longer one. -/
theorem take_le_prefix : ∀ (m n : Nat) (P : List UInt8), m ≤ n → ∃ u, P.take n = P.take m ++ u
  | 0, n, P, _ => ⟨P.take n, by cases P <;> rfl⟩
  | m + 1, 0, _, h => absurd h (Nat.not_succ_le_zero m)
  | _ + 1, _ + 1, [], _ => ⟨[], rfl⟩
  | m + 1, n + 1, x :: xs, h =>
    match take_le_prefix m n xs (Nat.le_of_succ_le_succ h) with
    | ⟨u, hu⟩ => ⟨u, by
        show x :: xs.take n = x :: (xs.take m ++ u)
        rw [hu]⟩

/-! ## The scans: shrinking keeps `all`, growing keeps `any`, `contains`, ... -/

theorem allIn_of_append (c : ByteClass) :
    ∀ (l u : List UInt8), allIn c (l ++ u) = true → allIn c l = true
  | [], _, _ => rfl
  | b :: bs, u, h => by
    have h' : (c.has b && allIn c (bs ++ u)) = true := h
    show (c.has b && allIn c bs) = true
    exact band_intro (band_left h') (allIn_of_append c bs u (band_right h'))

theorem anyIn_append (c : ByteClass) :
    ∀ (l u : List UInt8), anyIn c l = true → anyIn c (l ++ u) = true
  | [], _, h => absurdB h
  | b :: bs, u, h => by
    have h' : (c.has b || anyIn c bs) = true := h
    show (c.has b || anyIn c (bs ++ u)) = true
    cases bor_elim h' with
    | inl hb => exact bor_inl hb
    | inr hr => exact bor_inr (anyIn_append c bs u hr)

theorem byteIn_append (c : ByteClass) :
    ∀ (l u : List UInt8) (i : Nat), byteIn c l i = true → byteIn c (l ++ u) i = true
  | [], _, _, h => absurdB h
  | b :: _, _, 0, h => by
    have h' : c.has b = true := h
    exact h'
  | _ :: bs, u, i + 1, h => byteIn_append c bs u i h

theorem matchesAt_append :
    ∀ (pat : List ByteClass) (l u : List UInt8),
      matchesAt pat l = true → matchesAt pat (l ++ u) = true
  | [], _, _, _ => rfl
  | _ :: _, [], _, h => absurdB h
  | c :: cs, b :: bs, u, h => by
    have h' : (c.has b && matchesAt cs bs) = true := h
    show (c.has b && matchesAt cs (bs ++ u)) = true
    exact band_intro (band_left h') (matchesAt_append cs bs u (band_right h'))

/-- A pattern that matches a payload of at least its own length matches
every prefix of that payload that is still at least that long. -/
theorem matchesAt_of_append :
    ∀ (pat : List ByteClass) (s t : List UInt8),
      pat.length ≤ s.length → matchesAt pat (s ++ t) = true → matchesAt pat s = true
  | [], _, _, _, _ => rfl
  | _ :: cs, [], _, hl, _ => by
    have h0 : cs.length + 1 ≤ 0 := hl
    exact absurd h0 (Nat.not_succ_le_zero cs.length)
  | c :: cs, b :: bs, t, hl, h => by
    have hl' : cs.length + 1 ≤ bs.length + 1 := hl
    have h' : (c.has b && matchesAt cs (bs ++ t)) = true := h
    show (c.has b && matchesAt cs bs) = true
    exact band_intro (band_left h')
      (matchesAt_of_append cs bs t (Nat.le_of_succ_le_succ hl') (band_right h'))

theorem matchesAt_of_nil :
    ∀ (pat : List ByteClass) (u : List UInt8), matchesAt pat [] = true → matchesAt pat u = true
  | [], _, _ => rfl
  | _ :: _, _, h => absurdB h

theorem occurs_of_matchesAt :
    ∀ (pat : List ByteClass) (l : List UInt8), matchesAt pat l = true → occurs pat l = true
  | _, [], h => h
  | pat, b :: bs, h => by
    show (matchesAt pat (b :: bs) || occurs pat bs) = true
    exact bor_inl h

theorem occurs_append :
    ∀ (pat : List ByteClass) (l u : List UInt8), occurs pat l = true → occurs pat (l ++ u) = true
  | pat, [], u, h => occurs_of_matchesAt pat u (matchesAt_of_nil pat u h)
  | pat, b :: bs, u, h => by
    have h' : (matchesAt pat (b :: bs) || occurs pat bs) = true := h
    show (matchesAt pat (b :: (bs ++ u)) || occurs pat (bs ++ u)) = true
    cases bor_elim h' with
    | inl hm => exact bor_inl (matchesAt_append pat (b :: bs) u hm)
    | inr ho => exact bor_inr (occurs_append pat bs u ho)

/-! ## Scanners with a rejecting sink -/

/-- **Stream lemma.** Running a scanner over `l ++ u` is running it over
`l`, then resuming from the state reached on `u`; once the sink (`none`) is
reached, nothing that follows can leave it. -/
theorem runFrom_append {σ : Type} (step : σ → UInt8 → Option σ) :
    ∀ (s : σ) (l u : List UInt8),
      runFrom step s (l ++ u) = (runFrom step s l).bind (fun s' => runFrom step s' u)
  | _, [], _ => rfl
  | s, b :: bs, u => by
    show (step s b).bind (fun s' => runFrom step s' (bs ++ u))
      = ((step s b).bind (fun s' => runFrom step s' bs)).bind (fun s' => runFrom step s' u)
    cases step s b with
    | none => rfl
    | some s' => exact runFrom_append step s' bs u

theorem run_of_append {σ : Type} (step : σ → UInt8 → Option σ) (s : σ) (l u : List UInt8)
    (h : run step s (l ++ u) = true) : run step s l = true := by
  have h' : (runFrom step s (l ++ u)).isSome = true := h
  rw [runFrom_append] at h'
  show (runFrom step s l).isSome = true
  cases hr : runFrom step s l with
  | none =>
    rw [hr] at h'
    exact absurdB h'
  | some _ => rfl

/-! ## Prefix closure -/

/-- `p` is prefix-closed (a safety property): if it holds on `s ++ t`, it
holds on `s`. -/
abbrev PrefixClosed (p : Pred) : Prop :=
  ∀ s t : List UInt8, eval p (s ++ t) = true → eval p s = true

/-- `p` is prefix-closed on prefixes of at least `h` bytes. -/
abbrev ClosedFrom (h : Nat) (p : Pred) : Prop :=
  ∀ s t : List UInt8, h ≤ s.length → eval p (s ++ t) = true → eval p s = true

/-- `q` is extension-closed (a guarantee): if it holds on `s`, it holds on
every `s ++ t`. Its negation is then prefix-closed. -/
abbrev ExtensionClosed (q : Pred) : Prop :=
  ∀ s t : List UInt8, eval q s = true → eval q (s ++ t) = true

theorem closedFrom_of_prefixClosed {p : Pred} (hp : PrefixClosed p) (h : Nat) :
    ClosedFrom h p :=
  fun s t _ hst => hp s t hst

theorem prefixClosed_of_closedFrom_zero {p : Pred} (hp : ClosedFrom 0 p) : PrefixClosed p :=
  fun s t hst => hp s t (Nat.zero_le _) hst

theorem always_closed : PrefixClosed .always :=
  fun _ _ _ => rfl

theorem never_closed : PrefixClosed .never :=
  fun _ _ h => absurdB h

theorem lenLt_closed (k : Nat) : PrefixClosed (.len .lt k) := by
  intro s t h
  have h1 : (s ++ t).length < k := of_decide_eq_true h
  have h2 : (s ++ t).length = s.length + t.length := by rw [List.length_append]
  have h3 : s.length < k := by omega
  exact decide_eq_true h3

theorem lenLe_closed (k : Nat) : PrefixClosed (.len .le k) := by
  intro s t h
  have h1 : (s ++ t).length ≤ k := of_decide_eq_true h
  have h2 : (s ++ t).length = s.length + t.length := by rw [List.length_append]
  have h3 : s.length ≤ k := by omega
  exact decide_eq_true h3

theorem all_closed (w : Window) (c : ByteClass) : PrefixClosed (.all w c) := by
  intro s t h
  have h' : allIn c (window w (s ++ t)) = true := h
  show allIn c (window w s) = true
  cases window_append w s t with
  | intro u hu =>
    rw [hu] at h'
    exact allIn_of_append c (window w s) u h'

theorem depthLe_closed (w : Window) (k : Nat) (o c : ByteClass) (strings : Bool) :
    PrefixClosed (.depthLe w k o c strings) := by
  intro s t h
  have h' : run (depthStep k o c strings) DepthState.init (window w (s ++ t)) = true := h
  show run (depthStep k o c strings) DepthState.init (window w s) = true
  cases window_append w s t with
  | intro u hu =>
    rw [hu] at h'
    exact run_of_append (depthStep k o c strings) DepthState.init (window w s) u h'

theorem not_closed {q : Pred} (hq : ExtensionClosed q) : PrefixClosed (.not q) := by
  intro s t h
  have h' : (!(eval q (s ++ t))) = true := h
  show (!(eval q s)) = true
  cases hs : eval q s with
  | false => rfl
  | true =>
    rw [hq s t hs] at h'
    exact absurdB h'

theorem contains_extensionClosed (w : Window) (pat : List ByteClass) :
    ExtensionClosed (.contains w pat) := by
  intro s t h
  have h' : occurs pat (window w s) = true := h
  show occurs pat (window w (s ++ t)) = true
  cases window_append w s t with
  | intro u hu =>
    rw [hu]
    exact occurs_append pat (window w s) u h'

theorem any_extensionClosed (w : Window) (c : ByteClass) : ExtensionClosed (.any w c) := by
  intro s t h
  have h' : anyIn c (window w s) = true := h
  show anyIn c (window w (s ++ t)) = true
  cases window_append w s t with
  | intro u hu =>
    rw [hu]
    exact anyIn_append c (window w s) u h'

theorem byte_extensionClosed (i : Nat) (c : ByteClass) : ExtensionClosed (.byte i c) :=
  fun s t h => byteIn_append c s t i h

theorem startsWith_extensionClosed (pat : List ByteClass) :
    ExtensionClosed (.startsWith pat) :=
  fun s t h => matchesAt_append pat s t h

theorem notContains_closed (w : Window) (pat : List ByteClass) :
    PrefixClosed (.not (.contains w pat)) :=
  not_closed (contains_extensionClosed w pat)

theorem notAny_closed (w : Window) (c : ByteClass) : PrefixClosed (.not (.any w c)) :=
  not_closed (any_extensionClosed w c)

theorem notByte_closed (i : Nat) (c : ByteClass) : PrefixClosed (.not (.byte i c)) :=
  not_closed (byte_extensionClosed i c)

theorem notStartsWith_closed (pat : List ByteClass) : PrefixClosed (.not (.startsWith pat)) :=
  not_closed (startsWith_extensionClosed pat)

/-- `prefix pat` is closed on prefixes at least as long as the pattern. -/
theorem startsWith_closedFrom (pat : List ByteClass) (n : Nat) (hn : pat.length ≤ n) :
    ClosedFrom n (.startsWith pat) :=
  fun s t hl h => matchesAt_of_append pat s t (Nat.le_trans hn hl) h

/-- Every predicate of the list is closed from `n`. -/
def AllClosedFrom (n : Nat) : List Pred → Prop
  | [] => True
  | q :: qs => ClosedFrom n q ∧ AllClosedFrom n qs

theorem AllClosedFrom.nil' (n : Nat) : AllClosedFrom n [] :=
  True.intro

theorem AllClosedFrom.cons' {n : Nat} {q : Pred} {qs : List Pred}
    (hq : ClosedFrom n q) (hqs : AllClosedFrom n qs) : AllClosedFrom n (q :: qs) :=
  And.intro hq hqs

theorem and_closedFrom (n : Nat) :
    ∀ (qs : List Pred), AllClosedFrom n qs → ClosedFrom n (.and qs)
  | [], _ => fun _ _ _ _ => rfl
  | q :: qs, hall => fun s t hn h => by
    have hboth : ClosedFrom n q ∧ AllClosedFrom n qs := hall
    have h' : (eval q (s ++ t) && allTrue (evalEach qs (s ++ t))) = true := h
    have ih : allTrue (evalEach qs s) = true :=
      and_closedFrom n qs hboth.2 s t hn (band_right h')
    show (eval q s && allTrue (evalEach qs s)) = true
    exact band_intro (hboth.1 s t hn (band_left h')) ih

theorem or_closedFrom (n : Nat) :
    ∀ (qs : List Pred), AllClosedFrom n qs → ClosedFrom n (.or qs)
  | [], _ => fun _ _ _ h => absurdB h
  | q :: qs, hall => fun s t hn h => by
    have hboth : ClosedFrom n q ∧ AllClosedFrom n qs := hall
    have h' : (eval q (s ++ t) || anyTrue (evalEach qs (s ++ t))) = true := h
    show (eval q s || anyTrue (evalEach qs s)) = true
    cases bor_elim h' with
    | inl hq => exact bor_inl (hboth.1 s t hn hq)
    | inr hr => exact bor_inr (or_closedFrom n qs hboth.2 s t hn hr)

/-! ## The seed diodes -/

theorem minimal_prefixClosed : PrefixClosed minimal.pred :=
  all_closed ⟨0, some 16⟩ text

theorem printable16_prefixClosed : PrefixClosed printable16.pred :=
  all_closed ⟨0, some 16⟩ text

theorem printable64_prefixClosed : PrefixClosed printable64.pred :=
  all_closed ⟨0, some 64⟩ text

theorem jsonDepth_prefixClosed : PrefixClosed jsonDepth.pred :=
  depthLe_closed Window.whole 2 jsonOpen jsonClose true

theorem hateless_prefixClosed : PrefixClosed hateless.pred :=
  notContains_closed Window.whole hateWord

/-- `json_prefix` is closed on every prefix that holds at least one byte. -/
theorem jsonPrefix_closedFrom1 : ClosedFrom 1 jsonPrefix.pred :=
  startsWith_closedFrom [jsonOpen] 1 (by decide)

/-- `json_start` is closed on every prefix that holds at least one byte. -/
theorem jsonStart_closedFrom1 : ClosedFrom 1 jsonStart.pred :=
  and_closedFrom 1 [.len .lt 1400, .startsWith [single 0x7B]]
    (AllClosedFrom.cons' (closedFrom_of_prefixClosed (lenLt_closed 1400) 1)
      (AllClosedFrom.cons' (startsWith_closedFrom [single 0x7B] 1 (by decide))
        (AllClosedFrom.nil' 1)))

/-- All seven seed diodes at once: each is prefix-closed on every prefix that
holds at least one byte (the first data segment of a stream carries the
first byte; an empty payload passes by the packet model anyway). -/
theorem seedDiodes_closedFrom1 :
    ClosedFrom 1 minimal.pred ∧ ClosedFrom 1 printable16.pred ∧
    ClosedFrom 1 printable64.pred ∧ ClosedFrom 1 jsonStart.pred ∧
    ClosedFrom 1 jsonPrefix.pred ∧ ClosedFrom 1 jsonDepth.pred ∧
    ClosedFrom 1 hateless.pred :=
  ⟨closedFrom_of_prefixClosed minimal_prefixClosed 1,
   closedFrom_of_prefixClosed printable16_prefixClosed 1,
   closedFrom_of_prefixClosed printable64_prefixClosed 1,
   jsonStart_closedFrom1,
   jsonPrefix_closedFrom1,
   closedFrom_of_prefixClosed jsonDepth_prefixClosed 1,
   closedFrom_of_prefixClosed hateless_prefixClosed 1⟩

/-- Plain prefix closure fails for `json_prefix`: `"{"` passes, its empty
prefix does not. -/
theorem jsonPrefix_not_prefixClosed : ¬ PrefixClosed jsonPrefix.pred :=
  fun h => absurdB (h [] [0x7B] (by decide))

/-- Plain prefix closure fails for `json_start` for the same reason. -/
theorem jsonStart_not_prefixClosed : ¬ PrefixClosed jsonStart.pred :=
  fun h => absurdB (h [] [0x7B] (by decide))

/-! ## Relations between the diodes -/

/-- `minimal` and `printable16` are the same predicate, as ASTs... -/
theorem minimal_pred_eq_printable16 : minimal.pred = printable16.pred :=
  rfl

/-- ... and hence in meaning. -/
theorem minimal_eval_eq_printable16 (P : List UInt8) :
    eval minimal.pred P = eval printable16.pred P :=
  rfl

theorem printable64_implies_printable16 (P : List UInt8)
    (h : eval printable64.pred P = true) : eval printable16.pred P = true := by
  have h' : allIn text ((P.take 64).drop 0) = true := h
  rw [drop_zero'] at h'
  show allIn text ((P.take 16).drop 0) = true
  rw [drop_zero']
  cases take_le_prefix 16 64 P (by decide) with
  | intro u hu =>
    rw [hu] at h'
    exact allIn_of_append text (P.take 16) u h'

theorem brace_in_jsonOpen (b : UInt8) (h : (single 0x7B).has b = true) :
    jsonOpen.has b = true := by
  have h' : (ByteRange.has ⟨0x7B, 0x7B⟩ b || false) = true := h
  show (ByteRange.has ⟨0x5B, 0x5B⟩ b || (ByteRange.has ⟨0x7B, 0x7B⟩ b || false)) = true
  exact bor_inr h'

theorem jsonStart_implies_jsonPrefix (P : List UInt8)
    (h : eval jsonStart.pred P = true) : eval jsonPrefix.pred P = true := by
  have h1 : (decide (P.length < 1400) && (matchesAt [single 0x7B] P && true)) = true := h
  have h2 : matchesAt [single 0x7B] P = true := band_left (band_right h1)
  cases P with
  | nil => exact absurdB h2
  | cons b bs =>
    have h3 : ((single 0x7B).has b && matchesAt [] bs) = true := h2
    show (jsonOpen.has b && matchesAt [] bs) = true
    exact band_intro (brace_in_jsonOpen b (band_left h3)) (band_right h3)

/-! ## A few concrete checks (the boundary cases are in `Lagic.Cases`) -/

-- "I hate bananas" fails hateless.
example : eval hateless.pred [73, 32, 104, 97, 116, 101, 32, 98, 97, 110, 97, 110, 97, 115]
    = false := by decide
-- {"a":[1]} passes json_depth.
example : eval jsonDepth.pred [123, 34, 97, 34, 58, 91, 49, 93, 125] = true := by decide
-- [[[1]]] fails json_depth.
example : eval jsonDepth.pred [91, 91, 91, 49, 93, 93, 93] = false := by decide

end Lagic
