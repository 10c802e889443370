"""The discretised problem, solved exactly: a finite MDP, value iteration, policy evaluation.

:func:`discretise` turns an :class:`AcquisitionData` into a finite MDP over
the states of :class:`~medfuse.learn.acquire.env.StateDiscretiser`: every
(patient, acquired subset) pair maps to a state, and the pairs of a state
share its transitions — ordering m leads to the states of the same
patients with m added, with the pairs' frequencies; diagnosing k ends the
episode with the pairs' mean reward (+1 right, -λ wrong). The start state
is the patient's state before any test. :func:`value_iteration` gives the
optimal values and policy exactly (the acquired set only grows, so the
sweeps converge in at most M + 1); :func:`policy_value` evaluates any
policy (a function of the observation and action mask, e.g. an agent's
``predict``) exactly on the same MDP. :class:`MDPEnv` is a gymnasium
environment that samples it, with the observations of
:class:`~medfuse.learn.acquire.env.AcquisitionEnv`, so the agents train on
it unchanged and can be compared with the optimum.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from .env import StateDiscretiser, action_mask
from .problem import AcquisitionData, check_costs, check_lam

__all__ = ["MDP", "MDPEnv", "discretise", "policy_value", "value_iteration"]


@dataclass
class MDP:
    """A finite episodic MDP over discretised states.

    ``states``: the reachable discretiser states (index i in the arrays
    below is ``states[i]``); ``mask`` (S, A) valid actions; ``trans[i][a]``:
    list of (next index, probability) for a test action; ``reward`` (S, A)
    expected reward; ``p_right`` (S, K) probability that diagnosing class k
    is right; ``init`` (S,) start distribution.
    """

    states: npt.NDArray[np.int64]
    mask: npt.NDArray[np.bool_]
    trans: list[dict[int, list[tuple[int, float]]]]
    reward: npt.NDArray[np.float64]
    p_right: npt.NDArray[np.float64]
    init: npt.NDArray[np.float64]
    discretiser: StateDiscretiser
    costs: npt.NDArray[np.float64]
    lam: float

    @property
    def n_modalities(self) -> int:
        return self.discretiser.n_modalities

    @property
    def n_classes(self) -> int:
        return self.discretiser.n_classes

    def observation(self, i: int) -> npt.NDArray[np.float32]:
        return self.discretiser.representative(int(self.states[i]))


def discretise(data: AcquisitionData, costs: Any, lam: float, *, n_bins: int = 10) -> MDP:
    """The finite MDP of ``data`` (see the module docstring)."""
    if not isinstance(data, AcquisitionData):
        raise TypeError(f"data must be an AcquisitionData; got {type(data).__name__}")
    c = check_costs(costs, data.modalities)
    lam = check_lam(lam)
    M, K = data.n_modalities, data.n_classes
    disc = StateDiscretiser(M, K, n_bins)
    avail = data.available_mask()
    index: dict[int, int] = {}
    states: list[int] = []
    counts: list[defaultdict[int, defaultdict[int, float]]] = []
    right: list[npt.NDArray[np.float64]] = []
    weight: list[float] = []
    init: defaultdict[int, float] = defaultdict(float)

    def idx(s: int) -> int:
        if s not in index:
            index[s] = len(states)
            states.append(s)
            counts.append(defaultdict(lambda: defaultdict(float)))
            right.append(np.zeros(K))
            weight.append(0.0)
        return index[s]

    for i in range(len(data)):
        av = int(avail[i])
        sub = av
        subsets = []
        while True:  # every subset of the available mask
            subsets.append(sub)
            if sub == 0:
                break
            sub = (sub - 1) & av
        sid = {s: idx(disc.state(s, av, data.proba[i, s])) for s in subsets}
        init[sid[0]] += 1.0 / len(data)
        for s in subsets:
            j = sid[s]
            weight[j] += 1.0
            right[j][data.y[i]] += 1.0
            for m in range(M):
                if (av >> m) & 1 and not (s >> m) & 1:
                    counts[j][m][sid[s | (1 << m)]] += 1.0
    S, A = len(states), M + K
    mask = np.zeros((S, A), dtype=bool)
    reward = np.full((S, A), -np.inf)
    p_right = np.zeros((S, K))
    trans: list[dict[int, list[tuple[int, float]]]] = []
    for j, s in enumerate(states):
        acq, av, _k, _b = disc.decode(s)
        mask[j] = action_mask(acq, av, M, K)
        p_right[j] = right[j] / weight[j]
        reward[j, M:] = p_right[j] - lam * (1.0 - p_right[j])
        t: dict[int, list[tuple[int, float]]] = {}
        for m in range(M):
            if mask[j, m]:
                tot = sum(counts[j][m].values())
                t[m] = [(nxt, w / tot) for nxt, w in sorted(counts[j][m].items())]
                reward[j, m] = -c[m]
        trans.append(t)
    init_arr = np.zeros(S)
    for j, p in init.items():
        init_arr[j] = p
    return MDP(np.asarray(states, np.int64), mask, trans, reward, p_right, init_arr, disc, c, lam)


def value_iteration(mdp: MDP, *, tol: float = 1e-12, max_sweeps: int = 1000) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.intp]]:
    """(V, Q, greedy policy) of the MDP, γ = 1 (episodes end after at most M + 1 actions)."""
    S, A = mdp.mask.shape
    V = np.zeros(S)
    Q = np.full((S, A), -np.inf)
    for _ in range(max_sweeps):
        Q = np.where(mdp.mask, mdp.reward, -np.inf)
        for j in range(S):
            for m, nxt in mdp.trans[j].items():
                Q[j, m] = mdp.reward[j, m] + sum(p * V[n] for n, p in nxt)
        V_new = Q.max(axis=1)
        done = np.max(np.abs(V_new - V)) <= tol
        V = V_new
        if done:
            break
    return V, Q, np.argmax(Q, axis=1)


def policy_value(mdp: MDP, policy: Callable[[npt.NDArray[np.float32], npt.NDArray[np.bool_]], int] | npt.NDArray[np.intp]) -> float:
    """Exact expected return from the start distribution of a deterministic policy.

    ``policy``: an array of actions per MDP state index, or a function
    ``(observation, action_mask) -> action`` (an agent's ``predict``). An
    invalid action scores ``-inf``.
    """
    S = len(mdp.states)
    if callable(policy):
        acts = np.asarray([int(policy(mdp.observation(j), mdp.mask[j])) for j in range(S)], dtype=np.intp)
    else:
        acts = np.asarray(policy, dtype=np.intp)
    M = mdp.n_modalities
    V = np.zeros(S)
    for _ in range(M + 2):
        V_new = np.empty(S)
        for j in range(S):
            a = int(acts[j])
            if not mdp.mask[j, a]:
                V_new[j] = -np.inf
            elif a >= M:
                V_new[j] = mdp.reward[j, a]
            else:
                V_new[j] = mdp.reward[j, a] + sum(p * V[n] for n, p in mdp.trans[j][a])
        V = V_new
    return float(np.dot(mdp.init, V))


class MDPEnv(gymnasium.Env):  # type: ignore[misc]
    """A gymnasium environment sampling a :class:`MDP`.

    Same observation and action layout as ``AcquisitionEnv`` (the
    observation of a state is its discretiser representative), the same
    ``action_masks()``. The diagnosis reward is its expectation in the
    state (``p_right - λ (1 - p_right)``), or with ``sample_rewards=True``
    +1 drawn with the state's probability of being right, else -λ; the
    transitions are sampled either way. Invalid actions raise.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium declares it an instance attribute)

    def __init__(self, mdp: MDP, *, sample_rewards: bool = False) -> None:
        if not isinstance(mdp, MDP):
            raise TypeError(f"mdp must be an MDP (from discretise); got {type(mdp).__name__}")
        self.mdp = mdp
        self.sample_rewards = bool(sample_rewards)
        self.lam, self.costs = mdp.lam, mdp.costs
        self.n_modalities, self.n_classes = mdp.n_modalities, mdp.n_classes
        M, K = self.n_modalities, self.n_classes
        self.observation_space = spaces.Box(0.0, 1.0, shape=(2 * M + K,), dtype=np.float32)
        self.action_space = spaces.Discrete(M + K)
        self._obs_table = np.stack([mdp.observation(j) for j in range(len(mdp.states))])
        self._cum = [{m: (np.asarray([n for n, _p in nxt]), np.cumsum([p for _n, p in nxt])) for m, nxt in t.items()}
                     for t in mdp.trans]
        self._init_cum = np.cumsum(mdp.init)
        self._s = 0

    def action_masks(self) -> npt.NDArray[np.bool_]:
        return np.asarray(self.mdp.mask[self._s].copy())

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self._s = int(min(np.searchsorted(self._init_cum, self.np_random.random() * self._init_cum[-1], side="right"),
                          len(self._init_cum) - 1))
        return self._obs_table[self._s].copy(), {"state": self._s}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        a = int(action)
        if not 0 <= a < self.mdp.mask.shape[1] or not self.mdp.mask[self._s, a]:
            raise ValueError(f"action {action!r} is not valid in this state; see action_masks()")
        M = self.n_modalities
        if a >= M:
            if self.sample_rewards:
                right = self.np_random.random() < self.mdp.p_right[self._s, a - M]
                r = 1.0 if right else -self.mdp.lam
            else:
                r = float(self.mdp.reward[self._s, a])
            return self._obs_table[self._s].copy(), r, True, False, {"state": self._s}
        nxt, cum = self._cum[self._s][a]
        j = min(int(np.searchsorted(cum, self.np_random.random() * cum[-1], side="right")), len(nxt) - 1)
        r = float(self.mdp.reward[self._s, a])
        self._s = int(nxt[j])
        return self._obs_table[self._s].copy(), r, False, False, {"state": self._s}
