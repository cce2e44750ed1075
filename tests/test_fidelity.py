"""Rank fidelity: the rank statistics, proxy names, the study and `movinas fidelity`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from evaluation.datasets import synthetic
from evaluation.proxies.fidelity import kendall_tau, parse_proxy, rank_fidelity, spearman_rho, write_fidelity
from nas.cli import main
from search_space.space import SearchSpace


@pytest.fixture(scope="module")
def tiny_data():
    return synthetic(num_classes=2, clips_per_class=6, frames=4, resolution=16, seed=3)


@pytest.mark.parametrize("seed", range(5))
def test_rank_correlations_equal_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 5, 30).astype(float)  # many ties
    b = a + rng.integers(0, 4, 30)
    assert kendall_tau(a, b) == pytest.approx(scipy.stats.kendalltau(a, b).statistic, abs=1e-12)
    assert spearman_rho(a, b) == pytest.approx(scipy.stats.spearmanr(a, b).statistic, abs=1e-12)


def test_rank_correlations_are_one_for_any_monotone_map_and_minus_one_reversed():
    a = np.array([0.1, 3.0, 2.0, 7.0, 5.0])
    assert kendall_tau(a, np.exp(a)) == pytest.approx(1.0)
    assert spearman_rho(a, a ** 3) == pytest.approx(1.0)
    assert kendall_tau(a, -a) == pytest.approx(-1.0)
    assert spearman_rho(a, -a) == pytest.approx(-1.0)


def test_rank_correlations_skip_non_finite_pairs_and_constant_rankings_are_nan():
    a = [1.0, 2.0, math.nan, 4.0, -math.inf]
    b = [1.0, 2.0, 3.0, 5.0, 9.0]
    assert kendall_tau(a, b) == pytest.approx(1.0)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    assert math.isnan(spearman_rho([1.0], [2.0]))


def test_proxy_names_parse_and_bad_ones_name_the_allowed_forms():
    assert parse_proxy("synflow").trained is False
    p = parse_proxy("epochs:2:val_loss")
    assert (p.epochs, p.metric, p.name) == (2, "val_loss", "epochs:2:val_loss")
    assert parse_proxy("epochs:3").metric == "val_accuracy"
    for bad in ("epochs:0", "epochs:x", "epochs:1:top5", "flops", "epochs"):
        with pytest.raises(ValueError, match=r"cheap\[0\].*allowed|cheap\[0\].*must be one of"):
            parse_proxy(bad, "cheap[0]")


def test_rank_fidelity_reports_every_proxy_with_params_and_macs_baselines(tiny_data, tmp_path):
    space = SearchSpace.from_yaml("small")
    result = write_fidelity(rank_fidelity(space, tiny_data, n=4, cheap="synflow", reference="naswot", seed=1), tmp_path)
    assert list(result.correlations["proxy"]) == ["synflow", "params", "macs"]
    assert len(result.table) == 4 and {"synflow", "naswot", "params", "macs", "spec"} <= set(result.table)
    params = result.table["params"].to_numpy()
    tau = result.correlations.set_index("proxy").loc["params", "kendall_tau"]
    assert tau == pytest.approx(kendall_tau(params, result.table["naswot"]))
    assert (tmp_path / "fidelity.csv").is_file()
    assert result.plot == tmp_path / "fidelity.png" and result.plot.stat().st_size > 1000
    # the same seed samples the same architectures
    again = rank_fidelity(space, tiny_data, n=4, cheap="params", reference="macs", seed=1)
    assert list(again.table["spec"]) == list(result.table["spec"])


def test_cli_fidelity_trains_the_reference_and_prints_tau_and_rho(tmp_path, capsys):
    code = main(["fidelity", "small", "--n", "2", "--cheap", "epochs:1:train_loss", "--reference", "epochs:1",
                 "--classes", "2", "--clips-per-class", "4", "--frames", "4", "--resolution", "16",
                 "--proxy", "batch_size=4", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "kendall_tau" in out and "spearman_rho" in out
    for name in ("epochs:1:train_loss", "params", "macs"):
        assert name in out
    assert {p.name for p in tmp_path.iterdir()} >= {"fidelity.csv", "correlations.csv", "fidelity.png"}


@pytest.mark.parametrize("argv, message", [
    (["--cheap", "flops"], "--cheap[0]: 'flops'"),
    (["--reference", "epochs:0"], "--reference: 'epochs:0'"),
    (["--proxy", "epochs=-1"], "--proxy.epochs: -1"),
    (["--proxy", "speed=3"], "--proxy.speed: unknown field"),
    (["--n", "1"], "--n: 1"),
])
def test_cli_fidelity_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    assert main(["fidelity", "small", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
