// The fmsearch page: a face over the HTTP API (docs/serve.md), nothing it cannot ask the API.
// State flows one way: the controls and the query make a search, the search's answer is drawn;
// every search made by the user is pushed to the URL, so that back goes back one search.

import { Insight } from "./insight.js";

const $ = (id) => document.getElementById(id);
const FMNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
  "Ankle boot"];
const TEST_IDS = [60000, 69999];
const MAX_STATE_IMAGE = 1 << 20; // an upload kept in the history (for back) up to this many base64 characters

let apiKey = sessionStorage.getItem("fmsearch-api-key") || "";
let health = null; // what the service serves
let query = null; // {kind: "id", id} or {kind: "image", b64, name}
let queryLabel = null; // the query's class, when it is a gallery or test image
let feedback = { liked: new Set(), disliked: new Set(), rounds: [] };
let latest = 0; // the newest search asked for: an older one's answer is dropped, never drawn over it
let explained = { methods: [], rerank: null }; // what made the results on the page ("why?" explains it)
let whyTicket = 0; // the newest "why?" asked for: an older answer is dropped
let CLASSES = FMNIST_CLASSES; // the classes of the collection searched: FMNIST's, or a folder gallery's
const chipState = new Map(CLASSES.map((c) => [c, "any"]));
const images = new Map(); // API image path -> what an <img> shows (a blob: URL when the key must be sent)

// -- the API ---------------------------------------------------------------------------------------

class ApiError extends Error {}

async function api(path, { json, body, type = "json" } = {}) {
  const headers = {};
  if (apiKey) headers["X-API-Key"] = apiKey;
  if (json !== undefined) headers["Content-Type"] = "application/json"; // a FormData body sets its own
  let response;
  try {
    response = await fetch(path, {
      method: json !== undefined || body !== undefined ? "POST" : "GET",
      headers, body: json !== undefined ? JSON.stringify(json) : body,
    });
  } catch {
    throw new ApiError("The service cannot be reached: is fmsearch serve running?");
  }
  if (response.status === 401) {
    $("key-form").hidden = false;
    throw new ApiError("This service needs its API key: enter it above.");
  }
  if (!response.ok) {
    let message = `The service answered ${response.status}.`;
    try { message = (await response.json()).error || message; } catch { /* not JSON: keep the status */ }
    throw new ApiError(message);
  }
  return type === "blob" ? response.blob() : response.json();
}

function showError(err) {
  const box = $("error");
  if (!err) { box.hidden = true; box.textContent = ""; return; }
  box.textContent = err instanceof ApiError ? err.message : `Something went wrong: ${err.message || err}`;
  box.hidden = false;
  if (!(err instanceof ApiError)) console.warn(err); // a page fault, kept visible to developers
}

// An image of the API. With an API key, an <img> cannot send it: the image is fetched with the key and
// shown from a blob: URL (kept, since an id's image never changes).
function showImage(img, path) {
  if (!apiKey) { img.src = path; return; }
  if (!images.has(path)) images.set(path, api(path, { type: "blob" }).then((b) => URL.createObjectURL(b)));
  images.get(path).then((url) => { img.src = url; }, () => { img.alt += " (not loaded)"; });
}

async function guarded(work) {
  try {
    showError(null);
    await work();
  } catch (err) {
    showError(err);
  }
}

// the gallery's map and duplicates; a point or a duplicate clicked searches by it
const insight = new Insight({ api, showImage, searchId: (id) => guarded(() => search({ kind: "id", id })) });

// The folder gallery searched (fmsearch ingest --images), or null: FMNIST.
function collection() {
  return $("collection").value || null;
}

// What an id means: an FMNIST id, or the searched gallery's point id.
function inCollection(path) {
  const c = collection();
  return c ? `${path}?collection=${encodeURIComponent(c)}` : path;
}

// -- the controls ----------------------------------------------------------------------------------

function fillSelect(select, values, keepFirst) {
  const first = keepFirst ? [...select.options].slice(0, 1) : [];
  select.replaceChildren(...first, ...values.map((v) => new Option(v, v)));
}

function drawChips() {
  $("chips").replaceChildren(...CLASSES.map((name) => {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "chip";
    chip.textContent = name;
    chip.dataset.state = chipState.get(name);
    chip.setAttribute("aria-label", `${name}: ${chipState.get(name)}`);
    chip.dataset.key = `chip:${name}`;
    chip.addEventListener("click", () => {
      const next = { any: "only", only: "never", never: "any" }[chipState.get(name)];
      chipState.set(name, next);
      keepingFocus(drawChips);
      rerun();
    });
    return chip;
  }));
}

