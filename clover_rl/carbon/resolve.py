"""Turn whatever a user passes as "the carbon trace" into a CarbonTrace at the control interval."""
from __future__ import annotations

from pathlib import Path

from clover_rl.carbon.base import CarbonTrace
from clover_rl.errors import TraceError


def resolve_trace(spec: str | Path | CarbonTrace, period: str = "all", interval_s: float | None = None) -> CarbonTrace:
    """A CarbonTrace, a shipped trace name (``caiso_pge``) with a period, or a CSV path."""
    from clover_rl.carbon.shipped import list_shipped, load_shipped
    from clover_rl.carbon.trace import load_trace, resample

    if isinstance(spec, CarbonTrace):
        trace = spec
    elif str(spec) in list_shipped() and not Path(str(spec)).exists():
        trace = load_shipped(str(spec), period)  # type: ignore[arg-type]
    else:
        p = Path(str(spec)).expanduser()
        if not p.exists():
            raise TraceError(f"carbon trace not found: {spec} (shipped: {', '.join(list_shipped())}; or a CSV path)")
        trace = load_trace(p)
    if interval_s is not None and abs(trace.resolution_s - interval_s) > 1e-6:
        trace = resample(trace, interval_s)
    if len(trace) < 1:
        raise TraceError(f"carbon trace {trace.name} is empty")
    return trace
