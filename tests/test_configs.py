"""Every config file composes and instantiates; typos and unknown options fail clearly."""

from pathlib import Path

import hydra
import lightning as L
import pytest
import torch
from hydra.errors import ConfigCompositionException
from lightning.pytorch.callbacks import Timer
from omegaconf import OmegaConf

from seglab.config import CONFIG_DIR
from seglab.schedules import Budget, build_scheduler
from seglab.utils.instantiate import instantiate_named

from .conftest import ISBI_DIR, TINY, compose_train, run_train_script
from .helpers.folders import make_folder
from .helpers.standard import make_oxford_pet, make_voc

GROUPS = [
    "data",
    "model",
    "loss",
    "optimizer",
    "scheduler",
    "callbacks",
    "logger",
    "trainer",
    "debug",
]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def data_root(option: str, tmp_path: Path) -> list[str]:
    """Data options that read files need data.dataset.root: a tiny folder, or the ISBI data."""
    if option == "isbi2012":
        if not ISBI_DIR.is_dir():
            pytest.skip(f"ISBI 2012 data not found at {ISBI_DIR}")
        return [f"data.dataset.root='{ISBI_DIR}'"]
    if option == "folder":
        return [f"data.dataset.root='{make_folder(tmp_path / 'data')}'"]
    if option == "oxford_pet":
        return [f"data.dataset.root='{make_oxford_pet(tmp_path / 'pets')}'"]
    if option == "voc":
        return [f"data.dataset.root='{make_voc(tmp_path / 'voc')}'"]
    return []


def test_config_dir_is_found():
    assert (Path(CONFIG_DIR) / "train.yaml").is_file()


@pytest.mark.parametrize(
    "group, option", [(group, option) for group in GROUPS for option in options(group)]
)
def test_every_group_option_composes_and_instantiates(group, option, tmp_path):
    # the tiny overrides of a group apply to its default option only
    tiny = [o for o in TINY if not o.startswith(f"{group}.")]
    if group == "model" and option == "smp":
        pytest.importorskip("segmentation_models_pytorch")  # the optional [smp] extra
    roots = data_root(option, tmp_path) if group == "data" else []
    cfg = compose_train(tmp_path, [*tiny, f"{group}={option}", *roots])
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    datamodule = hydra.utils.instantiate(cfg.data)
    net = hydra.utils.instantiate(cfg.model)
    image = datamodule.split("val")[0]["image"][None]
    # eval mode: a batch of one 32x32 image has a single value per channel at a ResNet's stride
    # 32, which batch norm cannot normalise in training mode
    with torch.no_grad():
        assert net.eval()(image).shape[1] == datamodule.num_classes
    hydra.utils.instantiate(cfg.loss)
    optimizer = hydra.utils.instantiate(cfg.optimizer)(params=net.parameters())
    if cfg.get("scheduler"):  # budget schedules also get the run's steps and time
        budget = Budget(total_steps=10, max_time=60.0, elapsed=lambda: 0.0)
        build_scheduler(hydra.utils.instantiate(cfg.scheduler), optimizer, lambda: budget)
    callbacks = instantiate_named(cfg.get("callbacks"), "callbacks")
    loggers = instantiate_named(cfg.get("logger"), "logger")
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        pytest.skip("this trainer config needs a GPU")
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    assert isinstance(trainer, L.Trainer)


def test_augmentation_options_compose(tmp_path):
    for option in options("data/augmentation"):
        cfg = compose_train(tmp_path, [f"data/augmentation={option}"])
        hydra.utils.instantiate(cfg.data.augmentation)


def test_unknown_key_names_the_key_and_the_fix(tmp_path):
    with pytest.raises(ConfigCompositionException) as error:
        compose_train(tmp_path, ["trainer.max_epoch=3"])
    message = str(error.value) + str(error.value.__cause__)
    assert "max_epoch" in message and "+trainer.max_epoch" in message


def test_unknown_group_option_lists_the_available_ones(tmp_path):
    with pytest.raises(ConfigCompositionException, match="(?s)unett.*Available options.*unet"):
        compose_train(tmp_path, ["model=unett"])


@pytest.mark.slow
def test_train_script_reports_a_typo_without_a_traceback(tmp_path):
    result = run_train_script(["model=unett"], cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not find 'model/unett'" in result.stderr
    assert "Available options" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("trainer", options("trainer"))
def test_time_budget_and_batch_limits_are_ordinary_overrides(trainer, tmp_path):
    limits = ["trainer.limit_train_batches=3", "trainer.limit_val_batches=0.5"]
    budget = ["trainer.max_time=00:00:10:00", "trainer.limit_test_batches=2", *limits]
    cfg = compose_train(tmp_path, [f"trainer={trainer}", *budget])
    assert cfg.trainer.max_time == "00:00:10:00"
    assert (cfg.trainer.limit_train_batches, cfg.trainer.limit_val_batches) == (3, 0.5)
    assert cfg.trainer.limit_test_batches == 2
    if trainer == "default":
        assert compose_train(tmp_path).trainer.max_time is None


def test_max_time_reaches_the_trainer(tmp_path):
    cfg = compose_train(tmp_path, [*TINY, "trainer.max_time=00:00:10:00", "logger=csv"])
    trainer = hydra.utils.instantiate(cfg.trainer)
    timers = [c for c in trainer.callbacks if isinstance(c, Timer)]
    assert [timer._duration for timer in timers] == [600]
    assert trainer.limit_train_batches == 1.0  # null: every batch


def test_validation_cadence_reaches_the_trainer(tmp_path):
    cadence = ["trainer.check_val_every_n_epoch=3", "trainer.val_check_interval=0.5"]
    trainer = hydra.utils.instantiate(compose_train(tmp_path, [*TINY, *cadence]).trainer)
    assert (trainer.check_val_every_n_epoch, trainer.val_check_interval) == (3, 0.5)
    assert hydra.utils.instantiate(compose_train(tmp_path, TINY).trainer).val_check_interval == 1.0


def test_every_group_in_the_defaults_list_has_its_folder():
    defaults = OmegaConf.load(Path(CONFIG_DIR) / "train.yaml").defaults
    groups = [next(iter(entry)) for entry in defaults if not isinstance(entry, str)]
    groups = [group.removeprefix("optional ").removeprefix("override ") for group in groups]
    assert groups and all((Path(CONFIG_DIR) / group).is_dir() for group in groups), groups


def test_isbi_experiment_preset_uses_the_budget_levers(tmp_path):
    cfg = compose_train(tmp_path, ["experiment=isbi2012"])
    assert cfg.data.dataset._target_ == "seglab.data.FolderDataset"
    assert cfg.data.samples_per_epoch == 200 and cfg.trainer.max_time == "00:00:10:00"
    assert cfg.scheduler._target_ == "seglab.schedules.TimeSchedule"
    assert cfg.trainer.max_epochs == -1 and cfg.callbacks.early_stopping is None
    assert cfg.trainer.precision == "bf16-mixed"  # benchmarks/flops.py: 2.1x with channels_last
    assert cfg.callbacks.channels_last._target_ == "seglab.callbacks.ChannelsLast"
    trainer = hydra.utils.instantiate(cfg.trainer, accelerator="cpu")
    net = torch.nn.Linear(1, 1)
    optimizer = hydra.utils.instantiate(cfg.optimizer)(params=net.parameters())
    budget = Budget.of(trainer)  # the Timer that trainer.max_time adds
    assert budget.max_time == 600
    scheduler, interval = build_scheduler(
        hydra.utils.instantiate(cfg.scheduler), optimizer, lambda: budget
    )
    assert interval == "step" and scheduler.max_time == 600
