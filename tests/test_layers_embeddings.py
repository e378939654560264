"""Node-grid coordinates: the same physical node gets the same coordinate at every resolution, for every model."""

from __future__ import annotations

import pytest
import torch
from neuralop.layers.embeddings import GridEmbeddingND

from mano_pde.layers.embeddings import NodeGridEmbedding, make_positional_embedding
from mano_pde.models import create_model, list_models


@pytest.mark.parametrize("fine,coarse", [((129, 129), (33, 33)), ((65, 97), (33, 49)), ((64, 96), (22, 20))])
def test_subsampled_fine_embedding_equals_coarse_embedding_exactly(fine, coarse):
    emb = NodeGridEmbedding(in_channels=1)
    t = ((fine[0] - 1) // (coarse[0] - 1), (fine[1] - 1) // (coarse[1] - 1))
    assert (coarse[0] - 1) * t[0] == fine[0] - 1 and (coarse[1] - 1) * t[1] == fine[1] - 1
    a = torch.rand(2, 1, *fine)
    e_fine = emb(a)
    e_coarse = emb(a[..., :: t[0], :: t[1]])
    assert e_fine.shape == (2, 3, *fine)
    assert torch.equal(e_fine[..., :: t[0], :: t[1]], e_coarse)


def test_node_coordinates_include_the_boundary():
    e = NodeGridEmbedding(in_channels=1)(torch.zeros(1, 1, 5, 3))
    torch.testing.assert_close(e[0, 1, :, 0], torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    torch.testing.assert_close(e[0, 2, 0, :], torch.tensor([0.0, 0.5, 1.0]))
    # neuralop's periodic grid places node i at i / s: the last node is not at 1, and moves with s
    g = GridEmbeddingND(in_channels=1, dim=2, grid_boundaries=[[0, 1], [0, 1]])
    assert g(torch.zeros(1, 1, 33, 33))[0, 1, -1, 0] != g(torch.zeros(1, 1, 129, 129))[0, 1, -1, 0]


def test_cache_follows_dtype_and_resolution():
    emb = NodeGridEmbedding(in_channels=1)
    assert emb(torch.zeros(1, 1, 9, 9, dtype=torch.float64)).dtype == torch.float64
    assert emb(torch.zeros(1, 1, 9, 9)).dtype == torch.float32
    assert emb(torch.zeros(1, 1, 17, 5)).shape == (1, 3, 17, 5)


@pytest.mark.parametrize("name", list_models())
def test_every_model_uses_node_coordinates_by_default(name):
    model = create_model(name, hidden_channels=8, **({"n_modes": (4, 4)} if "fno" in name else {}))
    assert isinstance(model.positional_embedding, NodeGridEmbedding)


def test_unknown_embedding_is_refused():
    with pytest.raises(ValueError, match="positional_embedding must be one of"):
        make_positional_embedding("sinusoid", 1)
