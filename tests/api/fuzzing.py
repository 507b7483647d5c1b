"""Fuzzing the HTTP API from its own OpenAPI schema against a real server: the engine shared by
tests/api/test_fuzz.py (a bounded run in CI) and benchmarks/fuzz.py (the larger run).

What every answer must satisfy, whatever was sent:
- no 5xx, and an answer within `timeout` (a request that times out is counted as a hang);
- a 4xx carries a JSON body with a human-readable message (`fuzz_bodies.message_of`);
- what schemathesis can check against the schema: the status is documented, and the content
  type, headers and body are the documented ones.
Schema cases come from schemathesis, positive (valid per the schema) and negative (violating
it), with the admin token; for routes taking an id, half the cases use a real one (an incident,
a silence, a webhook that `prepare` made), so the 2xx paths are fuzzed too. Auth cases send
valid requests with no token, an unknown one or a malformed header: 401 on every route behind a
role. Body cases (fuzz_bodies.py) go beyond the schema, then `check_pipeline` verifies that
every accepted sample was counted and the pipeline still processes samples.

Failures are collected, not raised, so one run tallies every operation; each names the curl
command or the body that reproduces it. `seed` makes a run repeatable (None: random).
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_headers_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from tests.api.fuzz_bodies import Body, array_bodies, judge, message_of, ndjson_bodies, \
    random_bodies

__all__ = ["Fuzzer", "Tally", "TIMEOUT_S", "PUBLIC"]

TIMEOUT_S = 10.0
PUBLIC = frozenset({"/healthz", "/readyz", "/metrics"})
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
WRONG_AUTH = (None, "Bearer not-a-known-token-Zk31Pq8w", "Basic dXNlcjpwYXNzd29yZA==", "Bearer",
              "Bearer  ", "Token abc", "bearer " + "x" * 3000, "Bearer a b c")
SEED_STREAM = "svc:fuzz-seed"


@dataclass
class Tally:
    """One operation's (or body family's) run: cases, statuses seen, what went wrong."""
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    failed: int = 0
    hangs: int = 0
    server_errors: int = 0

    def classes(self) -> str:
        seen = Counter(f"{s // 100}xx" for s in self.statuses.elements())
        return " ".join(f"{k}:{seen[k]}" for k in sorted(seen)) or "-"

    def fail(self, what: str) -> None:
        self.failed += 1
        if len(self.failures) < 20:                    # enough to fix; the count says the rest
            self.failures.append(what)


class Fuzzer:
    def __init__(self, base_url: str, token: str, *, seed: int | None = None,
                 timeout: float = TIMEOUT_S) -> None:
        self.base_url, self.token, self.seed, self.timeout = base_url, token, seed, timeout
        self.auth = {"Authorization": f"Bearer {token}"}
        self.tallies: dict[str, Tally] = defaultdict(Tally)
        self.session = requests.Session()
        self.client = httpx.Client(base_url=base_url, timeout=timeout, headers=self.auth)
        self.ids: dict[str, str] = {}
        self.accepted = 0                              # samples accepted by body cases
        self.schema: Any = None

    def close(self) -> None:
        self.session.close()
        self.client.close()

    # -- set-up ---------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Load the schema the server serves; make an incident, a silence and a webhook whose
        ids the id-taking routes are fuzzed with."""
        r = self.client.get("/openapi.json")
        r.raise_for_status()
        self.schema = schemathesis.openapi.from_dict(r.json())
        now = time.time()
        probe = b"".join(orjson.dumps({"stream": SEED_STREAM, "metric": "error_ratio",
                                       "ts": t, "value": 0.5}) + b"\n"
                         for t in (now - 11, now))
        r = self.client.post("/v1/samples", content=probe)
        if r.status_code != 200 or r.json()["accepted"] != 2:
            raise RuntimeError(f"could not push the seed samples: {r.status_code} {r.text}")
        self.ids["incident_id"] = self._poll(lambda: next(
            (i["id"] for i in self.client.get("/v1/incidents", params={"stream": SEED_STREAM})
             .json()["items"]), None), "the seed incident")
        r = self.client.post("/v1/silences", json={"stream": "svc:fuzz-quiet",
                                                   "duration_s": 3600, "comment": "fuzz"})
        if r.status_code == 201:
            self.ids["silence_id"] = r.json()["id"]
        r = self.client.post("/v1/webhooks", json={"url": f"{self.base_url}/healthz"})
        if r.status_code == 201:                       # only when 127.0.0.1 is allowed
            self.ids["webhook_id"] = r.json()["id"]

    def _poll(self, get: Callable[[], Any], what: str, limit: float = 15.0) -> Any:
        deadline = time.monotonic() + limit
        while (got := get()) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {limit} s waiting for {what}")
            time.sleep(0.05)
        return got

    def operations(self) -> list[Any]:
        return [res.ok() for res in self.schema.get_all_operations()]

    # -- running --------------------------------------------------------------------------------
    def _explore(self, strategy: st.SearchStrategy[Any], cases: int,
                 body: Callable[[Any], None]) -> None:
        """`cases` examples of `strategy`, each handed to `body` (which records, never raises)."""
        if cases <= 0:
            return

        @settings(max_examples=cases, deadline=None, database=None, verbosity=Verbosity.quiet,
                  phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
        @given(strategy)
        def run(value: Any) -> None:
            body(value)

        if self.seed is not None:
            run = hypothesis_seed(self.seed)(run)
        try:
            run()
        except Unsatisfiable:            # nothing to vary (a route without parameters)
            pass

    def _strategies(self, op: Any, mode: GenerationMode, cases: int
                    ) -> Iterator[tuple[st.SearchStrategy[Any], int]]:
        """Half the cases with the real ids `prepare` made (when the path takes one)."""
        known = {k: v for k, v in self.ids.items() if "{" + k + "}" in op.path}
        if known:
            yield op.as_strategy(generation_mode=mode, path_parameters=known), cases // 2
            cases -= cases // 2
        yield op.as_strategy(generation_mode=mode), cases

    def run_schema(self, cases: int) -> None:
        """Every operation, `cases` positive and `cases` negative examples, admin token."""
        for op in self.operations():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                for strategy, n in self._strategies(op, mode, cases):
                    self._explore(strategy, n, lambda case, op=op: self._call(op, case,
                                                                              self.auth))

    def run_auth(self, cases: int) -> None:
        """Every operation, `cases` valid examples with no, an unknown or a malformed token."""
        for op in self.operations():
            def body(case: Any, op: Any = op) -> None:
                case.headers = {k: v for k, v in (case.headers or {}).items()
                                if k.lower() != "authorization"}
                wrong = WRONG_AUTH[self.tallies[op.label + " [auth]"].cases % len(WRONG_AUTH)]
                self._call(op, case, {"Authorization": wrong} if wrong else None, "auth")
            self._explore(op.as_strategy(GenerationMode.POSITIVE), cases, body)

    def _call(self, op: Any, case: Any, headers: dict[str, str] | None,
              family: str = "") -> None:
        tally = self.tallies[op.label + (f" [{family}]" if family else "")]
        tally.cases += 1
        curl = lambda: case.as_curl_command(headers=headers, base_url=self.base_url)  # noqa: E731
        try:
            r = case.call(base_url=self.base_url, session=self.session, headers=headers,
                          timeout=self.timeout)
        except requests.Timeout:
            tally.hangs += 1
            tally.fail(f"no answer within {self.timeout} s: {curl()}")
            return
        except requests.RequestException as exc:
            tally.fail(f"request failed ({type(exc).__name__}: {exc}): {curl()}")
            return
        tally.statuses[r.status_code] += 1
        problems = self._problems(r.status_code, r.content)
        if family == "auth":
            problems += _auth_problems(op.path in PUBLIC, r.status_code, r.headers)
        try:
            case.validate_response(r, checks=CHECKS, headers=headers)
        except FailureGroup as exc:
            problems += [f.title for f in exc.exceptions]
        except AssertionError as exc:
            problems.append(str(exc).splitlines()[0])
        if r.status_code >= 500:
            tally.server_errors += 1
        if problems:
            tally.fail(f"{r.status_code}: {'; '.join(problems)}: {r.content[:300]!r}\n"
                       f"    {curl()}")

    @staticmethod
    def _problems(status: int, content: bytes) -> list[str]:
        if status >= 500:
            return [f"server error {status}"]
        if 400 <= status < 500:
            try:
                doc = orjson.loads(content)
            except orjson.JSONDecodeError:
                return [f"{status} whose body is not JSON"]
            if not message_of(doc):
                return [f"{status} without a human-readable message"]
        return []

    def run_bodies(self, cases: int) -> None:
        """Hostile push bodies (fuzz_bodies.py): NDJSON, JSON arrays, random bytes."""
        now = time.time()
        for name, strategy, n in (("ndjson bodies", ndjson_bodies(now), 4 * cases),
                                  ("array bodies", array_bodies(now), 2 * cases),
                                  ("random bodies", random_bodies(), cases)):
            self._explore(strategy, n, lambda b, name=name: self._push(name, b))

    def _push(self, family: str, body: Body) -> None:
        tally = self.tallies[f"POST /v1/samples [{family}]"]
        tally.cases += 1
        try:
            r = self.client.post("/v1/samples", content=body.data, headers=body.headers)
        except httpx.TimeoutException:
            tally.hangs += 1
            tally.fail(f"no answer within {self.timeout} s: {body.describe()}")
            return
        except httpx.HTTPError as exc:
            tally.fail(f"request failed ({type(exc).__name__}: {exc}): {body.describe()}")
            return
        tally.statuses[r.status_code] += 1
        try:
            doc = r.json()
        except ValueError:
            doc = None
        if r.status_code >= 500:
            tally.server_errors += 1
        wrong = (f"server error {r.status_code}" if r.status_code >= 500
                 else "body is not JSON" if doc is None else judge(body, r.status_code, doc))
        if wrong:
            tally.fail(f"{wrong}\n    {body.describe()}")
        elif r.status_code == 200:
            self.accepted += doc["accepted"]

    def ingested(self) -> float:
        text = self.client.get("/metrics").text
        return next(float(x.split()[-1]) for x in text.splitlines()
                    if x.startswith("streamwatch_samples_ingested_total "))

    def check_pipeline(self, ingested_before: float) -> None:
        """After the body cases: every accepted sample counted once, the queue drained, and a
        new sample still processed (no hostile body poisoned the pipeline)."""
        tally = self.tallies["pipeline after the bodies"]
        tally.cases += 1
        got = self.ingested() - ingested_before
        if got != self.accepted:
            tally.fail(f"the bodies' answers accepted {self.accepted} samples, /metrics counts "
                       f"{got:.0f}")
        try:
            self._poll(lambda: self.client.get("/readyz").json().get("queued_samples") == 0
                       or None, "the queue to drain")
            canary = f"fuzz-canary-{time.time_ns()}"
            r = self.client.post("/v1/samples", json=[{"stream": canary, "metric": "viewers",
                                                       "ts": time.time() - 1, "value": 1.0}])
            tally.statuses[r.status_code] += 1
            self._poll(lambda: self.client.get("/v1/streams", params={"stream": canary})
                       .json()["items"] or None, "a sample pushed after the bodies")
        except (RuntimeError, httpx.HTTPError) as exc:
            tally.fail(f"the pipeline no longer processes samples: {exc}")

    # -- results --------------------------------------------------------------------------------
    def totals(self) -> tuple[int, int, int]:
        """(cases, 5xx, hangs) over the whole run."""
        ts = self.tallies.values()
        return (sum(t.cases for t in ts), sum(t.server_errors for t in ts),
                sum(t.hangs for t in ts))

    def failures(self) -> list[str]:
        return [f"{name}: {f}" for name, t in sorted(self.tallies.items()) for f in t.failures]


def _auth_problems(public: bool, status: int, headers: dict[str, list[str]]) -> list[str]:
    if public:
        return [] if status < 300 else [f"a public route answered {status} without a token"]
    if status != 401:
        return [f"expected 401 without a valid token, got {status}"]
    if not any(v.startswith("Bearer") for v in headers.get("www-authenticate", [])):
        return ["401 without WWW-Authenticate: Bearer"]
    return []
