"""medfuse.learn.acquire: the test-ordering environment, the exact MDP, the agents, the evaluation, the CLI."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

gymnasium = pytest.importorskip("gymnasium")

from medfuse.cli import main
from medfuse.learn.acquire import (
    AcquisitionEnv,
    AllTestsPolicy,
    MDPEnv,
    PolicyGradientAgent,
    QLearningAgent,
    SingleTestPolicy,
    ThresholdPolicy,
    check_costs,
    discretise,
    evaluate_acquisition,
    parse_costs,
    policy_value,
    rollout,
    subset_probabilities,
    value_iteration,
    write_acquisition_report,
)

COSTS = {"xray": 0.02, "ct": 0.1}


def toy_table(n: int = 400, seed: int = 0, *, noise=(1.5, 0.4), missing: float = 0.1, n_classes: int = 2) -> pd.DataFrame:
    """Two Gaussian blocks that see a latent score z: X-ray weakly (noise 1.5), CT well (0.4)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    score = z + 0.3 * rng.normal(size=n)
    if n_classes == 2:
        y = (score > 0).astype(int)
    else:
        y = np.digitize(score, np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1]))
    cols: dict[str, object] = {"patient_id": [f"P{i:03d}" for i in range(n)], "label": y}
    for m, s in zip(("xray", "ct"), noise):
        X = z[:, None] + s * rng.normal(size=(n, 3))
        X[rng.random(n) < missing] = np.nan
        for j in range(3):
            cols[f"{m}__f{j}"] = X[:, j]
    return pd.DataFrame(cols)


@pytest.fixture(scope="module")
def data():
    return subset_probabilities(toy_table(), seed=0)[0]


@pytest.fixture(scope="module")
def mdp(data):
    return discretise(data, COSTS, 1.0, n_bins=5)


@pytest.fixture(scope="module")
def optimum(mdp):
    _V, _Q, pi = value_iteration(mdp)
    return policy_value(mdp, pi), pi


# -- data and environment --------------------------------------------------------


def test_subset_probabilities(data):
    assert data.modalities == ("xray", "ct") and data.proba.shape == (400, 4, 2)
    np.testing.assert_allclose(data.proba.sum(axis=2), 1.0, atol=1e-9)
    np.testing.assert_allclose(data.proba[:, 0, 1], data.y.mean())  # no test: the class prior
    from sklearn.metrics import roc_auc_score

    both = data.available.all(axis=1)
    auc = {s: roc_auc_score(data.y[both], data.proba[both, s, 1]) for s in (1, 2, 3)}
    assert 0.6 < auc[1] < auc[2] <= auc[3] + 0.01  # X-ray weak, CT strong, both at least as good (out of fold)
    assert not data.available.all()  # some patients miss a modality


def test_check_env_and_seeding(data):
    from gymnasium.utils.env_checker import check_env

    env = AcquisitionEnv(data, COSTS, 2.0)
    check_env(env, skip_render_check=True)

    def episode(seed):
        e = AcquisitionEnv(data, COSTS, 2.0)
        obs, info = e.reset(seed=seed)
        out = [info["patient"], obs.tolist()]
        rng = np.random.default_rng(0)
        done = False
        while not done:
            valid = np.flatnonzero(e.action_masks())
            obs, r, term, trunc, info = e.step(int(rng.choice(valid)))
            out += [obs.tolist(), r]
            done = term or trunc
        return out

    assert episode(3) == episode(3)
    assert any(episode(s)[0] != episode(3)[0] for s in range(4, 10))


