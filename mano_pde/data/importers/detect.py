"""Detect the format of a Darcy source file from its content (magic bytes and, for HDF5, its variables)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from ...files import special_file_kind
from ..schema import DarcyDataError
from .common import FORMATS

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_TORCH_LEGACY_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # pickled torch MAGIC_NUMBER (legacy torch.save)


def _supported() -> str:
    return "; ".join(f"{k}: {v}" for k, v in FORMATS.items())


# --------------------------------------------------------------------------------------------- detection
def detect_format(src: str | os.PathLike) -> str:
    """The format of a Darcy source file, from its content (magic bytes and, for HDF5, its variables).

    Parameters
    ----------
    src : path-like
        The source file.

    Returns
    -------
    str
        One of :data:`FORMATS`: ``"fno-mat-v5"``, ``"fno-mat-v7.3"``, ``"neuralop-pt"``, ``"pdebench-hdf5"``.

    Raises
    ------
    FileNotFoundError
        If ``src`` does not exist.
    DarcyDataError
        If the content matches no supported format, or the file is empty, truncated or unreadable.
    """
    path = Path(src)
    if not path.exists():
        raise FileNotFoundError(f"no source file at {path}")
    kind = special_file_kind(path)  # a FIFO would block the read below for ever
    if kind is not None:
        raise DarcyDataError(f"{path} is {kind}, not a data file; pass one data file ({_supported()})")
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if not head:
        raise DarcyDataError(f"{path} is empty; download or copy it again")
    if head[:8] == _HDF5_MAGIC or head[512:520] == _HDF5_MAGIC:
        return _classify_hdf5(path, head)
    if head.startswith(b"MATLAB 7.3"):
        raise DarcyDataError(
            f"{path} has a MATLAB v7.3 header but no HDF5 data behind it: the file is truncated or corrupted; "
            "download or copy it again"
        )
    if _is_mat_v5(head):
        return "fno-mat-v5"
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise DarcyDataError(
                f"{path} starts like a torch (zip) file but cannot be opened ({exc}): it is truncated or "
                "corrupted; download or copy it again"
            ) from exc
        if any(n.endswith("data.pkl") for n in names):
            return "neuralop-pt"
        raise DarcyDataError(f"{path} is a zip archive but not a torch.save file. Supported formats: {_supported()}")
    if head[:1] == b"\x80" and head[2:14] == _TORCH_LEGACY_MAGIC:
        return "neuralop-pt"
    raise DarcyDataError(
        f"{path}: unknown file format (first bytes {head[:16]!r}). Supported formats, detected from the "
        f"content: {_supported()}"
    )


def _is_mat_v5(head: bytes) -> bool:
    """MATLAB v5 header: 116 bytes of text, 8 bytes subsystem offset, version 0x0100, endian mark IM/MI."""
    if head.startswith(b"MATLAB 5.0 MAT-file"):
        return True
    if len(head) < 128 or head[126:128] not in (b"IM", b"MI"):
        return False
    version = int.from_bytes(head[124:126], "little" if head[126:128] == b"IM" else "big")
    return version == 0x0100


def _classify_hdf5(path: Path, head: bytes) -> str:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            keys = sorted(f.keys())
            attrs = set(f.attrs.keys())
    except Exception as exc:  # h5py raises OSError (truncated, corrupted) and friends
        raise DarcyDataError(
            f"{path} is an HDF5 file but cannot be opened ({exc}): it is truncated or corrupted; download or "
            "copy it again"
        ) from exc
    if {"coeff", "sol"} & set(keys):
        return "fno-mat-v7.3"
    if {"nu", "tensor"} & set(keys):
        return "pdebench-hdf5"
    if "mano_pde_schema" in attrs:
        raise DarcyDataError(f"{path} is already a mano_pde Darcy file: open it with open_darcy, no import needed")
    kind = "a MATLAB v7.3 file" if head.startswith(b"MATLAB 7.3") else "an HDF5 file"
    raise DarcyDataError(
        f"{path} is {kind} without Darcy variables: expected coeff and sol (FNO .mat) or nu and tensor "
        f"(PDEBench); found {keys or 'no datasets'}. Supported formats: {_supported()}"
    )
