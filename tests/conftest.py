"""Shared fixtures: small Darcy files made on the fly (no downloads)."""

import pytest

from mano_pde.data import DarcyConfig, generate_darcy


@pytest.fixture(scope="session")
def darcy_file(tmp_path_factory):
    """12 samples at 33², generated once per test session."""
    path = tmp_path_factory.mktemp("data") / "darcy33.nc"
    return generate_darcy(DarcyConfig(n_samples=12, resolution=33, seed=7), path, progress=False)
