import Lagic

/-!
# `lake exe export [DIR]`

Writes `<name>.json` for every seed diode and `cases.json` (verdicts
computed by `eval`) into `DIR`, by default `../examples` (the repository's
`examples/` when run from `lean/`). The files are compared with the
committed ones as parsed JSON by `check.sh`.
-/

open Lean Lagic

/-- Writes one JSON value, pretty-printed, with a final newline. -/
def writeJson (dir : System.FilePath) (file : String) (j : Json) : IO Unit :=
  IO.FS.writeFile (dir / file) (j.pretty ++ "\n")

def main (args : List String) : IO UInt32 := do
  match args with
  | [] | [_] =>
    let dir := System.FilePath.mk (args.headD "../examples")
    IO.FS.createDirAll dir
    for d in seedDiodes do
      writeJson dir (d.name ++ ".json") d.toJson
    writeJson dir "cases.json" (casesJson seedCases)
    IO.println s!"wrote {seedDiodes.length} diodes and {seedCases.length} cases to {dir}"
    return 0
  | _ =>
    IO.eprintln "usage: lake exe export [DIR]"
    return 2
