"""``genreg data``: list the datasets and where they are looked for, download them, verify them."""

from __future__ import annotations

import argparse
import sys
import time

DETAILS = (
    "Every command looks for its data under one data root: --data-dir DIR, else $GENREG_DATA, else the user "
    "cache ($XDG_CACHE_HOME/genreg, default ~/.cache/genreg), with one folder per dataset (mnist/, "
    "fashion-mnist/, wine-quality/, boston-housing/). `genreg data` shows, for every dataset, that folder, the "
    "rule that chose the root, and whether the files are there and match their checksums. `genreg data download "
    "NAME... | all` fetches missing or corrupt files from the dataset's mirrors (override with "
    "$GENREG_<NAME>_MIRRORS, comma-separated base URLs) and checks them before moving them into place; "
    "`genreg data verify` checks the files that are there (exit status 1 if any fails)."
)
EXAMPLE = "genreg data download mnist wine\n  genreg data --data-dir ~/data"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``genreg data`` (with its actions ``list``, ``download``, ``verify``) on ``subparsers``."""
    from genreg.cli import common

    p = common.add_command(subparsers, "data", DETAILS, EXAMPLE)
    p.add_argument("--data-dir", metavar="DIR", default=None, help=common.DATA_DIR_HELP)
    actions = p.add_subparsers(dest="action", metavar="ACTION", title="actions (default: list)")
    p.set_defaults(func=run, action="list", names=[], details=False)
    for name, help_text in (("list", "list the datasets, their folders and their state"),
                            ("download", "fetch datasets (NAME... or all), checking their checksums"),
                            ("verify", "check the checksums of the datasets that are there")):
        a = actions.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        # SUPPRESS: an option given before the action (genreg data --data-dir D download) is kept
        a.add_argument("--data-dir", metavar="DIR", default=argparse.SUPPRESS, help=common.DATA_DIR_HELP)
        if name == "download":
            a.add_argument("names", nargs="+", metavar="NAME", help=f"{', '.join(_known())} or all")
            a.add_argument("--timeout", type=float, default=30.0, metavar="S",
                           help="seconds per network operation (default: 30)")
        else:
            a.add_argument("names", nargs="*", metavar="NAME", help="the datasets (default: all)")
            a.add_argument("--details", action="store_true", help="also the files, mirrors, licence and citation")
    return p


def _known() -> list[str]:
    from genreg.tasks.datasets import DATASETS

    return list(DATASETS)


def _selected(names) -> list[str]:
    """Registered names for the command line's NAMEs (``all`` or none: every dataset); DataError if unknown."""
    from genreg.tasks.datasets import get

    if not names or "all" in [n.lower() for n in names]:
        return _known()
    return list(dict.fromkeys(get(n).name for n in names))


def _line(st) -> str:
    state = st.state
    if state == "missing":
        gone = [f for f, s, _ in st.files if s == "missing"]
        state = "missing" + (f" ({len(gone)} of {len(st.files)} files)" if len(gone) < len(st.files) else "")
    return f"  {st.dataset.name:<14} {state:<26} {st.folder}"


def _details(st) -> list[str]:
    from genreg.tasks.download import mirror_list

    ds = st.dataset
    lines = [f"      {ds.title}: {ds.citation}; licence {ds.licence}; {ds.homepage}"]
    used = mirror_list(None, ds.mirrors_env, ds.mirrors)  # $<env> when set, else the data set's own
    how = f"from ${ds.mirrors_env}" if used != tuple(ds.mirrors) else f"${ds.mirrors_env} overrides them"
    lines.append(f"      mirrors ({how}): {', '.join(used)}")
    for f, state, detail in st.files:
        lines.append(f"      {f:<26} {state}" + (f": {detail}" if detail else ""))
    return lines


def cmd_list(args: argparse.Namespace, *, verify: bool = False) -> int:
    from genreg.tasks.datasets import CORRUPT, MISSING, locate_root, status

    names, root = _selected(args.names), locate_root(args.data_dir)
    print(f"data root: {root.path} ({root.describe()})")
    rows, t0 = [], time.perf_counter()
    for name in names:
        st = status(name, root)
        rows.append(st)
        print(_line(st))
        if args.details or (verify and st.state == CORRUPT):
            print("\n".join(_details(st) if args.details else [f"      {p}" for p in st.problems()]))
    missing = [st.dataset.name for st in rows if st.state in (MISSING, CORRUPT)]
    if missing:
        where = f" --data-dir {root.path}" if root.rule == "--data-dir" else ""
        print(f"get {'it' if len(missing) == 1 else 'them'} with: genreg data download {' '.join(missing)}{where}")
    if verify:
        print(f"checked in {time.perf_counter() - t0:.1f} s")
        bad = [st for st in rows if st.state == CORRUPT or (st.state == MISSING and args.names)]
        return 1 if bad else 0
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from genreg.errors import DataError
    from genreg.tasks.datasets import CORRUPT, MISSING, download, download_hint, locate_root, status

    names, root = _selected(args.names), locate_root(args.data_dir)
    print(f"data root: {root.path} ({root.describe()})")
    failed = []
    for name in names:
        before = status(name, root)
        ds = before.dataset
        todo = [f for f, s, _ in before.files if s in (MISSING, CORRUPT)]
        if not todo:
            print(f"{ds.name}: already there ({before.state}) in {before.folder}")
            continue
        print(f"{ds.name}: downloading {len(todo)} file{'s' if len(todo) != 1 else ''} of {ds.title} into "
              f"{before.folder}", flush=True)
        t0 = time.perf_counter()
        try:
            after = download(name, root, timeout=args.timeout, log=lambda line: print(f"  {line}", flush=True),
                             advice=download_hint(name, before.folder))
        except DataError as exc:
            print(f"genreg: error: {exc}", file=sys.stderr)
            failed.append(ds.name)
            continue
        print(f"{ds.name}: {after.state} in {time.perf_counter() - t0:.1f} s")
    if failed:
        print(f"genreg: could not download {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    """``genreg data [list | download NAME... | verify [NAME...]]``: exit status 0, or 1 when a download
    fails or a dataset checked fails its checksums."""
    if args.action == "download":
        return cmd_download(args)
    return cmd_list(args, verify=args.action == "verify")