function settings() {
  const method = $("method").value;
  const gallery = collection();
  const fuse = $("fuse").value;
  return {
    method: fuse && fuse !== method ? `${method}+${fuse}` : method,
    k: $("k").value === "" || !Number.isFinite(Number($("k").value)) ? 10
      : Math.max(1, Math.min(100, Math.round(Number($("k").value)))),
    classes: CLASSES.filter((c) => chipState.get(c) === "only"),
    exclude_classes: CLASSES.filter((c) => chipState.get(c) === "never"),
    rerank: $("rerank").checked ? "sift" : null,
    quantization: $("quantization").value,
    rescore_with: $("rescore-with").value || null,
    fusion: $("fusion").value,
    expand: $("expand").value === "" || !Number.isFinite(Number($("expand").value)) ? 0
      : Math.max(0, Math.min(100, Math.round(Number($("expand").value)))),
    ...(gallery ? { collection: gallery } : {}),
  };
}

function applySettings(s) {
  $("collection").value = s.collection && health.galleries[s.collection] ? s.collection : "";
  useCollection();
  const [method, fuse] = (s.method || "").split("+");
  if (method && methodsNow().includes(method)) $("method").value = method;
  $("fuse").value = fuse && methodsNow().includes(fuse) ? fuse : "";
  $("k").value = s.k || 10;
  for (const c of CLASSES) chipState.set(c, "any");
  for (const c of s.classes || []) if (chipState.has(c)) chipState.set(c, "only");
  for (const c of s.exclude_classes || []) if (chipState.has(c)) chipState.set(c, "never");
  $("rerank").checked = s.rerank === "sift";
  $("quantization").value = s.quantization || "none";
  $("rescore-with").value = s.rescore_with || "";
  $("fusion").value = s.fusion || "rrf";
  $("expand").value = s.expand || 0;
  drawChips();
}

function searchBody(q, s) {
  // a fusion's settings only with methods joined by +: the service refuses an option the mode would not use
  const fused = s.method.includes("+");
  const fields = { method: s.method, k: s.k, quantization: s.quantization, ...(fused ? { fusion: s.fusion } : {}),
    ...(s.collection ? { collection: s.collection } : {}),
    ...(s.rerank ? { rerank: s.rerank } : {}), ...(s.rescore_with ? { rescore_with: s.rescore_with } : {}),
    ...(s.expand ? { expand: s.expand } : {}) };
  const weights = fused ? s.fusion_weights || [] : [];
  if (q.kind === "id") {
    return { json: { id: q.id, ...fields, classes: s.classes, exclude_classes: s.exclude_classes,
      ...(weights.length ? { fusion_weights: weights } : {}) } };
  }
  // an upload goes as the file itself, in a multipart form: no base64 to inflate it past the upload limit
  const form = new FormData();
  form.append("image", new Blob([base64ToBytes(q.b64)], { type: q.type || "image/png" }), q.name);
  for (const [name, value] of Object.entries(fields)) form.append(name, String(value));
  for (const c of s.classes) form.append("class", c);
  for (const c of s.exclude_classes) form.append("exclude_class", c);
  for (const w of weights) form.append("fusion_weights", String(w));
  return { body: form };
}

// -- the URL: one history entry per search ----------------------------------------------------------

function toUrl(q, s) {
  const p = new URLSearchParams();
  if (s.collection) p.set("collection", s.collection);
  if (q.kind === "id") p.set("id", q.id);
  p.set("method", s.method);
  p.set("k", s.k);
  if (s.classes.length) p.set("class", s.classes.join(","));
  if (s.exclude_classes.length) p.set("exclude", s.exclude_classes.join(","));
  if (s.rerank) p.set("rerank", s.rerank);
  if (s.quantization !== "none") p.set("quantization", s.quantization);
  if (s.rescore_with) p.set("rescore_with", s.rescore_with);
  if (s.method.includes("+")) p.set("fusion", s.fusion);
  if (s.expand) p.set("expand", s.expand);
  return `?${p}`;
}

