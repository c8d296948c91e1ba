"""NVML failures as one-line errors naming the GPU and the operation, and loading NVML itself.

Codes are mirrored from ``nvml.h`` (stable across driver versions) so messages never need the
library; :func:`map_nvml_error` turns a ``pynvml.NVMLError`` into the :class:`MigError`
subclass a caller can act on (mode, permission, in use, resources).
"""
from __future__ import annotations

from typing import Any

from clover_rl.errors import BackendError

# NVML error codes (stable across driver versions; mirrored so messages never need the library).
_ERR_NAMES = {
    1: "UNINITIALIZED", 2: "INVALID_ARGUMENT", 3: "NOT_SUPPORTED", 4: "NO_PERMISSION",
    5: "ALREADY_INITIALIZED", 6: "NOT_FOUND", 7: "INSUFFICIENT_SIZE", 9: "DRIVER_NOT_LOADED",
    12: "LIBRARY_NOT_FOUND", 13: "FUNCTION_NOT_FOUND", 15: "GPU_IS_LOST", 16: "RESET_REQUIRED",
    18: "LIB_RM_VERSION_MISMATCH", 19: "IN_USE", 23: "INSUFFICIENT_RESOURCES",
    28: "GPU_NOT_FOUND", 29: "INVALID_STATE", 999: "UNKNOWN",
}
_ERR = {name: code for code, name in _ERR_NAMES.items()}

#: Array capacity for NVML list calls: no GPU has more than 8 memory slices, so no profile has
#: more than 8 placements or instances.
_MAX_ITEMS = 8


# --------------------------------------------------------------------------- errors


class MigError(BackendError):
    """A MIG query or change failed; the message names the GPU index and the operation.

    ``nvml_code`` is the NVML return code when NVML raised it. After a failed apply,
    ``rollback_ok`` says whether the previous layout was restored and ``rollback_error`` holds
    the rollback's own failure.
    """

    def __init__(self, message: str, *, gpu_index: int | None = None, operation: str = "",
                 nvml_code: int | None = None) -> None:
        super().__init__(message)
        self.gpu_index = gpu_index
        self.operation = operation
        self.nvml_code = nvml_code
        self.rollback_ok: bool | None = None
        self.rollback_error: MigError | None = None


class NvmlUnavailableError(MigError):
    """No NVIDIA driver, NVML library or nvidia-ml-py on this machine, or no such GPU."""


class MigModeError(MigError):
    """MIG mode is disabled, unsupported, or changed but waiting for a GPU reset."""


class MigPermissionError(MigError):
    """MIG changes need root (NVML_ERROR_NO_PERMISSION)."""


class MigInUseError(MigError):
    """An instance still has compute instances or running processes (NVML_ERROR_IN_USE)."""


class MigResourcesError(MigError):
    """Placement overlap or compute budget exceeded (NVML_ERROR_INSUFFICIENT_RESOURCES)."""


_REASONS: dict[str, tuple[type[MigError], str]] = {
    "NO_PERMISSION": (MigPermissionError, "insufficient permissions (MIG changes need root)"),
    "IN_USE": (MigInUseError, "GPU in use (stop the processes on its MIG devices first)"),
    "INSUFFICIENT_RESOURCES": (MigResourcesError, (
        "insufficient resources (placement overlaps an existing instance "
        "or the GPU's compute slices are used up)")),
    "LIBRARY_NOT_FOUND": (NvmlUnavailableError,
                          "NVML library libnvidia-ml.so.1 not found (no NVIDIA driver installed)"),
    "DRIVER_NOT_LOADED": (NvmlUnavailableError, "NVIDIA driver not loaded"),
    "LIB_RM_VERSION_MISMATCH": (NvmlUnavailableError,
                                "NVML/driver version mismatch (reload the driver or reboot)"),
    "GPU_NOT_FOUND": (NvmlUnavailableError, "no such GPU"),
    "GPU_IS_LOST": (NvmlUnavailableError, "GPU is lost (fell off the bus)"),
    "NOT_SUPPORTED": (MigError, "not supported by this GPU or driver"),
    "RESET_REQUIRED": (MigModeError, "GPU reset required"),
    "INVALID_ARGUMENT": (MigError, "invalid argument (stale handle or bad profile/placement)"),
    "NOT_FOUND": (MigError, "not found"),
}


def nvml_error_name(exc: BaseException) -> str:
    """``NVML_ERROR_IN_USE``-style name of an NVML exception's code."""
    code = getattr(exc, "value", None)
    return f"NVML_ERROR_{_ERR_NAMES.get(code, str(code))}"  # type: ignore[arg-type]


def is_nvml_error(exc: BaseException, *names: str) -> bool:
    """True when ``exc`` is an NVML error with one of the given codes (``"IN_USE"``, ...)."""
    code = getattr(exc, "value", None)
    return isinstance(code, int) and type(exc).__name__.startswith("NVMLError") and (
        not names or _ERR_NAMES.get(code) in names)


def map_nvml_error(exc: BaseException, gpu_index: int | None, operation: str) -> MigError:
    """Turn an NVML exception into a one-line MigError subclass naming GPU and operation."""
    code = getattr(exc, "value", None)
    name = _ERR_NAMES.get(code, "") if isinstance(code, int) else ""
    cls, reason = _REASONS.get(name, (MigError, "NVML error"))
    where = f"GPU {gpu_index}: " if gpu_index is not None else ""
    msg = f"{where}{operation} failed: {reason} [{nvml_error_name(exc)}]"
    return cls(msg, gpu_index=gpu_index, operation=operation,
               nvml_code=code if isinstance(code, int) else None)


def load_nvml(module: Any = None) -> Any:
    """The NVML module to use: the injected one, else ``pynvml`` from nvidia-ml-py."""
    if module is not None:
        return module
    try:
        import pynvml
    except ImportError as e:  # pragma: no cover - nvidia-ml-py is a dependency
        raise NvmlUnavailableError(
            f"NVML unavailable: cannot import pynvml ({e}); install nvidia-ml-py") from e
    return pynvml


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace").rstrip("\x00")
    return str(value)
