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
from typing import cast

import numpy as np

from fmsearch.errors import FmsearchError, ImageError, InvalidArgumentError
from fmsearch.images.files import image_from_bytes, png_bytes
from fmsearch.images.fmnist import CLASS_NAMES
from fmsearch.models.registry import OPTIONS, lead_method, method_names, stage_names
from fmsearch.models.sift import SiftExtractor, compare
from fmsearch.search.explain import Occlusion
from fmsearch.search.mode import OPTIONS as MODE_OPTIONS
from fmsearch.search.mode import SearchMode
from fmsearch.search.query import Example, ImageSource, Query
from fmsearch.search.searcher import Hit, Searcher, fmnist_item
from fmsearch.serve.config import ServeConfig
from fmsearch.serve.schemas import CompareRequest, ExplainRequest, SearchRequest
from fmsearch.store import QueryFilter, SearchPlan, Store, schema
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


def mode_of(req: SearchRequest, default_method: str) -> SearchMode:
    """The search mode a request names, ``default_method`` where it names
    none (checked where it is made; the same settings give the same, cached,
    value)."""
    method = req.method if req.method is not None else default_method
    return SearchMode.from_options(method, **{name: getattr(req, name) for name in MODE_OPTIONS})


def query_of(req: SearchRequest, source: ImageSource | None = None) -> Query:
    """The query a request asks: its image (``source``, decoded when
    searched), id or examples (base64 examples decoded now: call it off the
    event loop when it has any), and its paging and filters."""

    def example(e: int | str, what: str) -> int | np.ndarray:
        return e if isinstance(e, int) else decode_base64(e, f"{what} example")

    return Query(
        image=source,
        id=req.id,
        positive=tuple(example(e, "positive") for e in req.positive),
        negative=tuple(example(e, "negative") for e in req.negative),
        k=req.k,
        offset=req.offset,
        min_score=req.min_score,
        classes=tuple(req.classes),
        exclude_classes=tuple(req.exclude_classes),
        exact=req.exact,
    )


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
        #: folder galleries served: name -> {"methods", "classes"}
        self.galleries: dict[str, dict] = {}
        #: by the collection a request names (None: FMNIST), its gallery's searcher and the methods it serves
        self._searchers: dict[str | None, Searcher] = {}
        self._served: dict[str | None, list[str]] = {None: self.methods}
        self._skipped: dict[str | None, dict[str, str]] = {None: self.skipped}
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
        wanted = [
            n
            for n in every
            if n in galleries
            or any(
                n == schema.collection_name(m, prefix) or n.startswith(schema.collection_name(m, prefix) + "_")
                for m in (*candidates, *stage_names())
            )
        ]
        self._workdir = tempfile.mkdtemp(prefix="fmsearch-serve-")
        self.store = source.serving_copy(wanted, self._workdir)
        if self.store is not source:
            source.close()
        # the methods run by ONNX Runtime: the service's thread budget, no spinning between requests
        options = {m: {"threads": c.threads, "spin": False} for m in method_names() if "spin" in OPTIONS[m]}
        self.searcher = Searcher(
            self.store, prefix=prefix, data_dir=c.data_dir, hnsw_ef=c.hnsw_ef, acorn=c.acorn, options=options
        )
        self._searchers[None] = self.searcher
        for method in candidates:
            self._load_method(method, names)
        for gallery, method in sorted(galleries.values()):
            self._load_gallery(gallery, method)
        reranker = self.searcher.reranker
        if reranker.name in names:
            try:
                reranker.collection()
                self.rerank = True
            except FmsearchError as err:
                self.skipped[reranker.stage] = str(err)
        logger.info(
            "serving %s%s", ", ".join(self.methods) or "no method", " with the SIFT rerank stage" if self.rerank else ""
        )
        self.state = "ready"

    def _load_method(self, method: str, names: Sequence[str]) -> None:
        name = schema.collection_name(method, self.config.store_settings.prefix)
        if name not in names:
            self.skipped[method] = f"not ingested ({name} not in the store)"
        else:
            try:
                self._searchers[None].collection(method)
                embedder = self._searchers[None].embedder(method)
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
        if gallery not in self._searchers:
            fmnist = self._searchers[None]
            folder = open_gallery(fmnist.store, gallery, prefix=self.config.store_settings.prefix)
            self._searchers[gallery] = fmnist.for_gallery(folder)
        searcher = self._searchers[gallery]
        try:
            info = searcher.collection(method)
            searcher.embedder(method).prepare()
        except FmsearchError as err:
            logger.warning("not serving gallery %s with %s: %s", gallery, method, str(err).splitlines()[0])
            return
        entry = self.galleries.setdefault(gallery, {"methods": [], "classes": []})
        entry["methods"].append(method)
        entry["classes"] = searcher.gallery.classes(info.metadata)
        self._served[gallery] = entry["methods"]
        logger.info("serving gallery %s with %s", gallery, method)

    def searcher_for(self, collection: str | None) -> Searcher:
        """The searcher of the gallery a request names: FMNIST's (None), or a
        served folder gallery's."""
        try:
            return self._searchers[collection]
        except KeyError:
            raise InvalidArgumentError(
                f"collection {collection!r} is not a folder gallery this service serves; it "
                f"serves: {', '.join(self.galleries) or 'none'}",
                param="collection",
            ) from None

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

    def default_method(self, collection: str | None = None) -> str:
        """The method a search that names none uses: the distilled method
        where it is served (for FMNIST, or for the folder gallery
        ``collection``), else the best method served (``lead_method``)."""
        self.searcher_for(collection)  # refuses a gallery it does not serve
        method = lead_method(self._served[collection])
        if method is None:
            raise InvalidArgumentError("no method is served here: there is nothing to search", param="method")
        return method

    def mode_for(self, req: SearchRequest) -> SearchMode:
        """The search mode of a request, the gallery's default method where it
        names none."""
        return mode_of(req, req.method if req.method is not None else self.default_method(req.collection))

    def check_method(self, mode: SearchMode, collection: str | None = None) -> None:
        """Refuse a method the service does not serve (for FMNIST, or for the
        folder gallery ``collection``), saying why."""
        asked = (*mode.methods, *([mode.rescore_with] if mode.rescore_with else []))
        gallery, served = self.searcher_for(collection).gallery, self._served[collection]
        for method in asked:
            if method not in served:
                why = self._skipped.get(collection, {}).get(method) or f"{gallery.name} serves {', '.join(served)}"
                raise InvalidArgumentError(f"{method} is not served: {why}", param="method")
        if mode.rerank is not None and gallery.offers_rerank and not self.rerank:
            why = self.skipped.get(mode.rerank.stage, f"{mode.rerank.stage} is not ingested")
            raise InvalidArgumentError(f"the {mode.rerank.stage} rerank is not served: {why}", param="rerank")

    def search(
        self,
        req: SearchRequest,
        source: ImageSource | None,
        timings: dict[str, float],
        plans: list[SearchPlan] | None = None,
    ) -> list[Hit]:
        """Any mode, one request (a recommend query when it has examples);
        ``source`` gives the uploaded image, if any; ``plans`` receives how
        the store ran each search."""
        mode = self.mode_for(req)
        self.check_method(mode, req.collection)
        return self.searcher_for(req.collection).search(mode, query_of(req, source), timings=timings, plans=plans)

    def search_batch(
        self,
        mode: SearchMode,
        exact: bool,
        items: Sequence[PlainSearch],
        timings: dict[str, float],
        collection: str | None = None,
        plans: list[SearchPlan | None] | None = None,
    ) -> list[list[Hit] | FmsearchError]:
        """Plain searches of one method's collection (of the gallery
        ``collection`` names): decoded, embedded together and searched with
        one batch request (each with its own limit and filter), each paged as
        its query says. An image that does not decode is that item's error.
        ``plans`` receives how the store ran each item's search (None for an
        item that failed)."""
        searcher = self.searcher_for(collection)
        plans = plans if plans is not None else []
        plans[:] = [None] * len(items)
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
            vectors = searcher.embedder(mode.methods[0]).embed(
                np.stack([cast(np.ndarray, q.image) for q in queries])
            )  # decoded above
            t2 = time.perf_counter()
            ran: list[SearchPlan] = []
            found = searcher.search_vectors(
                mode, vectors, [q.limit for q in queries], [items[i].flt for i in good], exact=exact, plans=ran
            )
        except FmsearchError as err:
            if len(good) == 1:
                answers[good[0]] = err
                return answers
            # one item's fault fails the batch request: each again alone, so that only its own answer says so
            for i, query in zip(good, queries, strict=True):
                alone: list[SearchPlan | None] = []
                answers[i] = self.search_batch(
                    mode, exact, [replace(items[i], query=query)], timings, collection, alone
                )[0]
                plans[i] = alone[0]
            return answers
        for i, query, hits, plan in zip(good, queries, found, ran, strict=True):
            answers[i], plans[i] = query.page(hits), plan
        timings.update(embed=t2 - t1, search=time.perf_counter() - t2)
        return answers

    def image_png(self, pid: int, collection: str | None = None) -> bytes:
        """PNG of image ``pid`` of a gallery (FMNIST's, or the folder gallery
        ``collection``): from a served collection's payload, else from the
        image the gallery has of it (FMNIST's data files)."""
        searcher = self.searcher_for(collection)
        payload = self._payload(searcher, pid, collection, [schema.IMAGE])
        if payload is not None:
            return base64.b64decode(payload[schema.IMAGE])
        image = searcher.gallery.image_of(pid)
        if image is None:
            raise InvalidArgumentError(f"no image with id {pid} in gallery {searcher.gallery.name}")
        return png_bytes(image)

    def _payload(self, searcher: Searcher, pid: int, collection: str | None, fields: list[str]) -> dict | None:
        """Point ``pid``'s payload ``fields`` from the first served collection
        of its gallery that holds it (its id checked by the gallery)."""
        searcher.gallery.check_id(pid)
        for method in self._served[collection]:
            records = searcher.store.retrieve(searcher.collection(method).name, [pid], with_payload=fields)
            if records:
                return records[0].payload
        return None

    def item(self, pid: int, collection: str | None = None) -> dict:
        """Image ``pid``'s split, index, class and path (those it has), from
        the payload a served collection holds, else from the FMNIST files."""
        searcher = self.searcher_for(collection)
        keys = ["split", "index", "label", "class_name", "path"]
        payload = self._payload(
            searcher, pid, collection, [schema.SPLIT, schema.INDEX, schema.LABEL, schema.CLASS_NAME, schema.PATH]
        )
        payload = payload if payload is not None else searcher.gallery.describe(pid)
        if payload is None:
            raise InvalidArgumentError(f"no image with id {pid} in gallery {searcher.gallery.name}")
        return {"id": pid, **{k: payload.get(k) for k in keys}}

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
        figures = {
            "a": names[0],
            "b": names[1],
            "keypoints_a": len(c.a),
            "keypoints_b": len(c.b),
            "good_matches": len(c.matches),
            "ratio": req.ratio,
            "lowe_score": c.lowe_score,
            "maxsim_score": c.maxsim_score,
            "upscale": req.upscale,
            "descriptors": "sift" if req.plain else "rootsift",
        }
        return figures, png_bytes(c.drawing())

    def explain(self, req: ExplainRequest) -> dict:
        """Occlusion heatmaps of a pair under a served method (ids of the
        gallery ``req.collection`` names, or uploads): the JSON ``fmsearch
        explain --json`` prints, less its file names."""
        method = req.method if req.method is not None else self.default_method(req.collection)
        self.check_method(SearchMode.of(method), req.collection)
        occlusion = Occlusion(req.patch, req.stride, req.fill)
        if occlusion.variants > MAX_EXPLAIN_WINDOWS:
            raise InvalidArgumentError(
                f"the service explains with at most {MAX_EXPLAIN_WINDOWS} windows an image, and patch "
                f"{req.patch} stride {req.stride} makes {occlusion.variants}: take a larger stride, or "
                "`fmsearch explain` for finer settings",
                param="stride",
            )
        searcher = self.searcher_for(req.collection)
        examples: list[Example] = []
        names: list[str] = []
        for which, example in (("a", req.a), ("b", req.b)):
            if isinstance(example, int):  # its range is checked where its image is read (Searcher.image_of)
                examples.append(example)
                names.append(f"id {example}")
            else:
                examples.append(decode_base64(example, which))
                names.append(f"upload {which}")
        e = searcher.explain(method, examples[0], examples[1], occlusion)
        return {"a": names[0], "b": names[1], **e.to_dict()}

    def filter_for(self, mode: SearchMode, query: Query, collection: str | None = None) -> QueryFilter:
        """The query's filter in the gallery ``collection`` names, checked (an
        unknown class is refused)."""
        return self.searcher_for(collection).filter_of(mode.methods[0], query)

    def collections(self) -> list[dict]:
        return [
            {k: v for k, v in asdict(s).items() if k != "in_use" or v is not None}
            for s in summarize(self._searchers[None].store)
        ]


#: the most windows an image the service occludes for one explanation: 196, 2x2 windows every 2 px (a batch of
#: 394 images); finer settings are `fmsearch explain`'s, where they hold no one else's request up
MAX_EXPLAIN_WINDOWS = 196


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


__all__ = [
    "ImageSource",
    "PlainSearch",
    "SearchService",
    "classes",
    "decode_base64",
    "decode_upload",
    "mode_of",
    "query_of",
]
