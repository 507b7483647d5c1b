#!/usr/bin/env python3
"""Print, write or check the README's configuration reference.

The reference is rendered from the config models (src/streamwatch/config/reference.py), so it
cannot drift from the code: a new setting changes the rendering, and tests/config/
test_reference_doc.py fails until the README is rewritten with this script.

    python scripts/config_reference.py            # print the generated Markdown
    python scripts/config_reference.py --write    # rewrite README.md between its markers
    python scripts/config_reference.py --check    # exit 1 when README.md is out of date

Exit codes: 0 done (or up to date), 1 out of date (--check), 2 bad usage or no markers.
"""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

try:
    from streamwatch.config.reference import COMMAND, END, START, render, splice
except ImportError:                          # run from a checkout without the package installed
    sys.path.insert(0, str(ROOT / "src"))
    from streamwatch.config.reference import COMMAND, END, START, render, splice


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the README's section")
    action.add_argument("--check", action="store_true", help="exit 1 if the README is stale")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md",
                        help="the file holding the markers (default: the repository's README)")
    args = parser.parse_args(argv)
    block = render()
    if not (args.write or args.check):
        sys.stdout.write(block)
        return 0
    try:
        text = args.readme.read_text(encoding="utf-8")
        wanted = splice(text, block, str(args.readme))
    except OSError as exc:
        print(f"error: {args.readme}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc} (put them where the reference belongs)", file=sys.stderr)
        return 2
    if wanted == text:
        print(f"{args.readme}: configuration reference is up to date", file=sys.stderr)
        return 0
    if args.check:
        diff = difflib.unified_diff(text.splitlines(), wanted.splitlines(), "README (now)",
                                    "README (generated)", n=0, lineterm="")
        sys.stderr.write("\n".join(list(diff)[:40]) + "\n")
        print(f"{args.readme}: the configuration reference between {START} and {END} is out "
              f"of date; run: {COMMAND}", file=sys.stderr)
        return 1
    args.readme.write_text(wanted, encoding="utf-8")
    print(f"{args.readme}: configuration reference rewritten", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
