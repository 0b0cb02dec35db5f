import Lagic.Syntax
import Lagic.Semantics
import Lagic.Diodes
import Lagic.Proofs
import Lagic.Cases
import Lagic.Json