function fromUrl() {
  const p = new URLSearchParams(location.search);
  const list = (name) => (p.get(name) ? p.get(name).split(",") : []); // checked against the collection's
  return {
    query: p.has("id") ? { kind: "id", id: Number(p.get("id")) } : null,
    settings: { collection: p.get("collection"), method: p.get("method"), k: Number(p.get("k")) || 10,
      classes: list("class"),
      exclude_classes: list("exclude"), rerank: p.get("rerank"), quantization: p.get("quantization") || "none",
      rescore_with: p.get("rescore_with"), fusion: p.get("fusion") || "rrf",
      expand: Math.max(0, Math.min(100, Math.round(Number(p.get("expand")) || 0))) },
  };
}

function remember(q, s, replace = false) {
  const state = { query: q.kind === "id" || q.b64.length <= MAX_STATE_IMAGE ? q : null, settings: s };
  (replace ? history.replaceState : history.pushState).call(history, state, "", toUrl(q, s));
}

window.addEventListener("popstate", (event) => {
  if (!health) return; // still loading: there is nothing to restore into yet
  const state = event.state || fromUrl();
  applySettings(state.settings);
  if (state.query) guarded(() => search(state.query, { push: false }));
  else clearResults(event.state ? "That search was an upload too large to keep in the browser's history." : "");
});

function clearResults(message) {
  latest += 1; // whatever is still on its way is no longer wanted
  query = null;
  queryLabel = null;
  $("query-view").hidden = true;
  $("grid").replaceChildren();
  $("summary").textContent = message;
  $("rounds-box").hidden = true;
  $("methods").hidden = true;
  insight.mark(null, []);
}

// -- searching ---------------------------------------------------------------------------------------

// What the page shows of a query: its label (an id's class) and the image as fmsearch sees it.
async function describe(q) {
  if (q.kind === "id") return { item: await api(inCollection(`/api/items/${q.id}`)), seen: null };
  const png = await api("/api/preview", { body: base64ToBytes(q.b64), type: "blob" });
  return { item: null, seen: URL.createObjectURL(png) };
}

function showQuery(q, { item, seen }) {
  query = q;
  queryLabel = item ? item.label : null;
  $("query-original").hidden = Boolean(item); // an id's image is already 28x28: shown once
  if (item) showImage($("query-seen"), inCollection(`/api/images/${q.id}.png`));
  else {
    $("query-original").src = `data:${q.type || "image/png"};base64,${q.b64}`;
    $("query-seen").src = seen;
  }
  $("query-caption").textContent = item && item.path !== undefined
    ? `id ${q.id}: ${item.path}, ${item.class_name || "no class"}`
    : item ? `id ${q.id}: ${item.split} image ${item.index}, ${item.class_name}`
    : `${q.name}: as given, and as fmsearch sees it (28x28)`;
  $("query-view").hidden = false;
}

// A search: nothing on the page changes until its answer is in, and only if no newer search was asked
// for meanwhile; a new search ends the feedback rounds and the side-by-side view of the one before.
async function search(q, { push = true, replace = false } = {}) {
  const ticket = ++latest;
  const s = settings();
  const [view, answer] = await Promise.all([q === query ? null : describe(q),
    api("/api/search", searchBody(q, s))]);
  if (ticket !== latest) return;
  if (view) showQuery(q, view);
  feedback = { liked: new Set(), disliked: new Set(), rounds: [] };
  $("rounds-box").hidden = true;
  $("methods").hidden = true;
  drawResults(answer, s);
  insight.mark(q.kind === "id" ? q.id : null, answer.hits.map((h) => h.id));
  if (push) remember(q, s, replace);
}

function rerun() {
  if (query) guarded(() => search(query));
}

function precision(list) {
  if (queryLabel === null || !list.length) return null;
  return list.filter((h) => h.label === queryLabel).length / list.length;
}

// ``made``: what made the results, which "why?" explains (a rescored list: its shortlist's method and the
// method that ordered it)
function drawResults(answer, s, note = "", made = { methods: [...s.method.split("+"),
  ...(s.rescore_with ? [s.rescore_with] : [])], rerank: s.rerank }) {
  explained = made;
  whyTicket += 1; // an explanation of the results before is no longer wanted
  if ($("why").open) $("why").close();
  const p = precision(answer.hits);
  const t = answer.timings_ms;
  const parts = [`${answer.hits.length} results, ${answer.query.mode}`];
  if (p !== null) parts.push(`precision@${answer.hits.length} ${p.toFixed(2)} against the labels`);
  parts.push(["decode", "embed", "search", "rerank"].filter((step) => t[step] > 0)
    .map((step) => `${step} ${t[step].toFixed(1)} ms`).concat(`total ${t.total.toFixed(1)} ms`).join(", "));
  $("summary").textContent = parts.join(" · ") + note;
  keepingFocus(() => $("grid").replaceChildren(...answer.hits.map(card)));
}

