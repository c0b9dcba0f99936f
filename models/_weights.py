"""Backbone initialisation from a local checkpoint: safetensors, or a state dict read safely."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mtlsearch.errors import UsageError

if TYPE_CHECKING:
    import torch
    from torch import nn

_NESTED = ("state_dict", "model", "model_state_dict", "module")


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``path``: a ``.safetensors`` file, or anything ``torch.load`` reads with
    ``weights_only=True`` (a state dict, possibly under ``state_dict`` or ``model``)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"weights file {path} does not exist: pass a .safetensors file or a saved state dict")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: say which and why, in one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Weights only load failed" in reason:  # never unpickled here: not a checkpoint, or one with pickled code
            detail = str(exc)
            reason = ("not a pickle of tensors: maybe not a checkpoint at all" if "Unsupported operand" in detail or "invalid load key" in detail
                      else "it pickles objects beyond tensors, and checkpoints are read with weights_only, never run")  # fmt: skip
        raise UsageError(
            f"cannot read weights {path}: it is neither a safetensors file nor a state dict saved with torch.save "
            f"({reason[:120]}); pass one of those"
        ) from None
    for key in _NESTED:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise UsageError(f"{path} holds no state dict of tensors: save model.state_dict() with torch.save or safetensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def check_checkpoint(backbone: str, path: Path) -> None:
    """Refuse, before anything is stored, a checkpoint that ``load_backbone_weights`` would
    refuse: unreadable, pickled code, or tensors of another architecture (compared with the
    backbone built on the meta device: no memory, no weights)."""
    import torch

    from mtlsearch.models._registry import get_backbone

    with torch.device("meta"):
        model = get_backbone(backbone).create()
    _check_fits(model.state_dict(), read_checkpoint(path), path)


def _check_fits(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], path: Path) -> None:
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if k in state and state[k].shape != v.shape]
    if wrong:
        raise UsageError(f"{path} does not fit this backbone ({len(wrong)} shapes differ, e.g. {wrong[0]}): pass weights of the same architecture")
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise UsageError(f"{path} lacks {len(missing)} of the backbone's tensors (e.g. {missing[0]}): pass weights of the same architecture")


def load_backbone_weights(model: nn.Module, path: Path) -> tuple[int, list[str]]:
    """Copy the checkpoint's tensors into the timm backbone ``model`` before it is split into
    shared and task-specific filters (so every task's copies start from them).

    Classifier weights and other extra keys are ignored; a backbone parameter the checkpoint
    lacks, or one with another shape, is an error. Returns ``(tensors loaded, ignored keys)``.
    """
    state = read_checkpoint(path)
    own = model.state_dict()
    _check_fits(own, state, path)
    model.load_state_dict({k: state[k] for k in own if k in state}, strict=False)
    return sum(k in state for k in own), sorted(set(state) - set(own))
