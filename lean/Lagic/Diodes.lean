import Lagic.Semantics

/-!
# The seven seed diodes

The table of docs/design.md, one definition each. Names and descriptions are
those of `examples/<name>.json`, which `lake exe export` reproduces.
-/

namespace Lagic

/-- The class of a single byte. -/
def single (b : UInt8) : ByteClass := ⟨[⟨b, b⟩]⟩

/-- `text`: printable ASCII 0x20–0x7E plus TAB 0x09, LF 0x0A, CR 0x0D. -/
def text : ByteClass := ⟨[⟨0x09, 0x0A⟩, ⟨0x0D, 0x0D⟩, ⟨0x20, 0x7E⟩]⟩

/-- `{` and `[`. -/
def jsonOpen : ByteClass := ⟨[⟨0x5B, 0x5B⟩, ⟨0x7B, 0x7B⟩]⟩

/-- `}` and `]`. -/
def jsonClose : ByteClass := ⟨[⟨0x5D, 0x5D⟩, ⟨0x7D, 0x7D⟩]⟩

/-- The class of two bytes `a < b` (e.g. a letter in both cases). -/
def either (a b : UInt8) : ByteClass := ⟨[⟨a, a⟩, ⟨b, b⟩]⟩

/-- The word `hate` in any case mix: `[hH][aA][tT][eE]`. -/
def hateWord : List ByteClass :=
  [either 0x48 0x68, either 0x41 0x61, either 0x54 0x74, either 0x45 0x65]

/-- `all [0,16) text` -/
def minimal : Diode where
  name := "minimal"
  description := "The smallest useful diode: the first 16 payload bytes are text."
  pred := .all ⟨0, some 16⟩ text

/-- `all [0,16) text` -/
def printable16 : Diode where
  name := "printable16"
  description := "The first 16 payload bytes are text (printable ASCII, TAB, LF, CR)."
  pred := .all ⟨0, some 16⟩ text

/-- `all [0,64) text` -/
def printable64 : Diode where
  name := "printable64"
  description := "The first 64 payload bytes are text (printable ASCII, TAB, LF, CR)."
  pred := .all ⟨0, some 64⟩ text

/-- `len < 1400` and `prefix "{"` -/
def jsonStart : Diode where
  name := "json_start"
  description := "Payload shorter than 1400 bytes that starts with '{'."
  pred := .and [.len .lt 1400, .startsWith [single 0x7B]]

/-- `prefix` of one class `{ '{', '[' }` -/
def jsonPrefix : Diode where
  name := "json_prefix"
  description := "Payload starts with '{' or '['."
  pred := .startsWith [jsonOpen]

/-- `depth_le [0,∞) 2 {'{','['} {'}',']'} strings` -/
def jsonDepth : Diode where
  name := "json_depth"
  description := "Bracket nesting never exceeds 2, ignoring brackets inside JSON strings."
  pred := .depthLe Window.whole 2 jsonOpen jsonClose true

/-- `not (contains [0,∞) [hH][aA][tT][eE])` -/
def hateless : Diode where
  name := "hateless"
  description := "The word 'hate', in any case mix, appears nowhere in the payload."
  pred := .not (.contains Window.whole hateWord)

/-- Every seed diode, in the order the exporter writes them. -/
def seedDiodes : List Diode :=
  [minimal, printable16, printable64, jsonStart, jsonPrefix, jsonDepth, hateless]

end Lagic
