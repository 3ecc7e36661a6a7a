"""Searches at scale: pruning, journal and PostgreSQL storages, several workers on one study,
dead workers' trials re-queued, and studies of the Optuna 2.10 era resumed.

The searches run the real script in subprocesses on the tiny data (one epoch per trial, or two
for pruning); the bookkeeping of dead workers runs in-process on Optuna's own API.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from seglab.compare import compare
from seglab.config import CONFIG_DIR
from seglab.sweeps import budget, retry
from seglab.sweeps.search_space import parse_params
from seglab.sweeps.seeding import TrialSeededSampler, seeded_per_trial, trial_seed
from seglab.sweeps.workers import WORKER, quiet

from .conftest import run_train_script
from .helpers import wandb_records
from .helpers.postgres import postgres_server
from .helpers.runs import start_train_script, sweep_summary, validated_epochs
from .test_launchers import LAUNCHERS
from .test_optuna import SEARCH, STUDY, compose_search, dead_pid, load_study, make_sweeper, tiny

OLD_STUDY = Path(__file__).parent / "data" / "optuna210_sweep.sql"
SPACE = {"x": CategoricalDistribution([1, 2])}


def test_hydra_sweep_syntax_becomes_optuna_distributions():
    space, fixed = parse_params(
        ["a=range(1,5)", "b=range(0.1,0.5,0.1)", "c=shuffle(range(1,3))", "d=interval(0,1)"]
        + ["e=choice(x,y)", "e=3", "f=tag(log,interval(1e-3,1))"]
    )
    assert space["a"] == IntDistribution(1, 4)  # Hydra's range leaves out stop
    assert space["b"] == FloatDistribution(0.1, 0.4, step=0.1)
    assert sorted(space["c"].choices) == [1, 2]  # shuffled: a choice
    assert space["d"] == FloatDistribution(0.0, 1.0)
    assert space["f"] == FloatDistribution(1e-3, 1.0, log=True)
    assert fixed == {"e": "3"}  # the later (command-line) value fixes the key
    with pytest.raises(ValueError, match=r"'g=range\(5,1\)' holds no value"):
        parse_params(["g=range(5,1)"])


def test_every_pruner_option_builds_its_optuna_pruner():
    expected = {
        "none": optuna.pruners.NopPruner,
        "median": optuna.pruners.MedianPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "threshold": optuna.pruners.ThresholdPruner,
    }
    assert {p.stem for p in (CONFIG_DIR / "hydra" / "sweeper" / "pruner").glob("*.yaml")} == set(
        expected
    )
    assert compose_search().hydra.sweeper.pruner._target_ == "optuna.pruners.NopPruner"
    for name, cls in expected.items():
        cfg = compose_search(f"hydra/sweeper/pruner={name}", "trainer.max_epochs=7")
        pruner = instantiate(
            cfg.hydra.sweeper.pruner, **({"lower": 0.5} if name == "threshold" else {})
        )
        assert type(pruner) is cls
    assert pruner._lower == 0.5
    hyperband = compose_search("hydra/sweeper/pruner=hyperband", "trainer.max_epochs=7")
    assert instantiate(hyperband.hydra.sweeper.pruner)._max_resource == 7


def ask(study: optuna.Study) -> optuna.Trial:
    with quiet():  # "heartbeat is meant for Study.optimize"
        return study.ask(SPACE)


def running_trial(study: optuna.Study, worker: str) -> optuna.Trial:
    trial = ask(study)
    trial.set_user_attr(WORKER, worker)
    return trial


def test_dead_workers_trials_are_failed_and_requeued_and_the_budget_holds(tmp_path):
    search = make_sweeper(
        f"sqlite:///{tmp_path / 'optuna.db'}", 4, heartbeat_interval=1, grace_period=1
    )
    study = search.open_study()
    search.reclaim(study)  # the first call: nothing to do yet
    here = running_trial(study, f"{socket.gethostname()}:{dead_pid()}")
    elsewhere = running_trial(study, "another-machine:1")
    study._storage.record_heartbeat(elsewhere._trial_id)
    alive = running_trial(study, "another-machine:2")  # its worker keeps beating
    # a dead worker of this machine: failed and re-queued at once
    assert search.reclaim(study) == [here.number]
    time.sleep(2.5)  # past the grace period: the other machine's silent trial is stale
    study._storage.record_heartbeat(alive._trial_id)
    assert search.reclaim(study) == []
    trials = study.get_trials()
    states = {t.number: t.state for t in trials}
    assert states[here.number] == states[elsewhere.number] == TrialState.FAIL
    assert states[alive.number] == TrialState.RUNNING
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    # (enqueue_trial keeps the parameters in a system attribute, the retry callback as params)
    queued = sorted((t.params or t.system_attrs["fixed_params"])["x"] for t in waiting)
    assert queued == sorted([here.params["x"], elsewhere.params["x"]])
    # the failed originals give way to their copies: 1 running counts, 3 may still be asked
    assert [t.number for t in budget.counted(trials)] == [alive.number]
    assert budget.left(study, 4) == 3
    # two workers racing for the last trial: the later-numbered one is surplus and dropped
    first, second, third, fourth = (ask(study) for _ in range(4))
    assert [budget.within_budget(study, t, 4) for t in (first, second, third)] == [True] * 3
    assert not budget.within_budget(study, fourth, 4)
    assert study.get_trials()[fourth.number].user_attrs[budget.SURPLUS] is True
    assert budget.left(study, 4) == 0


def job_folder(path: Path, study: str, number: int, checkpoint: bool) -> Path:
    """A job folder as a trial's job leaves it: the trial link in ``.hydra/hydra.yaml``, and
    ``checkpoints/last.ckpt`` when ``checkpoint``."""
    env = {"SEGLAB_OPTUNA_STUDY": study, "SEGLAB_OPTUNA_TRIAL": number}
    (path / ".hydra").mkdir(parents=True)
    OmegaConf.save({"hydra": {"job": {"env_set": env}}}, path / ".hydra" / "hydra.yaml")
    if checkpoint:
        (path / "checkpoints").mkdir()
        (path / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    return path


def test_a_re_run_trial_continues_from_the_newest_checkpoint_along_its_chain(tmp_path):
    study = optuna.create_study(study_name=STUDY, storage=f"sqlite:///{tmp_path / 'o.db'}")

    def failed(attrs: dict) -> optuna.trial.FrozenTrial:
        trial = ask(study)
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, state=TrialState.FAIL)
        return study.trials[trial.number]

    saved = job_folder(tmp_path / "0", STUDY, 0, checkpoint=True)
    first = failed({retry.JOB_DIR: str(saved)})
    # its copy died before saving anything; the copy of the copy goes back to trial 0's file
    second = failed(
        {retry.JOB_DIR: str(job_folder(tmp_path / "1", STUDY, 1, False)), "retry_of": 0}
    )
    third = failed({retry.RETRY_OF: second.number})
    assert retry.continuation(study, third) == {"ckpt_path": f"'{saved}/checkpoints/last.ckpt'"}
    assert retry.continuation(study, first) == {}  # not a re-run
    # a folder of another study's trial 0 (a reused sweep folder) or a lost folder: afresh
    other = failed({retry.JOB_DIR: str(job_folder(tmp_path / "x", "other", 3, checkpoint=True))})
    assert retry.continuation(study, failed({retry.RETRY_OF: other.number})) == {}
    lost = failed({retry.JOB_DIR: str(tmp_path / "gone")})
    assert retry.continuation(study, failed({retry.RETRY_OF: lost.number})) == {}
    # the heartbeat's retry callback marks its copies with a system attribute instead
    copy = ask(study)
    study._storage.set_trial_system_attr(copy._trial_id, "failed_trial", first.number)
    assert retry.retried_trial(study.trials[copy.number]) == first.number


def seeded_random(seed: int = 0) -> TrialSeededSampler:
    """A random sampler seeded per trial, as the sweeper builds one from its sampler config."""
    node = OmegaConf.create({"_target_": "optuna.samplers.RandomSampler", "seed": seed})
    return seeded_per_trial(None, node)


def proposed(storage: str, workers: int, seed: int = 0) -> list[float]:
    """``workers`` searches over one study, all opened before any asks (started together), asking
    in turn; the drawn ``lr`` of every trial, by trial number."""
    space = {"lr": FloatDistribution(1e-5, 1.0, log=True)}
    searches = [make_sweeper(storage, 6, sampler=seeded_random(seed)) for _ in range(workers)]
    studies = [search.open_study() for search in searches]
    for search, study in zip(searches, studies, strict=True):
        search.resume(study)
    trials = []
    while len(trials) < 6:
        for search, study in zip(searches, studies, strict=True):
            trials += search.ask(study, space)
    return [t.params["lr"] for t in sorted(trials, key=lambda t: t.number)]


def test_workers_started_together_with_one_seed_never_propose_the_same_trials(tmp_path):
    two = proposed(f"sqlite:///{tmp_path / 'two.db'}", workers=2)
    assert len(set(two)) == 6  # one seed per worker would draw each value twice
    # trial n draws from (seed, n) alone: one worker proposes the same trials, every time
    assert proposed(f"sqlite:///{tmp_path / 'one.db'}", workers=1) == two
    assert proposed(f"sqlite:///{tmp_path / 'other.db'}", workers=1, seed=1) != two
    assert len({trial_seed(1234, n) for n in range(100)} | {trial_seed(1235, 0)}) == 101
    # the search's config: its TPE sampler, built anew for each trial with that trial's seed
    sampler = seeded_per_trial(None, compose_search().hydra.sweeper.sampler)
    assert str(sampler) == "TPESampler (seed 1234 + trial number)"
    assert sampler.make(7)._n_startup_trials == 10
    unseeded = optuna.samplers.TPESampler()
    node = compose_search("hydra.sweeper.sampler.seed=null").hydra.sweeper.sampler
    assert seeded_per_trial(unseeded, node) is unseeded  # entropy differs per worker anyway


def search_args(sweep_dir: Path, n_trials: int, *extra: str, searched=()) -> list[str]:
    """The tiny search without the test stage (its trials only need the validation)."""
    sweeper = [f"hydra.sweeper.n_trials={n_trials}", f"hydra.sweep.dir={sweep_dir}", *extra]
    return ["-m", SEARCH, *tiny(*searched), "test=false", *sweeper]


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study(tmp_path):
    sweep_dir = tmp_path / "sweep"
    with postgres_server() as url:
        args = search_args(sweep_dir, 6, f"hydra.sweeper.storage='{url}'")
        workers = [
            start_train_script(args, tmp_path, tmp_path / f"worker{i}.log") for i in range(2)
        ]
        for i, worker in enumerate(workers):
            assert worker.wait(timeout=900) == 0, (tmp_path / f"worker{i}.log").read_text()[-3000:]
        study = optuna.load_study(study_name=STUDY, storage=url)
        trials = study.trials
    # 6 trials in all, each run once, in its own job folder, by one of the two workers
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    assert len({t.params["optimizer.lr"] for t in trials}) == 6  # no trial proposed twice
    assert {t.user_attrs[WORKER] for t in trials} == {
        f"{socket.gethostname()}:{w.pid}" for w in workers
    }
    rows = sweep_summary(sweep_dir)
    assert sorted(rows) == list(range(6))
    assert all(row["status"] == "completed" for row in rows.values())
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert results.best_value == pytest.approx(max(t.value for t in trials))
    for i in range(2):
        assert "Study: best " in (tmp_path / f"worker{i}.log").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_pruning_reaches_trials_that_a_launcher_runs_in_other_processes(tmp_path, launcher):
    sweep_dir = tmp_path / "sweep"
    prune = ["hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.lower=2.0"]
    parallel = [*LAUNCHERS[launcher], "hydra.sweeper.n_jobs=2"]  # both trials in one launch
    args = search_args(sweep_dir, 2, *prune, *parallel, searched=["trainer.max_epochs"])
    # (a hang guard: the launcher's processes import torch and Lightning once more)
    result = run_train_script([*args, "trainer.max_epochs=2"], tmp_path, timeout=600, check=True)
    # a Dice below 2 after the first validation: each job stopped there, in the launcher's process
    assert [t.state for t in load_study(sweep_dir).trials] == [TrialState.PRUNED] * 2
    rows = sweep_summary(sweep_dir)
    for job in (0, 1):
        assert rows[job]["status"] == "pruned at epoch 0"
        assert validated_epochs(sweep_dir / str(job)) == {0}
    assert "0 complete, 2 pruned, 0 failed" in result.stdout


def journal_study(path: Path) -> optuna.Study:
    return optuna.load_study(
        study_name=STUDY, storage=JournalStorage(JournalFileBackend(str(path)))
    )


@pytest.mark.slow
def test_pruned_and_failed_trials_of_a_journal_study_resume(tmp_path):
    sweep_dir = tmp_path / "sweep"
    journal = sweep_dir / "optuna.log"
    storage = f"hydra.sweeper.storage=journal:///{journal}"
    with_wandb = [o for o in tiny("trainer.max_epochs", "model.depth") if o != "logger=csv"]
    prune = ["hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.lower=2.0"]
    # 1. a Dice below 2 after the first validation: the threshold pruner stops every trial
    args = ["-m", SEARCH, *with_wandb, "logger=wandb", "test=false", "trainer.max_epochs=2"]
    args += ["model.depth=2"]
    result = run_train_script(
        [*args, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep_dir}", storage, *prune],
        cwd=tmp_path,
        check=True,
    )
    assert "No trial completed" in result.stdout + result.stderr
    assert [t.state for t in journal_study(journal).trials] == [TrialState.PRUNED] * 2
    rows = sweep_summary(sweep_dir)
    for job in (0, 1):
        assert rows[job]["status"] == "pruned at epoch 0" and rows[job]["value"] == ""
        assert validated_epochs(sweep_dir / str(job)) == {0}  # stopped after one validation
        records = wandb_records.read_finished(sweep_dir / str(job))
        assert wandb_records.exit_code(records) == 0  # a clean stop, not a crash
        assert "pruned" in wandb_records.tags(records)
        assert wandb_records.summary(records)["trial/status"] == "pruned at epoch 0"
    # 2. resumed with a trial that fails: no trial completes, the failure's error ends it
    result = run_train_script(
        [*args[:-1], "model.depth=0", "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep_dir}"]
        + [storage],
        cwd=tmp_path,
    )
    assert result.returncode == 1 and "UNet depth must be >= 1" in result.stderr
    assert "Resuming study 'unet_optuna': 2 trial(s) finished (0 completed)" in result.stdout
    # 3. resumed once more: pruned and failed trials count, one more trial completes
    result = run_train_script(search_args(sweep_dir, 4, storage), cwd=tmp_path, check=True)
    study = journal_study(journal)
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED", "FAIL", "COMPLETE"]
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert (results.best_trial, results.best_job) == (3, 3)
    assert "Study: best " in result.stdout and "2 pruned, 1 failed" in result.stdout
    rows = sweep_summary(sweep_dir)
    assert rows[2]["status"].startswith("failed: ") and rows[3]["status"] == "completed"
    # seglab-compare ranks the sweep folder and marks the pruned trials
    board = compare([str(sweep_dir)])
    notes = {run.label.split("/")[-1]: run.note for run in board.runs}
    assert notes["0"] == notes["1"] == "pruned at epoch 0"


def restore_sqlite(dump: Path, path: Path) -> None:
    path.parent.mkdir(parents=True)
    with closing(sqlite3.connect(path)) as db:
        db.executescript(dump.read_text())


@pytest.mark.slow
def test_a_study_folder_of_the_optuna_2_era_still_resumes(tmp_path):
    # made by seglab's search on hydra-optuna-sweeper 1.3 / optuna 2.10 (tests/data/README.md):
    # 2 completed trials and a third left RUNNING by a killed search
    sweep_dir = tmp_path / "sweep"
    restore_sqlite(OLD_STUDY, sweep_dir / "optuna.db")
    result = run_train_script(search_args(sweep_dir, 3), cwd=tmp_path, check=True)
    assert "made by an older Optuna: upgrading its tables" in result.stdout + result.stderr
    assert (sweep_dir / "optuna.db.optuna2-backup").is_file()
    assert "Resuming study 'unet_optuna': 2 trial(s) finished (2 completed)" in result.stdout
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    trials = study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    assert trials[3].params == trials[2].params  # the interrupted trial ran again
    assert OmegaConf.load(sweep_dir / "optimization_results.yaml").best_value == max(
        t.value for t in trials if t.state == TrialState.COMPLETE
    )


def test_a_worker_that_finds_the_tables_half_created_by_another_tries_again(monkeypatch):
    """Two workers starting on a new PostgreSQL database both create Optuna's tables; the loser
    got a unique violation on CREATE TYPE (seen in the two-worker test) and died."""
    import sqlalchemy.exc

    from seglab.sweeps import storage

    calls = []

    def racing(url, **settings):
        calls.append(url)
        if len(calls) == 1:
            orig = Exception('duplicate key value violates unique constraint "pg_type_typname"')
            raise sqlalchemy.exc.IntegrityError("CREATE TYPE studydirection", {}, orig)
        return "opened"

    monkeypatch.setattr(storage, "RDBStorage", racing)
    monkeypatch.setattr(storage.time, "sleep", lambda seconds: None)
    assert storage.open_storage("postgresql://localhost/db") == "opened"
    assert calls == ["postgresql://localhost/db"] * 2


OPEN_SQLITE_STUDY = """
import sys, time
import optuna
from seglab.sweeps.storage import open_storage
print("ready", flush=True)
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
study = optuna.create_study(
    study_name="s", storage=open_storage(sys.argv[1]), load_if_exists=True, direction="maximize"
)
print("opened", flush=True)
"""


def open_sqlite_study(url: str, start: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", OPEN_SQLITE_STUDY, url, str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_worker_waits_while_another_creates_the_sqlite_studys_tables(tmp_path):
    """Two workers started together on one new sqlite file both created Optuna's tables; the
    loser died on "table studies already exists" (seen with benchmarks/optuna_search.py's
    two_workers case). A worker now opens the file under an exclusive lock."""
    from seglab.sweeps.storage import sqlite_lock

    db = tmp_path / "sweep" / "optuna.db"
    with sqlite_lock(db):
        worker = open_sqlite_study(f"sqlite:///{db}")
        assert worker.stdout.readline() == "ready\n"
        time.sleep(1.0)
        assert worker.poll() is None, worker.communicate()
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert out == "opened\n"
    assert [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{db}")] == ["s"]


def test_four_workers_opening_one_new_sqlite_study_at_once_all_start(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    start = time.time() + 6.0  # after every process's imports
    workers = [open_sqlite_study(url, start) for _ in range(4)]
    errors = [w.communicate(timeout=120)[1] for w in workers]
    assert [w.returncode for w in workers] == [0] * 4, errors


class FakeTrainer(SimpleNamespace):
    """What TrialPruning reads of a Trainer (one process)."""

    sanity_checking, is_global_zero, should_stop, loggers = False, True, False, []
    strategy = SimpleNamespace(broadcast=lambda value, src: value)


@pytest.mark.parametrize(("max_epochs", "pruned"), [(3, [True, True, False]), (-1, [True] * 3)])
def test_a_trial_is_never_pruned_at_the_fits_last_epoch(max_epochs, pruned):
    """Pruning at the last epoch saves no training and throws the trial's value away (the median
    pruner did so in benchmarks/optuna_search.py)."""
    from seglab.sweeps.trial import TrialPruning

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(2.0))
    seen = []
    for epoch in range(3):
        trial = study.ask()
        link = SimpleNamespace(number=trial.number, open=lambda pruner, trial=trial: trial)
        pruning = TrialPruning(link, study.pruner, "val/dice_best")
        trainer = FakeTrainer(
            current_epoch=epoch, max_epochs=max_epochs, callback_metrics={"val/dice_best": 0.5}
        )
        pruning.on_validation_end(trainer, None)
        seen.append(trainer.should_stop)
        assert trial.storage.get_trial(trial._trial_id).intermediate_values == {epoch: 0.5}
    assert seen == pruned


def test_an_sqlite_url_with_a_query_or_in_memory_leaves_no_stray_file(tmp_path, monkeypatch):
    """The lock is taken on the URL's file, not on its text: ``?timeout=30`` is no part of the
    file name, and an in-memory sqlite has no file to lock."""
    from seglab.sweeps.storage import open_storage

    monkeypatch.chdir(tmp_path)
    open_storage(f"sqlite:///{tmp_path / 'sweep' / 'optuna.db'}?timeout=30")
    open_storage("sqlite:///:memory:")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["optuna.db", "sweep"]


def test_a_trials_job_folder_is_the_sweep_dir_and_subdir_or_none_when_unknown(tmp_path):
    search = make_sweeper(None)
    assert search.job_dir(3) is None  # not set up by Hydra
    hydra = {"sweep": {"dir": str(tmp_path), "subdir": "${hydra.job.num}"}, "job": {"num": 0}}
    search.config = OmegaConf.create({"hydra": hydra})
    OmegaConf.set_readonly(search.config.hydra, True)  # as Hydra hands it over
    assert search.job_dir(7) == tmp_path / "7"
    search.config.hydra._set_flag("readonly", False)
    search.config.hydra.sweep.subdir = "${hydra.job.override_dirname}"  # only the launcher knows
    assert search.job_dir(7) is None
