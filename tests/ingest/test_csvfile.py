"""NAB-layout CSV reading: accepted layouts, exact timestamps, and a located error for every bad input."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from streamwatch.exceptions import InputError
from streamwatch.ingest.csvfile import CsvSeries, read_timestamp_value_csv

APR1 = 1396310400.0        # 2014-04-01 00:00:00 UTC


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "series.csv"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


@pytest.mark.parametrize(("content", "line", "words"), [
    ("", 1, "empty file"),                                                         # nothing at all
    ("\n\n", 1, "empty file"),                                                     # only blank lines
    ("time,value\n2014-04-01 00:00:00,1\n", 1, "header"),                          # wrong column name
    ("value,timestamp\n1,2014-04-01 00:00:00\n", 1, "header"),                     # columns swapped
    ("timestamp,value,label\n2014-04-01 00:00:00,1,0\n", 1, "header"),             # extra column
    ("2014-04-01 00:00:00,1\n", 1, "header"),                                      # no header at all
    ("timestamp,value\n", 2, "no data rows"),                                      # header only
    ("timestamp,value\n2014-04-01 00:00:00,1,2\n", 2, "got 3"),                    # three fields
    ("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00\n", 3, "got 1"),  # one field
    ("timestamp,value\n2014-04-01 00:00:00,1\n\n2014-04-01 00:10:00,2\n", 3, "empty row"),  # blank row inside
    ("timestamp,value\n2014-04-01 00:00:00,abc\n", 2, "not a number"),             # text value
    ("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,\n", 3, "not a number"),  # empty value
    ("timestamp,value\n2014-04-01 00:00:00,nan\n", 2, "not a finite number"),      # NaN value
    ("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,-inf\n", 3, "not a finite number"),  # -inf
    ("timestamp,value\n2014-04-01 00:00:00,1e999\n", 2, "not a finite number"),    # overflow
    ("timestamp,value\n2014-13-01 00:00:00,1\n", 2, "timestamp"),                  # month 13
    ("timestamp,value\n2014-04-01 00:00:00,1\n2014-02-30 00:00:00,1\n", 3, "timestamp"),  # no such day
    ("timestamp,value\n2014-04-01 25:00:00,1\n", 2, "timestamp"),                  # hour 25
    ("timestamp,value\nyesterday,1\n", 2, "timestamp"),                            # not a time
    ("timestamp,value\n2014-04-01T00:00:00,1\n", 2, "timestamp"),                  # ISO without zone
    ("timestamp,value\n2014-04-01,1\n", 2, "timestamp"),                           # date only
    ("timestamp,value\n1e999,1\n", 2, "timestamp"),                                # unix overflow
    ("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00Z+,1\n", 3, "timestamp"),  # junk zone
    (b"timestamp,value\n2014-04-01 00:00:00,\xff\n", 2, "not UTF-8"),              # bad encoding
])
def test_bad_input_names_file_and_line(tmp_path: Path, content: str | bytes, line: int, words: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(InputError) as err:
        read_timestamp_value_csv(path)
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert words in str(err.value)
    assert err.value.exit_code == 2


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_timestamp_value_csv(tmp_path / "absent.csv")


@pytest.mark.parametrize(("content", "stamps", "ts"), [
    ("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,2\n",
     ["2014-04-01 00:00:00", "2014-04-01 00:05:00"], [APR1, APR1 + 300]),           # NAB as written
    ("timestamp,value\r\n2014-04-01 00:00:00,1\r\n2014-04-01 01:00:00,2\r\n\r\n\r\n",
     ["2014-04-01 00:00:00", "2014-04-01 01:00:00"], [APR1, APR1 + 3600]),          # CRLF + trailing blank lines
    ("\ufeff Timestamp , VALUE \n2014-04-01 00:00:00,1\n2014-04-01 00:00:01,2",
     ["2014-04-01 00:00:00", "2014-04-01 00:00:01"], [APR1, APR1 + 1]),             # BOM, case, spaces, no final LF
    ("timestamp,value\n2014-04-01T00:00:00Z,1\n2014-04-01T02:00:00+01:00,2\n",
     ["2014-04-01T00:00:00Z", "2014-04-01T02:00:00+01:00"], [APR1, APR1 + 3600]),   # RFC 3339 with zones
    ("timestamp,value\n2014-04-01T00:00:00.250Z,1\n2014-03-31T19:00:00.5-05:00,2\n",
     ["2014-04-01T00:00:00.250Z", "2014-03-31T19:00:00.5-05:00"], [APR1 + 0.25, APR1 + 0.5]),  # fractions
    ("timestamp,value\n1396310400,1\n1396310400.5,2\n",
     ["1396310400", "1396310400.5"], [APR1, APR1 + 0.5]),                          # unix seconds
    ("timestamp,value\n2014-04-01 00:00:00,1\n1396310460,2\n2014-04-01T00:02:00Z,3\n",
     ["2014-04-01 00:00:00", "1396310460", "2014-04-01T00:02:00Z"], [APR1, APR1 + 60, APR1 + 120]),  # mixed rows
    ("timestamp,value\n 2014-04-01 00:00:00 , 1 \n",
     [" 2014-04-01 00:00:00 "], [APR1]),                                           # padded cells kept verbatim
])
def test_accepted_layouts(tmp_path: Path, content: str, stamps: list[str], ts: list[float]) -> None:
    series = read_timestamp_value_csv(write(tmp_path, content))
    assert series.timestamps == stamps
    assert series.ts.tolist() == pytest.approx(ts, abs=1e-6)
    assert series.values.tolist() == [float(i + 1) for i in range(len(stamps))]
    assert len(series) == len(stamps)


@pytest.mark.parametrize("fmt", ["nab", "rfc3339", "unix"])
def test_round_trip_of_a_written_series(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(3)
    ts = APR1 + np.arange(2000) * 300.0
    values = np.round(rng.normal(50, 20, 2000), 4)
    values[7] = -0.0
    def stamp(t: float) -> str:
        dt = datetime.fromtimestamp(t, timezone.utc)
        return {"nab": dt.strftime("%Y-%m-%d %H:%M:%S"),
                "rfc3339": dt.astimezone(timezone(timedelta(hours=8))).isoformat(),
                "unix": repr(t)}[fmt]
    stamps = [stamp(t) for t in ts.tolist()]
    body = "timestamp,value\n" + "".join(f"{s},{v!r}\n" for s, v in zip(stamps, values.tolist()))
    series = read_timestamp_value_csv(write(tmp_path, body))
    assert isinstance(series, CsvSeries)
    assert series.timestamps == stamps
    assert series.ts.tolist() == ts.tolist()
    assert series.values.tolist() == values.tolist()


def test_hundred_thousand_nab_rows_well_under_a_second(tmp_path: Path) -> None:
    start = np.datetime64("2014-04-01T00:00:00")
    stamps = np.datetime_as_string(start + np.arange(100_000) * np.timedelta64(5, "m"), unit="s")
    body = "timestamp,value\n" + "\n".join(
        f"{s.replace('T', ' ')},{i * 0.5}" for i, s in enumerate(stamps.tolist()))
    path = write(tmp_path, body)
    t = time.perf_counter()
    series = read_timestamp_value_csv(path)
    elapsed = time.perf_counter() - t
    assert len(series) == 100_000 and series.ts[-1] == APR1 + 99_999 * 300
    assert elapsed < 0.8, f"{elapsed:.2f} s"