def test_rewards_masks_and_missing_modalities(data):
    env = AcquisitionEnv(data, COSTS, 4.0)
    i = int(np.flatnonzero(~data.available[:, 1] & data.available[:, 0])[0])  # has an X-ray, no CT
    obs, info = env.reset(options={"patient": i})
    assert list(env.action_masks()) == [True, False, True, True]
    assert obs[2:4].tolist() == [1.0, 0.0] and obs[:2].tolist() == [0.0, 0.0]  # available: X-ray, not CT
    obs, r, term, _t, info = env.step(1)  # CT: not available -> penalised, flagged, nothing changes
    assert info["invalid_action"] and r == -1.0 and not term and obs[:2].tolist() == [0.0, 0.0]
    obs, r, term, _t, info = env.step(0)
    assert r == -0.02 and obs[:2].tolist() == [1.0, 0.0]
    np.testing.assert_allclose(obs[4:], data.proba[i, 1], rtol=1e-6)
    assert list(env.action_masks()) == [False, False, True, True]
    k = int(data.y[i])
    _o, r, term, _t, info = env.step(2 + (1 - k))  # the wrong class
    assert term and r == -4.0 and info["correct"] is False
    strict = AcquisitionEnv(data, COSTS, 4.0, invalid_action="raise")
    strict.reset(options={"patient": i})
    with pytest.raises(ValueError, match="not valid"):
        strict.step(1)
    expected = AcquisitionEnv(data, COSTS, 4.0, reward="expected")
    expected.reset(options={"patient": i})
    expected.step(0)
    _o, r, term, _t, _info = expected.step(3)  # diagnose class 1: its probability after the X-ray, not the label
    p = data.proba[i, 1, 1]
    assert term and math.isclose(r, p - 4.0 * (1 - p), rel_tol=1e-12)
    with pytest.raises(ValueError, match="reward must be 'label' or 'expected'"):
        AcquisitionEnv(data, COSTS, 4.0, reward="bogus")


def test_fixed_policies_rollouts(data):
    env = AcquisitionEnv(data, COSTS, 1.0, invalid_action="raise")
    full = int(np.flatnonzero(data.available.all(axis=1))[0])
    r = rollout(AllTestsPolicy().fit(env), env, full)
    assert r["tests"] == [0, 1] and math.isclose(r["cost"], 0.12)  # cheapest first
    np.testing.assert_allclose(r["proba"], data.proba[full, 3], rtol=1e-6)
    assert r["correct"] == (np.argmax(data.proba[full, 3]) == data.y[full])
    assert rollout(SingleTestPolicy(None).fit(env), env, full)["tests"] == []
    assert rollout(SingleTestPolicy("ct").fit(env), env, full)["tests"] == [1]
    p1 = data.proba[full, 1, 1]
    thr = ThresholdPolicy("xray", "ct", p1 - 0.01, p1 + 0.01).fit(env)
    assert rollout(thr, env, full)["tests"] == [0, 1]
    thr = ThresholdPolicy("xray", "ct", min(p1 + 0.01, 1.0), 1.0).fit(env)
    assert rollout(thr, env, full)["tests"] == [0]


# -- the exact problem -------------------------------------------------------------


def test_value_iteration_is_optimal_and_policy_value_is_exact(mdp, optimum):
    vstar, pi = optimum
    M = mdp.n_modalities
    rng = np.random.default_rng(1)
    for _ in range(200):  # no deterministic policy beats it
        acts = np.asarray([rng.choice(np.flatnonzero(m)) for m in mdp.mask])
        assert policy_value(mdp, acts) <= vstar + 1e-12
    # Monte Carlo rollouts of the optimal policy on the sampled MDP agree with its exact value
    env = MDPEnv(mdp, sample_rewards=True)
    env.reset(seed=0)
    total = []
    for _ in range(20000):
        _obs, info = env.reset()
        done, g = False, 0.0
        while not done:
            _obs, r, done, _t, info = env.step(int(pi[info["state"]]))
            g += r
        total.append(g)
    assert abs(np.mean(total) - vstar) < 4 * np.std(total) / np.sqrt(len(total))
    # the problem is not trivial: the optimum beats diagnosing at once and ordering everything
    now = policy_value(mdp, M + np.argmax(mdp.p_right, axis=1))
    all_tests = policy_value(mdp, AllTestsPolicy().fit(MDPEnv(mdp)).predict)
    assert vstar > now + 0.3 and vstar > all_tests + 0.01


@pytest.mark.parametrize(("agent", "target"), [
    (QLearningAgent(n_bins=5, available_in_state=True, episodes=15000, seed=0), 0.99),
    (PolicyGradientAgent(n_bins=5, available_in_state=True, episodes=15000, seed=0), 0.98),
])
def test_tabular_agents_reach_the_optimum(mdp, optimum, agent, target):
    agent.fit(MDPEnv(mdp))
    assert policy_value(mdp, agent.predict) >= target * optimum[0]


