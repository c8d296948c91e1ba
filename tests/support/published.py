"""Small synthetic carbon files in the layouts publishers use (built in tests, never shipped).

Headers follow the published files: Electricity Maps portal exports (2023-) and the older
``carbon_intensity_avg`` dumps, WattTime historical MOER (``point_time,value,...`` in
lbs/MWh; v3 JSON ``{"data": [...], "meta": {...}}``), SGIP MOER signal files
(``time,moer,f1..f36`` in kg/kWh, gzip) and the GB carbonintensity.org.uk API
(``{"data": [{"from", "to", "intensity": {"forecast", "actual", "index"}}]}``).
"""
from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

EM_HEADER = ("Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
             "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
             "Data Source,Data Estimated,Data Estimation Method")


def wave(i: int, period: int, lo: float, hi: float) -> float:
    return lo + (hi - lo) * (0.5 + 0.5 * math.sin(2 * math.pi * i / period))


def em_export(path: Path, hours: int = 48) -> Path:
    """Direct 200..400 g/kWh, LCA = direct + 60."""
    rows = [EM_HEADER]
    for h in range(hours):
        d = wave(h, 24, 200, 400)
        rows.append(f"2023-01-{1 + h // 24:02d} {h % 24:02d}:00:00,Germany,Germany,DE,{d:.2f},"
                    f"{d + 60:.2f},41.2,35.0,entsoe.eu,false,")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def em_older(path: Path, hours: int = 24) -> Path:
    rows = ["datetime,local_datetime,total_production_avg,carbon_intensity_avg,"
            "power_origin_percent_coal_avg"]
    for h in range(hours):
        rows.append(f"2017-01-01T{h:02d}:00:00Z,2017-01-01T{h:02d}:00:00+01:00,50000,"
                    f"{wave(h, 24, 300, 500):.1f},30")
    path.write_text("\n".join(rows) + "\n")
    return path


def watttime_csv(path: Path, steps: int = 24) -> Path:
    """5-minute MOER in lbs/MWh (800..1400)."""
    rows = ["point_time,value,frequency,market,ba,datatype,version"]
    for k in range(steps):
        rows.append(f"2022-06-01T{k // 12:02d}:{(k % 12) * 5:02d}:00.000Z,{wave(k, 24, 800, 1400):.0f},"
                    "300,RTM,CAISO_NORTH,MOER,3.2")
    path.write_text("\n".join(rows) + "\n")
    return path


def watttime_json(path: Path, steps: int = 12) -> Path:
    data = [{"point_time": f"2022-06-01T00:{5 * k:02d}:00+00:00", "value": 900 + 10 * k}
            for k in range(steps)]
    path.write_text(json.dumps({"data": data, "meta": {"region": "CAISO_NORTH",
                                                       "units": "lbs_co2_per_mwh"}}))
    return path


def sgip_moer(path: Path, steps: int = 12 * 48) -> Path:
    """5-minute MOER in kg/kWh (0.21..0.66) with 36 forecast columns, gzip."""
    rows = ["time,moer," + ",".join(f"f{i}" for i in range(1, 37))]
    for k in range(steps):
        v = wave(k, 288, 0.21, 0.66)
        t = f"2021-03-{1 + k // 288:02d}T{(k % 288) // 12:02d}:{(k % 12) * 5:02d}:00+00:00"
        rows.append(f"{t},{v:.4f}," + ",".join(f"{v:.4f}" for _ in range(36)))
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    return path


def uk_json(path: Path, n: int = 8, actual_missing_last: int = 2) -> Path:
    """Half-hourly GB intensity; the last ``actual_missing_last`` records have no actual yet."""
    data = []
    for i in range(n):
        t0, t1 = i * 30, (i + 1) * 30
        actual = None if i >= n - actual_missing_last else 200 + 5 * i
        data.append({"from": f"2024-01-01T{t0 // 60:02d}:{t0 % 60:02d}Z",
                     "to": f"2024-01-01T{t1 // 60:02d}:{t1 % 60:02d}Z",
                     "intensity": {"forecast": 210 + 5 * i, "actual": actual, "index": "moderate"}})
    path.write_text(json.dumps({"data": data}))
    return path


def uk_csv(path: Path, n: int = 6) -> Path:
    rows = ["from,to,forecast,actual,index"]
    for i in range(n):
        t0, t1 = i * 30, (i + 1) * 30
        rows.append(f"2024-01-01T{t0 // 60:02d}:{t0 % 60:02d}Z,2024-01-01T{t1 // 60:02d}:{t1 % 60:02d}Z,"
                    f"{210 + i},{200 + i},low")
    path.write_text("\n".join(rows) + "\n")
    return path
