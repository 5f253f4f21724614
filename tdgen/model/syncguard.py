"""A guard that refuses host syncs: any operation that makes the host wait for a tensor's value.

Sampling stays fast on a GPU only while the host never waits for the device: it queues the
kernels of the next steps while the current ones run. ``.item()``, ``bool(t)`` (``if t:``),
``int(t)``, ``.tolist()``, ``.numpy()``, ``.cpu()``, ``torch.equal``, a copy to the CPU, and
operations whose output shape depends on the data (``nonzero``, boolean indexing,
``masked_select``, ``unique``, ``repeat_interleave`` with tensor repeats) all wait; so does an
explicit ``torch.cuda.synchronize()``.

:func:`forbid_host_sync` raises :class:`HostSyncError` at the first such operation inside its
block, on any device. It watches two levels: the Python tensor API (a
:class:`~torch.overrides.TorchFunctionMode`, which sees ``.item()``, ``.cpu()`` and friends even
where they are no-ops on a CPU tensor) and the ATen operators below it (a
:class:`~torch.utils._python_dispatch.TorchDispatchMode`, which sees ``_local_scalar_dense``,
the one operator every scalar read goes through, and the data-dependent-shape operators). So a
test on the CPU catches what would sync on a GPU.

Reading a CPU tensor that was already on the host (the scheduler keeps its sigmas there) is not
a sync, but the guard cannot tell it from one and refuses it too: keep such values as tensors
or Python floats.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["HostSyncError", "forbid_host_sync"]


class HostSyncError(RuntimeError):
    """An operation inside :func:`forbid_host_sync` would make the host wait for the device."""


# Python tensor methods that hand a tensor's values to the host.
_HOST_METHODS = {
    torch.Tensor.item: ".item()",
    torch.Tensor.tolist: ".tolist()",
    torch.Tensor.numpy: ".numpy()",
    torch.Tensor.cpu: ".cpu()",
    torch.Tensor.__bool__: "bool(tensor) (an `if`/`and`/`or` on a tensor)",
    torch.Tensor.__int__: "int(tensor)",
    torch.Tensor.__float__: "float(tensor)",
    torch.Tensor.__index__: "a tensor used as a Python index or size",
    torch.Tensor.__array__: "numpy conversion",
}

# ATen operators that read a value on the host or whose output shape depends on the data.
_HOST_OPS = {
    "aten::_local_scalar_dense": "a tensor value read on the host (.item(), bool(), int(), float())",
    "aten::is_nonzero": "bool(tensor)",
    "aten::equal": "torch.equal (returns a Python bool)",
    "aten::nonzero": "nonzero (data-dependent shape)",
    "aten::argwhere": "argwhere (data-dependent shape)",
    "aten::masked_select": "masked_select (data-dependent shape)",
    "aten::_unique": "unique (data-dependent shape)",
    "aten::_unique2": "unique (data-dependent shape)",
    "aten::unique_dim": "unique (data-dependent shape)",
    "aten::unique_consecutive": "unique_consecutive (data-dependent shape)",
}


def _is_mask(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.dtype in (torch.bool, torch.uint8)


def _to_host(src: Any, device: Any) -> bool:
    """A copy of ``src`` to ``device`` goes from an accelerator to the host."""
    return (isinstance(src, torch.Tensor) and src.device.type not in ("cpu", "meta")
            and device is not None and torch.device(device).type == "cpu")


class _FunctionGuard(TorchFunctionMode):
    def __torch_function__(self, func: Callable, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        what = _HOST_METHODS.get(func)
        if what is not None:
            raise HostSyncError(f"host sync: {what}")
        if func is torch.Tensor.to and args:
            target = kwargs.get("device")
            for a in args[1:]:
                if isinstance(a, (str, torch.device)):
                    target = a
            if _to_host(args[0], target):
                raise HostSyncError("host sync: .to('cpu') of a device tensor")
        return func(*args, **kwargs)


class _DispatchGuard(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func._schema.name
        what = _HOST_OPS.get(name)
        if what is not None:
            raise HostSyncError(f"host sync: {what} [{func}]")
        if name == "aten::index" and any(_is_mask(i) for i in (args[1] if len(args) > 1 else ()) if i is not None):
            raise HostSyncError(f"host sync: boolean-mask indexing (data-dependent shape) [{func}]")
        if name == "aten::repeat_interleave" and func._overloadname in ("Tensor", "self_Tensor") \
                and kwargs.get("output_size") is None:
            raise HostSyncError(f"host sync: repeat_interleave with tensor repeats (data-dependent shape) [{func}]")
        if name == "aten::_to_copy" and _to_host(args[0] if args else None, kwargs.get("device")):
            raise HostSyncError(f"host sync: copy of a device tensor to the CPU [{func}]")
        if name == "aten::copy_" and len(args) > 1 and _to_host(args[1], args[0].device):
            raise HostSyncError(f"host sync: copy of a device tensor into a CPU tensor [{func}]")
        return func(*args, **kwargs)


def _no_synchronize(*args: Any, **kwargs: Any) -> None:
    raise HostSyncError("host sync: torch.cuda.synchronize()")


@contextlib.contextmanager
def forbid_host_sync() -> Iterator[None]:
    """Raise :class:`HostSyncError` at the first host sync inside the block (see the module docstring).

    ``torch.cuda.synchronize`` is replaced for the duration, so even a call that would be a
    no-op on this machine (no CUDA) is caught.
    """
    saved = torch.cuda.synchronize
    torch.cuda.synchronize = _no_synchronize
    try:
        with _FunctionGuard(), _DispatchGuard():
            yield
    finally:
        torch.cuda.synchronize = saved
