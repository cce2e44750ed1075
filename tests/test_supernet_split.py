"""Few-shot splitting (`supernet.split`): branch selection and initialisation, checkpoints and resume,
scoring on the matching branch, config errors. Tiny space and a handful of steps."""

import shutil

import numpy as np
import pytest

from evaluation.oneshot.split import SplitSupernet, branches, check_split, split_step
from evaluation.oneshot.supernet import (
    SupernetConfig,
    load_supernet,
    parse_supernet,
    read_checkpoint,
    sandwich,
)
from nas.cli import main
from search_space import SearchSpace
from tests.test_supernet_train import CONFIG, SPACE, _folder

AXIS = "s1_b1_kernel"
# step 0 shared; the split at step 1; step 1 trains branch 0, step 2 branch 1
SPLIT = SupernetConfig(steps=3, batch_size=4, random_subnets=1, checkpoint_every=1, split=(AXIS,), split_after=0.34)


def _data():
    from evaluation.datasets import synthetic

    return synthetic(num_classes=3, clips_per_class=4, frames=4, resolution=16)


def _train(cfg, path, **kw):
    from evaluation.oneshot.train import Progress, train_supernet

    return train_supernet(SearchSpace.from_yaml(SPACE), _data(), cfg, path, progress=Progress(bar=False, **kw))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The split run uninterrupted (split.npz), with copies of its checkpoints after steps 1 and 2 (what a
    run killed there leaves on disk)."""
    folder = tmp_path_factory.mktemp("split")

    def keep(step):
        if step < SPLIT.steps:
            shutil.copy(folder / "split.npz", folder / f"at{step}.npz")

    _train(SPLIT, folder / "split.npz", on_step=keep)
    return folder


def test_split_config_is_checked_in_one_line():
    assert parse_supernet({"split": AXIS}).split == (AXIS,)
    for bad, message in (({"split": [AXIS, AXIS]}, "appears twice"), ({"split": 3}, "must be a list of searched"),
                         ({"split_after": 1.0}, "strictly between 0 and 1"), ({"split_after": 0}, "strictly"),
                         ({"split_after": "half"}, "strictly")):
        with pytest.raises(ValueError, match=message) as info:
            parse_supernet(bad)
        assert "\n" not in str(info.value) and str(info.value).startswith("supernet.split")
    space = SearchSpace.from_yaml(SPACE)
    with pytest.raises(ValueError, match=r"supernet.split: 's9_kernel' is not an axis of space 'tiny'"):
        check_split(("s9_kernel",), space)
    with pytest.raises(ValueError, match=r"supernet.split: 'frames' has one choice in space 'tiny'"):
        check_split(("frames",), space)
    with pytest.raises(ValueError, match=r"'s1_b2_kernel' is not read by every sub-network of space 'tiny'"):
        check_split(("s1_b2_kernel",), space)
    check_split((AXIS, "s2_depth", "s2_b1_expand"), space)


def test_the_cli_refuses_a_bad_split_with_exit_2(tmp_path, monkeypatch, capsys):
    folder = _folder(tmp_path, CONFIG.replace("recalibration_clips: 8}", "recalibration_clips: 8, split: [s1_depth, "
                                                                        "s9_kernel]}"))
    monkeypatch.chdir(folder)
    assert main(["supernet", "train", "tiny.yaml", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("movinas supernet: error: tiny.yaml: supernet.split: 's9_kernel' is not an axis of "
                              "space 'tiny'; searched axes: s1_depth, s1_b1_kernel, s1_b1_expand, s1_b2_kernel")
    assert not (folder / "results" / "tiny" / "supernet.npz").exists()


def test_branches_fix_their_choices_and_start_from_the_shared_weights(runs):
    space = SearchSpace.from_yaml(SPACE)
    assert branches(space, (AXIS,)) == [{AXIS: "1x3x3"}, {AXIS: "3x3x3"}] and split_step(SPLIT) == 1
    net = SplitSupernet(space, 3, (AXIS,))
    for i, b in enumerate(net.branches):
        subnets = sandwich(net, SupernetConfig(random_subnets=3), 0, 5, b)
        assert all(net.branch(s) == i for s in subnets)
        assert subnets[0] == space.decode({**space.nearest(net.largest), **b}, name="largest")
    meta, arrays = read_checkpoint(runs / "at2.npz")
    shared_meta, shared = read_checkpoint(runs / "at1.npz")
    assert "split" not in shared_meta and read_checkpoint(runs / "split.npz")[0]["step"] == 3
    assert meta["step"] == 2 and meta["split"] == {"axes": [AXIS], "at": 1, "branches": net.branches}
    assert not any(k.startswith(("w/", "o/")) for k in arrays)
    trained = [k[len("b0/"):] for k in arrays if k.startswith("b0/")]
    assert sorted(trained) == sorted(shared)
    # branch 1 has not trained yet: the shared weights and optimizer slots of step 1, bit for bit
    assert all(np.array_equal(arrays[f"b1/{k}"], shared[k]) for k in trained)
    assert not all(np.array_equal(arrays[f"b0/{k}"], shared[k]) for k in trained if k.startswith("w/"))


@pytest.mark.parametrize("killed_at", [1, 2])  # at the split (a shared checkpoint), and between branches
def test_a_split_run_killed_midway_resumes_to_the_same_branches(runs, tmp_path, killed_at):
    shutil.copy(runs / f"at{killed_at}.npz", tmp_path / "ck.npz")
    assert _train(SPLIT, tmp_path / "ck.npz")["steps_run"] == SPLIT.steps - killed_at
    ours, theirs = read_checkpoint(tmp_path / "ck.npz")[1], read_checkpoint(runs / "split.npz")[1]
    assert sorted(ours) == sorted(theirs) and all(np.array_equal(ours[k], theirs[k]) for k in ours)


def test_a_checkpoint_split_otherwise_is_refused(runs):
    def config(**kw):
        return SupernetConfig(**{**SPLIT.__dict__, **kw})

    with pytest.raises(ValueError, match=r"split on \['s1_b1_kernel'\] at step 1, but .* say \['s2_b1_kernel'\] at"):
        _train(config(split=("s2_b1_kernel",)), runs / "split.npz")
    with pytest.raises(ValueError, match=r"at2.npz: a supernet split on \['s1_b1_kernel'\] at step 1, but .* say no"):
        _train(config(split=()), runs / "at2.npz")
    with pytest.raises(ValueError, match=r"an unsplit supernet at step 1, past this config's split at step 0"):
        _train(config(split_after=0.1), runs / "at1.npz")


def test_scoring_and_extraction_use_the_branch_of_the_candidate(runs):
    from evaluation.oneshot.score import Scorer
    from evaluation.oneshot.supernet import restore
    from search_space.supernet import Supernet, extract

    net = load_supernet(runs / "split.npz")
    meta, arrays = read_checkpoint(runs / "split.npz")
    assert isinstance(net, SplitSupernet)
    data = _data()
    space = net.space
    scorer, plain = Scorer(net), Supernet(space, 3, block_scale_init=None)
    plain_scorer = Scorer(plain)
    for b, choice in enumerate(["3x3x3", "1x3x3"]):  # branch 1 then 0: each score swaps the weights in
        spec = space.decode({**space.nearest(space.sample(3)), AXIS: choice})
        got = scorer.score(spec, data.train.x[:8], data.val.x, data.val.y.astype("int64"))
        branch = 1 - b
        restore("x", meta, {k.removeprefix(f"b{branch}/"): v for k, v in arrays.items()}, plain)
        want = plain_scorer.score(spec, data.train.x[:8], data.val.x, data.val.y.astype("int64"))
        assert got["val_loss"] == pytest.approx(want["val_loss"], rel=1e-5) and net.active == branch
        mine, theirs = extract(net, spec), extract(plain, spec)
        assert all(np.array_equal(a, c) for a, c in zip(mine.get_weights(), theirs.get_weights()))