def test_dqn_reaches_the_optimum(mdp, optimum):
    pytest.importorskip("torch")
    from medfuse.learn.acquire import DQNAgent

    kw = dict(steps=6000, n_threads=1, seed=1)
    agent = DQNAgent(**kw).fit(MDPEnv(mdp))
    assert policy_value(mdp, agent.predict) >= 0.98 * optimum[0]
    short = {**kw, "steps": 400, "learning_starts": 100}
    again = DQNAgent(**short).fit(MDPEnv(mdp))
    same = DQNAgent(**short).fit(MDPEnv(mdp))
    assert again.losses_.size > 100
    np.testing.assert_array_equal(again.losses_, same.losses_)  # seeded


def test_agents_are_deterministic_and_learn_on_patients(data):
    env = AcquisitionEnv(data, COSTS, 1.0)
    a = QLearningAgent(episodes=3000, seed=5).fit(env)
    b = QLearningAgent(episodes=3000, seed=5).fit(AcquisitionEnv(data, COSTS, 1.0))
    np.testing.assert_array_equal(a.q_, b.q_)
    # on the training patients, the greedy policy earns more than diagnosing at once or ordering everything
    strict = AcquisitionEnv(data, COSTS, 1.0, invalid_action="raise")

    def mean_reward(pol):
        rs = [rollout(pol, strict, i) for i in range(len(data))]
        return np.mean([(1.0 if r["correct"] else -1.0) - r["cost"] for r in rs])

    learned = mean_reward(QLearningAgent(episodes=10000, seed=0).fit(env))
    assert learned > mean_reward(SingleTestPolicy(None).fit(strict)) + 0.3
    assert learned >= mean_reward(AllTestsPolicy().fit(strict)) - 0.01


def test_k_classes(data):
    d3, _ = subset_probabilities(toy_table(300, 2, n_classes=3), seed=0)
    assert d3.proba.shape == (300, 4, 3)
    env = AcquisitionEnv(d3, COSTS, 1.0)
    assert env.action_space.n == 5
    from gymnasium.utils.env_checker import check_env

    check_env(env, skip_render_check=True)
    mdp3 = discretise(d3, COSTS, 1.0, n_bins=4)
    _V, _Q, pi = value_iteration(mdp3)
    agent = QLearningAgent(n_bins=4, available_in_state=True, episodes=8000, seed=0).fit(MDPEnv(mdp3))
    assert policy_value(mdp3, agent.predict) >= 0.97 * policy_value(mdp3, pi)


# -- evaluation and report --------------------------------------------------------


def test_evaluate_acquisition_and_report(tmp_path):
    ev = evaluate_acquisition(toy_table(160, 3), COSTS, lams=(0.5, 4.0), agents=("q", "pg"),
                              agent_params={"q": {"episodes": 2000}, "pg": {"episodes": 2000}}, folds=2, seed=0,
                              threshold_step=0.25, n_paths=4, inner_folds=3)
    t = ev.table
    assert set(t["policy"]) >= {"q", "pg", "all tests", "no test", "xray only", "ct only", "threshold rule"}
    assert len(t[t["policy"] == "q"]) == 2 and (t["fit_seconds"][t["kind"] == "agent"] > 0).all()
    allt = t[(t["policy"] == "all tests")].iloc[0]
    assert allt["auc"] > 0.85 and allt["mean_cost"] > 0.1  # about 0.9 * 0.12 each, the missing ones cost nothing
    no = t[(t["policy"] == "no test")].iloc[0]
    assert no["mean_cost"] == 0 and no["auc"] == 0.5
    # the reward column is what the policies optimise: accuracy - λ (1 - accuracy) - cost
    np.testing.assert_allclose(t["reward"], t["accuracy"] - t["lam"] * (1 - t["accuracy"]) - t["mean_cost"])
    # a higher λ buys accuracy with more tests
    q = t[t["policy"] == "q"].set_index("lam")
    assert q.loc[4.0, "mean_cost"] >= q.loc[0.5, "mean_cost"]
    assert len(ev.paths) == 4 and {"steps", "diagnosis", "correct", "cost"} <= set(ev.paths[0])
    name, reward = ev.best_fixed(4.0)
    assert isinstance(name, str) and np.isfinite(reward)
    path = write_acquisition_report(ev, tmp_path / "out")
    text = path.read_text()
    assert "Cost–accuracy front" in text and "data:image/png;base64," in text and "not a clinical tool" in text
    assert (tmp_path / "out" / "front.png").read_bytes()[:4] == b"\x89PNG"
    assert pd.read_csv(tmp_path / "out" / "results.csv").shape[0] == len(t)


