// Gallery insight on the page: the method's map (fmsearch map) with the current query and its results
// marked, a click on a point searching by it; its duplicates (fmsearch duplicates) as image rows,
// label conflicts first; and its likely label errors (fmsearch label-issues), each beside its nearest
// neighbours. All are files the service serves as they were written (GET /api/insight); a click on any
// image searches by it.

const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"]; // matplotlib's tab10, as map.png
const PAD = 12; // canvas pixels around the points
const PICK_RADIUS = 10; // a click this close (canvas pixels) to a point searches by it
const GROUPS_SHOWN = 50;
const IMAGES_SHOWN = 24; // of a group; the rest are counted
const SUSPECTS_SHOWN = 50;
const NEIGHBOURS_SHOWN = 8; // beside each likely label error

const $ = (id) => document.getElementById(id);

export class Insight {
  // api(path) -> JSON; showImage(img, path); searchId(id): a search by a gallery id
  constructor({ api, showImage, searchId }) {
    Object.assign(this, { api, showImage, searchId });
    this.available = { maps: [], duplicates: [], label_issues: [] };
    this.method = null;
    this.map = null; // {ids, x, y, labels, ..., view: {xmin, ymin, scale}, index: Map id -> row}
    this.marked = { query: null, hits: [] };
    $("map").addEventListener("click", (e) => this.pick(e));
  }

  async load() {
    this.available = await this.api("/api/insight");
  }

  // The views of a method: its map, duplicates and likely label errors, or how to make them.
  async show(method) {
    if (method === this.method) return;
    this.method = method;
    this.map = null;
    $("insight").hidden = false;
    await Promise.all([this.showMap(method), this.showDuplicates(method), this.showLabelIssues(method)]);
  }

  async showMap(method) {
    const canvas = $("map");
    if (!this.available.maps.includes(method)) {
      canvas.hidden = true;
      $("map-legend").replaceChildren();
      $("map-caption").textContent = `No map of ${method} yet: make one with \`fmsearch map --method ${method}\`.`;
      return;
    }
    const data = await this.api(`/api/map/${encodeURIComponent(method)}`);
    if (method !== this.method) return; // another method was chosen meanwhile
    const [xmin, xmax] = extent(data.x);
    const [ymin, ymax] = extent(data.y);
    const side = canvas.width - 2 * PAD;
    data.view = { xmin, ymin, scale: side / Math.max(xmax - xmin, ymax - ymin, 1e-9) };
    data.index = new Map(data.ids.map((id, row) => [id, row]));
    this.map = data;
    canvas.dataset.view = `${data.view.xmin},${data.view.ymin},${data.view.scale},${PAD}`;
    canvas.hidden = false;
    $("map-legend").replaceChildren(...data.class_names.map((name, c) => {
      const li = document.createElement("li");
      const dot = document.createElement("span");
      dot.className = "dot";
      dot.style.background = COLOURS[c];
      li.append(dot, name);
      return li;
    }));
    this.draw();
  }

  // The current query (a gallery id, or null) and its hits' ids: marked on the map.
  mark(queryId, hitIds) {
    this.marked = { query: queryId, hits: hitIds };
    if (this.map) this.draw();
  }

  position(row) {
    const { view } = this.map;
    const side = $("map").height;
    return [PAD + (this.map.x[row] - view.xmin) * view.scale, side - PAD - (this.map.y[row] - view.ymin) * view.scale];
  }

  draw() {
    const canvas = $("map");
    const pen = canvas.getContext("2d");
    const m = this.map;
    pen.fillStyle = "#fff";
    pen.fillRect(0, 0, canvas.width, canvas.height);
    const size = m.ids.length > 20000 ? 1.2 : m.ids.length > 3000 ? 2 : 3.5;
    pen.globalAlpha = this.marked.hits.length || this.marked.query !== null ? 0.35 : 0.8;
    for (let row = 0; row < m.ids.length; row += 1) {
      const [px, py] = this.position(row);
      pen.fillStyle = COLOURS[m.labels[row]];
      pen.fillRect(px - size / 2, py - size / 2, size, size);
    }
    pen.globalAlpha = 1;
    const shown = this.marked.hits.filter((id) => m.index.has(id));
    for (const id of shown) ring(pen, this.position(m.index.get(id)), 5, "#000", COLOURS[m.labels[m.index.get(id)]]);
    const queryShown = this.marked.query !== null && m.index.has(this.marked.query);
    if (queryShown) ring(pen, this.position(m.index.get(this.marked.query)), 8, "#000", "#ff0");
    canvas.dataset.marked = [...(queryShown ? [this.marked.query] : []), ...shown].join(",");
    const keep = m["neighbour_keeping@10"];
    let text = `${m.settings.method}: ${m.ids.length.toLocaleString()} images, ${m.settings.algorithm} `
      + `(neighbour keeping@10 ${keep.toFixed(3)}). Click a point to search by it.`;
    if (this.marked.query !== null || this.marked.hits.length) {
      text += ` Marked: ${queryShown ? "the query (yellow) and " : ""}${shown.length} of its `
        + `${this.marked.hits.length} results (ringed)${this.marked.query !== null && !queryShown
          ? "; the query is not on this map" : ""}.`;
    }
    $("map-caption").textContent = text;
  }

