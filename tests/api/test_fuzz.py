"""The HTTP API fuzzed from its own OpenAPI schema (tests/api/fuzzing.py) against a real server
on 127.0.0.1 with a real store file: no 5xx, no hang, every refusal a 4xx with a message, answers
as the schema documents them; no or a wrong token is a 401 everywhere but the public routes;
hostile push bodies (tests/api/fuzz_bodies.py) answered as the contract says, good samples in
the same body never lost, and the pipeline still working afterwards.

Bounded for CI: STREAMWATCH_FUZZ_CASES (default 10) examples per operation and generation mode
(push bodies: 7x that). STREAMWATCH_FUZZ_SEED (default 0) fixes the examples, so a failure here
comes back with the same command; `random` explores anew on each run. `benchmarks/fuzz.py` is
the larger run (`make bench-fuzz`).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from streamwatch.service import Service
from tests.api.conftest import LiveServer, make_config, with_tokens
from tests.api.fuzzing import PUBLIC, Fuzzer

__all__: list[str] = []

CASES = int(os.environ.get("STREAMWATCH_FUZZ_CASES", "10"))
_SEED = os.environ.get("STREAMWATCH_FUZZ_SEED", "0")
SEED = None if _SEED == "random" else int(_SEED)
ADMIN = "admin-fuzz-token-Hq72LxPz0Wv9"


@pytest.fixture(scope="module")
def fuzzer(live_server_module: Callable[..., LiveServer],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzer]:
    cfg = make_config(auth=with_tokens(admin=ADMIN), webhooks={"allowed_hosts": ["127.0.0.1"]})
    srv = live_server_module(service=Service(cfg, data_dir=tmp_path_factory.mktemp("fuzz")))
    fz = Fuzzer(srv.url, ADMIN, seed=SEED)
    fz.prepare()
    yield fz
    fz.close()


def _failures(fz: Fuzzer, names: set[str]) -> str:
    found = [f for f in fz.failures() if f.split(": ", 1)[0] in names]
    return f"{len(found)} failing cases:\n" + "\n".join(found)


def test_every_operation_survives_schema_fuzzing(fuzzer: Fuzzer) -> None:
    fuzzer.run_schema(CASES)
    ops = fuzzer.operations()
    assert len(ops) >= 15 and {op.label for op in ops} <= set(fuzzer.tallies)
    schema = {k: t for k, t in fuzzer.tallies.items() if "[" not in k}
    assert not any(t.failed for t in schema.values()), _failures(fuzzer, set(schema))
    if CASES < 2:                   # too few examples to expect the coverage below
        return
    # the real ids were used: the id-taking routes reached their 2xx paths, not only 404s
    for label in ("GET /v1/incidents/{incident_id}", "POST /v1/incidents/{incident_id}/ack",
                  "POST /v1/incidents/{incident_id}/note", "DELETE /v1/silences/{silence_id}",
                  "DELETE /v1/webhooks/{webhook_id}"):
        assert schema[label].statuses[200] > 0, (label, schema[label].statuses)
    # negative examples were refused with a 4xx, not all waved through
    assert sum(t.statuses[422] for t in schema.values()) > 0


def test_no_or_a_wrong_token_is_401_on_every_route_behind_a_role(fuzzer: Fuzzer) -> None:
    fuzzer.run_auth(CASES)
    auth = {k: t for k, t in fuzzer.tallies.items() if k.endswith("[auth]")}
    assert len(auth) == len(fuzzer.operations())
    assert not any(t.failed for t in auth.values()), _failures(fuzzer, set(auth))
    for label, tally in auth.items():
        public = label.split()[1] in PUBLIC
        assert tally.cases > 0 and (tally.statuses[401] == 0) == public, (label, tally.statuses)


def test_hostile_push_bodies_get_a_4xx_with_a_message_or_per_sample_errors(
        fuzzer: Fuzzer) -> None:
    before = fuzzer.ingested()
    fuzzer.run_bodies(CASES)
    fuzzer.check_pipeline(before)
    bodies = {k: t for k, t in fuzzer.tallies.items()
              if "bodies" in k or k.startswith("pipeline")}
    assert not any(t.failed for t in bodies.values()), _failures(fuzzer, set(bodies))
    ndjson = bodies["POST /v1/samples [ndjson bodies]"]
    assert ndjson.cases == 4 * CASES
    # the mix reached both verdicts: accepted with per-sample errors, and refused whole
    assert CASES < 5 or {200, 400} <= set(ndjson.statuses), ndjson.statuses
    assert fuzzer.accepted > 0