def test_cli_acquire(tmp_path, capsys):
    path = tmp_path / "features.parquet"
    toy_table(100, 4).to_parquet(path)
    code = main(["acquire", str(path), "--costs", "xray=0.02,ct=0.1", "--agent", "q", "--lams", "1,4", "--folds", "2",
                 "--episodes", "2000", "--out", str(tmp_path / "out")])
    assert code == 0
    assert (tmp_path / "out" / "acquire.html").exists()
    assert "threshold rule" in capsys.readouterr().out


# -- bad input ------------------------------------------------------------------------


def test_costs_refusals(data):
    assert parse_costs("xray=1, ct=5,report=20") == {"xray": 1.0, "ct": 5.0, "report": 20.0}
    with pytest.raises(ValueError, match="costs: unknown modality 'mri'"):
        AcquisitionEnv(data, {"xray": 1, "ct": 5, "mri": 2}, 1.0)
    with pytest.raises(ValueError, match=r"costs\['ct'\] must be a finite number >= 0"):
        AcquisitionEnv(data, {"xray": 1, "ct": -5}, 1.0)
    with pytest.raises(ValueError, match=r"costs\['xray'\] must be a finite number >= 0"):
        check_costs({"xray": float("nan"), "ct": 1}, ["xray", "ct"])
    with pytest.raises(ValueError, match="no cost given for modality 'ct'"):
        AcquisitionEnv(data, {"xray": 1}, 1.0)
    with pytest.raises(ValueError, match="costs: the cost of 'ct' must be a number"):
        parse_costs("xray=1,ct=abc")
    with pytest.raises(ValueError, match="costs: expected name=value"):
        parse_costs("xray")


def test_lam_refusals(data):
    with pytest.raises(ValueError, match=r"lam \(the penalty of a wrong diagnosis\) must be a finite number >= 0"):
        AcquisitionEnv(data, COSTS, -1.0)
    with pytest.raises(ValueError, match="lam"):
        evaluate_acquisition(toy_table(40), COSTS, lams=(1.0, float("nan")), folds=2)
    with pytest.raises(ValueError, match="lam"):
        discretise(data, COSTS, -0.5)


def test_table_refusals():
    t = toy_table(40)
    with pytest.raises(ValueError, match="no 'label' column"):
        subset_probabilities(t.drop(columns="label"))
    with pytest.raises(ValueError, match="no 'label' column"):
        evaluate_acquisition(t.drop(columns="label"), COSTS, folds=2)
    gone = t.copy()
    gone[[c for c in t.columns if c.startswith("ct__")]] = np.nan
    with pytest.raises(ValueError, match="modality 'ct' is missing for every patient"):
        subset_probabilities(gone)
    with pytest.raises(ValueError, match="costs: unknown modality 'report'"):
        evaluate_acquisition(t, {"xray": 1, "ct": 5, "report": 20}, folds=2)
    with pytest.raises(TypeError, match="features must be a pandas DataFrame"):
        subset_probabilities(np.zeros((3, 3)))


def test_cli_refusals(tmp_path, capsys):
    path = tmp_path / "features.parquet"
    toy_table(60).to_parquet(path)
    out = str(tmp_path / "out")
    cases = [
        (["--costs", "xray=1,ct=5,mri=3"], "unknown modality 'mri'"),
        (["--costs", "xray=1,ct=-5"], "costs['ct'] must be a finite number >= 0"),
        (["--costs", "xray=nan,ct=5"], "costs['xray'] must be a finite number >= 0"),
        (["--lams", "-1"], "lam (the penalty of a wrong diagnosis)"),
        (["--lams", "x"], "--lams: 'x' is not a number"),
    ]
    for extra, msg in cases:
        assert main(["acquire", str(path), "--out", out, "--folds", "2", *extra]) == 2
        assert msg in capsys.readouterr().err
    toy_table(60).drop(columns="label").to_parquet(tmp_path / "nolabel.parquet")
    assert main(["acquire", str(tmp_path / "nolabel.parquet"), "--out", out]) == 2
    assert "no 'label' column" in capsys.readouterr().err


