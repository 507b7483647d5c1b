"""Score streamwatch's generic detector on the Numenta Anomaly Benchmark (NAB layout on disk).

    .venv/bin/python benchmarks/nab/run.py --data PATH [--half A|B] [--files N]
                   [--split even|odd] [--include SUBSTR ...] [--per-file] [--json FILE]
                   [--param key=value ...]

`--data` is a NAB checkout (or the subset of it you have): `data/<category>/<file>.csv`,
`labels/combined_windows.json` and optionally `config/profiles.json` (NAB's three profiles are
built in). Every CSV that is both on disk and in the labels is run through
`streamwatch.detect.generic.score_series` - the function `streamwatch replay X.csv --scores Y.csv`
uses - and scored with benchmarks/nab/scorer.py (one corpus-wide threshold per profile, NAB's
rule). `--half A|B` keeps a fixed half of NAB, defined over all 58 labelled files whether or not
they are on disk: within each category, files sorted by name alternate A, B, A, B ... (tune on A,
check on B). `--split even|odd` keeps every other file (sorted by path) so a choice made on one half can
be checked on the other; `--include` keeps the files whose path contains one of the substrings
(e.g. files held out while the detector was designed); `--files N` keeps the first N.

The output says how many of NAB's 58 files were used: on a subset the normalised score is
indicative only (the threshold is optimised on, and the null/perfect baselines computed over,
that subset).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "src"))

import scorer as nab  # noqa: E402

from streamwatch.detect.generic import GenericDetector, score_series  # noqa: E402

NAB_FILES = 58
BASELINES = {  # NAB scoreboard, standard profile
    "windowed Gaussian": 39.6, "Twitter ADVec": 47.1, "NumentaTM": 64.6,
    "Numenta HTM": 70.1, "ARTime": 74.9,
}


def read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A NAB data file -> (timestamps as datetime64[s], values)."""
    lines = path.read_text().splitlines()
    ts_txt, vals = [], []
    for line in lines[1:]:
        if not line.strip():
            continue
        t, v = line.split(",")[:2]
        ts_txt.append(t)
        vals.append(float(v))
    return nab.parse_timestamps(ts_txt), np.asarray(vals, dtype=np.float64)


def discover(data: Path, windows: dict[str, list]) -> list[str]:
    return sorted(name for name in windows if (data / "data" / name).is_file())


def half_of(windows: dict[str, list]) -> dict[str, str]:
    """Fixed split of the labelled files: alternate A/B within each category, sorted by name."""
    by_cat: dict[str, list[str]] = {}
    for name in sorted(windows):
        by_cat.setdefault(name.split("/")[0], []).append(name)
    return {n: "AB"[i % 2] for names in by_cat.values() for i, n in enumerate(names)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--files", type=int, default=None)
    ap.add_argument("--half", choices=["A", "B"], default=None,
                    help="fixed half of NAB (alternate files within each category)")
    ap.add_argument("--split", choices=["even", "odd"], default=None)
    ap.add_argument("--include", action="append", default=[], metavar="SUBSTR")
    ap.add_argument("--per-file", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="override a GenericDetector.Params field (JSON value)")
    args = ap.parse_args(argv)

    windows = nab.load_windows(args.data / "labels" / "combined_windows.json")
    prof_path = args.data / "config" / "profiles.json"
    profiles = nab.load_profiles(prof_path) if prof_path.is_file() else dict(nab.PROFILES)
    names = discover(args.data, windows)
    if args.include:
        names = [n for n in names if any(sub in n for sub in args.include)]
    if args.half:
        halves = half_of(windows)
        names = [n for n in names if halves[n] == args.half]
    if args.split:
        names = names[0::2] if args.split == "even" else names[1::2]
    if args.files is not None:
        names = names[: args.files]
    if not names:
        print(f"no NAB data files found under {args.data / 'data'}", file=sys.stderr)
        return 2
    overrides = {k: json.loads(v) for k, v in (p.split("=", 1) for p in args.param)}
    params = GenericDetector.Params(**overrides) if overrides else None

    score_series(np.arange(8.0), np.arange(8.0), params)   # compile outside the timing
    prepared, scores, seconds, samples = [], [], 0.0, 0
    for name in names:
        ts, values = read_csv(args.data / "data" / name)
        t0 = time.perf_counter()
        s = score_series(ts.astype("datetime64[s]").astype(np.float64), values, params)
        seconds += time.perf_counter() - t0
        samples += len(values)
        prepared.append(nab.prepare_file(name, len(values), nab.windows_to_rows(ts, windows[name])))
        scores.append(s)

    cats = sorted({n.split("/")[0] for n in names})
    report: dict[str, object] = {"files": len(names), "of": NAB_FILES, "profiles": {}}
    print(f"NAB: {len(names)} of {NAB_FILES} files, {samples} samples, "
          f"{sum(f.n_windows for f in prepared)} windows; detector {seconds:.2f}s "
          f"({samples / max(seconds, 1e-9) / 1e6:.2f} M samples/s, per-file calls)")
    if len(names) < NAB_FILES:
        print("NOTE: subset of NAB - scores are indicative (threshold and null/perfect over this "
              "subset only), not comparable digit-for-digit with the published scoreboard.")
    for pname, prof in profiles.items():
        res = nab.sweep(prepared, scores, prof)
        line = [f"{pname:<20} {res.normalised:6.1f}  (threshold {res.threshold:.6g}, "
                f"raw {res.raw:.2f}, null {res.null:.0f}, perfect {res.perfect:.0f})"]
        per_cat: dict[str, float | None] = {}
        print(line[0])
        for c in cats:
            fs = [f for f in prepared if f.name.startswith(c + "/")]
            sub = nab.score_at(fs, [s for f, s in zip(prepared, scores) if f in fs], prof,
                               res.threshold)
            fp_c = sum(res.counts[f.name][2] for f in fs)
            if sub.perfect != sub.null:
                per_cat[c] = sub.normalised
                print(f"    {c:<24} {sub.normalised:6.1f}   ({len(fs)} files, {fp_c} FP rows)")
            else:   # no windows: only false positives can be scored
                per_cat[c] = None
                print(f"    {c:<24}    n/a   ({len(fs)} files without windows, {fp_c} FP rows)")
        tp = sum(v[0] for v in res.counts.values())
        fn = sum(v[1] for v in res.counts.values())
        fp = sum(v[2] for v in res.counts.values())
        print(f"    windows detected {tp}/{tp + fn}, false-positive rows {fp}")
        report["profiles"][pname] = {"score": res.normalised, "threshold": res.threshold,
                                     "categories": per_cat, "tp": tp, "fn": fn, "fp_rows": fp}
        if pname == "standard":
            std = res
            ratios = ", ".join(f"{k} {res.normalised / v:.2f}x" for k, v in BASELINES.items())
            print(f"    vs published (standard): {ratios}")
    if args.per_file:
        for f in prepared:
            hit, miss, fp = std.counts[f.name]
            print(f"  {std.per_file[f.name]:7.2f}  tp {hit} fn {miss} fp {fp:3d}  {f.name}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    scope = f"half {args.half}, " if args.half else ""
    ratios = ", ".join(f"{k} ({v}) {std.normalised / v:.2f}x" for k, v in BASELINES.items()
                       if k != "Twitter ADVec")
    print(f"SUMMARY: {len(names)}/{NAB_FILES} NAB files ({scope}{samples} samples), standard "
          f"score {std.normalised:.1f}; vs board {ratios}"
          + ("" if len(names) == NAB_FILES else " [subset: indicative only]"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
