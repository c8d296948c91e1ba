"""Every command in README.md and docs/*.md runs as written (with small sizes), so docs cannot go stale.

How it works
------------
Each fenced ``bash``/``sh``/``shell``/``console`` block is split into commands (``\\``
continuations joined, comments and blank lines dropped); ``python`` blocks run whole. The
commands of one document run in order in one scratch folder (later commands may use what
earlier ones wrote, as a reader's would), with ``configs/``, ``checkpoints/``, ``benchmarks/``,
``scripts/``, ``Makefile`` and ``pyproject.toml`` linked in, ``clover-rl`` and ``tensorboard``
from this interpreter's environment, ``PYTHONPATH`` = this checkout, and ``COLUMNS=80``.

Sizes are cut by :data:`SIZES` (pattern -> replacement, applied to every command), so a
48-hour evaluation runs 2 hours and a one-minute deployment 15 seconds. A command passes when it
exits 0 within its time limit.

Annotating a command (a comment line right above it inside the block)::

    # docs-test: skip needs an NVIDIA driver      <- not run; the reason is reported
    # docs-test: server                           <- runs until stopped: pass once it prints
                                                     an http:// address, then it gets SIGINT
    # docs-test: slow                             <- runs, marked ``slow``

:data:`BUILTIN_SKIPS` covers the set-up lines (``. .venv/bin/activate``, ``make test``).
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell", "console"}
LINKED = ("configs", "checkpoints", "benchmarks", "scripts", "Makefile", "pyproject.toml")
TIMEOUT_S = 420

#: (regex, replacement) applied to every command: small sizes, free ports, this environment.
SIZES: tuple[tuple[str, str], ...] = (
    (r"--hours \d+", "--hours 2"),
    (r"--days \d+", "--days 2"),
    (r"(clover-rl simulate .*)--duration \d+", r"\g<1>--duration 60"),
    (r"(clover-rl profile .*)--duration \d+", r"\g<1>--duration 4"),
    (r"(clover-rl profile .*)--rates [\d.,]+", r"\g<1>--rates 2"),
    (r"(clover-rl profile .*)--configurations '([^';]+);[^']*'", r"\g<1>--configurations \g<2>"),
    (r"(llm_live_serving\.py .*)--clients [\d,]+", r"\g<1>--clients 1"),
    (r"(clover-rl deploy (?!.*--ray).*)--interval \d+s", r"\g<1>--interval 5s"),
    (r"(clover-rl profile .*)--variants [\w,]+", r"\g<1>--variants b1"),
    (r"(clover-rl profile .*)--slices [\w,]+", r"\g<1>--slices 7g"),
    (r"(clover-rl deploy .*)--duration \S+", r"\g<1>--duration 15s"),
    (r"--port \d+", "--port 0"),
    (r"^(clover-rl deploy (?!.*--port).*)$", r"\g<1> --port 0"),
    (r"^(tensorboard (?!.*--port).*)$", r"\g<1> --port 0"),
    (r"^(clover-rl train --config configs/train/(?:llm|llm-h100|albert|efficientnet[\w-]*)\.yaml(?!.*--timesteps).*)$",
     r"\g<1> --pretrain-episodes 1"),
    (r"^(clover-rl train (?!.*--timesteps).*)$", r"\g<1> --timesteps 256 --no-progress"),
    (r"^make demo\b", "make demo INSTALL= BIN={bin} HOURS=2"),
)
#: Commands never run here, with the reason.
BUILTIN_SKIPS: tuple[tuple[str, str], ...] = (
    (r"^\. \.venv/bin/activate$|^source ", "the test already runs inside the environment"),
    (r"^make test\b", "the test suite itself"),
    (r"^make install\b", "installs a fresh .venv (needs the network)"),
)


@dataclass(frozen=True)
class DocCommand:
    doc: Path
    line: int
    lang: str  # "bash" or "python"
    text: str  # as written (continuations joined)
    mode: str = "run"  # run | server | skip
    reason: str = ""
    slow: bool = False

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def extract(doc: Path) -> list[DocCommand]:
    """The runnable commands of one Markdown file, in order."""
    out: list[DocCommand] = []
    lines = doc.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```+\s*(\w*)", lines[i])
        if not m:
            i += 1
            continue
        lang, start = m.group(2).lower(), i + 1
        j = start
        while j < len(lines) and not re.match(r"^\s*```", lines[j]):
            j += 1
        body = lines[start:j]
        if lang == "python":
            out.append(DocCommand(doc, start, "python", "\n".join(body)))
        elif lang in SHELL_LANGS:
            out += _shell_commands(doc, start, body)
        i = j + 1
    return out


def _shell_commands(doc: Path, first_line: int, body: list[str]) -> list[DocCommand]:
    cmds: list[DocCommand] = []
    note: tuple[str, str] = ("run", "")
    slow = False
    k = 0
    while k < len(body):
        raw = body[k].strip()
        if raw.startswith("$ "):
            raw = raw[2:]
        ann = re.match(r"#\s*docs-test:\s*(skip|server|slow)\b\s*(.*)", raw)
        if ann:
            if ann.group(1) == "slow":
                slow = True
            else:
                note = (ann.group(1), ann.group(2).strip())
            k += 1
            continue
        if not raw or raw.startswith("#"):
            k += 1
            continue
        line_no, parts = first_line + k + 1, [raw]
        while parts[-1].endswith("\\") and k + 1 < len(body):
            parts[-1] = parts[-1][:-1].rstrip()
            k += 1
            parts.append(body[k].strip())
        text = " ".join(parts)
        mode, reason = note
        for pat, why in BUILTIN_SKIPS:
            if re.search(pat, text):
                mode, reason = "skip", why
        cmds.append(DocCommand(doc, line_no, "bash", text, mode, reason, slow))
        note, slow = ("run", ""), False
        k += 1
    return cmds


def sized(text: str, bin_dir: str) -> str:
    """The command with :data:`SIZES` applied (trailing comments dropped first)."""
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        words = text.split()
    out = shlex.join(words)
    for pat, rep in SIZES:
        out = re.sub(pat, rep.replace("{bin}", bin_dir), out)
    return out


ALL = [c for d in DOCS if d.exists() for c in extract(d)]
_WORKDIRS: dict[Path, Path] = {}


def _workdir(doc: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if doc not in _WORKDIRS:
        d = tmp_path_factory.mktemp("docs_" + doc.stem)
        for name in LINKED:
            if (ROOT / name).exists():
                (d / name).symlink_to(ROOT / name)
        _WORKDIRS[doc] = d
    return _WORKDIRS[doc]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["COLUMNS"] = "80"
    env.pop("CLOVER_RL_CONFIGS", None)
    return env


def _run_server(cmd: str, cwd: Path, env: dict[str, str]) -> tuple[bool, str]:
    """Start a command that serves until stopped; True once it printed an http:// address."""
    p = subprocess.Popen(cmd, shell=True, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    assert p.stdout is not None
    fd = p.stdout.fileno()
    os.set_blocking(fd, False)
    seen, deadline = b"", time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            try:
                seen += os.read(fd, 65536)
            except BlockingIOError:
                pass
            if re.search(rb"https?://", seen):
                return True, seen.decode(errors="replace")
            if p.poll() is not None:
                return False, seen.decode(errors="replace")
            time.sleep(0.5)
        return False, seen.decode(errors="replace") + "\n(no address within 180 s)"
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGINT)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        p.stdout.close()


