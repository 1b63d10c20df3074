"""A folder of the user's images -> one collection per method (a folder gallery).

The same write protocol as the FMNIST ingest (:mod:`fmsearch.ingest.rebuild`):
point ids come from each file's path relative to the folder
(:func:`fmsearch.store.schema.folder_point_id`), so a re-run, or a run after
one that was killed, skips what is stored with the same SHA-256 and writes
only new and changed files: it ends with the collection a clean run makes.
A file that cannot be read as an image never stops the load: it is skipped
and reported with the reason, like every file that is not an image.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fmsearch.errors import FmsearchError, ImageError, InvalidArgumentError
from fmsearch.images.files import encode_png, image_from_bytes
from fmsearch.images.folders import FolderImage, read_file, relative_path, scan
from fmsearch.ingest.rebuild import build_index, write_target
from fmsearch.models.base import Embedder
from fmsearch.store import Store, schema
from fmsearch.store.gallery import open_gallery

logger = logging.getLogger(__name__)


@dataclass
class FolderReport:
    """What a folder ingest (or an add) did."""

    collection: str
    method: str
    files: int = 0
    written: int = 0
    unchanged: int = 0
    #: (relative path, why) of every image file that was not stored
    bad: list[tuple[str, str]] = field(default_factory=list)
    #: relative paths of the files that are not images
    unsupported: list[str] = field(default_factory=list)
    #: points stored whose file is no longer in the folder (kept: `fmsearch delete` removes them)
    gone: int = 0
    points_total: int = 0
    seconds: float = 0.0
    rebuilt: bool = False


def _stored(store: Store, name: str, ids: np.ndarray) -> dict[int, tuple[str, str]]:
    """id -> (path, sha256) of every stored point."""
    out: dict[int, tuple[str, str]] = {}
    for lo in range(0, len(ids), 1000):
        for r in store.retrieve(name, [int(i) for i in ids[lo : lo + 1000]], with_payload=[schema.PATH, schema.SHA256]):
            out[r.id] = (str(r.payload.get(schema.PATH)), str(r.payload.get(schema.SHA256)))
    return out


def _classes(existing: Sequence[str], new: Sequence[str]) -> list[str]:
    """The collection's classes: the stored ones keep their labels, new ones follow in order."""
    return list(existing) + sorted(set(new) - set(existing))


def write_images(
    store: Store,
    embedder: Embedder,
    name: str,
    images: Sequence[FolderImage],
    stored: dict[int, tuple[str, str]],
    classes: list[str],
    report: FolderReport,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Embed and upsert every image not stored with the same hash; bad files
    go to ``report.bad``."""
    claimed: dict[int, str] = {pid: path for pid, (path, _) in stored.items()}  # what holds each id
    for lo in range(0, len(images), batch_size):
        chunk = images[lo : lo + batch_size]
        ids, pixels, payloads = [], [], []
        for item in chunk:
            pid = schema.folder_point_id(item.rel_path)
            try:
                data, digest = read_file(item.path)
                if claimed.setdefault(pid, item.rel_path) != item.rel_path:
                    raise InvalidArgumentError(f"its point id collides with {claimed[pid]}'s")
                if stored.get(pid) == (item.rel_path, digest):
                    report.unchanged += 1
                    continue
                image = image_from_bytes(data, item.rel_path)
            except FmsearchError as err:
                report.bad.append((item.rel_path, str(err).removeprefix(f"{item.rel_path}: ")))
                continue
            ids.append(pid)
            pixels.append(image)
            payloads.append(
                schema.make_folder_payload(item.rel_path, digest, encode_png(image), item.class_name, classes)
            )
        if ids:
            store.upsert(name, ids, embedder.embed(np.stack(pixels)), payloads)
            report.written += len(ids)
            logger.info("%s: wrote %d images (%d written so far)", name, len(ids), report.written)
        if progress:
            progress(len(chunk))


def ingest_folder(
    store: Store,
    embedder: Embedder,
    directory: str,
    gallery: str,
    *,
    recursive: bool = True,
    recreate: bool = False,
    batch_size: int = 256,
    prefix: str = schema.DEFAULT_PREFIX,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> FolderReport:
    """Ingest every image file under ``directory`` into the gallery's
    collection for ``embedder``.

    Raises:
        ImageError: the folder does not exist.
        InvalidArgumentError: a bad gallery name or batch size; the folder
            holds no image file.
        CollectionMismatchError: the collection was built by another model.
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"batch size must be at least 1, got {batch_size}", param="batch_size")
    folder_gallery = open_gallery(store, gallery, prefix=prefix)
    t0 = time.perf_counter()
    found = scan(directory, recursive)
    if not found.images:
        raise InvalidArgumentError(
            f"{directory}: no image file ({', '.join(found.unsupported[:3]) or 'empty'}"
            f"{', ...' if len(found.unsupported) > 3 else ''})"
        )
    embedder.prepare()
    name = folder_gallery.collection(embedder.name)
    existing = store.info(name).metadata.get(schema.META_CLASSES, []) if store.exists(name) and not recreate else []
    classes = _classes(existing, found.classes)
    root = str(Path(directory).resolve())
    spec = schema.folder_spec_for(embedder.describe(), gallery, root, classes, name, planned=len(found.images))
    report = FolderReport(name, embedder.name, files=len(found.images), unsupported=found.unsupported)
    with write_target(store, spec, recreate=recreate) as target:
        if on_plan:
            on_plan(len(found.images))
        store.set_metadata(target.name, {schema.META_CLASSES: classes, schema.META_ROOT: root})
        stored = _stored(store, target.name, target.stored)
        write_images(store, embedder, target.name, found.images, stored, classes, report, batch_size, progress)
        build_index(store, target.name)
        report.points_total = store.count(target.name)
        here = {schema.folder_point_id(i.rel_path) for i in found.images}
        report.gone = sum(pid not in here for pid in stored)
        store.set_metadata(target.name, {schema.META_COMPLETE: True})
        report.rebuilt = target.rebuilding
    report.seconds = time.perf_counter() - t0
    logger.info(
        "%s: %d written, %d unchanged, %d bad, %d unsupported",
        name,
        report.written,
        report.unchanged,
        len(report.bad),
        len(report.unsupported),
    )
    return report


