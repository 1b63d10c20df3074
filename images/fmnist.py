"""Fashion-MNIST: find, download, verify and read the four original IDX files.

Lookup order (first hit wins):

1. an explicit ``data_dir`` argument or the ``FMNIST_DIR`` environment variable
   (authoritative: if it is given and lacks a file, that is an error);
2. ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``);
3. the user cache directory (``$FMSEARCH_CACHE``, else
   ``$XDG_CACHE_HOME/fmsearch/fashion-mnist``, else ``~/.cache/fmsearch/fashion-mnist``);
4. a download from the official Zalando mirror into that cache.

Every file is checked: gzip integrity, IDX magic number, dimensions, item
count, and the SHA-256 of the *decompressed* bytes. The decompressed digest is
the same whichever gzip produced the file (Debian recompresses them, so the
``.gz`` MD5s that Zalando publishes do not match Debian's files).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from fmsearch import environment
from fmsearch.errors import DatasetError, InvalidArgumentError, UnknownClassError

logger = logging.getLogger(__name__)

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IMAGE_SIDE = 28
SPLITS = ("train", "test")
SPLIT_SIZES = {"train": 60_000, "test": 10_000}

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
MIRROR_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

_IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
_LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension


@dataclass(frozen=True)
class IdxFile:
    """One of the four original files and the digest of its decompressed bytes."""

    name: str
    split: str
    kind: str  # "images" or "labels"
    sha256: str


FILES: dict[tuple[str, str], IdxFile] = {
    (f.split, f.kind): f
    for f in (
        IdxFile(
            "train-images-idx3-ubyte.gz",
            "train",
            "images",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        IdxFile(
            "train-labels-idx1-ubyte.gz",
            "train",
            "labels",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        IdxFile(
            "t10k-images-idx3-ubyte.gz",
            "test",
            "images",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        IdxFile(
            "t10k-labels-idx1-ubyte.gz",
            "test",
            "labels",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    )
}


@dataclass(frozen=True)
class Split:
    """One split of FMNIST: images (N, 28, 28) uint8 and labels (N,) uint8."""

    name: str
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def class_index(name: str) -> int:
    """Resolve a class name (case-insensitive; "T-shirt" and "top" also work).

    Raises:
        UnknownClassError: the name is not one of the ten classes.
    """
    wanted = name.strip().lower()
    for i, cls in enumerate(CLASS_NAMES):
        if wanted == cls.lower() or wanted in cls.lower().split("/"):
            return i
    raise UnknownClassError(f"unknown class {name!r}; valid classes: {', '.join(CLASS_NAMES)}")


def cache_dir() -> Path:
    """The per-user cache directory that downloads go to."""
    configured = environment.cache_dir()
    if configured:
        return Path(configured).expanduser()
    base = environment.xdg_cache_home() or str(Path.home() / ".cache")
    return Path(base) / "fmsearch" / "fashion-mnist"


def _has_all(directory: Path) -> bool:
    return all((directory / f.name).is_file() for f in FILES.values())


def locate(
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    mirror: str | None = None,
) -> Path:
    """Find the directory holding all four files, downloading them if needed.

    Args:
        data_dir: explicit directory; overrides ``FMNIST_DIR``. When given (by
            argument or environment) it is the only place looked at.
        download: allow fetching missing files from the mirror into the cache.
        mirror: base URL of the mirror (default: Zalando's, or ``FMNIST_MIRROR``).

    Returns:
        The directory with the four ``.gz`` files.

    Raises:
        DatasetError: no directory holds the files and download failed or is off.
    """
    explicit = data_dir or environment.fmnist_dir()
    if explicit:
        directory = Path(explicit).expanduser()
        missing = [f.name for f in FILES.values() if not (directory / f.name).is_file()]
        if missing:
            raise DatasetError(f"FMNIST data dir {directory} lacks {', '.join(missing)}")
        return directory
    for candidate in (DEBIAN_DIR, cache_dir()):
        if _has_all(candidate):
            return candidate
    if not download:
        raise DatasetError(f"FMNIST not found: {WAYS_TO_GET_IT} or allow the download", param="data_dir")
    target = cache_dir()
    for f in FILES.values():
        if not (target / f.name).is_file():
            _download(f, target, mirror or environment.fmnist_mirror() or MIRROR_URL)
    return target


#: the three ways to get the data, for the errors that say it is missing
WAYS_TO_GET_IT = (
    "point data dir (or FMNIST_DIR) at a folder with the four .gz files, "
    "install the Debian package dataset-fashion-mnist,"
)


def _download(f: IdxFile, target: Path, mirror: str) -> None:
    """Fetch one file, verify it, then move it into place (never half-written)."""
    url = mirror.rstrip("/") + "/" + f.name
    target.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s", url)
    # a hidden temp name ending in .gz: never mistaken for the real file
    fd, tmp_name = tempfile.mkstemp(dir=target, prefix=f".{f.name}-", suffix=".gz")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            shutil.copyfileobj(resp, out)
        try:
            _read_idx(tmp, f)
        except DatasetError as err:
            raise DatasetError(f"download of {url} is invalid: {err}") from err
        os.replace(tmp, target / f.name)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err.strerror or err
        raise DatasetError(
            f"FMNIST not found and its download from {url} failed ({reason}): {WAYS_TO_GET_IT} "
            "or retry the download where the mirror is reachable",
            param="data_dir",
        ) from err
    finally:
        tmp.unlink(missing_ok=True)


def _decompress(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DatasetError(f"{path} is truncated or not a valid gzip file ({err})") from err
    except OSError as err:
        raise DatasetError(f"cannot read {path}: {err}") from err


def _read_idx(path: Path, f: IdxFile) -> np.ndarray:
    """Read and fully verify one IDX file; returns the uint8 array."""
    raw = _decompress(path)
    expected_n = SPLIT_SIZES[f.split]
    shape: tuple[int, ...]
    if f.kind == "images":
        magic, header, shape = _IMAGES_MAGIC, 16, (expected_n, IMAGE_SIDE, IMAGE_SIDE)
    else:
        magic, header, shape = _LABELS_MAGIC, 8, (expected_n,)
    if len(raw) < header:
        raise DatasetError(f"{path} is too short to be an IDX file ({len(raw)} bytes)")
    dims = np.frombuffer(raw, dtype=">u4", count=header // 4)
    if int(dims[0]) != magic:
        raise DatasetError(f"{path} has IDX magic {int(dims[0])}, expected {magic} ({f.kind})")
    if tuple(int(d) for d in dims[1:]) != shape:
        raise DatasetError(f"{path} has dimensions {tuple(int(d) for d in dims[1:])}, expected {shape}")
    body = len(raw) - header
    if body != int(np.prod(shape)):
        raise DatasetError(f"{path} holds {body} data bytes, expected {int(np.prod(shape))} (truncated?)")
    digest = hashlib.sha256(raw).hexdigest()
    if digest != f.sha256:
        raise DatasetError(
            f"{path} fails its checksum: SHA-256 of the decompressed bytes is {digest}, expected {f.sha256}"
        )
    arr = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
    if f.kind == "labels" and int(arr.max()) >= len(CLASS_NAMES):
        raise DatasetError(f"{path} has label {int(arr.max())} outside 0..9")
    return arr


def _file_path(directory: Path, f: IdxFile) -> Path:
    gz = directory / f.name
    if gz.is_file():
        return gz
    plain = directory / f.name.removesuffix(".gz")
    if plain.is_file():
        return plain
    raise DatasetError(f"{gz} not found")


@lru_cache(maxsize=4)
def _load_cached(directory: str, split: str) -> Split:
    d = Path(directory)
    images = _read_idx(_file_path(d, FILES[(split, "images")]), FILES[(split, "images")])
    labels = _read_idx(_file_path(d, FILES[(split, "labels")]), FILES[(split, "labels")])
    return Split(split, images, labels)


def load_split(
    split: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
) -> Split:
    """Load one verified split.

    Args:
        split: "train" or "test".
        data_dir: see :func:`locate`.
        download: allow a download when no local copy exists.

    Returns:
        The split's images and labels (read-only arrays).

    Raises:
        InvalidArgumentError: unknown split name.
        DatasetError: missing, truncated or corrupt files.
    """
    if split not in SPLITS:
        raise InvalidArgumentError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    directory = locate(data_dir, download=download)
    return _load_cached(str(directory.resolve()), split)


def checksums() -> dict[str, str]:
    """The expected SHA-256 of each decompressed file, by file name."""
    return {f.name: f.sha256 for f in FILES.values()}
