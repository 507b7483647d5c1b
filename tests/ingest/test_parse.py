"""Sample parsing: every reject reason, on both the fast and the slow path, in NDJSON and arrays;
good samples surviving bad neighbours; line numbering; chunked files; fatal array bodies."""
from __future__ import annotations

import gc
import json
import random
from pathlib import Path

import numpy as np
import pytest

from streamwatch.ingest.parse import (
    Batch, Limits, ParseResult, Reason, Rejection, iter_ndjson_file, parse_body, parse_json_array,
    parse_ndjson, rfc3339_to_unix,
)

NOW = 1_750_000_000.0
T0 = 1_700_000_000.0
GOOD = '{"stream":"room-1","metric":"viewers","ts":%s,"value":%s}'


def good(i: int) -> str:
    return GOOD % (T0 + i, i)


def sample(**over: object) -> str:
    """A valid sample's JSON with fields replaced (or removed, when given as ...)."""
    s: dict[str, object] = {"stream": "room-1", "metric": "viewers", "ts": T0, "value": 1.5}
    s.update(over)
    return json.dumps({k: v for k, v in s.items() if v is not ...})


def raw(text: str, **over: str) -> str:
    """A sample with some fields spliced in as raw JSON text (for NaN literals, huge numbers...)."""
    s = {"stream": '"room-1"', "metric": '"viewers"', "ts": str(T0), "value": "1.5"}
    s.update(over)
    return "{" + ",".join(f'"{k}":{v}' for k, v in s.items()) + text + "}"


BIG_INT = "1" + "0" * 400
LABELS_17 = {f"k{i}": "v" for i in range(17)}

# (sample text, field, reason)
BAD = [
    (sample(stream=...), "stream", Reason.MISSING_FIELD),                       # no stream
    (sample(metric=...), "metric", Reason.MISSING_FIELD),                       # no metric
    (sample(ts=...), "ts", Reason.MISSING_FIELD),                               # no ts
    (sample(value=...), "value", Reason.MISSING_FIELD),                         # no value
    ("{}", "stream", Reason.MISSING_FIELD),                                     # empty object
    (sample(value="abc"), "value", Reason.WRONG_TYPE),                          # text value
    (sample(value="12.5"), "value", Reason.WRONG_TYPE),                         # numeric string: send it unquoted
    (sample(value=True), "value", Reason.WRONG_TYPE),                           # bool is not a number
    (sample(value=None), "value", Reason.WRONG_TYPE),                           # null value
    (sample(value=[1]), "value", Reason.WRONG_TYPE),                            # array value
    (sample(stream=5), "stream", Reason.WRONG_TYPE),                            # stream not a string
    (sample(metric={"a": 1}), "metric", Reason.WRONG_TYPE),                     # metric not a string
    (sample(ts=False), "ts", Reason.WRONG_TYPE),                                # bool ts
    (sample(ts="yesterday"), "ts", Reason.WRONG_TYPE),                          # ts text that is no time
    (sample(ts="1700000000"), "ts", Reason.WRONG_TYPE),                         # numeric string ts
    (sample(ts="2024-01-01T00:00:00"), "ts", Reason.WRONG_TYPE),                # RFC 3339 needs a zone
    (sample(ts="2024-02-30T00:00:00Z"), "ts", Reason.WRONG_TYPE),               # right shape, no such day
    (sample(labels={"a": 1}), "labels", Reason.WRONG_TYPE),                     # label value not a string
    (sample(labels=["a"]), "labels", Reason.WRONG_TYPE),                        # labels not an object
    (raw("", value="NaN"), "value", Reason.NON_FINITE),                         # bare NaN literal
    (raw("", value="Infinity"), "value", Reason.NON_FINITE),                    # bare Infinity literal
    (raw("", value="-Infinity"), "value", Reason.NON_FINITE),                   # bare -Infinity literal
    (raw("", value="1e999"), "value", Reason.NON_FINITE),                       # overflows to inf
    (raw("", value="-1e999"), "value", Reason.NON_FINITE),                      # overflows to -inf
    (raw("", value=BIG_INT), "value", Reason.NON_FINITE),                       # integer beyond float range
    (sample(value="NaN"), "value", Reason.NON_FINITE),                          # NaN as a string
    (sample(value="inf"), "value", Reason.NON_FINITE),                          # inf as a string
    (sample(value="-Infinity"), "value", Reason.NON_FINITE),                    # -Infinity as a string
    (raw("", ts="NaN"), "ts", Reason.NON_FINITE),                               # NaN timestamp literal
    (raw("", ts="1e999"), "ts", Reason.NON_FINITE),                             # overflowing timestamp
    (sample(ts="NaN"), "ts", Reason.NON_FINITE),                                # NaN timestamp string
    (sample(metric="likes_total", value=-1), "value", Reason.NEGATIVE_COUNT),   # counter below 0
    (sample(metric="gmv_total", value=-0.01), "value", Reason.NEGATIVE_COUNT),  # tiny negative counter
    (sample(metric="live", value=-1), "value", Reason.NEGATIVE_COUNT),          # lifecycle flag below 0
    (sample(ts=100), "ts", Reason.ABSURD_TIMESTAMP),                            # 1970
    (sample(ts=946684799.5), "ts", Reason.ABSURD_TIMESTAMP),                    # just before 2000-01-01
    (sample(ts=NOW + 300.5), "ts", Reason.ABSURD_TIMESTAMP),                    # just over 5 min ahead
    (sample(ts="1999-12-31T23:59:59Z"), "ts", Reason.ABSURD_TIMESTAMP),         # RFC 3339, before 2000
    (sample(ts=-1e300), "ts", Reason.ABSURD_TIMESTAMP),                         # hugely negative
    (sample(labels=LABELS_17), "labels", Reason.OVERSIZED_LABELS),              # 17 pairs > 16
    (sample(labels={"k" * 129: "v"}), "labels", Reason.OVERSIZED_LABELS),       # key of 129 chars
    (sample(labels={"k": "v" * 129}), "labels", Reason.OVERSIZED_LABELS),       # value of 129 chars
    (sample(stream=""), "stream", Reason.EMPTY_NAME),                           # empty stream
    (sample(metric=""), "metric", Reason.EMPTY_NAME),                           # empty metric
    ("[1, 2]", "", Reason.MALFORMED),                                           # JSON, not an object
    ("42", "", Reason.MALFORMED),                                               # a bare number
    ('"text"', "", Reason.MALFORMED),                                           # a bare string
]