def add_images(
    store: Store, targets: Sequence[tuple[str, Embedder]], paths: Sequence[str], class_name: str | None = None
) -> list[FolderReport]:
    """Add image files to collections of a gallery (``targets``: each
    collection with its method's embedder), the index kept (no rebuild):
    each file is known by its path relative to the gallery's folder (its file
    name when it lies outside), its class from ``class_name`` or, inside the
    folder of a gallery with classes, its first-level subfolder. Every
    collection and every file is checked before anything is written.

    Raises:
        ImageError: a file is missing or not an image.
        CollectionMismatchError: a collection was built by another model.
    """
    metas = []
    for name, embedder in targets:
        metas.append(store.info(name).metadata)
        schema.check_compatible(name, metas[-1], embedder.describe())
    for path in paths:
        if not Path(path).is_file():
            raise ImageError(f"{path}: no such file")
        image_from_bytes(read_file(Path(path))[0], str(path))
    reports = []
    for (name, embedder), meta in zip(targets, metas, strict=True):
        root, classes = meta.get(schema.META_ROOT), list(meta.get(schema.META_CLASSES, []))
        images = []
        for path in paths:
            rel = relative_path(path, root)
            cls = class_name if class_name is not None else (rel.split("/", 1)[0] if classes and "/" in rel else None)
            images.append(FolderImage(rel, Path(path), cls))
        new = _classes(classes, [i.class_name for i in images if i.class_name is not None])
        if new != classes:
            store.set_metadata(name, {schema.META_CLASSES: new})
        ids = np.array([schema.folder_point_id(i.rel_path) for i in images], np.int64)
        report = FolderReport(name, embedder.name, files=len(images))
        write_images(store, embedder, name, images, _stored(store, name, ids), new, report)
        report.points_total = store.count(name)
        reports.append(report)
    return reports


def delete_images(
    store: Store, names: Sequence[str], paths: Sequence[str], ids: Sequence[int]
) -> list[tuple[str, int, int]]:
    """Remove images, by path (relative to the gallery's folder, or a file
    inside it) or by id, from each collection; every one must be stored in
    each, or nothing is removed. Returns (collection, count before, after).

    Raises:
        InvalidArgumentError: an image is not stored.
    """
    for i in ids:
        if not 0 <= int(i) <= schema.MAX_FOLDER_ID:
            raise InvalidArgumentError(f"id {i} is not a folder image's point id (0-{schema.MAX_FOLDER_ID})")
    plan = []
    for name in names:
        root = store.info(name).metadata.get(schema.META_ROOT)
        wanted = {
            schema.folder_point_id(relative_path(p, root) if Path(p).exists() else Path(p).as_posix()): p for p in paths
        }
        wanted.update({int(i): f"id {i}" for i in ids})
        held = {r.id for r in store.retrieve(name, list(wanted), with_payload=False)}
        missing = [what for pid, what in wanted.items() if pid not in held]
        if missing:
            raise InvalidArgumentError(f"{missing[0]} is not in {name}; nothing was deleted")
        plan.append((name, list(wanted)))
    done = []
    for name, pids in plan:
        before = store.count(name)
        store.delete_points(name, pids)
        done.append((name, before, store.count(name)))
    return done
