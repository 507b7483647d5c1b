"""A Dockerfile linter in a few functions, for a machine without hadolint or a Docker engine.

It reads a Dockerfile the way the builder does (comment lines dropped, continuation lines joined,
exec form as JSON), reproduces the build context that .dockerignore shapes (Docker's matching:
last rule wins, `**` any depth, a rule on a directory covers what is inside), and reports
`line N: what` for each problem. tests/deploy/test_dockerfile.py applies it to the repository's
Dockerfile and shows, one mistake at a time, that each check can fail.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Instruction", "Stage", "DockerIgnore", "Context", "parse_dockerfile", "stages",
           "build_context", "serve_flags", "entry_and_cmd", "lint"]

# -- parsing --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Instruction:
    line: int                         # 1-based line where it starts
    cmd: str                          # upper case: FROM, RUN, COPY ...
    args: str                         # the rest, continuations joined

    def exec_form(self) -> list[str] | None:
        """JSON array form (`["a", "b"]`), or None for shell form."""
        if self.args.lstrip().startswith("["):
            value = json.loads(self.args)
            assert isinstance(value, list) and all(isinstance(x, str) for x in value), self
            return value
        return None

    def flags_and_rest(self) -> tuple[dict[str, str], str]:
        """Leading `--name=value` options (COPY --from=, HEALTHCHECK --interval=, RUN --mount=)."""
        flags, rest = {}, self.args.lstrip()
        while m := re.match(r"--([a-z-]+)(?:=(\S*))?\s+", rest):
            flags[m.group(1)] = m.group(2) or ""
            rest = rest[m.end():]
        return flags, rest


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile: comment lines dropped (also inside continuations),
    lines ending in a backslash joined with the next."""
    out: list[Instruction] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("#") or not line:    # (an empty line does not end a continuation)
            continue
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1].rstrip() + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append(Instruction(start, word.upper(), rest.strip()))
        buf = ""
    if buf.strip():
        raise ValueError(f"line {start}: continuation runs past the end of the file")
    return out


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


def stages(instructions: list[Instruction]) -> list[Stage]:
    out: list[Stage] = []
    for ins in instructions:
        if ins.cmd == "FROM":
            _, rest = ins.flags_and_rest()
            parts = rest.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            out.append(Stage(parts[0], name))
        elif not out:
            if ins.cmd != "ARG":
                raise ValueError(f"line {ins.line}: {ins.cmd} before FROM")
        else:
            out[-1].instructions.append(ins)
    return out


# -- the build context, as .dockerignore shapes it -------------------------------------------
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore globbing: `**` any depth, `*`/`?` within one path segment."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif c == "*":
            out, i = out + "[^/]*", i + 1
        elif c == "?":
            out, i = out + "[^/]", i + 1
        elif c == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i:end + 1].replace("[!", "[^"), end + 1
        else:
            out, i = out + re.escape(c), i + 1
    return re.compile(out)


@dataclass(frozen=True)
class DockerIgnore:
    rules: tuple[tuple[bool, str, re.Pattern[str]], ...]      # (exception, text, regex)

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        rules = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exception = line.startswith("!")
            pat = os.path.normpath(line[1:].strip() if exception else line).lstrip("/")
            rules.append((exception, pat, _pattern_regex(pat)))
        return cls(tuple(rules))

    def excluded(self, path: str) -> bool:
        """Last matching rule wins; a rule matching a parent directory matches the path."""
        parts = path.split("/")
        prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
        verdict = False
        for exception, _, rx in self.rules:
            if any(rx.fullmatch(p) for p in prefixes):
                verdict = not exception
        return verdict

    def may_reinclude_under(self, directory: str) -> bool:
        return any(exc and (text.startswith(directory + "/") or text.startswith("**"))
                   for exc, text, _ in self.rules)


@dataclass(frozen=True)
class Context:
    files: dict[str, int]            # relative path -> size, regular files sent to the daemon
    links: dict[str, str]            # relative path -> link target, symlinks sent as such


def build_context(root: Path, ignore: DockerIgnore) -> Context:
    files, links = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        keep = []
        for d in dirnames:
            rel = d if rel_dir == "." else f"{rel_dir}/{d}"
            if os.path.islink(os.path.join(dirpath, d)):
                if not ignore.excluded(rel):
                    links[rel] = os.readlink(os.path.join(dirpath, d))
            elif not ignore.excluded(rel) or ignore.may_reinclude_under(rel):
                keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            rel = f if rel_dir == "." else f"{rel_dir}/{f}"
            full = os.path.join(dirpath, f)
            if ignore.excluded(rel):
                continue
            if os.path.islink(full):
                links[rel] = os.readlink(full)
            else:
                files[rel] = os.path.getsize(full)
    return Context(files, links)


