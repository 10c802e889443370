"""Held-out evaluation of test-ordering policies, and the report of ``medfuse acquire``.

Fixed policies (same ``fit(env)`` / ``predict(observation, action_mask)``
contract as the agents; none of them learns): :class:`AllTestsPolicy`
(every test the patient has, cheapest first), :class:`SingleTestPolicy`
(one modality, or none), :class:`ThresholdPolicy` ("the first test, then
the second if the probability is between a and b"). Each diagnoses the
most probable class.

:func:`evaluate_acquisition`: stratified k-fold over patients; in each
fold the classifiers (one per subset of modalities), the threshold rule's
(a, b) and the agents are fitted on the training patients only (the
agents on an :class:`~medfuse.learn.acquire.env.AcquisitionEnv` over
them), and every policy is run greedily on the held-out patients. Pooled
over folds, per policy and λ: AUC of the final probabilities, accuracy of
the diagnoses, mean cost per patient, mean reward at λ, mean number of
tests.
"""

from __future__ import annotations

import base64
import html
import io
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .agents import make_agent
from .env import AcquisitionEnv
from .problem import DEFAULT_COSTS, check_costs, check_lam, subset_probabilities, table_modalities

__all__ = [
    "AcquisitionEvaluation",
    "AllTestsPolicy",
    "SingleTestPolicy",
    "ThresholdPolicy",
    "evaluate_acquisition",
    "rollout",
    "write_acquisition_report",
]

DEFAULT_LAMS = (30.0, 100.0, 300.0, 500.0, 1000.0, 3000.0)


class _Fixed:
    def fit(self, env: Any) -> Any:
        self.modalities_ = tuple(env.data.modalities) if hasattr(env, "data") else tuple(range(env.n_modalities))
        self.n_modalities_, self.n_classes_ = int(env.n_modalities), int(env.n_classes)
        self.costs_ = np.asarray(env.costs, dtype=np.float64)
        return self

    def _index(self, modality: Any) -> int:
        if modality not in self.modalities_:
            raise ValueError(f"modality {modality!r} is not one of {', '.join(map(str, self.modalities_))}")
        return self.modalities_.index(modality)

    def _diagnose(self, observation: Any) -> int:
        M = self.n_modalities_
        return M + int(np.argmax(np.asarray(observation)[2 * M:]))


class AllTestsPolicy(_Fixed):
    """Order every test the patient has (cheapest first), then diagnose the most probable class."""

    name = "all tests"

    def predict(self, observation: Any, action_mask: Any) -> int:
        mask = np.asarray(action_mask, dtype=bool)
        todo = [m for m in np.argsort(self.costs_, kind="stable") if mask[m]]
        return int(todo[0]) if todo else self._diagnose(observation)


class SingleTestPolicy(_Fixed):
    """Order one modality (if the patient has it), then diagnose; ``modality=None``: diagnose at once."""

    def __init__(self, modality: str | None = None) -> None:
        self.modality = modality

    @property
    def name(self) -> str:
        return "no test" if self.modality is None else f"{self.modality} only"

    def predict(self, observation: Any, action_mask: Any) -> int:
        if self.modality is not None:
            m = self._index(self.modality)
            if np.asarray(action_mask, dtype=bool)[m]:
                return m
        return self._diagnose(observation)


class ThresholdPolicy(_Fixed):
    """Order ``first``; then ``then`` if the probability is in [low, high]; then diagnose.

    The probability is that of the second class (``classes[1]``, the
    positive one) for two classes, the top class probability for more.
    """

    def __init__(self, first: str = "xray", then: str = "ct", low: float = 0.2, high: float = 0.8) -> None:
        self.first = first
        self.then = then
        self.low = low
        self.high = high

    @property
    def name(self) -> str:
        return f"{self.first}, then {self.then} if p in [{self.low:g}, {self.high:g}]"

    def fit(self, env: Any) -> ThresholdPolicy:
        super().fit(env)
        if not 0.0 <= float(self.low) <= float(self.high) <= 1.0:
            raise ValueError(f"low, high must satisfy 0 <= low <= high <= 1; got {self.low!r}, {self.high!r}")
        self._index(self.first)
        self._index(self.then)
        return self

    def predict(self, observation: Any, action_mask: Any) -> int:
        mask = np.asarray(action_mask, dtype=bool)
        obs = np.asarray(observation)
        M = self.n_modalities_
        f, t = self._index(self.first), self._index(self.then)
        if mask[f]:
            return f
        p = obs[2 * M:]
        q = float(p[1]) if p.size == 2 else float(p.max())
        if mask[t] and self.low <= q <= self.high:
            return t
        return self._diagnose(obs)


