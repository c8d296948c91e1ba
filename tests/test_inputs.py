"""docs/inputs.md is complete and true: every CLI flag has a row, every referenced test exists,
and every documented bad value ends in a one-line error (issue 10 part 6)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest

from clover_rl.cli import main
from clover_rl.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "inputs.md"
_CASE = re.compile(r"^`([^`]+)` → `([^`]+)`$")
_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _rows() -> list[tuple[str, str]]:
    """(input, test cell) of every table row."""
    out = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("input", "---"):
            out.append((cells[0], cells[3]))
    return out


def _cases() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for _, cell in _rows() if (m := _CASE.match(cell))]


def _cli_flags() -> set[str]:
    """``"evaluate --hours"``, ``"mig import FILE"``, ... for every command of the CLI."""
    import typer.main

    from clover_rl.cli import _register, app

    _register()
    flags: set[str] = set()

    def walk(cmd: object, prefix: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*prefix, name])
            return
        params = getattr(cmd, "params", [])
        if not params:
            flags.add(" ".join(prefix))
        for p in params:
            flag = p.opts[0] if p.param_type_name == "option" else p.name.upper()
            flags.add(" ".join([*prefix, flag]))

    walk(typer.main.get_group(app), [])
    return flags


def test_every_cli_flag_has_a_row():
    documented = {inp.strip("`") for inp, _ in _rows()}
    missing = sorted(_cli_flags() - documented)
    assert not missing, f"docs/inputs.md lacks rows for: {missing}"


def test_every_referenced_test_exists():
    refs = [m.groups() for _, cell in _rows() for m in _REF.finditer(cell)]
    assert len(refs) > 30
    for path, name in refs:
        text = (ROOT / path).read_text()
        assert re.search(rf"^def {name}\(", text, re.M), f"{path}::{name} does not exist"


def test_every_row_has_a_test():
    for inp, cell in _rows():
        assert _CASE.match(cell) or _REF.search(cell) or cell.startswith("n/a"), inp


@pytest.mark.parametrize("args,needle", _cases(), ids=[a for a, _ in _cases()])
def test_documented_bad_values_end_in_a_one_line_error(args, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(shlex.split(args))
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1] if err else ""
    assert rc == 2 and "Traceback" not in err, err
    assert last.startswith("error: ") and needle in last, err


def test_deploy_safe_config_and_guards():
    from clover_rl.controller.durations import parse_duration
    from clover_rl.controller.guard import SlaGuard
    from clover_rl.controller.load import SteadyLoad
    from clover_rl.controller.loop import Controller
    from clover_rl.envs.actions import ActionCatalog
    from clover_rl.mig.catalog import get_gpu
    from clover_rl.services import load_service

    svc = load_service("efficientnet")
    fake = SimpleNamespace(catalog=ActionCatalog(get_gpu("a100-40gb"), svc))
    cases = [
        (lambda: Controller._safe_index(fake, "9g:b1"), "--safe-config '9g:b1': unknown MIG profile '9g'"),
        (lambda: SlaGuard(700.0, k=0), "--guard-windows must be >= 1, got 0"),
        (lambda: SlaGuard(700.0, recover=0), "--guard-recover must be >= 1, got 0"),
        (lambda: parse_duration("0", "--guard-window"), "--guard-window"),
        (lambda: parse_duration("soon", "--probe"), "--probe"),
        (lambda: SteadyLoad("http://127.0.0.1:1", svc, -1.0), "--load must be a positive request rate"),
    ]
    for fn, needle in cases:
        with pytest.raises(ConfigError) as e:
            fn()
        assert needle in str(e.value) and "\n" not in str(e.value)


def test_host_that_cannot_be_listened_on():
    from fastapi import FastAPI

    from clover_rl.errors import BackendError
    from clover_rl.serving.live.server import FrontEnd

    with pytest.raises(BackendError, match=r"^cannot listen on 999.1.1.1:0: "):
        FrontEnd(FastAPI(), host="999.1.1.1", port=0).start()


def test_cpu_scale_is_checked_before_any_worker_starts():
    from clover_rl.mig.catalog import get_gpu
    from clover_rl.services import load_service
    from clover_rl.serving.live.backend import LiveBackend

    with pytest.raises(ConfigError, match=r"--cpu-scale must be in \(0, 1\], got 0"):
        LiveBackend(load_service("efficientnet"), get_gpu("a100-40gb"), 1, "cpu", cpu_scale=0.0)


def test_mig_import_variant_and_service(tmp_path, capsys):
    p = tmp_path / "m.yaml"
    p.write_text("version: v1\nmig-configs:\n  all-3g.20gb:\n    - devices: all\n      mig-enabled: true\n"
                 "      mig-devices: {3g.20gb: 2}\n")
    for argv, needle in [
        (["mig", "import", str(p), "--variant", "b9"], "--variant: unknown variant 'b9' of efficientnet"),
        (["mig", "import", str(p), "--variant", "b1", "--service", "nope"], "unknown service 'nope'"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and needle in err and "\n" not in err


def test_report_rows_and_out(tmp_path, capsys):
    (tmp_path / "decisions.jsonl").write_text("")
    assert main(["report", "--state", str(tmp_path), "--rows", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --rows must be >= 1, got 0"


def test_train_out_exp_name(tmp_path, capsys):
    for argv, needle in [
        (["train", "--config", "smoke", "--out", "/proc/clover-x"], "--out /proc/clover-x: cannot create"),
        (["train", "--config", "smoke", "--exp-name", "a/b"], "exp_name"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and needle in err and "\n" not in err


def test_profile_out_and_cpu_scale(tmp_path, capsys):
    for argv, needle in [
        (["profile", "--service", "efficientnet", "--out", str(tmp_path)], "is a folder"),
        (["profile", "--service", "efficientnet", "--out", "/proc/clover-x/p.yaml"],
         "--out /proc/clover-x: cannot create folder"),
        (["profile", "--service", "efficientnet", "--out", str(tmp_path / "p.yaml"),
          "--cpu-scale", "0"], "--cpu-scale must be in (0, 1]"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.splitlines()[-1].startswith("error: ") and needle in err and "Traceback" not in err


def test_configs_dir_variable_points_name_lookups_elsewhere(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLOVER_RL_CONFIGS", str(tmp_path / "empty"))
    assert main(["mig", "configs", "--service", "efficientnet", "--count"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "efficientnet" in err and "\n" not in err
