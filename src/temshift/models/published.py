"""Load the authors' released weights without executing code from the file.

The released files are whole pickled modules (`torch.save(model)`, zip format) of classes
``__main__.UNet`` and ``__main__.ResidualBlock`` with tensors saved on ``cuda:0``. They are
read with `torch.load` and a restricted pickle module: every global is checked against an
allowlist; module classes become inert stand-ins that only record their attributes, and the
state dict is taken from those records into temshift's `UNet`.
"""

from __future__ import annotations

import pickle
import re
import types
from collections import OrderedDict
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from temshift.errors import CheckpointError

if TYPE_CHECKING:
    from temshift.models.unet import UNet

_MODULE_CLASSES = {
    ("__main__", "UNet"),
    ("__main__", "ResidualBlock"),
    ("torch.nn.modules.conv", "Conv2d"),
    ("torch.nn.modules.batchnorm", "BatchNorm2d"),
    ("torch.nn.modules.activation", "ReLU"),
    ("torch.nn.modules.pooling", "MaxPool2d"),
    ("torch.nn.modules.upsampling", "Upsample"),
    ("torch.nn.modules.container", "ModuleList"),
    ("torch.nn.modules.container", "Sequential"),
}


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allowlist."""


class _StandIn:
    """Inert replacement of a module class: records the pickled attributes, runs nothing."""

    qualname = "?"

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"unexpected state for {self.qualname}")
        self.__dict__.update(state)


_STAND_INS: dict[tuple[str, str], type[_StandIn]] = {
    key: type(key[1], (_StandIn,), {"qualname": ".".join(key)}) for key in _MODULE_CLASSES
}


def _allowed_functions() -> dict:
    import torch._utils

    allowed = {
        ("collections", "OrderedDict"): OrderedDict,
        ("builtins", "set"): set,
        ("__builtin__", "set"): set,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    }
    with_state = getattr(torch._utils, "_rebuild_parameter_with_state", None)
    if with_state is not None:
        allowed[("torch._utils", "_rebuild_parameter_with_state")] = with_state
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _STAND_INS:
            return _STAND_INS[(module, name)]
        allowed = _allowed_functions()
        if (module, name) in allowed:
            return allowed[(module, name)]
        raise RefusedGlobal(f"refused global {module}.{name}")


def _restricted_load(file, **kwargs):
    return _RestrictedUnpickler(file, **kwargs).load()


class _RestrictedPickleModule(types.ModuleType):
    """What torch.load calls as its `pickle_module`."""

    Unpickler = _RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError
    load = staticmethod(_restricted_load)


restricted_pickle = _RestrictedPickleModule("temshift_restricted_pickle")


def read_published(path) -> _StandIn:
    """Unpickle a released file into inert stand-ins (tensors on CPU).

    Raises
    ------
    CheckpointError
        Missing file, not a torch file, or a refused global (unsafe content).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such published weights file")
    try:
        root = torch.load(path, map_location="cpu", pickle_module=restricted_pickle, weights_only=False)
    except RefusedGlobal as exc:
        raise CheckpointError(f"{path}: unsafe content refused ({exc}); not loaded") from None
    except Exception as exc:  # noqa: BLE001  (zip/pickle/torch errors of a damaged file)
        msg = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:160]
        raise CheckpointError(f"{path}: corrupt or unreadable model file ({type(exc).__name__}: {msg})") from None
    if not isinstance(root, _STAND_INS[("__main__", "UNet")]):
        raise CheckpointError(f"{path}: expected a pickled __main__.UNet, found {type(root).__name__}")
    return root


def _children(node) -> dict:
    return dict(node.__dict__.get("_modules") or {})


def _flat_state(node, prefix: str = "") -> dict:
    import torch

    state = {}
    for kind in ("_parameters", "_buffers"):
        for name, value in (node.__dict__.get(kind) or {}).items():
            if value is None:
                continue
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(f"{prefix}{name} is not a tensor")
            state[prefix + name] = value.detach().clone()
    for name, child in _children(node).items():
        if child is not None:
            state.update(_flat_state(child, f"{prefix}{name}."))
    return state


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _check_layers(root, path: Path) -> float:
    """Check the layer settings our forward assumes; return the BN eps."""
    eps = set()

    def visit(node, where):
        kind = type(node).__name__
        d = node.__dict__
        if kind == "Conv2d":
            k = _pair(d.get("kernel_size"))
            pad = d.get("padding")
            ok_pad = pad == "same" or _pair(pad) == (k[0] // 2, k[1] // 2)
            if (
                k not in ((3, 3), (1, 1))
                or not ok_pad
                or _pair(d.get("stride", 1)) != (1, 1)
                or _pair(d.get("dilation", 1)) != (1, 1)
                or d.get("groups", 1) != 1
                or d.get("padding_mode", "zeros") != "zeros"
            ):
                raise CheckpointError(f"{path}: unsupported convolution settings at {where}")
        elif kind == "BatchNorm2d":
            eps.add(float(d.get("eps", 1e-5)))
        elif kind == "MaxPool2d":
            if _pair(d.get("kernel_size")) != (2, 2) or _pair(d.get("stride") or 2) != (2, 2):
                raise CheckpointError(f"{path}: unsupported pooling at {where}")
        elif kind == "Upsample":
            scale = d.get("scale_factor")
            if d.get("mode", "nearest") != "nearest" or float(_pair(scale)[0]) != 2.0:
                raise CheckpointError(f"{path}: unsupported upsampling at {where}")
        for name, child in _children(node).items():
            if child is not None:
                visit(child, f"{where}.{name}" if where else name)

    visit(root, "")
    if len(eps) > 1:
        raise CheckpointError(f"{path}: batch norms with different eps are not supported")
    return eps.pop() if eps else 1e-5


def load_published(path: str | PathLike[str]) -> UNet:
    """Load released weights into an eval-mode temshift `UNet` on CPU.

    Parameters
    ----------
    path : str or Path
        A released ``*_model.h5`` file (torch zip format despite the suffix).

    Returns
    -------
    UNet
        In eval mode; its outputs equal those of the original module.

    Raises
    ------
    CheckpointError
        Missing, damaged or unsafe file, or an architecture that does not fit.
    """
    from temshift.models.unet import ModelConfig, UNet

    path = Path(path)
    root = read_published(path)
    state = _flat_state(root)
    try:
        downs = sorted({int(k.split(".")[1]) for k in state if k.startswith("downs.")})
        config = ModelConfig(
            in_channels=state["downs.0.conv1.weight"].shape[1],
            num_classes=state["final_conv.weight"].shape[0],
            filters=tuple(state[f"downs.{i}.conv1.weight"].shape[0] for i in downs),
            bottleneck=state["bottleneck.conv1.weight"].shape[0],
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a residual U-Net state ({exc})") from None
    eps = _check_layers(root, path)
    model = UNet.from_config(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "mismatch"
        raise CheckpointError(f"{path}: weights do not fit the residual U-Net ({first})") from None
    for module in model.modules():
        if hasattr(module, "eps") and hasattr(module, "running_mean"):
            module.eps = eps
    return model.eval()


def published_name_info(path: str | PathLike[str]) -> dict[str, int]:
    """Fold and seed from a released file name like ``UNet_..._fold0_seed962_model.h5``."""
    info: dict[str, int] = {}
    name = Path(path).name
    for key in ("fold", "seed"):
        match = re.search(rf"_{key}(\d+)", name)
        if match:
            info[key] = int(match.group(1))
    return info
