"""Agents that learn which test to order: tabular Q-learning, REINFORCE with a baseline, DQN.

All three follow one small contract, scikit-learn style: ``__init__`` only
stores parameters; ``fit(env)`` trains on a gymnasium environment with the
observation layout of :class:`~medfuse.learn.acquire.env.AcquisitionEnv`
(``AcquisitionEnv`` itself or the exact ``MDPEnv``; ``env.n_modalities``,
``env.n_classes`` and ``env.action_masks()`` are used) and returns
``self``; ``predict(observation, action_mask=None)`` gives the greedy
action, never an invalid one. Learned state ends in ``_``. Each takes a
``seed`` and gives the same agent for the same seed (DQN: and thread
count). Invalid actions are masked, never tried.

- :class:`QLearningAgent`: Watkins' Q-learning on the discretised state
  (:class:`~medfuse.learn.acquire.env.StateDiscretiser`), ε-greedy over
  valid actions, step size ``visits**-lr_power``.
- :class:`PolicyGradientAgent`: REINFORCE with a learned state baseline, a
  softmax policy over valid actions with one logit per (discretised state,
  action), in NumPy; each state's gradient is averaged over its visits in
  the batch.
- :class:`DQNAgent`: an MLP Q-network on the raw observation (torch, the
  ``deep`` extra), experience replay, a target network synchronised every
  ``target_update`` steps, double-DQN targets over valid next actions,
  Huber loss, Adam.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .env import StateDiscretiser

__all__ = ["AGENTS", "DQNAgent", "PolicyGradientAgent", "QLearningAgent", "make_agent"]


def _check_int(name: str, v: Any, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}; got {v!r}")
    return int(v)


def _check_pos(name: str, v: Any, *, zero: bool = False) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {v!r}") from None
    if not np.isfinite(f) or f < 0 or (f == 0 and not zero):
        raise ValueError(f"{name} must be a finite number {'>=' if zero else '>'} 0; got {v!r}")
    return f


def _env_shape(env: Any) -> tuple[int, int]:
    for attr in ("n_modalities", "n_classes", "action_masks", "reset", "step"):
        if not hasattr(env, attr):
            raise TypeError(f"env must be an AcquisitionEnv or MDPEnv (it lacks {attr!r}); got {type(env).__name__}")
    return int(env.n_modalities), int(env.n_classes)


def _reward_scale(env: Any) -> float:
    """Spread of the rewards: 1 + λ, or the largest test cost if higher (for the gradient agents)."""
    lam = float(getattr(env, "lam", getattr(getattr(env, "mdp", None), "lam", 1.0)))
    costs = getattr(env, "costs", getattr(getattr(env, "mdp", None), "costs", np.zeros(1)))
    return max(1.0 + lam, float(np.max(costs)) if np.size(costs) else 0.0)


def _epsilon(start: float, end: float, frac: float, t: int, total: int) -> float:
    horizon = max(frac * total, 1.0)
    return start + (end - start) * min(1.0, t / horizon)


class _Tabular:
    n_bins: int

    def _fallback(self, obs: npt.NDArray[Any], mask: npt.NDArray[np.bool_]) -> int:
        """Action in a state never seen in training: diagnose the most probable class."""
        M = self.discretiser_.n_modalities
        return M + int(np.argmax(np.asarray(obs)[2 * M:]))

    def _mask(self, mask: Any) -> npt.NDArray[np.bool_]:
        A = self.discretiser_.n_modalities + self.discretiser_.n_classes
        if mask is None:
            return np.ones(A, dtype=bool)
        m = np.asarray(mask, dtype=bool)
        if m.shape != (A,) or not m.any():
            raise ValueError(f"action_mask must be {A} booleans with at least one True; got shape {m.shape}")
        return m

    discretiser_: StateDiscretiser


class QLearningAgent(_Tabular):
    """Tabular Q-learning on the discretised state.

    Parameters
    ----------
    n_bins : int
        Probability bins of the state (see ``StateDiscretiser``).
    available_in_state : bool
        Keep which tests the patient has in the state (``StateDiscretiser``'s
        ``available``). Default False: on a cohort of a few hundred patients
        the full state splits them into too many groups to learn from.
    episodes : int
        Training episodes (patients).
    epsilon_start, epsilon_end, exploration_fraction :
        ε of the ε-greedy behaviour decays linearly from start to end over
        that fraction of the episodes.
    lr_power : float in (0.5, 1]
        Step size of a (state, action) = visits ** -lr_power.
    gamma : float in (0, 1]
    seed : int

    Fitted: ``discretiser_``, ``q_`` (n_states, n_actions), ``visits_``,
    ``episode_returns_``.
    """

    def __init__(self, *, n_bins: int = 8, available_in_state: bool = False, episodes: int = 30000,
                 epsilon_start: float = 1.0, epsilon_end: float = 0.1, exploration_fraction: float = 0.5,
                 lr_power: float = 1.0, gamma: float = 1.0, seed: int = 0) -> None:
        self.n_bins = n_bins
        self.available_in_state = available_in_state
        self.episodes = episodes
        self.epsilon_start = epsilon_start
        self.epsilon_end = epsilon_end
        self.exploration_fraction = exploration_fraction
        self.lr_power = lr_power
        self.gamma = gamma
        self.seed = seed

    def fit(self, env: Any) -> QLearningAgent:
        M, K = _env_shape(env)
        episodes = _check_int("episodes", self.episodes)
        if not 0.5 < float(self.lr_power) <= 1.0:
            raise ValueError(f"lr_power must be in (0.5, 1]; got {self.lr_power!r}")
        if not 0.0 < float(self.gamma) <= 1.0:
            raise ValueError(f"gamma must be in (0, 1]; got {self.gamma!r}")
        disc = self.discretiser_ = StateDiscretiser(M, K, self.n_bins, available=bool(self.available_in_state))
        A = M + K
        Q = np.zeros((disc.n_states, A))
        N = np.zeros((disc.n_states, A))
        rng = np.random.default_rng(self.seed)
        gamma, power = float(self.gamma), float(self.lr_power)
        returns = np.empty(episodes)
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        for ep in range(episodes):
            if ep:
                obs, _ = env.reset()
            eps = _epsilon(float(self.epsilon_start), float(self.epsilon_end), float(self.exploration_fraction), ep, episodes)
            s, mask = disc(obs), env.action_masks()
            total, done = 0.0, False
            while not done:
                valid = np.flatnonzero(mask)
                if rng.random() < eps:
                    a = int(valid[rng.integers(valid.size)])
                else:
                    a = int(valid[np.argmax(Q[s, valid])])
                obs, r, term, trunc, _ = env.step(a)
                total += r
                if term:
                    target = r
                else:
                    s2, mask = disc(obs), env.action_masks()
                    target = r + gamma * float(np.max(Q[s2, mask]))
                N[s, a] += 1.0
                Q[s, a] += (target - Q[s, a]) / N[s, a] ** power
                done = term or trunc
                if not done:
                    s = s2
            returns[ep] = total
        self.q_, self.visits_, self.episode_returns_ = Q, N, returns
        return self

    def predict(self, observation: Any, action_mask: Any = None) -> int:
        """Greedy action among the valid ones (seen in training; else diagnose the most probable class)."""
        mask = self._mask(action_mask)
        s = self.discretiser_(np.asarray(observation))
        valid = np.flatnonzero(mask & (self.visits_[s] > 0))
        if valid.size == 0:
            return self._fallback(observation, mask)
        return int(valid[np.argmax(self.q_[s, valid])])


class PolicyGradientAgent(_Tabular):
    """REINFORCE with a state baseline; softmax policy over valid actions, in NumPy.

    Parameters
    ----------
    n_bins : int
    available_in_state : bool
        As for :class:`QLearningAgent`.
    episodes : int
    batch_size : int
        Episodes per policy update.
    learning_rate : float > 0
        Step on the logits (rewards are divided by 1 + λ first).
    baseline_rate : float in (0, 1]
        Step of the running-mean state baseline.
    entropy : float >= 0
        Weight of the policy's entropy in the objective (per visit, in units
        of the scaled reward): it slows the collapse onto "diagnose now" in
        the first states before the later states have learned anything.
    gamma : float in (0, 1]
    seed : int

    Fitted: ``discretiser_``, ``logits_``, ``baseline_``, ``visits_``,
    ``episode_returns_``.
    """

    def __init__(self, *, n_bins: int = 10, available_in_state: bool = False, episodes: int = 30000, batch_size: int = 32,
                 learning_rate: float = 0.5, baseline_rate: float = 0.05, entropy: float = 0.02, gamma: float = 1.0,
                 seed: int = 0) -> None:
        self.n_bins = n_bins
        self.available_in_state = available_in_state
        self.entropy = entropy
        self.episodes = episodes
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.baseline_rate = baseline_rate
        self.gamma = gamma
        self.seed = seed

    def fit(self, env: Any) -> PolicyGradientAgent:
        M, K = _env_shape(env)
        episodes = _check_int("episodes", self.episodes)
        batch = _check_int("batch_size", self.batch_size)
        lr = _check_pos("learning_rate", self.learning_rate)
        beta = _check_pos("baseline_rate", self.baseline_rate)
        if beta > 1:
            raise ValueError(f"baseline_rate must be in (0, 1]; got {self.baseline_rate!r}")
        gamma = float(self.gamma)
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1]; got {self.gamma!r}")
        ent = _check_pos("entropy", self.entropy, zero=True)
        disc = self.discretiser_ = StateDiscretiser(M, K, self.n_bins, available=bool(self.available_in_state))
        A = M + K
        theta = np.zeros((disc.n_states, A))
        base = np.zeros(disc.n_states)
        seen = np.zeros(disc.n_states, dtype=bool)
        visits = np.zeros((disc.n_states, A))
        scale = _reward_scale(env)
        rng = np.random.default_rng(self.seed)
        returns = np.empty(episodes)
        env.reset(seed=int(rng.integers(2**31)))
        ep = 0
        while ep < episodes:
            grad = np.zeros_like(theta)
            count = np.zeros(disc.n_states)
            for _ in range(min(batch, episodes - ep)):
                obs, _ = env.reset()
                traj: list[tuple[int, int, npt.NDArray[np.float64]]] = []
                rewards: list[float] = []
                done = False
                while not done:
                    s, mask = disc(obs), env.action_masks()
                    z = np.where(mask, theta[s], -np.inf)
                    p = np.exp(z - z.max())
                    p /= p.sum()
                    a = int(rng.choice(A, p=p))
                    obs, r, term, trunc, _ = env.step(a)
                    traj.append((s, a, p))
                    rewards.append(r / scale)
                    done = term or trunc
                returns[ep] = sum(rewards) * scale
                ep += 1
                G = 0.0
                for (s, a, p), r in zip(reversed(traj), reversed(rewards)):
                    G = r + gamma * G
                    if not seen[s]:
                        base[s], seen[s] = G, True
                    adv = G - base[s]
                    base[s] += beta * (G - base[s])
                    g = -adv * p
                    g[a] += adv
                    if ent > 0.0:  # gradient of the policy's entropy: keeps early states from committing too soon
                        logp = np.log(np.where(p > 0, p, 1.0))
                        g -= ent * p * (logp + float(-(p * logp).sum()))
                    grad[s] += g
                    count[s] += 1
                    visits[s, a] += 1
            hit = count > 0
            theta[hit] += lr * grad[hit] / count[hit, None]
        self.logits_, self.baseline_, self.visits_, self.episode_returns_ = theta, base, visits, returns
        return self

    def predict(self, observation: Any, action_mask: Any = None) -> int:
        """Most probable valid action of the learned policy (a state never seen: diagnose the most probable class)."""
        mask = self._mask(action_mask)
        s = self.discretiser_(np.asarray(observation))
        if self.visits_[s].sum() == 0:
            return self._fallback(observation, mask)
        valid = np.flatnonzero(mask)
        return int(valid[np.argmax(self.logits_[s, valid])])

    def action_probabilities(self, observation: Any, action_mask: Any = None) -> npt.NDArray[np.float64]:
        """The stochastic policy's probabilities over the actions."""
        mask = self._mask(action_mask)
        z = np.where(mask, self.logits_[self.discretiser_(np.asarray(observation))], -np.inf)
        p = np.exp(z - z.max())
        return np.asarray(p / p.sum())


