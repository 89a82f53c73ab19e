"""The capture's numba kernels, compiled once per machine into an extension module.

Every kernel of the reader, the decoder and the meter is written once, in Python, under
:func:`kernel`. The first call of any of them loads a compiled extension module that holds
them all (numba's ahead-of-time compiler, ``numba.pycc``, for this machine's CPU); when there
is none yet, a child process builds it (20-40 s, once), under a file lock so that
concurrent processes build it once. Loading it needs no numba: a process that meters one small
capture starts in a fraction of the time numba's own start takes (its import, then its typing
and target contexts, which import SciPy's BLAS bindings), about 0.75 s on a 2-core machine.

The module sits where numba puts its cache: ``NUMBA_CACHE_DIR``, else this package's
``__pycache__``, else (not writable) the user's cache folder; it is named by a hash of the
kernels' sources and of the numba, numpy and Python versions, so a changed kernel is built
again (and the builds of earlier sources are removed). ``FLOWSENTINEL_KERNELS=jit``, or a
failed build (reported on stderr, and remembered beside it so that it is not tried again by
every process), uses numba's just-in-time compiler on the same functions instead.

Entry points (the kernels Python calls) carry their numba signature; the others are compiled
into them. Arrays are 1-D of any stride (``[:]``) or C-ordered tables (``[:, ::1]``).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Final, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: the modules whose kernels go into the compiled module, and the modules whose constants they
#: read (a change to any of them builds it again)
KERNEL_MODULES: Final = (
    "flowsentinel.capture.records",
    "flowsentinel.capture.pcap",
    "flowsentinel.capture.pcapng",
    "flowsentinel.capture.decode",
    "flowsentinel.capture.meter",
)
_CONSTANT_SOURCES: Final = ("capture/quirks.py", "core/schema.py", "capture/kernels.py")
MODULE_PREFIX: Final = "_flowsentinel_kernels_"
MODE_VARIABLE: Final = "FLOWSENTINEL_KERNELS"


class Kernel:
    """One kernel: its Python function, numba options and, for an entry point, its signature.

    Calling it runs the compiled module's version (or, in ``jit`` mode, numba's dispatcher).
    """

    def __init__(self, fn: Callable[..., Any], signature: str | None, inline: bool) -> None:
        self.py_func = fn
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self.__module__ = fn.__module__
        self.signature = signature
        self.options: dict[str, Any] = {"cache": True}
        if inline:
            self.options["inline"] = "always"
        self.export_name = f"{fn.__module__.rsplit('.', 1)[-1]}__{fn.__name__}"
        self._impl: Callable[..., Any] | None = None

    def __call__(self, *args: Any) -> Any:
        impl = self._impl
        if impl is None:
            impl = self._impl = _implementation(self)
        return impl(*args)

    def __repr__(self) -> str:
        return f"<kernel {self.__module__}.{self.__name__}>"


_KERNELS: list[Kernel] = []
_state: dict[str, Any] = {}
_LOCK = threading.RLock()


def kernel(signature: str | None = None, *, inline: bool = False) -> Callable[[F], F]:
    """Register a numba kernel; ``signature`` (numba's syntax) makes it an entry point."""

    def register(fn: F) -> F:
        k = Kernel(fn, signature, inline)
        _KERNELS.append(k)
        return k  # type: ignore[return-value]  # a Kernel is called like the function it holds

    return register


def entry_points() -> list[Kernel]:
    """Every kernel that Python calls (those with a signature), in registration order."""
    _import_all()
    return [k for k in _KERNELS if k.signature is not None]


def _import_all() -> None:
    for name in KERNEL_MODULES:
        importlib.import_module(name)


# ---------------------------------------------------------------------------------------------
# where the compiled module lives


def fingerprint() -> str:
    """A hash of the kernels' sources, of the installed numba (its version file, found without
    importing it) and of the numpy and Python versions."""
    import numpy

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for name in KERNEL_MODULES:
        digest.update((root / name.split(".", 1)[1].replace(".", "/")).with_suffix(".py")
                      .read_bytes())  # fmt: skip
    for rel in _CONSTANT_SOURCES:
        digest.update((root / rel).read_bytes())
    numba = importlib.util.find_spec("numba")
    if numba is None or numba.origin is None:
        raise ImportError("numba is not installed")
    digest.update((Path(numba.origin).parent / "_version.py").read_bytes())
    digest.update(f"{numba.origin} {numpy.__version__} {sys.version}".encode())
    digest.update(os.uname().machine.encode())
    return digest.hexdigest()[:16]


def cache_dirs() -> list[Path]:
    """Where the module may be: numba's cache folder (``NUMBA_CACHE_DIR``), else this package's
    ``__pycache__`` and then, when that cannot be written, the user's cache folder."""
    configured = os.environ.get("NUMBA_CACHE_DIR")
    if configured:
        return [Path(configured)]
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flowsentinel"
    return [Path(__file__).resolve().parent / "__pycache__", user]


def module_name() -> str:
    return MODULE_PREFIX + fingerprint()


def _find(folder: Path, name: str) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / (name + suffix)
        if path.exists():
            return path
    return None


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - an extension path always has one
        raise ImportError(f"{path}: not an extension module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compiled_module() -> ModuleType:
    """The compiled kernels (built first, in a child process, if they are not there yet)."""
    with _LOCK:  # threads of one process (a Dask worker, the service) load it once
        if "module" not in _state:
            _state["module"] = _find_or_build()
        return _state["module"]


def _find_or_build() -> ModuleType:
    name = module_name()
    folders = cache_dirs()
    path = next((p for p in (_find(f, name) for f in folders) if p is not None), None)
    for folder in folders if path is None else []:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            lock = (folder / f"{name}.lock").open("w")
        except OSError:
            continue  # not writable: the next folder
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it
            path = _find(folder, name) or _build(folder, name)
        break
    if path is None:
        raise OSError(f"no writable folder for the compiled kernels: {folders[-1]}")
    return _load(path, name)


def _build(folder: Path, name: str) -> Path:
    failed = folder / f"{name}.failed"  # a build that failed is not tried by every process
    if failed.exists():
        raise RuntimeError(f"{failed.read_text().strip()} (remove {failed} to try again)")
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:  # numba.pycc links the module with Python's compiler
        raise RuntimeError(f"no C compiler ({compiler}) to compile the capture kernels")
    print("compiling the capture kernels for this machine (once, 20-40 s)...",
          file=sys.stderr, flush=True)  # fmt: skip
    command = [sys.executable, "-m", "flowsentinel.capture.kernels", str(folder), name]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    path = _find(folder, name)
    if done.returncode != 0 or path is None:
        errors = [x for x in done.stderr.splitlines() if "Error" in x] or ["no error output"]
        message = f"compiling the capture kernels failed: {errors[-1].strip()}"
        failed.write_text(message + "\n")
        raise RuntimeError(message)
    for old in folder.glob(MODULE_PREFIX + "*"):  # builds of earlier sources
        if not old.name.startswith(name):
            old.unlink(missing_ok=True)
    return path


# ---------------------------------------------------------------------------------------------
# running a kernel


def _implementation(k: Kernel) -> Callable[..., Any]:
    if os.environ.get(MODE_VARIABLE, "") != "jit" and not _state.get("jit"):
        try:
            return getattr(compiled_module(), k.export_name)
        except (OSError, RuntimeError, ImportError, AttributeError) as exc:
            print(f"{exc}; using numba's just-in-time compiler", file=sys.stderr, flush=True)
            _state["jit"] = True
    return jit(k)


def jit(k: Kernel) -> Callable[..., Any]:
    """numba's dispatcher for ``k``: every kernel is handed to numba first, and each module's
    names of kernels are bound to the dispatchers (numba resolves calls between kernels
    through the calling function's module)."""
    with _LOCK:
        if "dispatchers" not in _state:
            _bind_dispatchers()
    return _state["dispatchers"][id(k)]


def _bind_dispatchers() -> None:
    import numba

    _import_all()
    dispatchers = {id(x): numba.njit(**x.options)(x.py_func) for x in _KERNELS}
    for name in KERNEL_MODULES:
        module = sys.modules[name]
        for attr, value in list(vars(module).items()):
            if isinstance(value, Kernel):
                setattr(module, attr, dispatchers[id(value)])
    _state["dispatchers"] = dispatchers


def build(folder: Path, name: str) -> Path:
    """Compile every entry point into the extension module ``name`` in ``folder``."""
    from numba.pycc.cc import CC

    points = entry_points()
    if not points:
        raise RuntimeError("no kernel registered")
    for k in points:
        jit(k)  # the kernels they call must be numba dispatchers
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        cc = CC(name)
        cc.output_dir = tmp
        cc.target_cpu = "host"  # built on the machine that runs it, as the JIT compiles
        cc.verbose = False
        for k in points:
            cc.export(k.export_name, k.signature)(k.py_func)
        cc.compile()
        built = _find(Path(tmp), name)
        if built is None:  # pragma: no cover - pycc writes it or raises
            raise RuntimeError(f"{folder}: no {name} after compiling")
        path = folder / built.name
        os.replace(built, path)  # whole or absent for a process that looks without the lock
    return path


if __name__ == "__main__":  # run as a script: the kernels register in the imported module
    from flowsentinel.capture import kernels

    kernels.build(Path(sys.argv[1]), sys.argv[2])