def _params():
    for c in ALL:
        marks = [pytest.mark.slow] if c.slow else []
        if c.mode == "skip":
            marks.append(pytest.mark.skip(reason=f"{c.id}: {c.reason or 'annotated skip'}"))
        yield pytest.param(c, id=c.id, marks=marks)


@pytest.mark.parametrize("cmd", list(_params()))
def test_doc_command_runs(cmd: DocCommand, tmp_path_factory: pytest.TempPathFactory) -> None:
    cwd, env = _workdir(cmd.doc, tmp_path_factory), _env()
    if cmd.lang == "python":
        p = subprocess.run([sys.executable, "-c", cmd.text], cwd=cwd, env=env, capture_output=True,
                           text=True, timeout=TIMEOUT_S)
        assert p.returncode == 0, f"{cmd.id}: python block failed\n{p.stderr[-3000:]}"
        return
    run = sized(cmd.text, str(Path(sys.executable).parent))
    if cmd.mode == "server":
        ok, out = _run_server(run, cwd, env)
        assert ok, f"{cmd.id}: `{run}` did not come up\n{out[-3000:]}"
        return
    p = subprocess.run(run, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert p.returncode == 0, (f"{cmd.id}: `{run}` exited {p.returncode}\n"
                               f"{p.stdout[-1500:]}\n{p.stderr[-3000:]}")


# ------------------------------------------------------------------ the extractor itself
def test_extractor_joins_continuations_and_reads_annotations(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("text\n```bash\n# a comment\nclover-rl a \\\n    --b 1   # trailing\n"
                   "# docs-test: skip needs a GPU\nclover-rl gpu query\n# docs-test: server\n"
                   "clover-rl serve --port 8000\n```\n```\noutput, not run\n```\n"
                   "```python\nprint(1)\n```\n")
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        cmds = extract(doc)
    finally:
        ROOT = old
    assert [(c.lang, c.text, c.mode) for c in cmds] == [
        ("bash", "clover-rl a --b 1   # trailing", "run"), ("bash", "clover-rl gpu query", "skip"),
        ("bash", "clover-rl serve --port 8000", "server"), ("python", "print(1)", "run")]
    assert cmds[1].reason == "needs a GPU" and cmds[0].line == 4
    assert sized(cmds[0].text, "/b") == "clover-rl a --b 1"
    assert sized(cmds[2].text, "/b") == "clover-rl serve --port 0"
    assert sized("clover-rl evaluate --hours 48", "/b") == "clover-rl evaluate --hours 2"
    assert sized("make demo", "/v/bin") == "make demo INSTALL= BIN=/v/bin HOURS=2"
    assert sized("clover-rl profile --service s --configurations '7g:b1;4g:b1,3g:b3' --duration 10 --out p",
                 "/b") == "clover-rl profile --service s --configurations 7g:b1 --duration 4 --out p"
    assert sized("clover-rl deploy --interval 30s --duration 90s", "/b") == \
        "clover-rl deploy --interval 5s --duration 15s --port 0"


def test_every_doc_has_commands_and_none_is_skipped_without_a_reason():
    assert any(c.doc.name == "README.md" for c in ALL)
    assert all(c.reason for c in ALL if c.mode == "skip")


def test_result_tables_match_the_shipped_runs():
    """README.md and checkpoints/README.md carry the figures of checkpoints/*/metadata.json."""
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "docs_results.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
