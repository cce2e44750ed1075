"""The internals of Optuna, TensorFlow and Keras that movinas relies on (evaluation/compat.py) still
behave as it assumes. A failure here after an upgrade names the internal that moved: fix it in
evaluation/compat.py, the only module that touches them."""

import numpy as np
import optuna
import pytest

from evaluation import compat


def _broken(what: str, exc: BaseException) -> str:
    return (f"evaluation/compat.py relies on {what}, which this version "
            f"(Optuna {optuna.__version__}) no longer provides as assumed: {type(exc).__name__}: {exc}")


def test_trial_id_addresses_the_trial_in_its_storage():
    study = optuna.create_study()
    trial = study.ask()
    try:
        key = compat.trial_id(trial)
        trial.storage.set_trial_user_attr(key, "seen", True)
    except AttributeError as exc:
        pytest.fail(_broken("Trial._trial_id", exc))
    study.tell(trial, 1.0)
    frozen = study.trials[0]
    assert frozen.user_attrs == {"seen": True}
    assert compat.trial_id(frozen) == key, "FrozenTrial._trial_id differs from the running Trial's"


def test_pareto_front_mask_keeps_exactly_the_non_dominated_rows_and_their_duplicates():
    loss = np.array([[1.0, 4.0], [2.0, 2.0], [2.0, 2.0], [3.0, 3.0], [4.0, 1.0], [5.0, 5.0]])
    try:
        mask = compat.pareto_front_mask(loss)
    except (ImportError, AttributeError, TypeError) as exc:
        pytest.fail(_broken("optuna.study._multi_objective._is_pareto_front(loss, assume_unique_lexsorted)", exc))
    assert mask.tolist() == [True, True, True, False, True, False]


def test_hypervolume_of_a_staircase_matches_the_area_by_hand():
    loss = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    try:
        volume = compat.hypervolume(loss, np.array([4.0, 4.0]))
    except (ImportError, AttributeError, TypeError) as exc:
        pytest.fail(_broken("optuna._hypervolume.compute_hypervolume(loss, reference)", exc))
    assert volume == pytest.approx(3 + 2 + 1)


def test_custom_gradient_registry_is_found_and_forgotten():
    import tensorflow as tf

    registry = compat.custom_gradient_registry()
    assert registry is not None, ("evaluation/compat.py relies on tensorflow.python.framework.ops._gradient_registry"
                                  f"._registry (a dict), missing in TensorFlow {tf.__version__}: training leaks "
                                  "every traced graph again")
    before = set(registry)

    @tf.custom_gradient
    def double(x):
        return 2 * x, lambda dy: 2 * dy

    with compat.forget_custom_gradients():
        tf.function(lambda x: double(x))(tf.constant(1.0))
        added = [n for n in registry if n not in before]
        assert any(n.startswith("CustomGradient-") for n in added), (
            "tf.custom_gradient no longer registers CustomGradient-<uid> entries in the registry compat reads")
    assert not [n for n in registry if n not in before and n.startswith("CustomGradient-")]


def test_all_layers_reaches_layers_nested_in_blocks():
    import keras

    inner = keras.Sequential([keras.layers.Dense(2), keras.layers.BatchNormalization()])
    model = keras.Sequential([keras.Input((3,)), inner, keras.layers.Dense(1)])
    try:
        layers = compat.all_layers(model)
    except AttributeError as exc:
        pytest.fail(f"evaluation/compat.py relies on keras.Layer._flatten_layers, missing in Keras "
                    f"{keras.__version__}: {exc}")
    assert any(isinstance(x, keras.layers.BatchNormalization) for x in layers)
    assert model not in layers


def test_set_untracked_keeps_a_variable_out_of_the_layer_weights_and_is_read_by_batch_norm():
    import keras
    import tensorflow as tf

    layer = keras.layers.BatchNormalization()
    layer.build((None, 2))
    n_weights = len(layer.weights)
    momentum = tf.Variable(0.0, trainable=False)
    compat.set_untracked(layer, "momentum", momentum)
    assert len(layer.weights) == n_weights, f"Keras {keras.__version__} tracked a variable set with object.__setattr__"
    layer(tf.constant([[1.0, 3.0], [3.0, 5.0]]), training=True)  # momentum 0: the batch statistics replace the moving
    assert layer.moving_mean.numpy() == pytest.approx([2.0, 4.0]), (
        f"BatchNormalization of Keras {keras.__version__} no longer reads `momentum` at call time")


def test_optuna_reads_feasibility_under_the_constraints_key_the_record_writes():
    try:
        from optuna.study._constrained_optimization import _CONSTRAINTS_KEY, _get_feasible_trials
    except ImportError as exc:
        pytest.fail(_broken("optuna.study._constrained_optimization._CONSTRAINTS_KEY", exc))
    assert compat.OPTUNA_CONSTRAINTS_KEY == _CONSTRAINTS_KEY, (
        f"Optuna {optuna.__version__} reads constraint values under {_CONSTRAINTS_KEY!r}, evaluation/compat.py "
        f"writes them under {compat.OPTUNA_CONSTRAINTS_KEY!r}: samplers and best_trials no longer see feasibility")
    study = optuna.create_study()
    for values in ([1.0], [-1.0]):
        trial = study.ask()
        trial.storage.set_trial_system_attr(compat.trial_id(trial), compat.OPTUNA_CONSTRAINTS_KEY, values)
        study.tell(trial, 0.0)
    assert [t.number for t in _get_feasible_trials(study.trials)] == [1]