// Redraw without losing the keyboard's place: the element with the same data-key gets the focus back
// (a result searched by: the first result of the new list).
function keepingFocus(redraw) {
  const key = document.activeElement?.dataset?.key;
  const inGrid = $("grid").contains(document.activeElement);
  redraw();
  const again = key && document.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (again) again.focus();
  else if (inGrid) $("grid").querySelector(".hit")?.focus();
}

function card(hit) {
  const li = document.createElement("li");
  li.className = "card" + (queryLabel !== null && hit.label !== queryLabel ? " other" : "");
  li.dataset.id = hit.id;
  li.dataset.label = hit.class_name || "";
  if (hit.path) li.dataset.path = hit.path;
  const open = document.createElement("button");
  open.className = "hit";
  open.title = "More like this";
  open.dataset.key = `hit:${hit.id}`;
  const img = document.createElement("img");
  img.alt = `${hit.class_name || "no class"}, id ${hit.id}`;
  showImage(img, hit.image_url);
  const text = document.createElement("div");
  text.textContent = `#${hit.rank} ${hit.class_name || "no class"} ${hit.score.toFixed(3)}`;
  open.append(img, text);
  if (hit.path) { // a folder gallery's image: where it is
    const where = document.createElement("div");
    where.className = "path";
    where.textContent = hit.path;
    open.title = `${hit.path}: more like this`;
    open.append(where);
  }
  open.addEventListener("click", () => guarded(() => search({ kind: "id", id: hit.id })));
  const actions = document.createElement("div");
  actions.className = "actions";
  for (const [label, set, other, mark] of [["like", feedback.liked, feedback.disliked, "+"],
    ["dislike", feedback.disliked, feedback.liked, "-"]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = mark;
    b.className = label;
    b.dataset.key = `${label}:${hit.id}`;
    b.setAttribute("aria-label", `${label} result ${hit.rank}`);
    b.setAttribute("aria-pressed", String(set.has(hit.id)));
    b.addEventListener("click", () => {
      if (set.has(hit.id)) set.delete(hit.id); else { set.add(hit.id); other.delete(hit.id); }
      guarded(recommend);
    });
    actions.append(b);
  }
  const why = document.createElement("button");
  why.type = "button";
  why.textContent = "why?";
  why.className = "why";
  why.dataset.key = `why:${hit.id}`;
  why.setAttribute("aria-label", `why is result ${hit.rank} similar?`);
  why.addEventListener("click", () => explain(hit)); // says its own errors, in its panel
  actions.append(why);
  li.append(open, actions);
  return li;
}

// -- relevance feedback: a recommend query per round ---------------------------------------------------

async function recommend() {
  const s = settings();
  const base = s.method.split("+")[0]; // a recommend query searches one method's collection
  const positive = [query.kind === "id" ? query.id : query.b64, ...feedback.liked];
  const ticket = ++latest;
  const answer = await api("/api/search", { json: { method: base, k: s.k, classes: s.classes,
    ...(s.collection ? { collection: s.collection } : {}),
    exclude_classes: s.exclude_classes, positive, negative: [...feedback.disliked] } });
  if (ticket !== latest) return;
  const p = precision(answer.hits);
  feedback.rounds.push({ liked: feedback.liked.size, disliked: feedback.disliked.size, precision: p,
    k: answer.hits.length });
  drawResults(answer, s, ` · feedback round ${feedback.rounds.length} (recommend on ${base})`,
    { methods: [base], rerank: null });
  insight.mark(query.kind === "id" ? query.id : null, answer.hits.map((h) => h.id));
  $("rounds").replaceChildren(...feedback.rounds.map((r, i) => {
    const li = document.createElement("li");
    li.textContent = `round ${i + 1}: ${r.liked} liked, ${r.disliked} disliked`
      + (r.precision === null ? "" : `, precision@${r.k} ${r.precision.toFixed(2)}`);
    return li;
  }));
  $("rounds-box").hidden = false;
}

// -- the methods side by side --------------------------------------------------------------------------

async function compareMethods() {
  if (!query) throw new ApiError("Choose a query first.");
  const s = settings();
  const modes = methodsNow().map((m) => ({ label: m, settings: { method: m } }));
  if (!s.collection && health.methods.includes("autoencoder") && health.methods.includes("siamese")) {
    modes.push({ label: "autoencoder+siamese, rrf 1:2 (the best fused mode)",
      settings: { method: "autoencoder+siamese", fusion: "rrf", fusion_weights: [1, 2] } });
  }
  const ticket = latest;
  const answers = await Promise.all(modes.map((m) => api("/api/search", searchBody(query, {
    ...s, rerank: null, rescore_with: null, quantization: "none", fusion: "rrf", expand: 0, ...m.settings }))));
  if (ticket !== latest) return; // a search since: these rows would not be of its query
  $("method-rows").replaceChildren(...answers.map((answer, i) => {
    const row = document.createElement("div");
    row.className = "method-row";
    row.dataset.method = modes[i].settings.method;
    const label = document.createElement("span");
    label.className = "label";
    const p = precision(answer.hits);
    label.textContent = modes[i].label + (p === null ? "" : `: precision@${answer.hits.length} ${p.toFixed(2)}`);
    row.append(label, ...answer.hits.map((h) => {
      const img = document.createElement("img");
      img.alt = `${h.class_name}, id ${h.id}`;
      showImage(img, h.image_url);
      if (queryLabel !== null && h.label !== queryLabel) img.className = "other";
      return img;
    }));
    return row;
  }));
  $("methods").hidden = false;
}

// -- why is this similar? --------------------------------------------------------------------------------
// The method the results came from explains them: occlusion heatmaps (POST /api/explain) of each method
// searched (each of a fusion's; a rescored list's two); results reordered by SIFT show SIFT's matched
// keypoints instead. The panel is not modal and the service explains in a thread of its own: the results
// stay usable meanwhile, and new results close the panel (it explained the ones before).

// not modal, so Escape is not the browser's to close it with
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && $("why").open) $("why").close();
});

