"""A folder of image files: what a folder gallery is ingested from.

Every file under the folder is either an image to read (by its extension:
the formats image-file queries take) or reported as unsupported, never
skipped in silence. When every image sits in a first-level subfolder (the
image-folder convention: ``DIR/<class>/<file>``), that subfolder's name is
the image's class; otherwise no image has a class.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from fmsearch.errors import ImageError

#: the extensions read as images (Pillow's formats that image-file queries take)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class FolderImage:
    """An image file of a folder: its path relative to the folder (POSIX
    separators), where it is, and its class (or None)."""

    rel_path: str
    path: Path
    class_name: str | None


@dataclass
class FolderScan:
    """What a folder holds: its images (sorted by relative path), the files
    that are not images, and the classes (sorted; empty without the
    convention)."""

    images: list[FolderImage] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)


def scan(directory: str | os.PathLike, recursive: bool = True) -> FolderScan:
    """The image files under ``directory`` (subfolders too, when
    ``recursive``), in a stable order.

    Raises:
        ImageError: the folder does not exist or is not a folder.
    """
    root = Path(directory)
    if not root.is_dir():
        raise ImageError(f"{root}: {'not a folder' if root.exists() else 'no such folder'}")
    found: list[str] = []
    unsupported: list[str] = []
    walker = os.walk(root) if recursive else [(str(root), [], [e.name for e in os.scandir(root) if e.is_file()])]
    for here, dirs, files in walker:
        dirs.sort()
        for name in sorted(files):
            rel = Path(here, name).relative_to(root).as_posix()
            (found if Path(name).suffix.lower() in IMAGE_EXTENSIONS else unsupported).append(rel)
    found.sort()
    convention = recursive and bool(found) and all("/" in rel for rel in found)
    images = [FolderImage(rel, root / rel, rel.split("/", 1)[0] if convention else None) for rel in found]
    classes = sorted({i.class_name for i in images if i.class_name is not None})
    return FolderScan(images, sorted(unsupported), classes)


def relative_path(path: str | os.PathLike, root: str | os.PathLike | None) -> str:
    """The path a file is known by in a gallery ingested from ``root``: its
    path relative to ``root`` when it lies inside, else its file name."""
    p = Path(path).resolve()
    if root is not None:
        try:
            return p.relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return p.name


def read_file(path: Path) -> tuple[bytes, str]:
    """A file's bytes and their SHA-256 (hex).

    Raises:
        ImageError: it cannot be read.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImageError(f"{path}: cannot be read ({err.strerror or err})") from err
    return data, hashlib.sha256(data).hexdigest()