def _study_file(path, name: str, storage_class=None, **kwargs):
    storage = (storage_class or optuna.storages.RDBStorage)(f"sqlite:///{path}", **kwargs)
    return storage, optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"])


def test_sqlite_trials_reads_what_optuna_reads_from_its_tables(tmp_path):
    import sqlite3

    path = tmp_path / "study.db"
    for name in ("other", "mine"):  # two studies: the reader must keep to its own trials
        storage, study = _study_file(path, name)
        for i, values in enumerate(([0.5, 2.0], [float("inf"), -float("inf")], None)):
            trial = study.ask()
            trial.suggest_int("depth", 1, 4)
            trial.suggest_float("width", 0.25, 2.0, log=True)
            trial.suggest_categorical("kernel", ["3x3", "5x5", None])
            trial.set_user_attr("spec", {"stages": [i, name]})
            trial.storage.set_trial_system_attr(compat.trial_id(trial), "fixed", [i])
            if values is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, values)
        study.ask()  # left RUNNING
        storage.engine.dispose()
    con = sqlite3.connect(str(path))
    try:
        assert compat.has_optuna_tables(con), f"Optuna {optuna.__version__} names its tables otherwise"
        try:
            got = compat.sqlite_trials(con, "mine")
        except (sqlite3.Error, KeyError, TypeError, ValueError) as exc:
            pytest.fail(_broken("Optuna's RDB schema (trials, trial_params, trial_values, trial_*_attributes)", exc))
    finally:
        con.close()
    want = optuna.load_study(study_name="mine", storage=f"sqlite:///{path}").trials
    assert [t.number for t in got] == [t.number for t in want]
    for g, w in zip(got, want):
        where = f"trial {w.number}: the tables compat reads no longer hold what Optuna {optuna.__version__} reads"
        assert (g.state, g.params, g.user_attrs, g.system_attrs) == (w.state.name, w.params, w.user_attrs,
                                                                     w.system_attrs), where
        assert list(g.params) == list(w.params), where
        assert g.values == (w.values if w.state.name == "COMPLETE" else None), where
        assert (g.datetime_start, g.datetime_complete) == (w.datetime_start, w.datetime_complete), where


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning", "ignore::UserWarning")
def test_a_running_trial_that_never_beat_is_failed_by_optunas_stale_check(tmp_path):
    import sqlite3

    path = tmp_path / "study.db"
    storage, study = _study_file(path, "s", compat.rdb_storage_class(), heartbeat_interval=60, grace_period=60)
    study.ask()  # RUNNING, no heartbeat yet: its process died before its heartbeat thread started
    con = sqlite3.connect(str(path))
    con.execute("UPDATE trials SET datetime_start = '2000-01-01 00:00:00'")
    con.commit()
    con.close()
    try:
        optuna.storages.fail_stale_trials(study)
    except (ImportError, AttributeError, TypeError) as exc:
        pytest.fail(_broken("RDBStorage._get_stale_trial_ids and the optuna.storages._rdb models", exc))
    assert study.trials[0].state == optuna.trial.TrialState.FAIL, (
        f"Optuna {optuna.__version__} no longer asks RDBStorage._get_stale_trial_ids for the trials to fail: "
        "a trial killed before its first heartbeat stays RUNNING for ever")
    storage.engine.dispose()


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning", "ignore::UserWarning")
def test_stop_heartbeat_threads_stops_a_running_heartbeat(tmp_path):
    from optuna.storages._heartbeat import get_heartbeat_thread

    storage, study = _study_file(tmp_path / "study.db", "s", heartbeat_interval=60)
    trial = study.ask()
    beat = get_heartbeat_thread(compat.trial_id(trial), storage)
    beat.start()
    compat.stop_heartbeat_threads()
    thread = getattr(beat, "_thread", None)
    assert thread is not None and not thread.is_alive(), (
        f"evaluation/compat.py finds Optuna's heartbeat threads by their target `_record_heartbeat` and its "
        f"stop Event argument; Optuna {optuna.__version__}'s thread kept running")
    study.tell(trial, [0.0, 0.0])
    storage.engine.dispose()


def test_freeze_turns_variables_into_constants_with_the_same_outputs():
    import tensorflow as tf

    weight = tf.Variable([[2.0], [3.0]])
    function = tf.function(lambda x: {"y": tf.matmul(x, weight)}).get_concrete_function(tf.TensorSpec([1, 2]))
    try:
        frozen = compat.freeze(function)
    except (ImportError, AttributeError, TypeError) as exc:
        pytest.fail(f"evaluation/compat.py relies on tensorflow.python.framework.convert_to_constants."
                    f"convert_variables_to_constants_v2, missing in TensorFlow {tf.__version__}: {exc}")
    assert not frozen.variables, "the frozen function still reads variables: TFLite files would fail at run time"
    weight.assign([[0.0], [0.0]])  # the constant keeps the value it was frozen with
    out = tf.nest.flatten(frozen(tf.constant([[1.0, 1.0]])))
    assert out[0].numpy().tolist() == [[5.0]]
