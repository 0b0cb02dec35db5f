import Lagic

/-!
# `lake exe export [DIR]`

Writes `<name>.json` for every seed diode and `cases.json` (verdicts
computed by `eval`) into `DIR`, by default `out/`. The files are compared
with the committed `examples/` as parsed JSON values by `check.sh`. The
default is not `../examples` on purpose: `Json.mkObj` sorts object keys, so
writing there would reformat the committed files (same values, other text)
and upset readers that rely on their key order.
-/

open Lean Lagic

/-- Writes one JSON value, pretty-printed, with a final newline. -/
def writeJson (dir : System.FilePath) (file : String) (j : Json) : IO Unit :=
  IO.FS.writeFile (dir / file) (j.pretty ++ "\n")

def main (args : List String) : IO UInt32 := do
  match args with
  | [] | [_] =>
    let dir := System.FilePath.mk (args.headD "out")
    IO.FS.createDirAll dir
    for d in seedDiodes do
      writeJson dir (d.name ++ ".json") d.toJson
    writeJson dir "cases.json" (casesJson seedCases)
    IO.println s!"wrote {seedDiodes.length} diodes and {seedCases.length} cases to {dir}"
    return 0
  | _ =>
    IO.eprintln "usage: lake exe export [DIR]"
    return 2