def ndjson(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def array(items: list[str]) -> bytes:
    return ("[" + ",\n".join(items) + "]").encode()


def assert_only(res: ParseResult, pos: int, kind: str, field: str, reason: Reason) -> None:
    assert res.fatal is None
    assert [(r.position, r.position_kind, r.field, r.reason) for r in res.rejections] == \
        [(pos, kind, field, reason)]
    assert res.rejections[0].detail


@pytest.mark.parametrize("broken", [False, True], ids=["fast-path", "next-to-malformed"])
@pytest.mark.parametrize(("text", "field", "reason"), BAD)
def test_ndjson_rejects_one_bad_line_and_keeps_its_neighbours(
        text: str, field: str, reason: Reason, broken: bool) -> None:
    # A malformed line in the same run forces the tolerant decoder: the verdict must not change.
    lines = [good(0), text, good(2)] + (["{oops"] if broken else [])
    res = parse_ndjson(ndjson(lines), now=NOW)
    assert res.batch.positions.tolist() == [1, 3]
    assert res.batch.values.tolist() == [0.0, 2.0]
    assert res.rejections[0] == Rejection(2, "line", field, reason, res.rejections[0].detail)
    assert len(res.rejections) == 1 + broken


@pytest.mark.parametrize(("text", "field", "reason"), BAD)
def test_array_rejects_one_bad_element_and_keeps_its_neighbours(
        text: str, field: str, reason: Reason) -> None:
    res = parse_json_array(array([good(0), text, good(2)]), now=NOW)
    assert_only(res, 1, "index", field, reason)
    assert res.batch.positions.tolist() == [0, 2]
    assert res.batch.ts.tolist() == [T0, T0 + 2]


@pytest.mark.parametrize(("text", "expect_ts", "expect_value", "expect_labels"), [
    (sample(value=-5), T0, -5.0, None),                                     # negative gauge is fine
    (sample(metric="likes_total", value=0), T0, 0.0, None),                  # counter at zero
    (sample(ts=946684800), 946684800.0, 1.5, None),                          # exactly 2000-01-01
    (sample(ts=NOW + 300), NOW + 300, 1.5, None),                            # exactly 5 min ahead
    (sample(ts=1700000000, value=7), T0, 7.0, None),                         # ints become floats
    (sample(ts="2023-11-14T22:13:20Z"), T0, 1.5, None),                      # RFC 3339 with Z
    (sample(ts="2023-11-14t22:13:20z"), T0, 1.5, None),                      # lower-case t and z
    (sample(ts="2023-11-14 22:13:20Z"), T0, 1.5, None),                      # space separator
    (sample(ts="2023-11-15T06:13:20+08:00"), T0, 1.5, None),                 # positive offset
    (sample(ts="2023-11-14T16:43:20-05:30"), T0, 1.5, None),                 # negative half-hour offset
    (sample(ts="2023-11-14T22:13:20.25Z"), T0 + 0.25, 1.5, None),            # fractional seconds
    (sample(ts="2023-11-14T22:13:20.123456789Z"), T0 + 0.123456789, 1.5, None),  # nanoseconds
    (sample(labels=None), T0, 1.5, None),                                    # labels: null
    (sample(labels={"cdn": "a"}), T0, 1.5, {"cdn": "a"}),                    # labels kept
    (sample(labels={f"k{i}": "v" for i in range(16)}), T0, 1.5,
     {f"k{i}": "v" for i in range(16)}),                                     # exactly 16 labels
    (sample(labels={"k" * 128: "v" * 128}), T0, 1.5, {"k" * 128: "v" * 128}),  # 128-char key and value
    (sample(extra={"deep": [1, 2]}, note="x"), T0, 1.5, None),               # unknown keys ignored
    (raw("", value="1e308"), T0, 1e308, None),                               # huge but finite
])
@pytest.mark.parametrize("fmt", ["ndjson", "array"])
def test_valid_samples_are_accepted_with_exact_values(
        text: str, expect_ts: float, expect_value: float, expect_labels: object, fmt: str) -> None:
    res = parse_ndjson(ndjson([text]), now=NOW) if fmt == "ndjson" else \
        parse_json_array(array([text]), now=NOW)
    assert res.rejections == [] and res.fatal is None
    assert res.batch.ts[0] == pytest.approx(expect_ts, abs=1e-6)
    assert res.batch.values.tolist() == [expect_value]
    assert res.batch.labels == [expect_labels]


def test_unicode_names_survive_escapes() -> None:
    line = json.dumps({"stream": "直播间-7", "metric": "viewers", "ts": T0, "value": 1})  # \uXXXX
    res = parse_ndjson(line.encode(), now=NOW)
    assert res.batch.streams == ["直播间-7"]


@pytest.mark.parametrize(("body", "positions", "bad_lines"), [
    (b"\n\n" + good(0).encode() + b"\n\n" + good(1).encode() + b"\n\n", [3, 5], []),  # blank lines count
    (good(0).encode() + b"\r\n" + good(1).encode() + b"\r\n", [1, 2], []),             # CRLF
    (good(0).encode() + b"\n  \t\r\n" + good(1).encode(), [1, 3], []),                 # whitespace-only line, no final LF
    (b"\xef\xbb\xbf" + good(0).encode() + b"\n", [1], []),                            # UTF-8 BOM
    (good(0).encode() + b"\nnot json\n" + good(1).encode(), [1, 3], [2]),             # garbage line
    (b'{"stream":"a",\n"metric":"m","ts":1.7e9,"value":1}\n' + good(1).encode(),
     [3], [1, 2]),                                                                    # object across two lines
    ((good(0) + good(1)).encode() + b"\n" + good(2).encode(), [2], [1]),              # two objects on one line
    ((good(0) + "," + good(1)).encode() + b"\n" + good(2).encode(), [2], [1]),        # comma-joined objects
    (b'{"stream":"a","metric":"m","ts":1.7e9,"value":1,"x":[1,\n2]}\n' + (good(2) + good(3)).encode(),
     [], [1, 2, 3]),  # a spanning object and a two-object line: as many JSON values as lines,
                      # yet no line is a sample on its own
    (b"\xff\xfe\n" + good(1).encode(), [2], [1]),                                     # not UTF-8
    (b"", [], []),                                                                    # empty body
])
def test_ndjson_line_numbers(body: bytes, positions: list[int], bad_lines: list[int]) -> None:
    res = parse_ndjson(body, now=NOW)
    assert res.batch.positions.tolist() == positions
    assert [r.position for r in res.rejections] == bad_lines
    assert all(r.reason == Reason.MALFORMED and r.field == "" for r in res.rejections)


def test_first_line_offsets_every_position() -> None:
    res = parse_ndjson(ndjson([good(0), "{", good(2)]), now=NOW, first_line=101)
    assert res.batch.positions.tolist() == [101, 103]
    assert [r.position for r in res.rejections] == [102]


def test_malformed_line_detail_points_at_the_column_and_field() -> None:
    res = parse_ndjson(b'{"stream":"a","metric":"m","ts":1.7e9,"value":12.5.3}', now=NOW)
    assert "column" in res.rejections[0].detail and "'value'" in res.rejections[0].detail


def mixed(n: int, seed: int) -> tuple[list[str], list[int], dict[int, Reason]]:
    """n sample texts, about 1 in 7 bad of a random kind; which ones are good, and why the rest not."""
    rng = random.Random(seed)
    texts, good_ids, why = [], [], {}
    for i in range(n):
        if rng.random() < 1 / 7:
            text, _, reason = rng.choice(BAD)
            texts.append(text)
            why[i] = reason
        else:
            texts.append(good(i))
            good_ids.append(i)
    return texts, good_ids, why


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ndjson_good_samples_survive_many_bad_neighbours(seed: int) -> None:
    texts, good_ids, why = mixed(4000, seed)        # several 128 KiB decode runs
    texts[10] = "not json at all"                  # a malformed line too
    why[10] = Reason.MALFORMED
    good_ids = [i for i in good_ids if i != 10]
    res = parse_ndjson(ndjson(texts), now=NOW)
    assert res.batch.positions.tolist() == [i + 1 for i in good_ids]
    assert res.batch.values.tolist() == [float(i) for i in good_ids]
    assert {r.position - 1: r.reason for r in res.rejections} == why
    assert [r.position for r in res.rejections] == sorted(r.position for r in res.rejections)


@pytest.mark.parametrize("seed", [4, 5])
def test_array_good_samples_survive_many_bad_neighbours(seed: int) -> None:
    texts, good_ids, why = mixed(3000, seed)
    res = parse_json_array(array(texts), now=NOW)
    assert res.fatal is None
    assert res.batch.positions.tolist() == good_ids
    assert res.batch.values.tolist() == [float(i) for i in good_ids]
    assert {r.position: r.reason for r in res.rejections} == why


def test_round_trip_of_random_samples() -> None:
    rng = random.Random(9)
    want = []
    for i in range(3000):
        s = {"stream": f"room-{rng.randrange(50)}", "metric": rng.choice(["viewers", "likes_total"]),
             "ts": round(T0 + rng.uniform(0, 1e6), 3), "value": rng.choice([rng.uniform(0, 1e9), i])}
        if rng.random() < 0.2:
            s["labels"] = {"region": rng.choice(["eu", "cn-east", "直"])}
        want.append(s)
    body = "\n".join(json.dumps(s) for s in want).encode()
    for res in (parse_ndjson(body, now=NOW), parse_json_array(json.dumps(want).encode(), now=NOW)):
        b = res.batch
        got = [dict(stream=b.streams[i], metric=b.metrics[i], ts=b.ts[i], value=b.values[i],
                    **({"labels": b.labels[i]} if b.labels[i] else {})) for i in range(len(b))]
        assert got == want and res.rejections == []


@pytest.mark.parametrize(("body", "line", "field"), [
    (b'[{"stream":"a",\n"value":12.5.3}]', 2, "value"),    # bad number on line 2
    (b'[\n' + good(0).encode() + b',\n{"stream": "a" "metric": "m"}]', 3, "stream"),  # missing comma
    (b'[' + good(0).encode() + b',', 1, ""),                # truncated array
    (b'[' + good(0).encode() + b']]', 1, ""),               # trailing garbage
    (b'[\n\xff]', 2, ""),                                    # not UTF-8
])
def test_array_syntax_error_is_fatal_and_located(body: bytes, line: int, field: str) -> None:
    res = parse_json_array(body, now=NOW)
    assert res.fatal is not None and res.fatal.reason == Reason.MALFORMED
    assert (res.fatal.position, res.fatal.position_kind, res.fatal.field) == (line, "line", field)
    assert len(res.batch) == 0 and res.rejections == []


@pytest.mark.parametrize("body", [b'{"stream":"a"}', b'"samples"', b"null"])  # object, string, null
def test_array_body_that_is_not_an_array_is_fatal(body: bytes) -> None:
    res = parse_json_array(body, now=NOW)
    assert res.fatal is not None and "expected a JSON array" in res.fatal.detail


@pytest.mark.parametrize(("body", "kind"), [
    (b"[" + good(0).encode() + b"]", "index"),                  # array
    (b" \r\n\t[" + good(0).encode() + b"]", "index"),           # array after whitespace
    (b"\xef\xbb\xbf[" + good(0).encode() + b"]", "index"),      # array after a BOM
    (good(0).encode(), "line"),                                 # one NDJSON line
    (b"\n" + good(0).encode(), "line"),                         # NDJSON after a blank line
])
def test_parse_body_sniffs_the_format(body: bytes, kind: str) -> None:
    if kind == "line":                 # a garbage line: rejected per line only if read as NDJSON
        body += b"\nnope"
    res = parse_body(body, now=NOW)
    assert len(res.batch) == 1
    assert [r.position_kind for r in res.rejections] == (["line"] if kind == "line" else [])
    assert res.fatal is None


def test_empty_array_and_empty_body() -> None:
    for res in (parse_json_array(b"[]", now=NOW), parse_body(b"", now=NOW), parse_body(b"  \n", now=NOW)):
        assert len(res.batch) == 0 and res.rejections == [] and res.fatal is None


def test_custom_limits_apply() -> None:
    tight = Limits(max_labels=1, max_label_len=3, future_skew_s=0.0, min_ts=T0)
    lines = [sample(labels={"a": "b", "c": "d"}), sample(labels={"abcd": "x"}),
             sample(ts=NOW + 1), sample(ts=T0 - 1), sample(labels={"abc": "xyz"}, ts=NOW)]
    res = parse_ndjson(ndjson(lines), now=NOW, limits=tight)
    assert [r.reason for r in res.rejections] == [Reason.OVERSIZED_LABELS] * 2 + [Reason.ABSURD_TIMESTAMP] * 2
    assert res.batch.positions.tolist() == [5]


@pytest.mark.parametrize("chunk_bytes", [1, 50, 200, 4 << 20])  # smaller than a line .. whole file
@pytest.mark.parametrize("final_newline", [True, False])
def test_iter_file_matches_whole_parse(tmp_path: Path, chunk_bytes: int, final_newline: bool) -> None:
    texts, _, _ = mixed(300, 6)
    body = ndjson(texts + ["", "garbage"])[: None if final_newline else -1]
    path = tmp_path / "s.ndjson"
    path.write_bytes(body)
    results = list(iter_ndjson_file(path, now=NOW, chunk_bytes=chunk_bytes))
    whole = parse_ndjson(body, now=NOW)
    joined = Batch.concat(r.batch for r in results)
    assert joined.positions.tolist() == whole.batch.positions.tolist()
    assert joined.streams == whole.batch.streams and joined.ts.tolist() == whole.batch.ts.tolist()
    assert [r for res in results for r in res.rejections] == whole.rejections
    done = [r.bytes_read for r in results]
    assert done == sorted(done) and done[-1] == len(body)


def test_batch_concat_keeps_order_and_types() -> None:
    a = parse_ndjson(ndjson([good(0), good(1)]), now=NOW).batch
    b = parse_ndjson(ndjson([good(5)]), now=NOW, first_line=9).batch
    c = Batch.concat([a, Batch.empty(), b])
    assert len(c) == 3 and c.positions.tolist() == [1, 2, 9] and c.values.tolist() == [0, 1, 5]
    assert c.ts.dtype == np.float64 and c.positions.dtype == np.int64
    assert len(Batch.concat([])) == 0


@pytest.mark.parametrize(("text", "expect"), [
    ("2023-11-14T22:13:20Z", T0),                       # Z
    ("2023-11-14T23:13:20+01:00", T0),                  # offset
    ("2023-11-14T22:13:20.5Z", T0 + 0.5),               # fraction
    ("2023-11-14T22:13:20", None),                      # no zone
    ("2023-11-14", None),                               # date only
    ("2023-13-14T22:13:20Z", None),                     # month 13
    ("2023-11-14T22:13:20Z trailing", None),            # trailing text
])
def test_rfc3339_to_unix(text: str, expect: float | None) -> None:
    got = rfc3339_to_unix(text)
    assert got == (pytest.approx(expect) if expect is not None else None)


def test_iter_file_strips_a_bom_and_counts_lines_from_one(tmp_path: Path) -> None:
    path = tmp_path / "bom.ndjson"
    path.write_bytes(b"\xef\xbb\xbf" + ndjson([good(0), "x", good(2)]))
    (res,) = iter_ndjson_file(path, now=NOW)
    assert res.batch.positions.tolist() == [1, 3] and [r.position for r in res.rejections] == [2]


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_state_is_restored(enabled: bool) -> None:
    # parsing pauses the cyclic GC for speed; it must hand back whatever state it found
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        parse_ndjson(ndjson([good(0), "{", good(1)]), now=NOW)
        parse_json_array(array([good(0), good(1)]), now=NOW)
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()
