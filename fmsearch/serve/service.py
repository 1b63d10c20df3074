"""What the service holds and does: the store (a serving copy of it), one
Searcher with every ingested method's model loaded once, and the blocking
work of each request. The app runs these methods off the event loop."""

from __future__ import annotations

import base64
import binascii
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from fmsearch.errors import FmsearchError, ImageError, InvalidArgumentError
from fmsearch.images.files import image_from_bytes, png_bytes
from fmsearch.images.fmnist import CLASS_NAMES
from fmsearch.models.registry import OPTIONS, method_names, stage_names
from fmsearch.models.sift import SiftExtractor, compare
from fmsearch.search.mode import OPTIONS as MODE_OPTIONS
from fmsearch.search.mode import SearchMode
from fmsearch.search.query import ImageSource, Query
from fmsearch.search.searcher import Hit, Searcher, fmnist_item
from fmsearch.serve.config import ServeConfig
from fmsearch.serve.schemas import CompareRequest, SearchRequest
from fmsearch.store import QueryFilter, Store, schema
from fmsearch.store.gallery import open_gallery
from fmsearch.store.listing import summarize

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlainSearch:
    """One request of the micro-batched path: a query by an uploaded image
    (not decoded yet: its :data:`ImageSource`), searched in a plain
    (single-method) mode and decoded in the batch."""

    query: Query
    flt: QueryFilter


def decode_upload(data: bytes, name: str = "image") -> np.ndarray:
    """An uploaded image file's bytes to a (28, 28) uint8 image."""
    return image_from_bytes(data, name)