async function explain(hit) {
  const ticket = ++whyTicket;
  const a = query.kind === "id" ? query.id : query.b64;
  const { methods, rerank } = explained;
  $("why-title").textContent = `Why is result ${hit.rank} (id ${hit.id}) similar?`;
  $("why-views").replaceChildren();
  $("why-sift").hidden = true;
  $("why-status").textContent = rerank ? "Matching SIFT keypoints..." : `Explaining with ${methods.join(" and ")}...`;
  if (!$("why").open) $("why").show();
  try {
    if (rerank) await explainSift(a, hit, ticket);
    else await explainMethods(a, hit, methods, ticket);
  } catch (err) {
    if (ticket !== whyTicket) return;
    $("why-status").textContent = err instanceof ApiError ? err.message : `Something went wrong: ${err.message || err}`;
    if (!(err instanceof ApiError)) console.warn(err);
  }
}

async function explainSift(a, hit, ticket) {
  const body = { a, b: hit.id };
  const [figures, drawing] = await Promise.all([api("/api/compare", { json: body }),
    api("/api/compare.png", { json: body, type: "blob" })]);
  if (ticket !== whyTicket) return;
  $("why-drawing").src = URL.createObjectURL(drawing);
  $("why-figures").textContent = `${figures.a} against ${figures.b}: ${figures.keypoints_a} and `
    + `${figures.keypoints_b} SIFT keypoints, ${figures.good_matches} good matches (Lowe ratio ${figures.ratio}); `
    + `Lowe score ${figures.lowe_score.toFixed(3)}, MaxSim score ${figures.maxsim_score.toFixed(3)}`;
  $("why-status").textContent = "SIFT reordered these results: its matched keypoints.";
  $("why-sift").hidden = false;
}

