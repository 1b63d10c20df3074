"""What every command shares: settings, the store, error mapping, output."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any

import click

from fmsearch.errors import FmsearchError, InvalidArgumentError


@dataclass
class Settings:
    """Global options, resolved once by the group."""

    home: str | None
    qdrant_url: str | None
    qdrant_api_key: str | None
    prefix: str
    timeout: int
    data_dir: str | None = None
    retries: int = 3
    prefer_grpc: bool = False
    _store: Any = None

    def store(self):
        """The store these settings select, opened on first use."""
        if self._store is None:
            from search.store import open_store

            self._store = open_store(
                self.qdrant_url, api_key=self.qdrant_api_key, home=self.home, timeout=self.timeout,
                retries=self.retries, prefer_grpc=self.prefer_grpc,
            )
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


pass_settings = click.make_pass_decorator(Settings)


def domain_errors(fn: Callable) -> Callable:
    """Map every :class:`FmsearchError` to a one-line ``ClickException``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FmsearchError as err:
            raise click.ClickException(str(err).splitlines()[0] if str(err) else type(err).__name__) from err
        except click.UsageError as err:  # a bad combination of options: one line, as every other error
            raise click.ClickException(err.format_message()) from err
        except KeyboardInterrupt as err:
            raise click.ClickException("interrupted; what was written is kept: re-run the same command to resume") from err

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


def echo_json(obj: Any) -> None:
    """One JSON object per line."""
    if is_dataclass(obj):
        obj = asdict(obj)
    click.echo(json.dumps(obj, sort_keys=True))


def data_dir_option(fn: Callable) -> Callable:
    return click.option(
        "--data-dir",
        envvar="FMNIST_DIR",
        type=click.Path(file_okay=False),
        default=None,
        help="Directory with the four FMNIST .gz files [env FMNIST_DIR].",
    )(fn)


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def model_options(fn: Callable) -> Callable:
    """--weights and --input-size: which model a method uses."""
    fn = click.option(
        "--input-size", type=int, default=None,
        help="resnet101: input resolution the 28x28 image is resized to [default 224].",
    )(fn)
    return click.option(
        "--weights", type=str, default=None,
        help="Model weights: a .keras artifact (autoencoder, siamese; default: the shipped one) or, "
        "for resnet101, 'imagenet' (default), a weights file, or 'none' (untrained, for tests).",
    )(fn)


def embedder_options(method: str, weights: str | None, input_size: int | None) -> dict[str, Any]:
    """Constructor options of a method from the CLI's model options."""
    options: dict[str, Any] = {}
    if weights is not None:
        if method in ("pixels", "sift"):
            raise click.UsageError(f"--weights does not apply to {method}")
        options["weights"] = weights
    if input_size is not None:
        if method != "resnet101":
            raise click.UsageError("--input-size applies to resnet101 only")
        options["input_size"] = input_size
    return options


def rerank_options(fn: Callable) -> Callable:
    """--rerank sift and its settings (query, evaluate)."""
    from search.rerank import DEFAULT_SHORTLIST, DEFAULT_WEIGHT, RERANK_MODES

    options = [
        click.option("--ratio", type=float, default=0.75, show_default=True,
                     help="lowe mode: Lowe's ratio (a match is good when nearest < ratio x second nearest)."),
        click.option("--rerank-weight", type=float, default=DEFAULT_WEIGHT, show_default=True,
                     help="Fused score = z(first-stage score) + W x z(SIFT score), z over the shortlist; "
                     "0 keeps the first stage's order, a large W orders by SIFT alone."),
        click.option("--rerank-mode", type=click.Choice(RERANK_MODES), default="maxsim", show_default=True,
                     help="maxsim: scored inside Qdrant (mean best cosine per query descriptor); "
                     "lowe: the seed's ratio-test score (good matches / query keypoints) on stored descriptors."),
        click.option("--shortlist", type=int, default=DEFAULT_SHORTLIST, show_default=True,
                     help="Candidates the first stage proposes for the rerank."),
        click.option("--rerank", type=click.Choice(["sift"]), default=None,
                     help="Rerank the shortlist with SIFT descriptors (needs `fmsearch ingest --method sift`)."),
    ]
    for option in options:
        fn = option(fn)
    return fn


def rerank_config(rerank: str | None, shortlist: int, mode: str, weight: float, ratio: float):
    """The RerankConfig the rerank options select, or None."""
    from search.rerank import RerankConfig

    if rerank is None:
        return None
    return RerankConfig(stage=rerank, shortlist=shortlist, mode=mode, weight=weight, ratio=ratio).validate()


def quantization_options(fn: Callable) -> Callable:
    """--quantization, --oversampling, --rescore/--no-rescore (query, evaluate)."""
    options = [
        click.option("--rescore/--no-rescore", default=True, show_default=True,
                     help="Quantised search: re-score the candidates with the original float32 vectors."),
        click.option("--oversampling", type=float, default=None,
                     help="Quantised search: fetch X times the results by the quantised vectors before rescoring (>= 1) "
                     "[default 4 for int8, 16 for binary]."),
        click.option("--quantization", type=click.Choice(["none", "int8", "binary"]), default="none", show_default=True,
                     help="Search the quantised variant collection fmnist_<method>_<q> (built by ingest --quantization)."),
    ]
    for option in options:
        fn = option(fn)
    return fn


def quantization_params(quantization: str, rescore: bool, oversampling: float | None):
    """The QuantizationParams the options select (validated)."""
    from search.store import QuantizationParams

    if quantization == "none" and (oversampling is not None or not rescore):
        raise click.UsageError("--oversampling/--no-rescore need --quantization int8|binary")
    return QuantizationParams(rescore=rescore, oversampling=oversampling)


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
