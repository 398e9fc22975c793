"""A virtual CUDA device, for tests of GPU-only code paths on a CPU-only machine.

Inside ``with virtual_cuda():`` a tensor moved with ``.to("cuda")`` / ``.cuda()``, or made with
``device="cuda"``, says it is on ``cuda:0`` while its data stays on the CPU; so do a module's
parameters moved there in place, and what ops on them give. As on a real GPU, an op that meets
one beside a CPU tensor of one or more dimensions raises torch's "Expected all tensors to be on
the same device", ``.numpy()`` of one raises, a CPU generator for a CUDA factory raises, and
``.cpu()`` brings one back. latentlab's operators (which GPU tests check on CUDA) pass under it.
Not collected (no ``test_`` prefix): ``from virtual_cuda import CUDA, virtual_cuda``.
"""

from __future__ import annotations

import contextlib

import torch
from torch.overrides import TorchFunctionMode

CUDA = torch.device("cuda", 0)


class OnDevice(torch.Tensor):
    """A tensor that says it is on cuda:0 (its data on the CPU)."""

_KEEP: list = []  # the storages of what was moved there (kept alive, so their addresses stay theirs)
_PTRS: set = set()

def _reg(t):
    try:
        st = t.untyped_storage()
    except (RuntimeError, TypeError, ValueError, NotImplementedError):
        return t
    _KEEP.append(st)
    _PTRS.add(st.data_ptr())
    return t

def _isdev(t):
    if isinstance(t, OnDevice):
        return True
    try:
        with torch._C.DisableTorchFunctionSubclass():
            return t.untyped_storage().data_ptr() in _PTRS and t.numel() > 0
    except (RuntimeError, TypeError, ValueError, NotImplementedError):
        return False


def _is_cuda(d):
    if d is None:
        return False
    if isinstance(d, int):
        return True
    try:
        return torch.device(d).type == "cuda"
    except (RuntimeError, TypeError, ValueError, NotImplementedError):
        return False


def _is_cpu(d):
    try:
        return d is not None and not isinstance(d, torch.dtype) and torch.device(d).type == "cpu"
    except (RuntimeError, TypeError, ValueError, NotImplementedError):
        return False


def _tensors(x, out):
    if isinstance(x, torch.Tensor):
        out.append(x)
    elif isinstance(x, (list, tuple)):
        for y in x:
            _tensors(y, out)
    elif isinstance(x, dict):
        for y in x.values():
            _tensors(y, out)
    return out


def _wrap(o):
    if isinstance(o, torch.Tensor):
        if isinstance(o, torch.nn.Parameter):
            return _reg(o)
        _reg(o)
        return o if isinstance(o, OnDevice) else o.as_subclass(OnDevice)
    if isinstance(o, tuple) and hasattr(o, "_fields"):
        return type(o)(*[_wrap(x) for x in o])
    if isinstance(o, (tuple, list)):
        return type(o)(_wrap(x) for x in o)
    return o


def _unwrap(o):
    return o.as_subclass(torch.Tensor) if isinstance(o, OnDevice) else o


class VirtualCuda(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        ts = _tensors(args, []) + _tensors(kwargs, [])
        dev_in = any(_isdev(t) for t in ts)
        owner = getattr(func, "__self__", None)
        if name == "__get__" and getattr(owner, "__name__", "") == "device":
            return CUDA if _isdev(args[0]) else func(*args, **kwargs)
        if name == "__get__" and getattr(owner, "__name__", "") == "is_cuda":
            return _isdev(args[0])
        if name == "__get__":
            out = func(*args, **kwargs)
            return _wrap(out) if dev_in and isinstance(out, torch.Tensor) else out
        if name == "numpy" and dev_in:
            raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to host memory first.")
        if name == "cpu":
            return _unwrap(func(*args, **kwargs)).clone() if dev_in else func(*args, **kwargs)
        if name == "cuda":
            return _wrap(args[0].clone() if not dev_in else args[0])
        if name == "to":
            rest = list(args[1:])
            target = kwargs.get("device")
            for i, a in enumerate(rest):
                if isinstance(a, (str, torch.device, int)) and not isinstance(a, bool):
                    target = a
                    rest[i] = "cpu"
                elif isinstance(a, torch.Tensor):  # .to(other)
                    target = CUDA if _isdev(a) else torch.device("cpu")
                    rest[i] = a.dtype
            if "device" in kwargs:
                kwargs["device"] = "cpu"
            out = func(args[0], *rest, **kwargs)
            if target is None:
                return _wrap(out) if dev_in else out
            if _is_cuda(target):
                if not dev_in:
                    out = out.clone() if out.data_ptr() == args[0].data_ptr() else out
                return _wrap(out)
            return (_unwrap(out).clone() if dev_in else out)
        if name == "_parse_to":
            return func(*args, **kwargs)
        dev_kw = kwargs.get("device")
        if _is_cuda(dev_kw):
            g = kwargs.get("generator")
            if g is not None and g.device.type == "cpu":
                raise RuntimeError("Expected a 'cuda' device type for generator but found 'cpu'")
            kwargs["device"] = "cpu"
            return _wrap(func(*args, **kwargs))
        if dev_in and name not in ("__getitem__", "__setitem__", "index_put_", "__repr__", "__format__", "__len__",
                                   "__bool__", "item", "tolist", "_has_compatible_shallow_copy_type", "__set__", "copy_", "__float__", "__int__", "__index__", "dim", "size",
                                   "numel", "__iter__", "unbind", "requires_grad_", "__get__", "__hash__", "__eq__"):
            for t in ts:
                if not _isdev(t) and t.ndim > 0:
                    raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two "
                                       f"devices, cuda:0 and cpu! ({name})")
        if name == "__setitem__" and isinstance(args[0], OnDevice) is False and len(args) > 2 and isinstance(args[2], OnDevice):
            return func(args[0], args[1], _unwrap(args[2]))  # cpu[...] = cuda: a copy, as torch allows
        out = func(*args, **kwargs)
        return _wrap(out) if dev_in and name not in ("tolist", "item", "__bool__", "__float__", "__int__", "__index__", "__len__", "dim", "numel", "size", "__repr__", "__format__", "__hash__") else out


@contextlib.contextmanager
def virtual_cuda():
    """The virtual device for the block; what it remembered is forgotten at the end, however the block ends."""
    try:
        with VirtualCuda():
            yield
    finally:
        _KEEP.clear()
        _PTRS.clear()
