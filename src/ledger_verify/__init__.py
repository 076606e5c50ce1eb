"""ledger-verify: an auditor's check of a cadre-ledger export, proof or checkpoint, with no database.

It imports the standard library and `cryptography` (Ed25519) only — nothing of the ledger — so that it can
be read and run on an auditor's own machine: `merkle` (RFC 9162's tree and proofs), `checkpoint` (signed
tree heads), `cli` (the console script).
"""
