"""Which test to order next: cost-aware modality acquisition by reinforcement learning.

A patient arrives with nothing known; each test (X-ray, CT, a biopsy's
pathology report, ...) has a cost; a classifier per set of acquired tests
(the fusion classifiers of :mod:`medfuse.learn.fusion`) gives the class
probabilities so far. An agent learns when one more test is worth its cost
and when to stop and diagnose.

- :mod:`.problem`: the feature table -> :class:`AcquisitionData`
  (probabilities per patient and acquired subset, temperature-calibrated
  per subset), costs and λ checks.
- :mod:`.env`: :class:`AcquisitionEnv` (gymnasium; ``action_masks()``),
  :class:`StateDiscretiser`.
- :mod:`.mdp`: the discretised problem as a finite MDP, solved exactly by
  value iteration; :class:`MDPEnv` samples it.
- :mod:`.agents`: :class:`QLearningAgent`, :class:`PolicyGradientAgent`
  (REINFORCE with a baseline, NumPy), :class:`DQNAgent` (torch).
- :mod:`.evaluate`: fixed policies, held-out evaluation over folds and λ,
  the HTML report of ``medfuse acquire``.

A decision aid on synthetic data, not a clinical tool: the policy
maximises the expected reward it was given (+1 right, -λ wrong, minus the
costs) under the probabilities of classifiers trained on one cohort.
"""

from __future__ import annotations

from .agents import AGENTS, DQNAgent, PolicyGradientAgent, QLearningAgent, make_agent
from .env import AcquisitionEnv, StateDiscretiser
from .evaluate import (
    AcquisitionEvaluation,
    AllTestsPolicy,
    SingleTestPolicy,
    ThresholdPolicy,
    evaluate_acquisition,
    rollout,
    write_acquisition_report,
)
from .mdp import MDP, MDPEnv, discretise, policy_value, value_iteration
from .problem import (
    DEFAULT_COSTS,
    AcquisitionData,
    TemperatureCalibrator,
    check_costs,
    check_lam,
    parse_costs,
    subset_probabilities,
)

__all__ = [
    "AGENTS",
    "DEFAULT_COSTS",
    "MDP",
    "AcquisitionData",
    "AcquisitionEnv",
    "AcquisitionEvaluation",
    "AllTestsPolicy",
    "DQNAgent",
    "MDPEnv",
    "PolicyGradientAgent",
    "QLearningAgent",
    "SingleTestPolicy",
    "StateDiscretiser",
    "TemperatureCalibrator",
    "ThresholdPolicy",
    "check_costs",
    "check_lam",
    "discretise",
    "evaluate_acquisition",
    "make_agent",
    "parse_costs",
    "policy_value",
    "rollout",
    "subset_probabilities",
    "value_iteration",
    "write_acquisition_report",
]