# -- the lint --------------------------------------------------------------------------------
def serve_flags() -> set[str]:
    """The options `streamwatch serve --help` lists (the real CLI, run as a process)."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    out = subprocess.run([sys.executable, "-m", "streamwatch", "serve", "--help"],
                         capture_output=True, text=True, timeout=60, env=env, check=True)
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", out.stdout))


def entry_and_cmd(final: Stage) -> list[str]:
    argv: list[str] = []
    for cmd in ("ENTRYPOINT", "CMD"):
        found = [i for i in final.instructions if i.cmd == cmd]
        if found:
            form = found[-1].exec_form()
            if form is None:
                raise AssertionError(f"line {found[-1].line}: {cmd} in shell form: the shell, "
                                     "not streamwatch, would get the stop signal")
            argv += form
    return argv


def lint(text: str, root: Path, ignore: DockerIgnore, flags: set[str]) -> list[str]:
    """Every problem found, as `line N: what`; empty when the Dockerfile is fine."""
    problems: list[str] = []
    instructions = parse_dockerfile(text)
    all_stages = stages(instructions)
    if not all_stages:
        return ["no FROM"]
    names = {s.name for s in all_stages if s.name}
    for s in all_stages:
        if not re.fullmatch(r"python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", s.image):
            problems.append(f"base image {s.image!r} is not python:3.11-slim")
    final = all_stages[-1]
    ctx = build_context(root, ignore)
    for ins in instructions:
        if ins.cmd in ("ADD", "COPY"):
            opts, rest = ins.flags_and_rest()
            if ins.cmd == "ADD":
                problems.append(f"line {ins.line}: ADD (use COPY; ADD fetches URLs, unpacks)")
            if "from" in opts:
                if opts["from"] not in names:
                    problems.append(f"line {ins.line}: --from={opts['from']} is no stage")
                continue
            srcs = ins.exec_form() or shlex.split(rest)
            for src in srcs[:-1]:
                problems += _copy_source(ins.line, src, root, ctx)
        if ins.cmd == "RUN" and re.search(r"\b(curl|wget)\b[^|]*\|\s*(ba)?sh", ins.args):
            problems.append(f"line {ins.line}: piping a download into a shell")
        if ins.cmd == "ENV" and re.search(r"(TOKEN|SECRET|PASSWORD)\w*[= ]", ins.args):
            problems.append(f"line {ins.line}: a secret baked into the image: {ins.args!r}")
    problems += _final_stage(final, flags)
    return problems


def _copy_source(line: int, src: str, root: Path, ctx: Context) -> list[str]:
    rel = os.path.normpath(src).lstrip("/")
    if rel.startswith(".."):
        return [f"line {line}: COPY {src} is outside the build context"]
    matches = [Path(p) for p in glob.glob(str(root / rel))]
    if not matches:
        return [f"line {line}: COPY source {src} does not exist"]
    sent = [f for f in ctx.files if f == rel or f.startswith(rel.rstrip("/") + "/")]
    if rel == ".":
        sent = list(ctx.files)
    if not sent:
        return [f"line {line}: COPY source {src} is excluded by .dockerignore"]
    return []


def _final_stage(final: Stage, flags: set[str]) -> list[str]:
    problems: list[str] = []
    ins = final.instructions
    run_at = [i.line for i in ins if i.cmd in ("CMD", "ENTRYPOINT")]
    if not run_at:
        return ["final stage has no CMD/ENTRYPOINT"]
    users = [i for i in ins if i.cmd == "USER" and i.line < min(run_at)]
    user = users[-1].args.split(":")[0] if users else "root"
    if user in ("root", "0", ""):
        problems.append(f"final stage runs as {user!r}: set a non-root USER before CMD")
    checks = [i for i in ins if i.cmd == "HEALTHCHECK"]
    exposed = {p.split("/")[0] for i in ins if i.cmd == "EXPOSE" for p in i.args.split()}
    if not checks:
        problems.append("no HEALTHCHECK")
    else:
        _, rest = checks[-1].flags_and_rest()
        probe = Instruction(checks[-1].line, "CMD", rest.removeprefix("CMD").strip())
        argv = probe.exec_form() or shlex.split(probe.args)
        if "/healthz" not in " ".join(argv):
            problems.append(f"line {probe.line}: HEALTHCHECK does not ask /healthz")
        if argv and Path(argv[0]).name in ("curl", "wget"):
            problems.append(f"line {probe.line}: HEALTHCHECK uses {argv[0]} (not in slim)")
        ports = set(re.findall(r"127\.0\.0\.1:(\d+)|localhost:(\d+)", " ".join(argv)))
        if {p for pair in ports for p in pair if p} - exposed:
            problems.append(f"line {probe.line}: HEALTHCHECK port is not EXPOSEd")
    argv = entry_and_cmd(final)
    if argv[:1] != ["streamwatch"] or "serve" not in argv:
        problems.append(f"CMD does not run `streamwatch serve`: {argv}")
    for flag in (a.split("=")[0] for a in argv if a.startswith("--")):
        if flag not in flags:
            problems.append(f"CMD flag {flag} is not one `streamwatch serve --help` lists")
    opts = dict(zip(argv, argv[1:]))
    if opts.get("--host") != "0.0.0.0":
        problems.append("CMD does not bind 0.0.0.0 (unreachable from outside the container)")
    if opts.get("--port") not in exposed:
        problems.append(f"CMD port {opts.get('--port')} is not EXPOSEd {sorted(exposed)}")
    volumes: set[str] = set()
    for i in ins:
        if i.cmd == "VOLUME":
            volumes |= set(i.exec_form() or i.args.split())
    for flag in ("--config", "--detectors", "--data-dir"):
        path = opts.get(flag)
        if path is None or not any(path == v or path.startswith(v.rstrip("/") + "/")
                                   for v in volumes):
            problems.append(f"CMD {flag} {path} is not on a VOLUME {sorted(volumes)}")
    copied = {i.args.split()[-1].rstrip("/") for i in ins if i.cmd == "COPY"}
    for flag in ("--config", "--detectors"):
        if opts.get(flag) not in copied:
            problems.append(f"CMD {flag} {opts.get(flag)} is not a COPY destination")
    if not any(i.cmd == "STOPSIGNAL" and i.args in ("SIGTERM", "15") for i in ins):
        problems.append("no STOPSIGNAL SIGTERM")
    return problems
