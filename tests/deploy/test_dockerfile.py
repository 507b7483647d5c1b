"""Dockerfile lint without an engine: parse it, check it against the repository, run its CMD.

This machine has the docker client but no daemon, and no hadolint, so the image is never built
here. What can be checked without one is checked (by tests/deploy/dockerlint.py): the
instructions parse (continuations, comments, exec form), the base is python:3.11-slim, the
service runs as a non-root user, the HEALTHCHECK asks /healthz with Python (slim has no curl),
every COPY source is in the build context as .dockerignore shapes it (and .venv, tests,
benchmarks, caches are not), the CMD's flags are ones `streamwatch serve --help` lists; and the
CMD itself, run here on the repo's install with tokens from the environment as a container gets
them, starts a service the HEALTHCHECK command finds healthy and that drains and exits on the
STOPSIGNAL.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import REPO, wait_until
from tests.deploy.dockerlint import (DockerIgnore, Instruction, build_context, entry_and_cmd,
                                     lint, parse_dockerfile, serve_flags, stages)

__all__: list[str] = []

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
# how the container gets its tokens (deploy/README.md): `role:token,...` in the environment
INGEST_TOKEN = "deploy-test-ingest-0123456789abcdef"
TOKENS_ENV = {"STREAMWATCH_API_TOKENS":
              f"admin:deploy-test-admin-0123456789,ingest:{INGEST_TOKEN}"}


# -- the tests --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flags() -> set[str]:
    found = serve_flags()
    assert {"--host", "--port", "--config", "--data-dir"} <= found, found
    return found


@pytest.fixture(scope="module")
def ignore() -> DockerIgnore:
    return DockerIgnore.parse(DOCKERIGNORE.read_text(encoding="utf-8"))


def test_dockerfile_passes_the_lint(flags: set[str], ignore: DockerIgnore) -> None:
    problems = lint(DOCKERFILE.read_text(encoding="utf-8"), REPO, ignore, flags)
    assert problems == []


def test_dockerfile_parses_as_expected() -> None:
    ins = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    all_stages = stages(ins)
    assert [s.name for s in all_stages] == ["build", "runtime"]
    final = all_stages[-1]
    cmd = [i for i in final.instructions if i.cmd == "CMD"][-1].exec_form()
    assert cmd == ["serve", "--host", "0.0.0.0", "--port", "8080",
                   "--config", "/etc/streamwatch/config",
                   "--detectors", "/etc/streamwatch/detectors",
                   "--data-dir", "/var/lib/streamwatch"]
    users = [i.args for i in final.instructions if i.cmd == "USER"]
    assert users == ["10001:10001"]
    check = [i for i in final.instructions if i.cmd == "HEALTHCHECK"][-1]
    opts, rest = check.flags_and_rest()
    assert set(opts) >= {"interval", "timeout", "start-period", "retries"}
    code = json.loads(rest.removeprefix("CMD").strip())
    assert code[:2] == ["python", "-c"]
    compile(code[2], "<healthcheck>", "exec")          # the one-liner is valid Python
    # no token, password or secret baked in anywhere
    assert not [i for i in ins if re.search(r"API_TOKENS\s*=|TOKEN=\S", i.args)]


@pytest.mark.parametrize(("change", "expected"), [
    (("FROM python:3.11-slim-bookworm AS runtime", "FROM python:3.11 AS runtime"),
     "base image 'python:3.11' is not python:3.11-slim"),
    (("USER 10001:10001", "USER root"), "runs as 'root'"),
    (("USER 10001:10001\n", ""), "runs as 'root'"),
    (("8080/healthz", "8080/readyz"), "HEALTHCHECK does not ask /healthz"),
    (("COPY config/ /etc/streamwatch/config/", "COPY configs/ /etc/streamwatch/config/"),
     "COPY source configs/ does not exist"),
    (("COPY detectors/ detectors/", "COPY tests/ detectors/"),
     "COPY source tests/ is excluded by .dockerignore"),
    (('"--data-dir", "/var/lib/streamwatch"', '"--datadir", "/var/lib/streamwatch"'),
     "CMD flag --datadir is not one"),
    (('"--host", "0.0.0.0"', '"--host", "127.0.0.1"'), "does not bind 0.0.0.0"),
    (('VOLUME ["/etc/streamwatch", "/var/lib/streamwatch"]', 'VOLUME ["/etc/streamwatch"]'),
     "--data-dir /var/lib/streamwatch is not on a VOLUME"),
    (("STOPSIGNAL SIGTERM", "STOPSIGNAL SIGKILL"), "no STOPSIGNAL SIGTERM"),
    (("    NUMBA_CACHE_DIR=", "    STREAMWATCH_API_TOKENS=abc NUMBA_CACHE_DIR="),
     "a secret baked into the image"),
])
def test_lint_catches_each_kind_of_mistake(change: tuple[str, str], expected: str,
                                           flags: set[str], ignore: DockerIgnore) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    old, new = change
    assert old in text, old
    problems = lint(text.replace(old, new, 1), REPO, ignore, flags)
    assert any(expected in p for p in problems), problems


def test_parser_handles_continuations_comments_and_bad_input() -> None:
    ins = parse_dockerfile("# syntax=docker/dockerfile:1\nFROM python:3.11-slim\n"
                           "RUN a \\\n# a comment inside\n    && b \\\n\n    && c\n"
                           'CMD ["x", "--y"]\n')
    assert [(i.line, i.cmd, i.args) for i in ins] == [
        (2, "FROM", "python:3.11-slim"), (3, "RUN", "a && b && c"), (8, "CMD", '["x", "--y"]')]
    with pytest.raises(ValueError, match="continuation"):
        parse_dockerfile("FROM python:3.11-slim\nRUN a \\\n")
    with pytest.raises(ValueError, match="before FROM"):
        stages(parse_dockerfile("RUN a\nFROM python:3.11-slim\n"))
    with pytest.raises(json.JSONDecodeError):
        parse_dockerfile('CMD ["x", \n')[0].exec_form()


def test_build_context_leaves_out_venv_tests_benchmarks_and_caches(ignore: DockerIgnore) -> None:
    ctx = build_context(REPO, ignore)
    tops = {p.split("/")[0] for p in [*ctx.files, *ctx.links]}
    assert tops <= {"pyproject.toml", "README.md", "src", "config", "detectors"}, tops
    for path in [*ctx.files, *ctx.links]:
        parts = path.split("/")
        assert not {"__pycache__", ".pytest_cache"} & set(parts), path
        assert not re.search(r"\.(pyc|pyo|nbi|nbc)$|\.egg-info(/|$)", path), path
    for needed in ("pyproject.toml", "README.md", "src/streamwatch/cli.py",
                   "src/streamwatch/web/index.html", "config/service.toml",
                   "detectors/generic.toml"):
        assert needed in ctx.files, needed
    assert sum(ctx.files.values()) < 5_000_000, "the context stays small"
    # the defaults symlinks travel as links, and what they point to travels too
    for link, target in ctx.links.items():
        resolved = os.path.normpath(os.path.join(os.path.dirname(link), target))
        assert not resolved.startswith(".."), (link, target)
        assert any(f.startswith(resolved + "/") for f in ctx.files), (link, resolved)
    assert "src/streamwatch/defaults/config" in ctx.links
    # what is on disk here and must stay out
    for path in (".venv/bin/python", ".git/HEAD", "tests/conftest.py",
                 "benchmarks/.cache/x", "src/streamwatch/__pycache__/cli.cpython-311.pyc",
                 "src/streamwatch.egg-info/PKG-INFO", "docs/page.png"):
        assert ignore.excluded(path), path


def test_dockerignore_matching_follows_docker_rules() -> None:
    ig = DockerIgnore.parse("# c\n*\n!src\n**/__pycache__\n/build\n!keep/**/x?.txt\n")
    assert ig.excluded("README.md") and ig.excluded(".venv/lib/a.py")
    assert not ig.excluded("src/a.py") and not ig.excluded("src/deep/b/c.py")
    assert ig.excluded("src/__pycache__/a.pyc") and ig.excluded("src/a/__pycache__/b")
    assert ig.excluded("build/x")
    assert not ig.excluded("keep/a/b/x1.txt") and ig.excluded("keep/a/b/x12.txt")
    assert DockerIgnore.parse("").excluded("anything") is False


# -- the CMD, run for real (on the repo's install, not in a container) ------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _instruction(cmd: str) -> Instruction:
    final = stages(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))[-1]
    return [i for i in final.instructions if i.cmd == cmd][-1]


@pytest.fixture
def container_like(tmp_path: Path) -> Iterator[tuple[list[str], list[str], Path]]:
    """The image's ENTRYPOINT+CMD and HEALTHCHECK with paths moved under tmp_path and a free
    port instead of 8080: (serve argv, healthcheck argv, log file)."""
    etc = tmp_path / "etc" / "streamwatch"
    shutil.copytree(REPO / "config", etc / "config")
    shutil.copytree(REPO / "detectors", etc / "detectors")
    port = str(_free_port())
    final = stages(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))[-1]
    argv = [a.replace("/etc/streamwatch", str(etc))
             .replace("/var/lib/streamwatch", str(tmp_path / "data"))
            for a in entry_and_cmd(final)]
    argv[argv.index("--port") + 1] = port
    argv[0] = shutil.which("streamwatch", path=str(Path(sys.executable).parent)) or argv[0]
    _, rest = _instruction("HEALTHCHECK").flags_and_rest()
    probe = [a.replace(":8080/", f":{port}/") for a in json.loads(rest.removeprefix("CMD"))]
    probe[0] = sys.executable
    yield argv, probe, tmp_path / "serve.log"


def test_cmd_serves_healthcheck_passes_and_sigterm_stops_cleanly(
        container_like: tuple[list[str], list[str], Path]) -> None:
    argv, probe, log_path = container_like
    assert argv[0].endswith("streamwatch") and Path(argv[0]).exists(), argv[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMWATCH_")}
    env.update(TOKENS_ENV)
    assert _instruction("STOPSIGNAL").args == "SIGTERM"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            def healthy() -> bool:
                assert proc.poll() is None, log_path.read_text()
                return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
            wait_until(healthy, 30.0, "the HEALTHCHECK command to pass", interval=0.2)
            # the tokens given in the environment are the ones in force
            url = f"http://127.0.0.1:{argv[argv.index('--port') + 1]}/v1/samples"
            sample = b'{"stream":"room-1","metric":"viewers","ts":%d,"value":5}' % time.time()
            assert httpx.post(url, content=sample).status_code == 401
            assert httpx.post(url, content=sample, headers={
                "Authorization": "Bearer not-a-token-0123456789"}).status_code == 401
            ok = httpx.post(url, content=sample,
                            headers={"Authorization": f"Bearer {INGEST_TOKEN}"})
            assert ok.status_code == 200 and ok.json()["accepted"] == 1, ok.text
            proc.send_signal(signal.SIGTERM)
            # uvicorn re-raises the signal once its graceful shutdown is done: 143 in Docker
            assert proc.wait(timeout=20) in (0, -signal.SIGTERM), log_path.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    logged = log_path.read_text(encoding="utf-8")
    assert "deploy-test-" not in logged, "a token reached the log"
    assert "service stopped" in logged and "Application shutdown complete" in logged
    # and with the server gone, the same probe reports unhealthy
    assert subprocess.run(probe, capture_output=True, timeout=10).returncode != 0