def decode_base64(text: str, name: str = "image") -> np.ndarray:
    """A base64-encoded image file to a (28, 28) uint8 image."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ImageError(f"{name}: not base64 ({err})") from err
    return image_from_bytes(data, name)


def mode_of(req: SearchRequest) -> SearchMode:
    """The search mode a request names (checked where it is made; the same
    settings give the same, cached, value)."""
    return SearchMode.from_options(req.method, **{name: getattr(req, name) for name in MODE_OPTIONS})


def query_of(req: SearchRequest, source: ImageSource | None = None) -> Query:
    """The query a request asks: its image (``source``, decoded when
    searched), id or examples (base64 examples decoded now: call it off the
    event loop when it has any), and its paging and filters."""

    def example(e: int | str, what: str) -> int | np.ndarray:
        return e if isinstance(e, int) else decode_base64(e, f"{what} example")

    return Query(image=source, id=req.id, positive=tuple(example(e, "positive") for e in req.positive),
                 negative=tuple(example(e, "negative") for e in req.negative), k=req.k, offset=req.offset,
                 min_score=req.min_score, classes=tuple(req.classes), exclude_classes=tuple(req.exclude_classes),
                 exact=req.exact)


class SearchService:
    """The store, the Searcher and the loaded methods of one process."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.state = "loading"
        self.methods: list[str] = []
        self.skipped: dict[str, str] = {}
        self.rerank = False
        self.store: Store | None = None
        self.searcher: Searcher | None = None
        #: folder galleries served: name -> {"methods", "classes"}, and each one's searcher
        self.galleries: dict[str, dict] = {}
        self._gallery_searchers: dict[str, Searcher] = {}
        self._workdir: str | None = None
        self._lock = threading.Lock()

    # -- start and stop ---------------------------------------------------------

    def load(self) -> None:
        """Open the store (a serving copy of the collections), load every
        ingested method's model, warm it up; log what is served and what not."""
        c, prefix = self.config, self.config.store_settings.prefix
        source = c.store_settings.open()
        candidates = c.methods or method_names()
        every = source.collections()
        names = [n for n in every if n.startswith(prefix)]
        galleries = _gallery_collections(source, every, candidates)  # folder galleries: by their metadata
        wanted = [n for n in every if n in galleries or any(n == schema.collection_name(m, prefix) or n.startswith(
            schema.collection_name(m, prefix) + "_") for m in (*candidates, *stage_names()))]
        self._workdir = tempfile.mkdtemp(prefix="fmsearch-serve-")
        self.store = source.serving_copy(wanted, self._workdir)
        if self.store is not source:
            source.close()
        # the methods run by ONNX Runtime: the service's thread budget, no spinning between requests
        options = {m: {"threads": c.threads, "spin": False} for m in method_names() if "spin" in OPTIONS[m]}
        self.searcher = Searcher(self.store, prefix=prefix, data_dir=c.data_dir, hnsw_ef=c.hnsw_ef,
                                acorn=c.acorn, options=options)
        for method in candidates:
            self._load_method(method, names)
        for name, (gallery, method) in sorted(galleries.items()):
            self._load_gallery(gallery, method)
        reranker = self.searcher.reranker
        if reranker.name in names:
            try:
                reranker.collection()
                self.rerank = True
            except FmsearchError as err:
                self.skipped[reranker.stage] = str(err)
        logger.info("serving %s%s", ", ".join(self.methods) or "no method",
                    " with the SIFT rerank stage" if self.rerank else "")
        self.state = "ready"

    def _load_method(self, method: str, names: Sequence[str]) -> None:
        name = schema.collection_name(method, self.config.store_settings.prefix)
        if name not in names:
            self.skipped[method] = f"not ingested ({name} not in the store)"
        else:
            try:
                self.searcher.collection(method)
                embedder = self.searcher.embedder(method)
                embedder.prepare()
                embedder.embed(np.zeros((1, 28, 28), np.uint8))  # warm-up: the first call pays for set-up
                self.methods.append(method)
                logger.info("loaded %s (%s)", method, getattr(embedder, "runs_on", "no model"))
                return
            except FmsearchError as err:
                self.skipped[method] = str(err).splitlines()[0]
        logger.warning("not serving %s: %s", method, self.skipped[method])

    def _load_gallery(self, gallery: str, method: str) -> None:
        """Serve one method's collection of a folder gallery (its model
        shared with FMNIST's)."""
        if gallery not in self._gallery_searchers:
            folder = open_gallery(self.store, gallery, prefix=self.config.store_settings.prefix)
            self._gallery_searchers[gallery] = self.searcher.for_gallery(folder)
        searcher = self._gallery_searchers[gallery]
        try:
            info = searcher.collection(method)
            searcher.embedder(method).prepare()
        except FmsearchError as err:
            logger.warning("not serving gallery %s with %s: %s", gallery, method, str(err).splitlines()[0])
            return
        entry = self.galleries.setdefault(gallery, {"methods": [], "classes": []})
        entry["methods"].append(method)
        entry["classes"] = list(info.metadata.get(schema.META_CLASSES, []))
        logger.info("serving gallery %s with %s", gallery, method)

    def searcher_for(self, collection: str | None) -> Searcher:
        """FMNIST's searcher, or a served folder gallery's."""
        if collection is None:
            return self.searcher
        if collection not in self.galleries:
            raise InvalidArgumentError(f"collection {collection!r} is not a folder gallery this service serves; it "
                                       f"serves: {', '.join(self.galleries) or 'none'}", param="collection")
        return self._gallery_searchers[collection]

    def close(self) -> None:
        """Close the store (its locks released) and remove the serving copy."""
        with self._lock:
            if self.store is not None:
                self.store.close()
                self.store = None
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None
        self.state = "stopped"

    # -- requests -------------------------------------------------------------------

    def check_method(self, mode: SearchMode, collection: str | None = None) -> None:
        """Refuse a method the service does not serve (for FMNIST, or for the
        folder gallery ``collection``), saying why."""
        asked = (*mode.methods, *([mode.rescore_with] if mode.rescore_with else []))
        if collection is not None:
            self.searcher_for(collection)  # a gallery not served is refused first
            methods = self.galleries[collection]["methods"]
            for method in asked:
                if method not in methods:
                    raise InvalidArgumentError(f"{method} is not served for gallery {collection}: it serves "
                                               f"{', '.join(methods)}", param="method")
            return
        for method in asked:
            if method not in self.methods:
                why = self.skipped.get(method, "not a method this service loaded")
                raise InvalidArgumentError(f"{method} is not served: {why}", param="method")
        if mode.rerank is not None and not self.rerank:
            why = self.skipped.get(mode.rerank.stage, f"{mode.rerank.stage} is not ingested")
            raise InvalidArgumentError(f"the {mode.rerank.stage} rerank is not served: {why}", param="rerank")

    def search(self, req: SearchRequest, source: ImageSource | None, timings: dict[str, float]) -> list[Hit]:
        """Any mode, one request (a recommend query when it has examples);
        ``source`` gives the uploaded image, if any."""
        mode = mode_of(req)
        self.check_method(mode, req.collection)
        return self.searcher_for(req.collection).search(mode, query_of(req, source), timings=timings)

    def search_batch(self, mode: SearchMode, exact: bool, items: Sequence[PlainSearch],
                     timings: dict[str, float]) -> list[list[Hit] | FmsearchError]:
        """Plain searches of one method's collection: decoded, embedded
        together and searched with one batch request (each with its own limit
        and filter), each paged as its query says. An image that does not
        decode is that item's error."""
        t0 = time.perf_counter()
        queries: list[Query] = []
        answers: list[list[Hit] | FmsearchError] = []
        for item in items:
            try:
                queries.append(item.query.decoded())
                answers.append([])
            except FmsearchError as err:
                answers.append(err)
        good = [i for i, a in enumerate(answers) if not isinstance(a, FmsearchError)]
        t1 = time.perf_counter()
        timings["decode"] = t1 - t0
        if not good:
            return answers
        try:
            vectors = self.searcher.embedder(mode.methods[0]).embed(np.stack([q.image for q in queries]))
            t2 = time.perf_counter()
            found = self.searcher.search_vectors(mode, vectors, [q.limit for q in queries],
                                                 [items[i].flt for i in good], exact=exact)
        except FmsearchError as err:
            if len(good) == 1:
                answers[good[0]] = err
                return answers
            # one item's fault fails the batch request: each again alone, so that only its own answer says so
            for i, query in zip(good, queries, strict=True):
                answers[i] = self.search_batch(mode, exact, [replace(items[i], query=query)], timings)[0]
            return answers
        for i, query, hits in zip(good, queries, found, strict=True):
            answers[i] = query.page(hits)
        timings.update(embed=t2 - t1, search=time.perf_counter() - t2)
        return answers

    def image_png(self, pid: int, collection: str | None = None) -> bytes:
        """PNG of gallery image ``pid``: from a loaded collection's payload,
        else from the FMNIST files (a folder gallery's: from its payload)."""
        if collection is not None:
            return base64.b64decode(self._gallery_point(pid, collection).payload[schema.IMAGE])
        if pid > schema.MAX_POINT_ID:
            raise InvalidArgumentError(f"id {pid} is not an FMNIST id (0-{schema.MAX_POINT_ID}); a folder "
                                       "gallery's image needs its collection")
        for method in self.methods:
            name = self.searcher.collection(method).name
            records = self.store.retrieve(name, [pid], with_payload=[schema.IMAGE])
            if records:
                return base64.b64decode(records[0].payload[schema.IMAGE])
        return png_bytes(fmnist_item(pid, self.config.data_dir).image)

    def _gallery_point(self, pid: int, collection: str):
        searcher = self.searcher_for(collection)
        name = searcher.collection(self.galleries[collection]["methods"][0]).name
        records = self.store.retrieve(name, [pid], with_payload=[schema.IMAGE, schema.PATH, schema.LABEL,
                                                                 schema.CLASS_NAME])
        if not records:
            raise InvalidArgumentError(f"no image with id {pid} in gallery {collection}")
        return records[0]

    def item(self, pid: int, collection: str | None = None) -> dict:
        """Id ``pid``'s split, index and class, from the FMNIST files (a
        folder gallery's image: its path and class)."""
        if collection is not None:
            payload = self._gallery_point(pid, collection).payload
            return {"id": pid, "split": None, "index": None, "label": payload.get(schema.LABEL),
                    "class_name": payload.get(schema.CLASS_NAME), "path": payload.get(schema.PATH)}
        item = fmnist_item(pid, self.config.data_dir)
        return {"id": item.id, "split": item.split, "index": item.index, "label": item.label,
                "class_name": CLASS_NAMES[item.label]}

    def preview(self, data: bytes) -> bytes:
        """An image file as every method sees it: the 28x28 image, as PNG."""
        return png_bytes(decode_upload(data))

    def compare(self, req: CompareRequest) -> tuple[dict, bytes]:
        """SIFT comparison of two images (ids or uploads): the figures
        ``fmsearch compare --json`` prints, and the drawing as PNG."""
        images, names = [], []
        for which, example in (("a", req.a), ("b", req.b)):
            if isinstance(example, int):
                item = fmnist_item(example, self.config.data_dir)
                images.append(item.image)
                names.append(f"id {item.id} ({item.split} {item.index}, {item.class_name})")
            else:
                images.append(decode_base64(example, which))
                names.append(f"upload {which}")
        c = compare(images[0], images[1], SiftExtractor(upscale=req.upscale, root=not req.plain), req.ratio)
        figures = {"a": names[0], "b": names[1], "keypoints_a": len(c.a), "keypoints_b": len(c.b),
                   "good_matches": len(c.matches), "ratio": req.ratio, "lowe_score": c.lowe_score,
                   "maxsim_score": c.maxsim_score, "upscale": req.upscale,
                   "descriptors": "sift" if req.plain else "rootsift"}
        return figures, png_bytes(c.drawing())

    def filter_for(self, mode: SearchMode, query: Query) -> QueryFilter:
        """The query's filter on FMNIST, checked (an unknown class is refused)."""
        return self.searcher.filter_of(mode.methods[0], query)

    def collections(self) -> list[dict]:
        return [{k: v for k, v in asdict(s).items() if k != "in_use" or v is not None} for s in summarize(self.store)]


def _gallery_collections(store: Store, names: Sequence[str], methods: Sequence[str]) -> dict[str, tuple[str, str]]:
    """The folder galleries' collections among ``names`` whose method is one
    of ``methods``: name -> (gallery, method)."""
    found = {}
    for name in names:
        meta = store.info(name).metadata
        if meta.get(schema.META_GALLERY) and meta.get(schema.META_METHOD) in methods:
            found[name] = (meta[schema.META_GALLERY], meta[schema.META_METHOD])
    return found


def classes() -> list[dict]:
    return [{"label": i, "name": name} for i, name in enumerate(CLASS_NAMES)]


__all__ = ["ImageSource", "PlainSearch", "SearchService", "classes", "decode_base64", "decode_upload", "mode_of",
           "query_of"]
