"""The rulebook: a versioned TOML policy, validated on load, and pure rule functions over it."""

from ledger.policy.book import PolicyBook, PublishedPolicy
from ledger.policy.load import (
    PolicyFinding,
    illustrative_policy,
    illustrative_policy_text,
    load_policy,
    policy_findings,
)
from ledger.policy.rules import (
    DeductionTerms,
    TenureAccrual,
    appraisal_at_most,
    appraisal_points,
    check_override,
    deduction_terms,
    evaluation_terms,
    merit_points,
    months_between,
    recall_completed_points,
    recall_ordered_points,
    tenure_accrual,
    veto_points,
)
from ledger.policy.schema import OVERRIDABLE_EVENT_TYPES, TIE_BREAKERS, Policy

__all__ = [
    "OVERRIDABLE_EVENT_TYPES",
    "TIE_BREAKERS",
    "DeductionTerms",
    "Policy",
    "PolicyBook",
    "PolicyFinding",
    "PublishedPolicy",
    "TenureAccrual",
    "appraisal_at_most",
    "appraisal_points",
    "check_override",
    "deduction_terms",
    "evaluation_terms",
    "illustrative_policy",
    "illustrative_policy_text",
    "load_policy",
    "merit_points",
    "months_between",
    "policy_findings",
    "recall_completed_points",
    "recall_ordered_points",
    "tenure_accrual",
    "veto_points",
]