class DQNAgent:
    """Deep Q-network (torch, the ``deep`` extra) with replay and a target network.

    Parameters
    ----------
    hidden : tuple of int
        Widths of the MLP's hidden layers (ReLU).
    steps : int
        Environment steps of training.
    batch_size, buffer_size, learning_starts : int
        Replay minibatch, replay capacity, steps before the first update.
    learning_rate : float
        Adam step, decayed linearly to ``final_lr_fraction`` of itself over
        the training (stable Q-values at the end, where near-ties are
        decided).
    target_update : int
        Steps between copies of the online network into the target network.
    train_freq : int
        Environment steps per gradient step.
    epsilon_start, epsilon_end, exploration_fraction :
        Linear ε decay over that fraction of the steps.
    gamma : float in (0, 1]
    n_threads : int or None
        torch threads while training (None: the learners' count,
        ``learner_threads()``: 1 unless ``medfuse.set_learner_threads``
        raises it; more threads spin when a core is busy elsewhere).
    seed : int
        numpy and ``torch.manual_seed``.

    Fitted: ``q_net_`` (torch module), ``n_modalities_``, ``n_classes_``,
    ``reward_scale_``, ``losses_``, ``episode_returns_``.
    """

    def __init__(self, *, hidden: tuple[int, ...] = (64, 64), steps: int = 10000, batch_size: int = 128,
                 buffer_size: int = 20000, learning_starts: int = 300, learning_rate: float = 2e-3,
                 final_lr_fraction: float = 0.05, target_update: int = 100, train_freq: int = 2, epsilon_start: float = 1.0, epsilon_end: float = 0.05,
                 exploration_fraction: float = 0.5, gamma: float = 1.0, n_threads: int | None = None, seed: int = 0) -> None:
        self.hidden = hidden
        self.steps = steps
        self.batch_size = batch_size
        self.buffer_size = buffer_size
        self.learning_starts = learning_starts
        self.learning_rate = learning_rate
        self.final_lr_fraction = final_lr_fraction
        self.target_update = target_update
        self.train_freq = train_freq
        self.epsilon_start = epsilon_start
        self.epsilon_end = epsilon_end
        self.exploration_fraction = exploration_fraction
        self.gamma = gamma
        self.n_threads = n_threads
        self.seed = seed

    def _net(self, n_in: int, n_out: int) -> Any:
        import torch

        layers: list[Any] = []
        width = n_in
        for h in self.hidden:
            layers += [torch.nn.Linear(width, _check_int("hidden", h)), torch.nn.ReLU()]
            width = int(h)
        layers.append(torch.nn.Linear(width, n_out))
        return torch.nn.Sequential(*layers)

    def fit(self, env: Any) -> DQNAgent:
        try:
            import torch
        except ImportError:
            raise ImportError("DQNAgent needs PyTorch: python -m pip install 'medfuse[deep]'") from None
        from ...kernels._threads import learner_threads
        from ...nn._torch import torch_threads

        M, K = _env_shape(env)
        steps = _check_int("steps", self.steps)
        bs = _check_int("batch_size", self.batch_size)
        cap = _check_int("buffer_size", self.buffer_size)
        start = _check_int("learning_starts", self.learning_starts, 0)
        sync = _check_int("target_update", self.target_update)
        freq = _check_int("train_freq", self.train_freq)
        lr = _check_pos("learning_rate", self.learning_rate)
        gamma = float(self.gamma)
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1]; got {self.gamma!r}")
        threads = learner_threads() if self.n_threads is None else _check_int("n_threads", self.n_threads)
        A, D = M + K, 2 * M + K
        self.n_modalities_, self.n_classes_ = M, K
        self.reward_scale_ = scale = _reward_scale(env)
        with torch_threads(threads):
            torch.manual_seed(int(self.seed))
            rng = np.random.default_rng(self.seed)
            q = self._net(D, A)
            target = self._net(D, A)
            target.load_state_dict(q.state_dict())
            opt = torch.optim.Adam(q.parameters(), lr=lr)
            n_updates = max(1, (steps - start) // freq)
            sched = torch.optim.lr_scheduler.LinearLR(opt, 1.0, float(self.final_lr_fraction), total_iters=n_updates)
            obs_b = np.zeros((cap, D), dtype=np.float32)
            nxt_b = np.zeros((cap, D), dtype=np.float32)
            act_b = np.zeros(cap, dtype=np.int64)
            rew_b = np.zeros(cap, dtype=np.float32)
            done_b = np.zeros(cap, dtype=np.float32)
            mask_b = np.zeros((cap, A), dtype=bool)
            size = pos = 0
            losses: list[float] = []
            returns: list[float] = []
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
            mask = env.action_masks()
            total = 0.0
            for t in range(steps):
                eps = _epsilon(float(self.epsilon_start), float(self.epsilon_end), float(self.exploration_fraction), t, steps)
                valid = np.flatnonzero(mask)
                if rng.random() < eps:
                    a = int(valid[rng.integers(valid.size)])
                else:
                    with torch.no_grad():
                        qv = q(torch.from_numpy(np.asarray(obs, np.float32)[None]))[0].numpy()
                    a = int(valid[np.argmax(qv[valid])])
                obs2, r, term, trunc, _ = env.step(a)
                total += r
                mask2 = env.action_masks()
                obs_b[pos], act_b[pos], rew_b[pos], done_b[pos] = obs, a, r / scale, float(term)
                nxt_b[pos], mask_b[pos] = obs2, mask2
                pos = (pos + 1) % cap
                size = min(size + 1, cap)
                if term or trunc:
                    returns.append(total)
                    total = 0.0
                    obs, _ = env.reset()
                    mask = env.action_masks()
                else:
                    obs, mask = obs2, mask2
                if t >= start and size >= bs and t % freq == 0:
                    idx = rng.integers(size, size=bs)
                    s_t = torch.from_numpy(obs_b[idx])
                    n_t = torch.from_numpy(nxt_b[idx])
                    m_t = torch.from_numpy(mask_b[idx])
                    with torch.no_grad():
                        online = q(n_t).masked_fill(~m_t, -torch.inf)
                        best = online.argmax(dim=1, keepdim=True)
                        nv = target(n_t).gather(1, best).squeeze(1)
                        y = torch.from_numpy(rew_b[idx]) + gamma * (1.0 - torch.from_numpy(done_b[idx])) * nv
                    pred = q(s_t).gather(1, torch.from_numpy(act_b[idx])[:, None]).squeeze(1)
                    loss = torch.nn.functional.smooth_l1_loss(pred, y)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
                    losses.append(loss.item())
                if (t + 1) % sync == 0:
                    target.load_state_dict(q.state_dict())
        self.q_net_ = q.eval()
        self.losses_ = np.asarray(losses)
        self.episode_returns_ = np.asarray(returns)
        return self

    def q_values(self, observation: Any) -> npt.NDArray[np.float64]:
        """Q-values of every action (in units of the environment's reward)."""
        import torch

        with torch.no_grad():
            x = torch.from_numpy(np.asarray(observation, np.float32).reshape(1, -1))
            return np.asarray(self.q_net_(x)[0].numpy(), dtype=np.float64) * self.reward_scale_

    def predict(self, observation: Any, action_mask: Any = None) -> int:
        """Valid action with the highest Q-value."""
        A = self.n_modalities_ + self.n_classes_
        mask = np.ones(A, dtype=bool) if action_mask is None else np.asarray(action_mask, dtype=bool)
        if mask.shape != (A,) or not mask.any():
            raise ValueError(f"action_mask must be {A} booleans with at least one True; got shape {mask.shape}")
        qv = self.q_values(observation)
        valid = np.flatnonzero(mask)
        return int(valid[np.argmax(qv[valid])])


AGENTS = {"q": QLearningAgent, "pg": PolicyGradientAgent, "dqn": DQNAgent}


def make_agent(name: str, seed: int = 0, **params: Any) -> Any:
    """An unfitted agent by short name: "q", "pg" or "dqn"."""
    if name not in AGENTS:
        raise ValueError(f"agent must be one of {', '.join(AGENTS)}; got {name!r}")
    return AGENTS[name](seed=seed, **params)