# -- calibration and the compact state ---------------------------------------------------


def test_temperature_calibrator_recovers_a_known_temperature():
    from medfuse.learn.acquire import TemperatureCalibrator

    rng = np.random.default_rng(0)
    n, K = 4000, 4
    logits = rng.normal(scale=2.0, size=(n, K))
    p_true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.asarray([rng.choice(K, p=p) for p in p_true])  # calibrated by construction
    for t in (0.5, 2.5):  # over-confident (t < 1 sharpens), under-confident
        z = logits / t
        distorted = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        cal = TemperatureCalibrator().fit(distorted, y)
        assert abs(cal.temperature_ - 1.0 / t) < 0.1 / t  # undoes the distortion
        fixed = cal.transform(distorted)
        np.testing.assert_allclose(fixed.sum(axis=1), 1.0, atol=1e-12)
        assert (fixed.argmax(axis=1) == distorted.argmax(axis=1)).all()  # one temperature keeps the top class
        from sklearn.metrics import log_loss

        assert log_loss(y, fixed) < log_loss(y, distorted) - 0.01
        np.testing.assert_allclose(fixed, p_true, atol=0.05)
    with pytest.raises(ValueError, match="proba must be"):
        TemperatureCalibrator().fit(np.ones(3), [0, 1, 0])


def test_subset_probabilities_calibrated_on_held_out_patients():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    t = toy_table(600, 7, n_classes=3)
    tr, te = np.arange(400), np.arange(400, 600)
    learner = LogisticRegression(C=0.002, max_iter=1000)  # strongly shrunk: under-confident probabilities
    raw = subset_probabilities(t, tr, te, learner=learner, calibrate=False, seed=0)[1]
    cal = subset_probabilities(t, tr, te, learner=learner, seed=0)[1]
    assert raw is not None and cal is not None
    for s in (1, 2, 3):  # every subset's held-out log loss improves; the ranking of each patient's classes stays
        has = (cal.available | ~np.asarray([bool(s >> j & 1) for j in range(2)])).all(axis=1)
        assert log_loss(cal.y[has], cal.proba[has, s], labels=[0, 1, 2]) < log_loss(raw.y[has], raw.proba[has, s],
                                                                                   labels=[0, 1, 2]) - 0.02
        assert (cal.proba[:, s].argmax(axis=1) == raw.proba[:, s].argmax(axis=1)).all()
    np.testing.assert_array_equal(cal.proba[:, 0], raw.proba[:, 0])  # the prior is left alone


def test_compact_state_shares_patients_across_available_tests():
    from medfuse.learn.acquire import StateDiscretiser

    full, compact = StateDiscretiser(2, 3, 4), StateDiscretiser(2, 3, 4, available=False)
    assert full.n_states == 16 * 3 * 4 and compact.n_states == 4 * 3 * 4
    p = np.asarray([0.1, 0.7, 0.2])
    states = {compact.state(1, av, p) for av in (1, 3)}
    assert len(states) == 1 and len({full.state(1, av, p) for av in (1, 3)}) == 2
    seen = set()
    for acq in range(4):
        for k in range(3):
            for b in range(4):
                top = 1 / 3 + (b + 0.5) / 4 * (2 / 3)
                q = np.full(3, (1 - top) / 2)
                q[k] = top
                s = compact.state(acq, 3, q)
                assert 0 <= s < compact.n_states and compact.decode(s) == (acq, 0, k, b)
                seen.add(s)
    assert len(seen) == compact.n_states


def test_agent_parameter_refusals(data):
    env = AcquisitionEnv(data, COSTS, 1.0)
    with pytest.raises(ValueError, match="entropy must be a finite number >= 0"):
        PolicyGradientAgent(entropy=-0.1, episodes=10).fit(env)
    with pytest.raises(ValueError, match="n_bins must be a positive integer"):
        QLearningAgent(n_bins=0, episodes=10).fit(env)
