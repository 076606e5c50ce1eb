"""Read models built from the log (installed as `ledger.projections`): standings, rankings, eligibility,
recalls, boards and escalations, each a pure fold over events plus the runner that keeps it."""