  pick(event) {
    if (!this.map) return;
    const canvas = $("map");
    const r = canvas.getBoundingClientRect();
    const cx = (event.clientX - r.left) * (canvas.width / r.width);
    const cy = (event.clientY - r.top) * (canvas.height / r.height);
    let best = -1;
    let bestD = PICK_RADIUS * PICK_RADIUS;
    for (let row = 0; row < this.map.ids.length; row += 1) {
      const [px, py] = this.position(row);
      const d = (px - cx) ** 2 + (py - cy) ** 2;
      if (d <= bestD) { best = row; bestD = d; }
    }
    if (best >= 0) this.searchId(this.map.ids[best]);
  }

  async showDuplicates(method) {
    const rows = $("dup-rows");
    if (!this.available.duplicates.includes(method)) {
      rows.replaceChildren();
      $("dup-summary").textContent = `No duplicates run of ${method} yet: make one with `
        + `\`fmsearch duplicates --method ${method}\`.`;
      return;
    }
    const data = await this.api(`/api/duplicates/${encodeURIComponent(method)}`);
    if (method !== this.method) return;
    const s = data.summary;
    const split = data.settings.split === "all" ? "train and test" : `${data.settings.split} split`;
    $("dup-summary").textContent = `${method}, score >= ${data.settings.threshold} (${split}, `
      + `${data.date.slice(0, 10)}): ${s.groups} groups of ${s.images_in_groups} images among `
      + `${s.images_scanned.toLocaleString()}; ${s.conflict_groups} with conflicting labels; `
      + `${s.test_with_train_copy} test images with a near-copy in train.`
      + (data.groups_total > GROUPS_SHOWN ? ` The first ${GROUPS_SHOWN} groups are shown.` : "");
    rows.replaceChildren(...data.groups.slice(0, GROUPS_SHOWN).map((g) => this.groupRow(g)));
  }

  async showLabelIssues(method) {
    const rows = $("issue-rows");
    if (!this.available.label_issues.includes(method)) {
      rows.replaceChildren();
      $("issue-summary").textContent = `No label-issues run of ${method} yet: make one with `
        + `\`fmsearch label-issues --method ${method}\`.`;
      return;
    }
    const data = await this.api(`/api/label-issues/${encodeURIComponent(method)}`);
    if (method !== this.method) return;
    const s = data.summary;
    $("issue-summary").textContent = `${method}, ${data.scope} against ${data.pool} (${data.date.slice(0, 10)}): `
      + `${s.flagged} of ${s.images_checked.toLocaleString()} images are nearer another class than their own `
      + `by more than the median margin (${s.median_margin.toFixed(4)}).`
      + ` The likeliest ${Math.min(SUSPECTS_SHOWN, data.suspects.length)} are shown (the flagged ones in red),`
      + " each followed by its nearest neighbours; click any image to search by it.";
    rows.replaceChildren(...data.suspects.slice(0, SUSPECTS_SHOWN).map((x) => this.suspectRow(x)));
  }

  suspectRow(x) {
    const li = document.createElement("li");
    li.className = "dup-group" + (x.flagged ? " conflict" : "");
    li.dataset.id = x.id;
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = `id ${x.id}: labelled ${x.given}, nearer ${x.suggested} · margin ${x.margin.toFixed(4)}`
      + ` · ${Math.round(x.vote_share * 100)}% of its neighbours agree` + (x.flagged ? "" : " · not flagged");
    const cells = [{ id: x.id, title: `id ${x.id}, labelled ${x.given}: search by it`, suspect: true }];
    cells.push(...x.neighbours.slice(0, NEIGHBOURS_SHOWN).map((n) => ({
      id: n.id, title: `${n.class}, id ${n.id}, score ${n.score.toFixed(4)}: search by it`, suspect: false,
    })));
    li.append(label, ...cells.map((c) => {
      const b = document.createElement("button");
      b.type = "button";
      b.title = c.title;
      if (c.suspect) b.className = "suspect";
      const img = document.createElement("img");
      img.alt = c.title.replace(": search by it", "");
      this.showImage(img, `/api/images/${c.id}.png`);
      b.append(img);
      b.addEventListener("click", () => this.searchId(c.id));
      return b;
    }));
    return li;
  }

  groupRow(g) {
    const li = document.createElement("li");
    li.className = "dup-group" + (g.conflict ? " conflict" : "");
    li.dataset.ids = g.ids.join(",");
    const label = document.createElement("span");
    label.className = "label";
    const classes = [...new Set(g.classes)];
    label.textContent = (g.conflict ? `conflicting labels: ${classes.join(" / ")}` : classes[0])
      + ` · ${g.ids.length} images · ${g.min_score.toFixed(4)}-${g.max_score.toFixed(4)}`;
    li.append(label, ...g.ids.slice(0, IMAGES_SHOWN).map((id, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.title = `${g.classes[i]}, ${g.splits[i]} id ${id}: search by it`;
      const img = document.createElement("img");
      img.alt = `${g.classes[i]}, id ${id}`;
      this.showImage(img, `/api/images/${id}.png`);
      b.append(img);
      b.addEventListener("click", () => this.searchId(id));
      return b;
    }));
    if (g.ids.length > IMAGES_SHOWN) {
      const more = document.createElement("span");
      more.className = "more";
      more.textContent = `+${g.ids.length - IMAGES_SHOWN} more`;
      li.append(more);
    }
    return li;
  }
}

function extent(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
}

function ring(pen, [x, y], radius, stroke, fill) {
  pen.beginPath();
  pen.arc(x, y, radius, 0, 2 * Math.PI);
  pen.fillStyle = fill;
  pen.fill();
  pen.lineWidth = 2;
  pen.strokeStyle = stroke;
  pen.stroke();
}
