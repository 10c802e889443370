"""The test-ordering environment (gymnasium) and the discretisation of its state.

Episode = one patient. Observation (float32, length 2M + K): which of the M
modalities are acquired (0/1), which the patient has at all (0/1: a test
that cannot be done cannot be ordered), and the current class
probabilities (the classifier of the acquired subset; the class prior
before any test). Actions (``Discrete(M + K)``): ``m < M`` orders modality
m; ``M + k`` stops and diagnoses class k. Reward: ``-costs[m]`` for a test;
at the diagnosis ``+1`` when right and ``-lam`` when wrong, and the episode
ends. So the return of a patient is ``[right] - lam [wrong] - cost of the
tests``: λ is the price of a wrong diagnosis in cost units, and a test is
worth ordering when it raises the expected accuracy by more than
``cost / (1 + lam)``.

With ``reward="expected"`` the diagnosis earns its expectation under the
current probabilities instead, ``p_k - lam (1 - p_k)`` for class k: the
same objective when the classifier is calibrated, without the label noise
(a wrong diagnosis at λ = 100 swings the reward by 101; learning from the
expectation needs far fewer patients). Evaluation always scores the true
labels.

``action_masks()`` (sb3-contrib's convention) says which actions are
valid: tests the patient has and that are not yet done, and every
diagnosis. An invalid action is refused: with ``invalid_action="raise"``
(for agents, which always mask) a ValueError; with the default
``"penalize"`` (what random exploration and ``check_env`` get) nothing
happens but a reward of ``-invalid_penalty`` and ``info["invalid_action"]
= True``; the episode is truncated after ``2 (M + 1)`` steps.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from .problem import AcquisitionData, check_costs, check_lam

__all__ = ["AcquisitionEnv", "StateDiscretiser"]


class StateDiscretiser:
    """Observation -> one of a finite set of states (for the tabular agents and the exact MDP).

    State = (acquired mask, available mask, most probable class, bin of its
    probability): the top probability, in [1/K, 1], falls into one of
    ``n_bins`` equal bins. ``n_states = 4**M * K * n_bins``.
    ``representative(state)`` is an observation that maps back to the state
    (the bin centre for the top class, the rest shared equally).

    ``available=False`` leaves the available mask out of the state (it
    reads as 0; ``n_states = 2**M * K * n_bins``): patients who lack
    different tests then share what is learned about the tests they both
    have, instead of splitting a cohort of a few hundred into up to 2**M
    groups (the action mask still keeps a missing test from being
    ordered). The exact MDP (:func:`~medfuse.learn.acquire.discretise`)
    needs the full state.
    """

    def __init__(self, n_modalities: int, n_classes: int, n_bins: int = 10, *, available: bool = True) -> None:
        if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
            raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}")
        self.n_modalities = int(n_modalities)
        self.n_classes = int(n_classes)
        self.n_bins = int(n_bins)
        self.available = bool(available)
        self.n_states = (4 if self.available else 2)**self.n_modalities * self.n_classes * self.n_bins
        self._bits = 1 << np.arange(self.n_modalities)

    def bin_of(self, p_top: float) -> int:
        lo = 1.0 / self.n_classes
        return min(max(int((p_top - lo) / (1.0 - lo) * self.n_bins), 0), self.n_bins - 1)

    def state(self, acquired: int, available: int, proba: npt.NDArray[Any]) -> int:
        k = int(np.argmax(proba))
        group = acquired * 2**self.n_modalities + available if self.available else acquired
        return (group * self.n_classes + k) * self.n_bins + self.bin_of(float(proba[k]))

    def __call__(self, obs: npt.NDArray[Any]) -> int:
        M = self.n_modalities
        acq = int(np.dot(obs[:M] > 0.5, self._bits))
        av = int(np.dot(obs[M:2 * M] > 0.5, self._bits)) if self.available else 0
        return self.state(acq, av, obs[2 * M:])

    def decode(self, state: int) -> tuple[int, int, int, int]:
        """(acquired mask, available mask, top class, bin)."""
        rest, b = divmod(int(state), self.n_bins)
        rest, k = divmod(rest, self.n_classes)
        acq, av = divmod(rest, 2**self.n_modalities) if self.available else (rest, 0)
        return acq, av, k, b

    def representative(self, state: int) -> npt.NDArray[np.float32]:
        acq, av, k, b = self.decode(state)
        M, K = self.n_modalities, self.n_classes
        lo = 1.0 / K
        top = lo + (b + 0.5) / self.n_bins * (1.0 - lo)
        p = np.full(K, (1.0 - top) / (K - 1) if K > 1 else 1.0)
        p[k] = top
        bits = [(acq >> j) & 1 for j in range(M)] + [(av >> j) & 1 for j in range(M)]
        return np.concatenate([np.asarray(bits, np.float32), p.astype(np.float32)])


def action_mask(acquired: int, available: int, n_modalities: int, n_classes: int) -> npt.NDArray[np.bool_]:
    m = np.ones(n_modalities + n_classes, dtype=bool)
    for j in range(n_modalities):
        m[j] = bool((available >> j) & 1) and not (acquired >> j) & 1
    return m


class AcquisitionEnv(gymnasium.Env):  # type: ignore[misc]
    """Which test to order next, one patient per episode (see the module docstring).

    Parameters
    ----------
    data : AcquisitionData
        Patients' probabilities per acquired subset
        (:func:`~medfuse.learn.acquire.subset_probabilities`).
    costs : dict modality -> cost >= 0
        Every modality of ``data`` needs one; unknown names are refused.
    lam : float >= 0
        Penalty of a wrong diagnosis (a right one earns +1).
    reward : "label" or "expected"
        The diagnosis reward: +1 / -lam by the true label, or its
        expectation under the current probabilities (module docstring).
    invalid_action : "penalize" or "raise"
    invalid_penalty : float >= 0
        Reward of an invalid action under "penalize" (negated).

    ``reset(seed=..., options={"patient": i})`` starts on patient i
    (default: one drawn with the env's seeded generator).
    """

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium declares it an instance attribute)

    def __init__(
        self,
        data: AcquisitionData,
        costs: Any,
        lam: float = 10.0,
        *,
        reward: str = "label",
        invalid_action: str = "penalize",
        invalid_penalty: float = 1.0,
    ) -> None:
        if not isinstance(data, AcquisitionData):
            raise TypeError(f"data must be an AcquisitionData (from subset_probabilities); got {type(data).__name__}")
        if len(data) == 0:
            raise ValueError("data holds no patient")
        if reward not in ("label", "expected"):
            raise ValueError(f"reward must be 'label' or 'expected'; got {reward!r}")
        self.reward = reward
        if invalid_action not in ("penalize", "raise"):
            raise ValueError(f"invalid_action must be 'penalize' or 'raise'; got {invalid_action!r}")
        self.data = data
        self.costs = check_costs(costs, data.modalities)
        self.lam = check_lam(lam)
        self.invalid_action = invalid_action
        self.invalid_penalty = check_lam(invalid_penalty)
        self.n_modalities = data.n_modalities
        self.n_classes = data.n_classes
        M, K = self.n_modalities, self.n_classes
        self.observation_space = spaces.Box(0.0, 1.0, shape=(2 * M + K,), dtype=np.float32)
        self.action_space = spaces.Discrete(M + K)
        self.max_steps = 2 * (M + 1)
        self._avail_masks = data.available_mask()
        self._masks = np.stack([np.stack([action_mask(a, v, M, K) for v in range(2**M)]) for a in range(2**M)])
        self._proba = data.proba.astype(np.float32)
        self._patient = 0
        self._acq = 0
        self._steps = 0
        self._cost = 0.0

    # -- gymnasium API ---------------------------------------------------------

    def _obs(self) -> npt.NDArray[np.float32]:
        M = self.n_modalities
        obs = np.empty(2 * M + self.n_classes, dtype=np.float32)
        av = int(self._avail_masks[self._patient])
        for j in range(M):
            obs[j] = (self._acq >> j) & 1
            obs[M + j] = (av >> j) & 1
        obs[2 * M:] = self._proba[self._patient, self._acq]
        return obs

    def action_masks(self) -> npt.NDArray[np.bool_]:
        """Valid actions now: tests the patient has and has not had, and every diagnosis."""
        return self._masks[self._acq, self._avail_masks[self._patient]].copy()

    def _info(self) -> dict[str, Any]:
        return {"patient": self._patient, "cost": self._cost, "action_mask": self.action_masks()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "patient" in options:
            i = options["patient"]
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= int(i) < len(self.data):
                raise ValueError(f"options['patient'] must be an index in [0, {len(self.data)}); got {i!r}")
            self._patient = int(i)
        else:
            self._patient = int(self.np_random.integers(len(self.data)))
        self._acq = 0
        self._steps = 0
        self._cost = 0.0
        return self._obs(), self._info()

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        a = int(action)
        M = self.n_modalities
        if not 0 <= a < M + self.n_classes:
            raise ValueError(f"action must be in [0, {M + self.n_classes}); got {action!r}")
        self._steps += 1
        if not self.action_masks()[a]:
            if self.invalid_action == "raise":
                raise ValueError(f"action {a} ({self.action_name(a)}) is not valid now; see action_masks()")
            info = self._info()
            info["invalid_action"] = True
            return self._obs(), -self.invalid_penalty, False, self._steps >= self.max_steps, info
        if a < M:
            self._acq |= 1 << a
            self._cost += float(self.costs[a])
            return self._obs(), -float(self.costs[a]), False, self._steps >= self.max_steps, self._info()
        k = a - M
        right = k == int(self.data.y[self._patient])
        info = self._info()
        info.update(diagnosis=k, correct=right)
        if self.reward == "expected":
            p = float(self.data.proba[self._patient, self._acq, k])
            return self._obs(), p - self.lam * (1.0 - p), True, False, info
        return self._obs(), 1.0 if right else -self.lam, True, False, info

    # -- helpers ---------------------------------------------------------------

    def action_name(self, a: int) -> str:
        M = self.n_modalities
        return f"order {self.data.modalities[a]}" if a < M else f"diagnose {self.data.classes[a - M]}"