async function explainMethods(a, hit, methods, ticket) {
  const gallery = collection();
  const where = gallery ? { collection: gallery } : {};
  const [queryImage, hitImage, ...answers] = await Promise.all([
    query.kind === "id" ? imageOf(inCollection(`/api/images/${query.id}.png`)) : loaded($("query-seen").src),
    imageOf(inCollection(`/api/images/${hit.id}.png`)),
    ...methods.map((method) => api("/api/explain", { json: { a, b: hit.id, method, ...where } }))]);
  if (ticket !== whyTicket) return;
  $("why-views").replaceChildren(...answers.map((e) => {
    const figure = document.createElement("figure");
    figure.className = "why-method";
    figure.dataset.method = e.method;
    const top = Math.max(1e-12, ...e.query_heat.flat().map(Math.abs), ...e.hit_heat.flat().map(Math.abs));
    const caption = document.createElement("figcaption");
    caption.textContent = `${e.method}: cosine ${e.similarity.toFixed(3)}. Red: what made them similar; blue: `
      + `what held them apart (${e.patch}x${e.patch} patches occluded, ${e.batch} images in one batch, `
      + `${e.ms.toFixed(0)} ms).`;
    figure.append(heatCanvas(queryImage, e.query_heat, top, `the query, ${e.method}'s heat`),
      heatCanvas(hitImage, e.hit_heat, top, `result ${hit.rank}, ${e.method}'s heat`), caption);
    return figure;
  }));
  $("why-status").textContent = `${methods.join(" and ")}: which parts of the two images made them close.`;
}

async function imageOf(path) {
  const url = URL.createObjectURL(await api(path, { type: "blob" }));
  try { return await loaded(url); } finally { URL.revokeObjectURL(url); } // decoded: the URL is done with
}

function loaded(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new ApiError("An image of the pair could not be loaded."));
    img.src = src;
  });
}

// The 28x28 image in grey with its heat laid over it: red where positive, blue where negative, as opaque as
// the heat is large (one scale, ``top``, for both images of a pair), as `fmsearch explain --out` draws it.
function heatCanvas(img, heat, top, label) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 28;
  canvas.className = "heat";
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", label);
  const ctx = canvas.getContext("2d", { willReadFrequently: true }); // 28x28, read back: kept on the CPU
  ctx.drawImage(img, 0, 0, 28, 28);
  const pixels = ctx.getImageData(0, 0, 28, 28);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const h = heat[y][x] / top;
      const alpha = Math.min(1, Math.abs(h)) * 0.75;
      const colour = h >= 0 ? [255, 40, 0] : [0, 90, 255];
      const i = (y * 28 + x) * 4;
      for (let c = 0; c < 3; c++) pixels.data[i + c] = Math.round(pixels.data[i + c] * (1 - alpha) + colour[c] * alpha);
      pixels.data[i + 3] = 255;
    }
  }
  ctx.putImageData(pixels, 0, 0);
  return canvas;
}

// -- query inputs ------------------------------------------------------------------------------------------

function base64ToBytes(b64) {
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function fileToBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(new ApiError(`${file.name} cannot be read`));
    reader.readAsDataURL(file);
  });
}

async function searchFile(file) {
  if (!file) return;
  const limit = health && health.max_upload_bytes;
  if (limit && file.size + 4096 > limit) { // the file, and the form's own bytes around it
    throw new ApiError(`${file.name} is ${file.size.toLocaleString()} bytes, over the service's limit of `
      + `${limit.toLocaleString()} bytes`);
  }
  await search({ kind: "image", b64: await fileToBase64(file), name: file.name || "pasted image",
    type: file.type || "image/png" });
}

function setUpInputs() {
  $("file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    e.target.value = ""; // so that choosing the same file again searches again
    guarded(() => searchFile(file));
  });
  $("id-form").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(() => search({ kind: "id", id: Number($("query-id").value) }));
  });
  $("random").addEventListener("click", () => {
    const id = TEST_IDS[0] + Math.floor(Math.random() * (TEST_IDS[1] - TEST_IDS[0] + 1));
    $("query-id").value = id;
    guarded(() => search({ kind: "id", id }));
  });
  const drop = $("drop");
  document.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  document.addEventListener("dragleave", () => drop.classList.remove("over"));
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    guarded(() => searchFile(e.dataTransfer.files[0]));
  });
  document.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData?.items || [])].find((i) => i.kind === "file");
    if (item) guarded(() => searchFile(item.getAsFile()));
  });
  for (const id of ["method", "k", "rerank", "quantization", "rescore-with", "fuse", "fusion", "expand"]) {
    $(id).addEventListener("change", rerun);
  }
  $("method").addEventListener("change", () => {
    if (!collection()) guarded(() => insight.show($("method").value)); // the map and duplicates are FMNIST's
  });
  $("compare-methods").addEventListener("click", () => guarded(compareMethods));
  $("collection").addEventListener("change", () => {
    useCollection();
    clearResults("");
    if (!collection()) {
      insight.method = null; // shown again
      guarded(() => insight.show($("method").value));
    }
  });
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    apiKey = $("api-key").value.trim();
    sessionStorage.setItem("fmsearch-api-key", apiKey);
    $("key-form").hidden = true;
    guarded(start);
  });
  setUpSketch();
}

