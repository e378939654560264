"""bfloat16 autocast and ``torch.compile``: one definition of each for training and inference.

Used by :func:`mano_pde.training.train` (``TrainConfig.amp_bf16`` / ``TrainConfig.compile``, ``mano-pde train
--bf16 --compile``), :func:`mano_pde.evaluation.evaluate` (``bf16=`` / ``compile=``, ``mano-pde evaluate --bf16
--compile``) and :meth:`mano_pde.training.Run.predict`.

bf16
----
:func:`bf16_autocast` is ``torch.autocast(device_type, dtype=torch.bfloat16)``, on the CPU as on CUDA. Autocast
converts per operation and never the parameters, so weights, gradients and optimizer state stay fp32; the
trainer computes the loss in fp32 on the de-normalised prediction (``pred.float()``). Which operations run in
bf16 is torch's autocast policy (checked with torch 2.13 on the CPU, ``tests/test_acceleration.py``):

* linear, matmul, bmm, conv, transposed conv and ``scaled_dot_product_attention`` run in bf16 (the CPU kernels
  accumulate in fp32); the attention layers' :func:`~mano_pde.layers.attention.softmax_attention` runs bf16
  windows on the CPU as ``bmm -> softmax -> bmm`` (faster there than torch's bf16 flash kernel);
* operations outside autocast's lists run in their input's dtype: MANO's LayerNorms and softmax see bf16
  activations and return bf16 (their CPU kernels compute mean/variance and the exponential sums in fp32), and
  every layer output feeds a bf16 linear or conv anyway; a residual sum of an fp32 stream and a bf16 branch is
  fp32, so the residual streams of the attention models stay fp32;
* every ``torch.fft`` function is on the CPU autocast's fp32 list (bf16 FFTs do not exist on the CPU): neuralop's
  ``SpectralConv`` receives a bf16 tensor in the first FNO block and runs its rfft, its complex64 mode
  contraction (autocast leaves complex tensors alone) and its inverse FFT in fp32, exactly as in an fp32 model
  applied to the bf16-rounded input; its output is fp32, so later blocks are fp32 except for the 1x1 skip and
  projection convolutions.

torch.compile
-------------
:func:`compile_model` is ``torch.compile(model, dynamic=False)`` with the default inductor backend, after
checking that the backend can run (:func:`check_compile`: a C++ compiler on the CPU, triton on CUDA). The
compiled module shares the parameters of ``model``: the trainer optimises and saves ``model`` itself, so
checkpoints, resume states and ``model_state_dict.pt`` hold the uncompiled module's keys and a compiled run
resumes eagerly and vice versa (``compile`` is a runtime field of :class:`~mano_pde.training.TrainConfig`).
Under data parallelism the ``DistributedDataParallel`` wrapper is compiled (torch's ``DDPOptimizer`` splits
the graph at the gradient buckets). ``dynamic=False``: each input shape (grid and batch size) compiles once
and runs a shape-specialised kernel, instead of a symbolic-shape kernel after the second shape; a
multi-resolution run or an evaluation over several grids compiles once per grid, up to torch's limit of
recompilations per module (``torch._dynamo.config.recompile_limit``, 8 in torch 2.13), after which further
shapes run eagerly (torch warns; the results are the same). Compiled outputs equal
eager ones to fp32 rounding (``tests/test_compile.py``); the first call of each shape pays the compilation
(the trainer logs it beside the mean step time; ``mano-pde benchmark scaling --compile`` reports both).
"""

from __future__ import annotations

import contextlib
import os
import shutil

import torch

from .errors import UserInputError

__all__ = ["bf16_autocast", "check_bf16", "check_compile", "compile_model", "cxx_compiler"]

#: Compilers tried in this order when ``CXX`` is not set (inductor's own default is ``g++``).
CXX_CANDIDATES = ("g++", "c++", "clang++")


def check_bf16(device: torch.device) -> None:
    """Refuse bf16 autocast where the device cannot run it (CUDA without bf16 support); the CPU always can
    (fast with ``avx512_bf16``/AMX, emulated otherwise)."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserInputError(
            f"bf16 autocast was requested but {torch.cuda.get_device_name(device)} does not support bfloat16; "
            "drop --bf16 (or run on the CPU)"
        )


def bf16_autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """``torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)`` (a no-op context when disabled)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def cxx_compiler() -> str | None:
    """The C++ compiler inductor can use on the CPU (``$CXX`` or the first of :data:`CXX_CANDIDATES` on
    ``PATH``), or None."""
    for name in (os.environ.get("CXX"), *CXX_CANDIDATES):
        if name and (found := shutil.which(name)):
            return found
    return None


def check_compile(device: torch.device) -> None:
    """Refuse ``torch.compile`` where inductor cannot generate code: no C++ compiler (CPU), no triton (CUDA)."""
    if device.type == "cpu" and cxx_compiler() is None:
        raise UserInputError(
            "torch.compile on the CPU generates C++ (inductor) but no C++ compiler was found ($CXX, "
            f"{', '.join(CXX_CANDIDATES)}); install g++ or drop --compile (compile=False)"
        )
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            raise UserInputError(
                "torch.compile on CUDA generates triton kernels but triton is not installed; "
                "pip install triton, or drop --compile (compile=False)"
            ) from None


def compile_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``torch.compile(model, dynamic=False)`` (inductor) after :func:`check_compile`; the returned module
    shares ``model``'s parameters (save and load ``model``, not the returned wrapper)."""
    check_compile(device)
    return torch.compile(model, dynamic=False)
