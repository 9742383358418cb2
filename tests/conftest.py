import pytest
import torch

from eqprop.config import Config

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