function setUpSketch() {
  const canvas = $("canvas");
  const pen = canvas.getContext("2d");
  const clear = () => { pen.fillStyle = "#000"; pen.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  let drawing = false;
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * (canvas.width / r.width), (e.clientY - r.top) * (canvas.height / r.height)];
  };
  canvas.addEventListener("pointerdown", (e) => {
    drawing = true;
    canvas.setPointerCapture?.(e.pointerId);
    pen.beginPath();
    pen.moveTo(...at(e));
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    pen.lineTo(...at(e));
    pen.strokeStyle = "#fff";
    pen.lineWidth = 22;
    pen.lineCap = pen.lineJoin = "round";
    pen.stroke();
  });
  const end = () => { drawing = false; };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointerleave", end);
  $("sketch-clear").addEventListener("click", clear);
  $("sketch-search").addEventListener("click", () => guarded(async () => {
    const b64 = canvas.toDataURL("image/png").split(",", 2)[1];
    await search({ kind: "image", b64, name: "sketch" });
  }));
}

// -- start -----------------------------------------------------------------------------------------------

async function start() {
  for (let tries = 0; ; tries += 1) { // 503 while the service loads its models
    const response = await fetch("/api/health", { headers: apiKey ? { "X-API-Key": apiKey } : {} })
      .catch(() => null);
    if (response && response.status === 503 && tries < 120) {
      $("status").textContent = "The service is loading its models...";
      await new Promise((resolve) => setTimeout(resolve, 500));
      continue;
    }
    if (!response || response.status !== 200) { health = await api("/api/health"); break; } // says why
    health = await response.json();
    break;
  }
  const methods = health.methods;
  const galleries = Object.keys(health.galleries || {});
  fillSelect($("collection"), galleries, true);
  $("collection-row").hidden = galleries.length === 0;
  $("status").textContent = `Serving ${methods.join(", ")}` + (health.rerank ? " with the SIFT rerank" : "")
    + (galleries.length ? `; folder galleries: ${galleries.join(", ")}` : "")
    + (Object.keys(health.skipped).length ? ` (not served: ${Object.keys(health.skipped).join(", ")})` : "");
  fillSelect($("method"), methods, false);
  fillSelect($("rescore-with"), methods, true);
  fillSelect($("fuse"), methods, true);
  $("method").value = health.default_method || methods[0]; // the best at one network's cost, where served
  $("rerank").disabled = !health.rerank;
  const initial = fromUrl();
  applySettings({ ...initial.settings, method: initial.settings.method || $("method").value,
    collection: initial.settings.collection || (methods.length ? null : galleries[0]) });
  if (collection()) $("insight").hidden = true;
  await Promise.all([initial.query ? search(initial.query, { replace: true }) : null, showInsight()]);
}

async function showInsight() {
  await insight.load();
  if (!collection()) await insight.show($("method").value);
}

// The methods of the collection searched.
function methodsNow() {
  const c = collection();
  return c ? health.galleries[c].methods : health.methods;
}

// Switch the controls to the collection chosen: its methods, its classes (chips), its ids; a folder
// gallery has no SIFT rerank, quantised variants, test split or map here.
function useCollection() {
  const c = collection();
  const keep = $("method").value;
  fillSelect($("method"), methodsNow(), false);
  fillSelect($("rescore-with"), methodsNow(), true);
  fillSelect($("fuse"), methodsNow(), true);
  const lead = c ? health.galleries[c].default_method : health.default_method;
  $("method").value = methodsNow().includes(keep) ? keep : lead || methodsNow()[0];
  CLASSES = c ? health.galleries[c].classes : FMNIST_CLASSES;
  chipState.clear();
  for (const name of CLASSES) chipState.set(name, "any");
  drawChips();
  $("rerank").disabled = Boolean(c) || !health.rerank;
  if (c) $("rerank").checked = false;
  $("quantization").disabled = Boolean(c);
  if (c) $("quantization").value = "none";
  $("random").disabled = Boolean(c);
  if (c) $("query-id").removeAttribute("max"); else $("query-id").max = "69999";
  $("insight").hidden = Boolean(c) || $("insight").hidden;
}

setUpInputs();
drawChips();
guarded(start);
