import Lake
open Lake DSL

-- The Lean side of lagic: the predicate language, its meaning, the seed
-- diodes, proofs about them, and the JSON exporter. Lean 4 core only.
package lagic where

@[default_target]
lean_lib Lagic where

-- `lake exe export [DIR]` writes `<diode>.json` and `cases.json` into DIR
-- (default `out/`). `export` is a keyword, hence the guillemets.
@[default_target]
lean_exe «export» where
  root := `Main
