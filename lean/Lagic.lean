import Lagic.Syntax
import Lagic.Semantics
import Lagic.Diodes
import Lagic.Proofs
import Lagic.Stream
import Lagic.Cases
import Lagic.Json
