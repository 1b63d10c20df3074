"""What every command shares: settings, the store, error mapping, options, output."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any

import click

from fmsearch import environment
from fmsearch.errors import FmsearchError, InvalidArgumentError
from fmsearch.search.fusion import FUSIONS
from fmsearch.search.rerank import RERANK_MODES, RERANK_STAGES
from fmsearch.store.base import DEFAULT_HNSW_EF, MAX_HNSW_EF, Store
from fmsearch.store.gallery import Gallery
from fmsearch.store.schema import QUANTIZATIONS
from fmsearch.store.settings import StoreSettings


@dataclass
class Settings:
    """Global options, resolved once by the group: the store settings (the
    value ``fmsearch serve`` hands its service whole) and the store they open."""

    store_settings: StoreSettings
    _store: Store | None = None

    def store(self, *, lock_timeout: float | None = None) -> Store:
        """The store the settings select, opened on first use
        (``lock_timeout``: how long the embedded store waits for a collection
        another process holds)."""
        if self._store is None:
            self._store = self.store_settings.open(lock_timeout=lock_timeout)
        return self._store

    def gallery(self, name: str | None, data_dir: str | None = None) -> Gallery:
        """The gallery a command is about: FMNIST, or the folder gallery
        ``--collection`` names (decided here, once, for every command)."""
        from fmsearch.store.gallery import open_gallery

        return open_gallery(self.store(), name, prefix=self.store_settings.prefix, data_dir=data_dir)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


pass_settings = click.make_pass_decorator(Settings)


def _options(ctx: click.Context | None) -> dict[str, click.Option]:
    """The options a user can give, by name: this command's first, then the
    global ones, then other commands' (a remedy may be another command's)."""
    if ctx is None:
        return {}
    root = ctx.find_root().command
    commands = [ctx.command, root, *getattr(root, "commands", {}).values()]
    options: dict[str, click.Option] = {}
    for command in commands:
        for p in command.params:
            if isinstance(p, click.Option):  # by its name, and by its flag's words (--id, stored as id_)
                options.setdefault(p.name, p)
                options.setdefault(max(p.opts, key=len).lstrip("-").replace("-", "_"), p)
    return options


def cli_message(err: FmsearchError, ctx: click.Context | None) -> str:
    """The error's first line, each argument it is about (``params``) named
    by its flag: "batch size must be ..." becomes "--batch-size must be ..."
    (an argument's first mention is replaced)."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    options = _options(ctx)
    for param in err.params:
        if param in options:
            words = re.escape(param.replace("_", " "))
            flag = max(options[param].opts, key=len)
            text = re.sub(rf"(?<![\w-]){words}(?![\w-])", flag, text, count=1, flags=re.IGNORECASE)
    return text


def domain_errors(fn: Callable) -> Callable:
    """Map every :class:`FmsearchError` to a one-line ``ClickException``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FmsearchError as err:
            raise click.ClickException(cli_message(err, click.get_current_context(silent=True))) from err
        except click.UsageError as err:  # a bad combination of options: one line, as every other error
            raise click.ClickException(err.format_message()) from err
        except KeyboardInterrupt as err:
            raise click.ClickException(
                "interrupted; what was written is kept: re-run the same command to resume"
            ) from err

    return wrapper


_INTEGER = re.compile(r"[+-]?[0-9]+")


def point_id_or_none(text: str) -> int | None:
    """``text`` as a point id when it is written as an integer ("123", "-1"),
    else None (an image path); the range is checked where the id is used."""
    text = text.strip()
    return int(text) if _INTEGER.fullmatch(text) else None


def parse_point_id(text: str, option: str = "--id") -> int:
    """A point id given as text; not an integer is a one-line user error."""
    pid = point_id_or_none(text)
    if pid is None:
        raise InvalidArgumentError(
            f"{option} must be an integer point id (train 0-59999, test 60000-69999), got {text!r}"
        )
    return pid


def id_or_image(text: str):
    """A gallery id, or an image path (loaded now): what a recommend example
    or a compare argument may be. An integer that names an existing file is
    the file."""
    from pathlib import Path

    from fmsearch.images.files import load_image

    pid = point_id_or_none(text)
    if pid is not None and not Path(text).exists():
        return pid  # out of range is refused where it is used, in one line
    return load_image(text)


def parse_numbers(text: str | None, option: str, kind: type = float) -> tuple | None:
    """ "1,2" -> (1.0, 2.0); not numbers is a one-line usage error."""
    if text is None:
        return None
    try:
        return tuple(kind(part) for part in text.split(","))
    except ValueError as err:
        raise click.UsageError(
            f"{option} must be a comma-separated list of {'integers' if kind is int else 'numbers'}, got {text!r}"
        ) from err


def parse_ks(text: str) -> tuple[int, ...]:
    """ "1,5,10,20" -> (1, 5, 10, 20), sorted and de-duplicated."""
    ks = sorted(set(parse_numbers(text, "--k", int) or ()))
    if not ks or ks[0] < 1:
        raise click.UsageError(f"--k values must be integers >= 1, got {text!r}")
    if ks[-1] > 1000:
        raise click.UsageError(f"--k values must be <= 1000, got {ks[-1]}")
    return tuple(ks)


def echo_json(obj: Any) -> None:
    """One JSON object per line."""
    if is_dataclass(obj) and not isinstance(obj, type):  # an instance, not the class itself
        obj = asdict(obj)
    click.echo(json.dumps(obj, sort_keys=True))


def write_png(rgb, out: str) -> None:
    """Write an image array as the PNG ``out``; a path that cannot be written
    is one line."""
    from PIL import Image

    try:
        Image.fromarray(rgb).save(out, format="PNG")
    except OSError as err:
        raise click.ClickException(f"cannot write {out}: {err.strerror or err}") from err


def data_dir_option(fn: Callable) -> Callable:
    return click.option(
        "--data-dir",
        envvar=environment.FMNIST_DIR,
        type=click.Path(file_okay=False),
        default=None,
        help="Directory with the four FMNIST .gz files [env FMNIST_DIR].",
    )(fn)


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _decorate(fn: Callable, options: list[Callable]) -> Callable:
    for option in reversed(options):
        fn = option(fn)
    return fn


def graph_search_options(fn: Callable) -> Callable:
    """--hnsw-ef and --acorn: how the graph is searched, overriding the
    store's filter-aware default (fmsearch.store.planner; docs/scale.md)."""
    return _decorate(
        fn,
        [
            click.option(
                "--hnsw-ef",
                type=click.IntRange(1, MAX_HNSW_EF),
                default=None,
                help=f"HNSW search breadth for every search, filtered or not. Without it the store plans each "
                f"search: ef {DEFAULT_HNSW_EF} unfiltered, a scan of a small filter's points, and for a class "
                "filter on a large gallery the ef measured when it was built (`fmsearch collections`; "
                "docs/scale.md). -v shows the plan.",
            ),
            click.option(
                "--acorn",
                is_flag=True,
                help="Qdrant's ACORN search for filtered queries, at --hnsw-ef (or the default ef), instead of "
                "the store's plan.",
            ),
        ],
    )


def model_options(fn: Callable) -> Callable:
    """--weights, --input-size, --runtime, --threads: which model a method
    uses and how it runs."""
    from fmsearch.models.artifact_embedder import RUNTIMES

    return _decorate(
        fn,
        [
            click.option(
                "--weights",
                type=str,
                default=None,
                help="Model weights: a .keras artifact (the trained methods; default: the shipped one) or, "
                "for resnet101, 'imagenet' (default), a weights file, or 'none' (untrained, for tests).",
            ),
            click.option(
                "--input-size",
                type=int,
                default=None,
                help="resnet101: input resolution the 28x28 image is resized to [default 224].",
            ),
            click.option(
                "--runtime",
                type=click.Choice(RUNTIMES),
                default=None,
                help="The trained methods: run the ONNX export with ONNX Runtime, or the .keras file with "
                "TensorFlow (the training extra) [default auto: ONNX where exported].",
            ),
            click.option(
                "--threads",
                type=int,
                default=None,
                help="The trained methods on ONNX Runtime: threads per inference [default: one per core].",
            ),
        ],
    )


def embedder_options(
    methods, weights: str | None, input_size: int | None, runtime: str | None = None, threads: int | None = None
) -> dict[str, dict[str, Any]]:
    """Per method, its constructor options from the CLI's model options
    (--runtime and --threads go to the methods that take them)."""
    from fmsearch.models.registry import OPTIONS
    from fmsearch.models.registry import model_options as options_of

    run = {"runtime": runtime, "threads": threads}
    given = [k for k, v in run.items() if v is not None]
    takers = [m for m in methods if all(k in OPTIONS.get(m, ()) for k in given)]
    if given and not takers:
        trained = ", ".join(m for m, takes in OPTIONS.items() if "runtime" in takes)
        raise click.UsageError(f"--{given[0]} applies to the trained methods only ({trained})")
    return {m: options_of(m, weights=weights, input_size=input_size, **(run if m in takers else {})) for m in methods}


def mode_options(fn: Callable) -> Callable:
    """Every search-mode option (query, evaluate): fusion, cross-method
    rescoring, the SIFT rerank, quantisation, query expansion; their names
    and defaults are :data:`fmsearch.search.mode.OPTIONS`."""
    return _stage_options(_quantization_options(fn))


def _stage_options(fn: Callable) -> Callable:
    """Fusion, cross-method rescoring and the SIFT rerank."""
    from fmsearch.search.mode import OPTIONS as MODE  # the defaults, written once

    return _decorate(
        fn,
        [
            click.option(
                "--fusion",
                type=click.Choice(FUSIONS),
                default=MODE["fusion"],
                show_default=True,
                help="How fused methods' lists combine: reciprocal-rank or distribution-based score fusion.",
            ),
            click.option("--fusion-weights", default=None, help="Comma-separated weight per fused method, e.g. 1,2."),
            click.option(
                "--rescore-with",
                default=None,
                help="Another method orders --method's shortlist by its own cosine (its stored vectors).",
            ),
            click.option(
                "--rerank",
                type=click.Choice(RERANK_STAGES),
                default=None,
                help="Rerank the shortlist with SIFT descriptors (needs `fmsearch ingest --method sift`).",
            ),
            click.option(
                "--shortlist",
                type=int,
                default=MODE["shortlist"],
                show_default=True,
                help="Candidates the first stage proposes for a second stage (rerank, fusion, rescoring).",
            ),
            click.option(
                "--rerank-mode",
                type=click.Choice(RERANK_MODES),
                default=MODE["rerank_mode"],
                show_default=True,
                help="maxsim: scored inside Qdrant (mean best cosine per query descriptor); "
                "lowe: the seed's ratio-test score (good matches / query keypoints) on stored descriptors.",
            ),
            click.option(
                "--rerank-weight",
                type=float,
                default=MODE["rerank_weight"],
                show_default=True,
                help="Fused score = z(first-stage score) + W x z(SIFT score), z over the shortlist; "
                "0 keeps the first stage's order, a large W orders by SIFT alone.",
            ),
            click.option(
                "--ratio",
                type=float,
                default=MODE["ratio"],
                show_default=True,
                help="lowe mode: Lowe's ratio (a match is good when nearest < ratio x second nearest).",
            ),
        ],
    )


def _quantization_options(fn: Callable) -> Callable:
    """Quantisation with its rescore and oversampling, and query expansion."""
    from fmsearch.search.mode import OPTIONS as MODE

    return _decorate(
        fn,
        [
            click.option(
                "--quantization",
                type=click.Choice(QUANTIZATIONS),
                default=MODE["quantization"],
                show_default=True,
                help="Search the quantised variant collection fmnist_<method>_<q> (built by ingest --quantization).",
            ),
            click.option(
                "--oversampling",
                type=float,
                default=None,
                help="Quantised search: fetch X times the results by the quantised vectors before rescoring "
                "(>= 1) [default 4 for int8, 16 for binary].",
            ),
            click.option(
                "--rescore/--no-rescore",
                default=MODE["rescore"],
                show_default=True,
                help="Quantised search: re-score the candidates with the original float32 vectors.",
            ),
            click.option(
                "--expand",
                type=int,
                default=MODE["expand"],
                show_default=True,
                metavar="N",
                help="Average query expansion: search again with the query plus the stored vectors of its "
                "N nearest hits (0: off).",
            ),
        ],
    )


def search_mode(method: str, *, fusion_weights: str | None, **options: Any):
    """The SearchMode the mode options select (validated where it is made):
    the same flat options the service takes, :data:`fmsearch.search.mode.OPTIONS`."""
    from fmsearch.search.mode import SearchMode

    return SearchMode.from_options(method, fusion_weights=parse_numbers(fusion_weights, "--fusion-weights"), **options)


def read_key_file(path: str) -> str:
    """The API key in a file (surrounding whitespace dropped); errors never
    quote the file's content."""
    try:
        key = open(path, encoding="utf-8").read().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise click.ClickException(f"cannot read the API key file {path}: {type(err).__name__}") from None
    if not key or "\n" in key:
        raise click.ClickException(f"the API key file {path} must hold one non-empty line")
    return key