def rollout(policy: Any, env: AcquisitionEnv, patient: int) -> dict[str, Any]:
    """Run ``policy`` greedily on one patient of ``env``: the tests, the probability after each, the decision."""
    obs, _info = env.reset(options={"patient": int(patient)})
    M = env.n_modalities
    steps: list[dict[str, Any]] = []
    tests: list[int] = []
    while True:
        a = int(policy.predict(obs, env.action_masks()))
        obs, _r, term, trunc, info = env.step(a)
        if info.get("invalid_action"):
            raise RuntimeError(f"policy {policy!r} chose an invalid action {a}")
        if term or trunc:
            break
        tests.append(a)
        steps.append({"test": env.data.modalities[a], "cost": float(env.costs[a]), "proba": obs[2 * M:].astype(float).tolist()})
    proba = np.asarray(obs[2 * M:], dtype=np.float64)
    k = int(info.get("diagnosis", int(np.argmax(proba))))
    return {
        "patient": int(patient),
        "patient_id": env.data.patient_ids[patient],
        "label": env.data.classes[env.data.y[patient]],
        "steps": steps,
        "tests": tests,
        "diagnosis": env.data.classes[k],
        "correct": bool(k == env.data.y[patient]),
        "cost": float(sum(env.costs[t] for t in tests)),
        "proba": proba,
        "truncated": bool(trunc and not term),
    }


def _run(policy: Any, env: AcquisitionEnv) -> dict[str, Any]:
    runs = [rollout(policy, env, i) for i in range(len(env.data))]
    return {
        "correct": np.asarray([r["correct"] for r in runs]),
        "cost": np.asarray([r["cost"] for r in runs]),
        "n_tests": np.asarray([len(r["tests"]) for r in runs]),
        "proba": np.stack([r["proba"] for r in runs]),
        "runs": runs,
    }


@dataclass
class AcquisitionEvaluation:
    """Results of :func:`evaluate_acquisition`.

    ``table``: one row per (policy, λ): policy, kind ("agent" | "fixed" |
    "threshold"), lam, auc, accuracy, mean_cost, reward (mean reward per
    patient at λ), n_tests (mean), fit_seconds (mean per fold; agents).
    ``front``: every fixed policy and threshold pair evaluated (policy,
    accuracy, mean_cost, auc). ``paths``: example acquisition paths of held-out patients
    (``rollout`` dicts with the policy and λ). ``settings``: what was run.
    """

    table: Any
    front: Any
    paths: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)

    def format_table(self) -> str:
        t = self.table
        header = ["policy", "lam", "AUC", "accuracy", "mean cost", "reward", "tests", "fit s"]
        rows = [[str(r.policy), f"{r.lam:g}", f"{r.auc:.3f}", f"{r.accuracy:.3f}", f"{r.mean_cost:.2f}", f"{r.reward:.3f}",
                 f"{r.n_tests:.2f}", "" if not np.isfinite(r.fit_seconds) else f"{r.fit_seconds:.1f}"]
                for r in t.itertuples()]
        widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(), "  ".join("-" * w for w in widths)]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(lines)

    def best_fixed(self, lam: float) -> tuple[str, float]:
        """(name, mean reward at λ) of the best fixed policy (threshold pairs included, as evaluated)."""
        f = self.front
        reward = f["accuracy"] - lam * (1.0 - f["accuracy"]) - f["mean_cost"]
        j = int(np.argmax(reward.to_numpy()))
        return str(f["policy"].iloc[j]), float(reward.iloc[j])


def _auc(y: npt.NDArray[np.intp], proba: npt.NDArray[np.float64]) -> float:
    from sklearn.metrics import roc_auc_score

    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    return float(roc_auc_score(y, proba, multi_class="ovr", labels=np.arange(proba.shape[1])))


def _threshold_grid(step: float) -> list[tuple[float, float]]:
    pts = np.round(np.arange(0.0, 1.0 + 1e-9, step), 6)
    return [(float(a), float(b)) for a in pts for b in pts if a < 0.5 < b or (a == b == 0.5)]


