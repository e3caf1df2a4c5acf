"""`mtlsdemo chaos`: steady transfers through the mesh while processes die, pause
and the network between the sidecars misbehaves; then an audit of the ledger
against the client's journal (nothing lost, nothing twice, no money made)."""
