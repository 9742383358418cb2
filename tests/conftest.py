import pytest
import torch

from eqprop.config import Config
from eqprop.fetch import default_data_dir

#: Where MNIST and Fashion-MNIST are when `eqprop data get` has fetched them on this machine: the tests
#: that need the real data run only then. Every other test sees an empty data folder.
REAL_DATA_DIRS = {name: default_data_dir(name) for name in ("mnist", "fashion-mnist")}

# The networks under test are small: torch's intra-op threads only contend with the other
# pytest-xdist worker on a 2-core machine.
torch.set_num_threads(1)


@pytest.fixture
def tiny_config() -> Config:
    """A small, fast digits configuration for behaviour tests (not the tuned preset)."""
    return Config().replace(
        network={"sizes": [64, 32, 10]},
        learning={"T1": 15, "T2": 6, "lr": [0.05, 0.025], "nudging": "symmetric", "beta": 0.3},
        training={"epochs": 2, "batch_size": 16, "probe_samples": 32},
    )


@pytest.fixture(autouse=True)
def _no_fetched_data(tmp_path_factory, monkeypatch):
    """Tests behave the same whether or not this machine has fetched MNIST."""
    monkeypatch.setenv("EQPROP_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Work stealing instead of xdist's ``load`` (what ``-n 2`` gives): ``load`` hands each worker
    long runs of consecutive tests, so the few long ones (co-simulation, the demo, the bench's quick
    run) piled up behind one worker while the other sat idle for minutes. Work stealing gives each
    worker half of the tests and lets an idle one take half of what the other has queued."""
    if config.getvalue("dist") == "load":
        from xdist.scheduler import WorkStealingScheduling

        return WorkStealingScheduling(config, log)
    return None
