"""Neural-operator models: MANO, attention baselines and neuralop's FNO/TFNO presets, in one registry.

Importing this package registers the attention models with neuraloperator (``"mano"``,
``"globalattentionoperator"``, ``"windowattentionoperator"``, ``"transformeroperator"`` in
``neuralop.models.available_models()``), so ``neuralop.models.get_model(config)`` can build them.

* :func:`create_model` / :func:`list_models` -- the registry (``mano``, ``fno``, ``tfno``,
  ``global-attention``, ``window-attention``) with uniform keyword names.
* :func:`save_model` / :func:`load_model` -- checkpoints that reload under ``weights_only=True``.
* :class:`MANO`, :class:`GlobalAttentionOperator`, :class:`WindowAttentionOperator` -- one transformer
  operator skeleton (:class:`TransformerOperator`) with three token mixers.
* :func:`fno_darcy`, :func:`tfno_darcy` -- neuralop's FNO/TFNO with the FNO paper's Darcy preset.
"""

from .attention_operators import GlobalAttentionOperator, WindowAttentionOperator
from .checkpoint import load_model, model_config, save_model
from .fourier import FNO_PAPER_N_MODES, fno_darcy, tfno_darcy
from .mano import MANO
from .registry import count_parameters, create_model, list_models, model_builder, model_signature
from .transformer_operator import TransformerOperator

__all__ = [
    "FNO_PAPER_N_MODES",
    "MANO",
    "GlobalAttentionOperator",
    "TransformerOperator",
    "WindowAttentionOperator",
    "count_parameters",
    "create_model",
    "fno_darcy",
    "list_models",
    "load_model",
    "model_builder",
    "model_signature",
    "model_config",
    "save_model",
    "tfno_darcy",
]
