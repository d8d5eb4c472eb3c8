"""``translate-data``: list, download and check the reference's datasets and pretrained generators."""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

from translate.errors import TranslateError
from translate.hub.catalog import DATASETS, MODELS, find_dataset, find_model, format_size
from translate.hub.download import (
    CHECKSUM_FILE,
    DATA_DIR_ENV,
    MIRROR_ENV,
    dataset_state,
    default_data_dir,
    download_dataset,
    download_model,
    model_path,
    model_state,
)

_RULES = f"""\
Downloads are safe to interrupt: a file arrives as <file>.part and gets its real name only when
complete; after any failure that .part file is the only thing left, and running the same command
again resumes it. Archives are extracted into a hidden folder and renamed to <data dir>/<name>
only once complete, refusing members that would land outside it. The SHA-256 of every download is
recorded in <folder>/{CHECKSUM_FILE}; a later download that does not match it is an error.

environment: {DATA_DIR_ENV} (default data folder), {MIRROR_ENV} (default mirror)

examples:
  translate-data list
  translate-data download horse2zebra
  translate-data download-model horse2zebra
"""


def _parser() -> argparse.ArgumentParser:
    folders = argparse.ArgumentParser(add_help=False)
    folders.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"where datasets live, the folder training reads (default: ${DATA_DIR_ENV} or ./data)",
    )
    folders.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="where pretrained generators go (default: <data-dir>/pretrained)",
    )
    fetching = argparse.ArgumentParser(add_help=False)
    fetching.add_argument(
        "--mirror",
        default=None,
        help=f"base URL that replaces http://efrosgans.eecs.berkeley.edu (default: ${MIRROR_ENV})",
    )
    fetching.add_argument("--force", action="store_true", help="download again and replace what is on disk")

    parser = argparse.ArgumentParser(
        prog="translate-data",
        description=__doc__,
        epilog=_RULES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", parents=[folders], help="every known dataset and generator, and whether it is on disk")
    listing.set_defaults(run=_list)
    dataset = commands.add_parser(
        "download",
        parents=[folders, fetching],
        epilog=_RULES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="fetch a dataset into <data-dir>/NAME",
    )
    dataset.add_argument("name", metavar="NAME", help="a dataset name from 'translate-data list'")
    dataset.set_defaults(run=_download)
    model = commands.add_parser(
        "download-model",
        parents=[folders, fetching],
        epilog=_RULES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="fetch a pretrained generator into <models-dir>/NAME/latest_net_G.pth",
    )
    model.add_argument("name", metavar="NAME", help="a generator name from 'translate-data list'")
    model.set_defaults(run=_download_model)
    return parser


def _folders(args: argparse.Namespace) -> tuple[Path, Path]:
    data_dir = args.data_dir or default_data_dir()
    return data_dir, args.models_dir or data_dir / "pretrained"


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _list(args: argparse.Namespace) -> int:
    data_dir, models_dir = _folders(args)
    print(f"Datasets (in {data_dir}):")
    _table(
        [("name", "family", "layout", "size", "on disk", "note")]
        + [
            (
                e.name,
                str(e.family),
                e.layout.name,
                format_size(e.approx_mb),
                dataset_state(e, data_dir),
                e.note,
            )
            for e in DATASETS.values()
        ]
    )
    print(f"\nPretrained generators (in {models_dir}):")
    _table(
        [("name", "family", "size", "on disk")]
        + [(e.name, str(e.family), format_size(e.approx_mb), model_state(e, models_dir)) for e in MODELS.values()]
    )
    return 0


def _download(args: argparse.Namespace) -> int:
    data_dir, _ = _folders(args)
    entry = find_dataset(args.name)
    present = not args.force and not entry.layout.missing(data_dir / entry.name)
    path = download_dataset(args.name, data_dir, mirror=args.mirror, force=args.force)
    print(f"{entry.name}: {'already at' if present else 'ready at'} {path}")
    return 0


def _download_model(args: argparse.Namespace) -> int:
    _, models_dir = _folders(args)
    entry = find_model(args.name)
    present = not args.force and model_path(models_dir, entry.name).is_file()
    path = download_model(args.name, models_dir, mirror=args.mirror, force=args.force)
    print(f"{entry.name}: {'already at' if present else 'saved'} {path}")
    print(f"translate images with: translate-test checkpoint={path} model={entry.family} data=single data.root=<your images>")
    return 0


@contextmanager
def _phases_on_stderr() -> Iterator[None]:
    """The phases translate.hub logs (downloading, checking, extracting: minutes for a large dataset) as
    ``translate-data: <phase>`` lines on stderr, while the command runs."""
    logger = logging.getLogger("translate.hub")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("translate-data: %(message)s"))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    # Said here once: not again through whatever handlers the root logger holds in this process.
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``translate-data``; returns the exit status (2 for any error, with a one-line message)."""
    args = _parser().parse_args(argv)
    try:
        with _phases_on_stderr():
            return args.run(args)
    except TranslateError as exc:
        print(f"translate-data: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("translate-data: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