def evaluate_acquisition(
    features: Any,
    costs: Mapping[str, float] | None = None,
    *,
    lams: Sequence[float] = DEFAULT_LAMS,
    agents: Sequence[str] = ("q",),
    agent_params: Mapping[str, Mapping[str, Any]] | None = None,
    folds: int = 5,
    seed: int = 0,
    threshold: tuple[str, str] | None = None,
    threshold_step: float = 0.1,
    n_paths: int = 12,
    fusion: str = "early",
    learner: Any = None,
    inner_folds: int = 5,
    train_reward: str = "expected",
) -> AcquisitionEvaluation:
    """Cross-validated comparison of learned and fixed test-ordering policies (see the module docstring).

    ``costs``: modality -> cost (default :data:`DEFAULT_COSTS` restricted
    to the table's modalities); modalities of the table without a cost are
    left out, names not in the table are refused. ``lams``: the λ values swept. ``agents``:
    short names ("q", "pg", "dqn"); ``agent_params``: name -> keyword
    arguments. ``threshold``: (first, then) modalities of the threshold
    rule (default: ("xray", "ct") when the table has both, else its two
    cheapest); (a, b) pairs on a ``threshold_step`` grid are all evaluated
    (the ``front``), and for each λ the pair with the best training reward
    is reported as "threshold rule". ``n_paths``: example paths kept (held
    out patients of the first fold, first agent, middle λ). ``fusion``,
    ``learner``, ``inner_folds``: the classifiers per subset
    (:func:`~medfuse.learn.acquire.subset_probabilities`). ``train_reward``:
    the agents' training reward, "expected" (default: the diagnosis reward's
    expectation under the out-of-fold probabilities, far less noisy at large
    λ) or "label" (``AcquisitionEnv``'s ``reward``); held-out patients are
    always scored by their true labels.
    """
    import pandas as pd
    from sklearn.model_selection import StratifiedKFold

    if not isinstance(features, pd.DataFrame):
        raise TypeError(f"features must be a pandas DataFrame (a medfuse feature table); got {type(features).__name__}")
    if "label" not in features.columns:
        raise ValueError("features has no 'label' column: learning which test to order needs labels")
    mods = table_modalities(features)
    if costs is None:
        costs = {m: DEFAULT_COSTS[m] for m in mods if m in DEFAULT_COSTS}
    if not isinstance(costs, Mapping):
        raise TypeError(f"costs must be a dict of modality -> cost; got {type(costs).__name__}")
    cost_arr = check_costs(costs, [m for m in mods if m in costs] if set(costs) <= set(mods) else mods)
    mods = [m for m in mods if m in costs]
    cost_map = dict(zip(mods, cost_arr))
    lam_list = [check_lam(v) for v in lams]
    if not lam_list:
        raise ValueError("lams: give at least one λ")
    for a in agents:
        make_agent(a)
    if train_reward not in ("label", "expected"):
        raise ValueError(f"train_reward must be 'label' or 'expected'; got {train_reward!r}")
    params = {k: dict(v) for k, v in (agent_params or {}).items()}
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2; got {folds!r}")
    if threshold is None:
        if "xray" in mods and "ct" in mods:
            threshold = ("xray", "ct")
        elif len(mods) >= 2:
            order = np.argsort(cost_arr, kind="stable")
            threshold = (mods[order[0]], mods[order[1]])
    elif threshold[0] not in mods or threshold[1] not in mods:
        raise ValueError(f"threshold: {threshold!r} must name two of the modalities {', '.join(mods)}")
    frame = features.reset_index(drop=True)
    if frame["label"].isna().any():
        raise ValueError(f"features: {int(frame['label'].isna().sum())} patients have no label; drop them first")
    _classes, y_all = np.unique(frame["label"].to_numpy(), return_inverse=True)
    if int(np.bincount(y_all).min()) < folds:
        raise ValueError(f"folds={folds} exceeds the smallest class count ({int(np.bincount(y_all).min())}); use fewer folds")
    fixed: list[Any] = [AllTestsPolicy(), SingleTestPolicy(None)] + [SingleTestPolicy(m) for m in mods]
    grid = _threshold_grid(threshold_step) if threshold else []
    grid_pols = [ThresholdPolicy(threshold[0], threshold[1], a, b) for a, b in grid] if threshold else []
    n = len(frame)
    # per policy key -> arrays over all patients (pooled out of fold)
    store: dict[tuple[str, float], dict[str, Any]] = {}
    fit_s: dict[tuple[str, float], list[float]] = {}
    paths: list[dict[str, Any]] = []
    K = len(_classes)

    def put(key: tuple[str, float], te: npt.NDArray[np.intp], res: dict[str, Any]) -> None:
        d = store.setdefault(key, {"correct": np.zeros(n, bool), "cost": np.zeros(n), "n_tests": np.zeros(n),
                                   "proba": np.zeros((n, K))})
        for k in ("correct", "cost", "n_tests", "proba"):
            d[k][te] = res[k]

    skf = StratifiedKFold(int(folds), shuffle=True, random_state=seed)
    mid_lam = lam_list[len(lam_list) // 2]
    for fold, (tr, te) in enumerate(skf.split(np.zeros(n), y_all)):
        train, test = subset_probabilities(frame, tr, te, modalities=mods, fusion=fusion, learner=learner,
                                           inner_folds=inner_folds, seed=seed)
        assert test is not None
        env_te = AcquisitionEnv(test, cost_map, 0.0, invalid_action="raise")
        env_tr = AcquisitionEnv(train, cost_map, 0.0, invalid_action="raise")
        for pol in fixed:
            put((pol.name, np.nan), te, _run(pol.fit(env_te), env_te))
        tr_stats = []
        for pol in grid_pols:
            put((pol.name, np.nan), te, _run(pol.fit(env_te), env_te))
            r = _run(pol.fit(env_tr), env_tr)
            tr_stats.append((r["correct"].mean(), r["cost"].mean()))
        for lam in lam_list:
            if grid_pols:
                rewards = [acc - lam * (1 - acc) - c for acc, c in tr_stats]
                best = grid_pols[int(np.argmax(rewards))]
                put(("threshold rule", lam), te, _run(best.fit(env_te), env_te))
            for name in agents:
                env = AcquisitionEnv(train, cost_map, lam, reward=train_reward, invalid_action="raise")
                t0 = time.perf_counter()
                agent = make_agent(name, seed=seed + fold, **params.get(name, {})).fit(env)
                fit_s.setdefault((name, lam), []).append(time.perf_counter() - t0)
                res = _run(agent, env_te)
                put((name, lam), te, res)
                if fold == 0 and name == agents[0] and lam == mid_lam:
                    for r in res["runs"][:n_paths]:
                        paths.append({**r, "policy": name, "lam": lam})
    rows = []
    front_rows = []
    for (name, lam), d in store.items():
        acc, cost = float(d["correct"].mean()), float(d["cost"].mean())
        auc = _auc(y_all, d["proba"])
        if np.isnan(lam):
            kind = "threshold" if name not in {p.name for p in fixed} else "fixed"
            front_rows.append({"policy": name, "kind": kind, "accuracy": acc, "mean_cost": cost, "auc": auc,
                               "n_tests": float(d["n_tests"].mean())})
            if kind == "fixed":
                for lm in lam_list:
                    rows.append({"policy": name, "kind": "fixed", "lam": lm, "auc": auc, "accuracy": acc, "mean_cost": cost,
                                 "reward": acc - lm * (1 - acc) - cost, "n_tests": float(d["n_tests"].mean()),
                                 "fit_seconds": np.nan})
        else:
            kind = "threshold" if name == "threshold rule" else "agent"
            rows.append({"policy": name, "kind": kind, "lam": lam, "auc": auc, "accuracy": acc, "mean_cost": cost,
                         "reward": acc - lam * (1 - acc) - cost, "n_tests": float(d["n_tests"].mean()),
                         "fit_seconds": float(np.mean(fit_s[(name, lam)])) if (name, lam) in fit_s else np.nan})
    kind_order = {"agent": 0, "threshold": 1, "fixed": 2}
    table = pd.DataFrame(rows)
    table = table.sort_values(["lam", "kind", "policy"], key=lambda s: s.map(kind_order) if s.name == "kind" else s,
                              kind="stable").reset_index(drop=True)
    settings = {"n_patients": n, "folds": int(folds), "seed": int(seed), "costs": {m: float(c) for m, c in cost_map.items()},
                "lams": lam_list, "agents": list(agents), "modalities": mods, "classes": [str(c) for c in _classes],
                "threshold": list(threshold) if threshold else None, "fusion": fusion, "learner": str(learner),
                "train_reward": train_reward}
    return AcquisitionEvaluation(table, pd.DataFrame(front_rows), paths, settings)


# ------------------------------------------------------------------ report


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def front_figure(ev: AcquisitionEvaluation) -> Any:
    """The cost-accuracy plane: fixed policies, threshold pairs, their front, and each agent across λ."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5))
    ax = fig.add_subplot()
    f = ev.front
    thr = f[f["kind"] == "threshold"]
    ax.scatter(thr["mean_cost"], thr["accuracy"], s=10, color="0.75", label="threshold rule, every (a, b)")
    fx = f[f["kind"] == "fixed"]
    ax.scatter(fx["mean_cost"], fx["accuracy"], s=30, color="0.3", marker="s", label="fixed policies")
    for r in fx.itertuples():
        ax.annotate(str(r.policy), (r.mean_cost, r.accuracy), fontsize=7, xytext=(3, -9), textcoords="offset points")
    pts = f.sort_values(["mean_cost", "accuracy"], ascending=[True, False])
    fc, fa, best = [], [], -np.inf
    for r in pts.itertuples():
        if r.accuracy > best:
            fc.append(r.mean_cost)
            fa.append(r.accuracy)
            best = r.accuracy
    ax.step(fc, fa, where="post", color="0.5", linewidth=1, label="front of the fixed policies")
    t = ev.table
    for name in [*ev.settings.get("agents", []), "threshold rule"]:
        s = t[t["policy"] == name].sort_values("lam")
        if s.empty:
            continue
        ax.plot(s["mean_cost"], s["accuracy"], "o-", label=f"{name} (λ = {', '.join(f'{v:g}' for v in s['lam'])})")
    ax.set_xlabel("mean cost per patient")
    ax.set_ylabel("accuracy (held-out patients)")
    ax.set_title("cost-accuracy front")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def write_acquisition_report(ev: AcquisitionEvaluation, out_dir: str | os.PathLike[str], *, title: str = "medfuse acquire",
                             notes: Sequence[str] = ()) -> Path:
    """Write ``results.csv``, ``front.csv``, ``front.png`` and ``acquire.html`` (table, front, example paths) to out_dir."""
    from ...data.io import _atomic_write_bytes

    if not isinstance(ev, AcquisitionEvaluation):
        raise TypeError(f"ev must be an AcquisitionEvaluation; got {type(ev).__name__}")
    out = Path(os.fspath(out_dir))
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(out / "results.csv", ev.table.to_csv(index=False).encode())
    _atomic_write_bytes(out / "front.csv", ev.front.to_csv(index=False).encode())
    png = _png(front_figure(ev))
    _atomic_write_bytes(out / "front.png", png)
    cols = ["policy", "lam", "auc", "accuracy", "mean_cost", "reward", "n_tests", "fit_seconds"]
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = []
    for r in ev.table.itertuples():
        cells = [html.escape(str(r.policy)), f"{r.lam:g}", f"{r.auc:.3f}", f"{r.accuracy:.3f}", f"{r.mean_cost:.2f}",
                 f"{r.reward:.3f}", f"{r.n_tests:.2f}", "" if not np.isfinite(r.fit_seconds) else f"{r.fit_seconds:.1f}"]
        cls = ' class="agent"' if r.kind == "agent" else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    classes = ev.settings.get("classes", [])
    path_rows = []
    for p in ev.paths:
        def fmt(pr: Any) -> str:
            return ", ".join(f"{c}: {v:.2f}" for c, v in zip(classes, pr)) if classes else str(pr)
        steps = " → ".join(f"{html.escape(s['test'])} (cost {s['cost']:g}; p = {fmt(s['proba'])})" for s in p["steps"])
        path_rows.append(
            f"<tr><td>{html.escape(str(p['patient_id']))}</td><td>{html.escape(str(p['policy']))}, λ {p['lam']:g}</td>"
            f"<td>{steps or 'no test'}</td><td>{html.escape(str(p['diagnosis']))}</td>"
            f"<td>{html.escape(str(p['label']))}</td><td>{'right' if p['correct'] else 'WRONG'}</td><td>{p['cost']:g}</td></tr>")
    s = ev.settings
    meta = (f"{s.get('n_patients')} patients, stratified {s.get('folds')}-fold (seed {s.get('seed')}); classifiers, threshold "
            f"rule and agents fitted on the training folds only. Costs: "
            f"{html.escape(', '.join(f'{k}={v:g}' for k, v in s.get('costs', {}).items()))}. Reward per patient: +1 for a right "
            "diagnosis, −λ for a wrong one, minus the costs of the tests ordered.")
    notes_html = "".join(f"<p>{html.escape(x)}</p>" for x in notes)
    b64 = base64.b64encode(png).decode("ascii")
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;font-size:90%}}tr.agent{{background:#e8f5e9}}
img{{max-width:100%}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{meta}</p>
<p>A decision aid on synthetic data, not a clinical tool.</p>{notes_html}
<h2>Held-out results</h2><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>
<h2>Cost–accuracy front</h2><img alt="front" src="data:image/png;base64,{b64}">
<h2>Example acquisition paths (held-out patients)</h2>
<table><thead><tr><th>patient</th><th>policy</th><th>tests ordered, probability after each</th><th>decision</th>
<th>truth</th><th></th><th>cost</th></tr></thead><tbody>{''.join(path_rows)}</tbody></table>
</body></html>
"""
    path = out / "acquire.html"
    _atomic_write_bytes(path, doc.encode("utf-8"))
    return path


