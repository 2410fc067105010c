// lookalike's page: plain JavaScript over the REST API (see /docs), no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE = 120; // collection thumbnails per "Show more"
const KEY_STEP = 0.02; // a key press moves or resizes the region by 2% of the image
const GROUPS_PER_PAGE = 20; // duplicate groups per page

const state = {
  query: null, // {kind: "file", blob, name}, {kind: "id", id, path, width, height} or {kind: "text", text}
  box: null, // region as fractions of the shown image {x, y, w, h}, or null
  objectUrl: null,
  searchSeq: 0,
  collectionOffset: 0,
  collectionTotal: 0,
  dupesOffset: 0,
  dupesTotal: 0,
  dupesScanned: false,
};

// ---- talking to the server ----

async function api(url, options) {
  const res = await fetch(url, options);
  const isJson = (res.headers.get("content-type") || "").includes("json");
  const body = isJson ? await res.json() : null;
  if (!res.ok) {
    const error = new Error((body && body.error) || `${res.status} ${res.statusText}`);
    error.status = res.status;
    throw error;
  }
  return body;
}

let toastTimer = 0;
function toast(message) {
  const el = $("toast");
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 6000);
}

function setStatus(kind, text) {
  $("status").className = `status ${kind}`;
  $("status-text").textContent = text;
}

async function pollHealth() {
  try {
    const health = await api("/health");
    if (health.status === "loading") {
      setStatus("loading", `${health.images} images · loading the model…`);
      setTimeout(pollHealth, 700);
      return;
    }
    if (health.status === "error") {
      setStatus("error", `model failed: ${health.error}`);
      return;
    }
    await refreshStats();
  } catch (error) {
    setStatus("error", error.status === 401 ? "token needed: open this page with ?token=…" : error.message);
  }
}

async function refreshStats() {
  const stats = await api("/api/stats");
  setStatus("ready", `${stats.index.images.toLocaleString()} images · ${stats.index.model}`);
  $("text-form").hidden = !stats.features.text_search;
}

// What the words were understood as: the classes they matched, and the words no class names.
function explainText(out) {
  if (out.kind === "clip") return `“${out.query}” embedded by the CLIP text encoder`;
  const named = out.matched.slice(0, 8).map((m) => `${m.name} ${m.weight.toFixed(2)}`);
  const more = out.matched.length > 8 ? ` (+${out.matched.length - 8} more)` : "";
  const parts = [named.length ? `Matched: ${named.join(", ")}${more}` : "No class matched"];
  if (out.not_understood.length) {
    parts.push(`not understood: ${out.not_understood.join(", ")} (colours, counts and most scenes are no ImageNet class)`);
  }
  return parts.join(" · ");
}

// ---- choosing a query ----

function pickFile() { $("file").click(); }

function setFileQuery(file) {
  state.query = { kind: "file", blob: file, name: file.name || "pasted image" };
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = URL.createObjectURL(file);
  if (location.hash) history.pushState(null, "", location.pathname + location.search);
  showQuery(state.objectUrl, `${state.query.name} · ${formatBytes(file.size)}`);
  search();
}

async function setIdQuery(id) {
  try {
    const image = await api(`/api/images/${id}`);
    state.query = { kind: "id", id: image.id, path: image.path, width: image.width, height: image.height };
    showQuery(`${image.thumbnail_url}?size=512`, `${image.path} · ${image.width}×${image.height}`);
    showView("search");
    search();
  } catch (error) {
    toast(error.message);
  }
}

function showQuery(src, caption) {
  $("drop").hidden = true;
  $("query").hidden = false;
  $("query-img").src = src;
  $("query-img").alt = `Query: ${caption}`;
  $("query-caption").textContent = caption;
  setBox(null);
}

function idFromHash() {
  const match = /^#id=(\d+)$/.exec(location.hash);
  return match ? Number(match[1]) : null;
}

function searchById(id) {
  if (idFromHash() === id) setIdQuery(id); // same hash: no hashchange event comes
  else location.hash = `id=${id}`;
}

// ---- the region box ----

function setBox(box) {
  state.box = box;
  const el = $("box");
  el.hidden = !box;
  $("region-search").disabled = !box;
  $("region-clear").disabled = !box;
  if (box) {
    Object.assign(el.style, {
      left: `${box.x * 100}%`, top: `${box.y * 100}%`,
      width: `${box.w * 100}%`, height: `${box.h * 100}%`,
    });
  }
}

function clamp(v, lo, hi) { return Math.min(hi, Math.max(lo, v)); }

// The box in the original image's pixels (after EXIF orientation), as the API wants it.
function boxInPixels() {
  const q = state.query;
  const img = $("query-img");
  const width = q.kind === "file" ? img.naturalWidth : q.width;
  const height = q.kind === "file" ? img.naturalHeight : q.height;
  const x = Math.round(state.box.x * width);
  const y = Math.round(state.box.y * height);
  return {
    x, y,
    w: clamp(Math.round(state.box.w * width), 8, width - x),
    h: clamp(Math.round(state.box.h * height), 8, height - y),
  };
}

function pointerFraction(event) {
  const rect = $("query-img").getBoundingClientRect();
  return {
    x: clamp((event.clientX - rect.left) / rect.width, 0, 1),
    y: clamp((event.clientY - rect.top) / rect.height, 0, 1),
  };
}

function setupRegionDrawing() {
  const stage = $("stage");
  let start = null;
  stage.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    start = pointerFraction(event);
    stage.setPointerCapture(event.pointerId);
    setBox({ ...start, w: 0, h: 0 });
    event.preventDefault();
  });
  stage.addEventListener("pointermove", (event) => {
    if (!start) return;
    const p = pointerFraction(event);
    setBox({
      x: Math.min(start.x, p.x), y: Math.min(start.y, p.y),
      w: Math.abs(p.x - start.x), h: Math.abs(p.y - start.y),
    });
  });
  const finish = () => {
    if (!start) return;
    start = null;
    if (!state.box || state.box.w < 0.03 || state.box.h < 0.03) setBox(null); // a click, not a box
    else search();
  };
  stage.addEventListener("pointerup", finish);
  stage.addEventListener("pointercancel", finish);

  stage.addEventListener("keydown", (event) => {
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (event.key in moves) {
      const [dx, dy] = moves[event.key].map((v) => v * KEY_STEP);
      const b = state.box || { x: 0.25, y: 0.25, w: 0.5, h: 0.5 };
      if (!state.box) setBox(b);
      else if (event.shiftKey) {
        const w = clamp(b.w + dx, 0.05, 1 - b.x);
        const h = clamp(b.h + dy, 0.05, 1 - b.y);
        setBox({ ...b, w, h });
      } else {
        setBox({ ...b, x: clamp(b.x + dx, 0, 1 - b.w), y: clamp(b.y + dy, 0, 1 - b.h) });
      }
      event.preventDefault();
    } else if (event.key === "Enter" && state.box) {
      search();
      event.preventDefault();
    } else if (event.key === "Escape" && state.box) {
      setBox(null);
      search();
      event.preventDefault();
    }
  });
}

// ---- searching ----

function searchParams() {
  const params = new URLSearchParams({ k: $("k").value });
  const filters = {
    folder: $("f-folder").value.trim(),
    min_width: $("f-min-width").value,
    min_height: $("f-min-height").value,
    taken_after: $("f-after").value,
    taken_before: $("f-before").value,
  };
  for (const [name, value] of Object.entries(filters)) if (value) params.set(name, value);
  if (state.box) for (const [name, value] of Object.entries(boxInPixels())) params.set(name, value);
  return params;
}

async function search() {
  const q = state.query;
  if (!q) return;
  const seq = ++state.searchSeq;
  const results = $("results");
  results.classList.add("loading");
  $("summary").textContent = "Searching…";
  try {
    const params = searchParams();
    let out;
    if (q.kind === "text") {
      for (const name of ["x", "y", "w", "h"]) params.delete(name);
      params.set("q", q.text);
      out = await api(`/api/search/text?${params}`);
    } else if (q.kind === "file") {
      const form = new FormData();
      form.append("image", q.blob, q.name);
      out = await api(`/api/search?${params}`, { method: "POST", body: form });
    } else {
      if (!state.box) params.set("exclude_self", "true"); // it is shown as the query already
      out = await api(`/api/images/${q.id}/similar?${params}`);
    }
    if (seq !== state.searchSeq) return; // a newer search has started: drop this one
    if (q.kind === "text") $("text-explain").textContent = explainText(out);
    const what = q.kind === "text" ? `“${q.text}”` : state.box ? "the marked region" : "this image";
    $("summary").innerHTML = "";
    $("summary").append(
      bold(out.results.length), ` images most like ${what}`, ` · ${Math.round(out.took_ms)} ms`,
    );
    $("grid").replaceChildren(...out.results.map((hit, i) => card(hit, i + 1)));
  } catch (error) {
    if (seq !== state.searchSeq) return;
    $("summary").textContent = `No results: ${error.message}`;
    $("grid").replaceChildren();
    toast(error.message);
  } finally {
    if (seq === state.searchSeq) results.classList.remove("loading");
  }
}

function bold(text) {
  const b = document.createElement("b");
  b.textContent = String(text);
  return b;
}

function formatBytes(n) {
  return n > 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1e3))} kB`;
}

function splitPath(path) {
  const cut = path.lastIndexOf("/");
  return [path.slice(cut + 1), path.slice(0, cut + 1)];
}

// One tile: a button that searches by the image, plus a link to the original file.
function card(item, rank) {
  const [name, dir] = splitPath(item.path);
  const size = item.width ? `${item.width}×${item.height}` : "";
  const li = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "card";
  button.dataset.id = item.id;
  button.title = item.path;
  const scoreText = item.score === undefined ? "" : item.score.toFixed(3);
  button.setAttribute(
    "aria-label",
    [rank ? `${rank}.` : "", name, scoreText && `score ${scoreText}`, size].filter(Boolean).join(", ")
      + ". Search by this image.",
  );

  const img = document.createElement("img");
  img.src = item.thumbnail_url;
  img.alt = "";
  img.loading = "lazy";
  img.decoding = "async";
  button.append(img);
  if (rank) button.append(span("rank", `#${rank}`));

  const info = document.createElement("span");
  info.className = "info";
  const top = document.createElement("span");
  top.className = "top";
  top.append(span("score", scoreText || "\u00a0"), span("size", size));
  info.append(top);
  if (item.score !== undefined) {
    const meter = span("meter", "");
    const bar = document.createElement("i");
    bar.style.width = `${clamp(item.score, 0, 1) * 100}%`;
    meter.append(bar);
    info.append(meter);
  }
  info.append(span("name", name), span("dir", dir));
  button.append(info);
  button.addEventListener("click", () => searchById(item.id));

  const open = document.createElement("a");
  open.className = "open";
  open.href = item.original_url;
  open.target = "_blank";
  open.rel = "noopener";
  open.textContent = "Open";
  open.setAttribute("aria-label", `Open the original of ${name}`);
  li.append(button, open);
  if (item.score !== undefined) {
    li.append(smallButton("why", "Why?", `Why ${name} matched the query`, () => showExplain(item)));
  }
  li.append(smallButton("layers-open", "Layers", `What the network sees in ${name}`,
    () => showLayers(item)));
  return li;
}

function smallButton(className, text, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

function span(className, text) {
  const el = document.createElement("span");
  el.className = className;
  el.textContent = text;
  return el;
}

// Before any query: a few indexed images to start from.
async function showStarters() {
  try {
    const out = await api("/api/images?limit=10");
    if (state.query || !out.items.length) return;
    $("summary").textContent =
      "Drop, choose or paste an image to find the ones that look like it, or start from one of yours:";
    $("grid").replaceChildren(...out.items.map((item) => card(item, 0)));
  } catch (error) {
    // the status line already says what is wrong (a missing token, say)
  }
}

// ---- the collection ----

async function loadCollection(reset) {
  if (reset) {
    state.collectionOffset = 0;
    $("collection-grid").replaceChildren();
  }
  try {
    const out = await api(`/api/images?offset=${state.collectionOffset}&limit=${PAGE}`);
    state.collectionTotal = out.total;
    state.collectionOffset += out.items.length;
    $("collection-grid").append(...out.items.map((item) => card(item, 0)));
    $("collection-summary").replaceChildren(
      bold(out.total.toLocaleString()), " indexed images",
      out.total > state.collectionOffset ? ` · showing ${state.collectionOffset}` : "",
    );
    $("more").hidden = state.collectionOffset >= out.total;
  } catch (error) {
    toast(error.message);
  }
}

async function addFolder(event) {
  event.preventDefault();
  const path = $("add-path").value.trim();
  if (!path) return;
  const progress = $("add-progress");
  const stop = $("add-stop");
  try {
    // what done / total count in each phase of the job (GET /api/jobs/{id})
    const PHASES = {
      embedding: "Indexing",
      classifying: "Classifying",
      adapting: "Adapting the index to its images:",
    };
    let job = await api("/api/jobs", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ paths: [path] }),
    });
    progress.hidden = false;
    progress.removeAttribute("value"); // indeterminate while the folders are walked
    stop.hidden = false;
    stop.disabled = false;
    stop.onclick = () => {
      stop.disabled = true;
      api(`/api/jobs/${job.id}`, { method: "DELETE" }).catch((error) => toast(error.message));
    };
    while (job.status === "running" || job.status === "cancelling") {
      if (job.status === "cancelling") {
        $("add-status").textContent = "Stopping after the current batch…";
      } else if (job.total) {
        progress.max = job.total;
        progress.value = job.done;
        $("add-status").textContent = PHASES[job.phase]
          ? `${PHASES[job.phase]} ${job.done} of ${job.total}…`
          : `Indexing ${job.done} of ${job.total}…`;
      } else {
        $("add-status").textContent = "Looking for images…";
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      job = await api(`/api/jobs/${job.id}`);
    }
    progress.hidden = true;
    stop.hidden = true;
    if (job.status === "failed") throw new Error(job.error);
    $("add-status").textContent = job.status === "cancelled"
      ? `Stopped after ${job.done} of ${job.total ?? "?"} files; those are kept.`
      : `Added ${job.added}, updated ${job.updated}, removed ${job.removed}, `
        + `unchanged ${job.unchanged}, skipped ${job.skipped}.`;
    loadCollection(true);
    refreshStats();
  } catch (error) {
    progress.hidden = true;
    stop.hidden = true;
    $("add-status").textContent = `Not added: ${error.message}`;
  }
}

// ---- why did it match: the score's heatmaps over both images ----

// A perceptual dark-to-bright ramp (inferno's stops): value in [0, 1] -> [r, g, b].
const RAMP = [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]];
function ramp(v) {
  const x = clamp(v, 0, 1) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const t = x - i;
  return RAMP[i].map((a, k) => Math.round(a + (RAMP[i + 1][k] - a) * t));
}

// Paint a side's heat (rows x cols, cells in original pixels) on a canvas laid over its image.
function paintHeat(canvas, side) {
  const scale = Math.min(1, 640 / Math.max(side.width, side.height));
  canvas.width = Math.round(side.width * scale);
  canvas.height = Math.round(side.height * scale);
  const [rows, cols] = side.grid;
  const cells = document.createElement("canvas");
  cells.width = cols;
  cells.height = rows;
  const pixels = cells.getContext("2d").createImageData(cols, rows);
  const top = Math.max(1e-12, ...side.heat.flat());
  side.heat.flat().forEach((v, i) => {
    pixels.data.set([...ramp(Math.max(0, v) / top), 255], i * 4);
  });
  cells.getContext("2d").putImageData(pixels, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = true;
  const [left, upper] = side.cells[0][0];
  const [, , right, lower] = side.cells[rows - 1][cols - 1];
  ctx.drawImage(cells, left * scale, upper * scale, (right - left) * scale, (lower - upper) * scale);
  if (side.region) {
    const [x, y, w, h] = side.region;
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 3;
    ctx.strokeRect(x * scale, y * scale, w * scale, h * scale);
  }
}

function setHeatOpacity() {
  const opacity = $("explain-show").checked ? $("explain-opacity").value / 100 : 0;
  for (const id of ["explain-query-heat", "explain-result-heat"]) $(id).style.opacity = opacity;
}

async function showExplain(hit) {
  const q = state.query;
  if (!q) return;
  const params = new URLSearchParams({ result: hit.id });
  if (state.box) for (const [name, value] of Object.entries(boxInPixels())) params.set(name, value);
  const dialog = $("explain");
  $("explain-score").textContent = "Explaining…";
  $("explain-notes").textContent = "";
  for (const id of ["explain-query-heat", "explain-result-heat"]) {
    $(id).getContext("2d").clearRect(0, 0, $(id).width, $(id).height);
  }
  $("explain-query").src = q.kind === "file" ? state.objectUrl : `/api/images/${q.id}/thumbnail?size=512`;
  $("explain-result").src = `${hit.thumbnail_url}?size=512`;
  $("explain-query-caption").textContent = q.kind === "file" ? q.name : q.path;
  $("explain-result-caption").textContent = hit.path;
  if (!dialog.open) dialog.showModal();
  try {
    let out;
    if (q.kind === "file") {
      const form = new FormData();
      form.append("image", q.blob, q.name);
      out = await api(`/api/explain?${params}`, { method: "POST", body: form });
    } else {
      out = await api(`/api/images/${q.id}/explain?${params}`);
    }
    paintHeat($("explain-query-heat"), out.query);
    paintHeat($("explain-result-heat"), out.result);
    setHeatOpacity();
    $("explain-score").replaceChildren(
      "Score ", bold(out.score.toFixed(4)),
      ` · the heatmaps sum to ${out.total.toFixed(4)} · brighter cells added more to the score`,
    );
    $("explain-notes").textContent = out.notes.join(" · ");
    dialog.dataset.ready = "true";
  } catch (error) {
    $("explain-score").textContent = `Not explained: ${error.message}`;
  }
}

// ---- what the network sees: each stage's strongest maps ----

function paintMap(canvas, values, lo, hi) {
  const h = values.length;
  const w = values[0].length;
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const pixels = ctx.createImageData(w, h);
  const span = hi - lo || 1;
  values.flat().forEach((v, i) => {
    pixels.data.set([...ramp((v - lo) / span), 255], i * 4);
  });
  ctx.putImageData(pixels, 0, 0);
}

function mapRange(values) {
  const flat = values.flat();
  return [Math.min(...flat), Math.max(...flat)];
}

// The map's value under the pointer, as "(row, col) = value".
function valueAt(event, canvas, values) {
  const rect = canvas.getBoundingClientRect();
  const row = clamp(Math.floor(((event.clientY - rect.top) / rect.height) * values.length), 0, values.length - 1);
  const col = clamp(Math.floor(((event.clientX - rect.left) / rect.width) * values[0].length), 0, values[0].length - 1);
  return `(${row}, ${col}) = ${values[row][col]}`;
}

function zoomMap(title, values) {
  $("map-zoom-title").textContent = title;
  const canvas = $("map-zoom-canvas");
  paintMap(canvas, values, ...mapRange(values));
  canvas.onmousemove = (event) => {
    $("map-zoom-value").textContent = `${title} ${valueAt(event, canvas, values)}`;
  };
  $("map-zoom-value").textContent = "Hover a pixel to see its value.";
  $("map-zoom").showModal();
}

function filterTiles(filters) {
  const n = filters.length;
  const k = filters[0][0].length;
  const perRow = Math.ceil(Math.sqrt(n));
  const canvas = document.createElement("canvas");
  canvas.width = perRow * (k + 1) - 1;
  canvas.height = Math.ceil(n / perRow) * (k + 1) - 1;
  const ctx = canvas.getContext("2d");
  filters.forEach((f, i) => {
    const top = Math.max(1e-12, ...f.flat(2).map(Math.abs));
    const x0 = (i % perRow) * (k + 1);
    const y0 = Math.floor(i / perRow) * (k + 1);
    for (let r = 0; r < k; r += 1) {
      for (let c = 0; c < k; c += 1) {
        const rgb = [0, 1, 2].map((ch) => Math.round(255 * (0.5 + f[ch][r][c] / (2 * top))));
        ctx.fillStyle = `rgb(${rgb.join(",")})`;
        ctx.fillRect(x0 + c, y0 + r, 1, 1);
      }
    }
  });
  canvas.title = `${n} filters of 3×${k}×${k}`;
  return canvas;
}

function layerColumn(title, shape, children) {
  const column = document.createElement("section");
  column.className = "layer";
  const heading = document.createElement("h3");
  heading.textContent = title;
  column.append(heading, span("shape", shape), ...children);
  return column;
}

async function showLayers(item) {
  showView("layers");
  const [name] = splitPath(item.path);
  $("layers-summary").textContent = `Reading ${name}…`;
  $("layers").replaceChildren();
  try {
    const out = await api(`/api/images/${item.id}/layers`);
    const input = document.createElement("img");
    input.src = out.input;
    input.alt = `${name} as the network gets it`;
    const columns = [
      layerColumn("input", "3 × …", [input]),
      layerColumn("first filters", `stride ${out.filter_stride}`, [filterTiles(out.filters)]),
    ];
    input.onload = () => {
      columns[0].querySelector(".shape").textContent =
        `3 × ${input.naturalHeight} × ${input.naturalWidth}`;
    };
    for (const stage of out.stages) {
      const [c, h, w] = stage.shape;
      const maps = stage.maps.map((values, i) => {
        const canvas = document.createElement("canvas");
        const title = `${stage.name} channel ${stage.channels[i]}`;
        paintMap(canvas, values, ...mapRange(values));
        canvas.title = title;
        canvas.tabIndex = 0;
        canvas.setAttribute("role", "button");
        canvas.setAttribute("aria-label", `${title}: enlarge`);
        canvas.addEventListener("click", () => zoomMap(title, values));
        canvas.addEventListener("keydown", (event) => {
          if (event.key === "Enter") zoomMap(title, values);
        });
        canvas.addEventListener("mousemove", (event) => {
          $("layers-value").textContent = `${title} ${valueAt(event, canvas, values)}`;
        });
        return canvas;
      });
      columns.push(layerColumn(`${stage.name} ${stage.kind}`, `${c} × ${h} × ${w}`, maps));
    }
    $("layers").replaceChildren(...columns);
    $("layers-summary").replaceChildren(
      "What ", bold(out.model_id), ` sees in ${name}: `,
      "depth grows with the number of filters, the size halves at each stride-2 stage. ",
      "Click a map to enlarge it.",
    );
  } catch (error) {
    $("layers-summary").textContent = `No layers: ${error.message}`;
  }
}

// ---- duplicates ----

function dupesQuery() {
  const params = new URLSearchParams({
    band: $("dupes-band").value,
    offset: String(state.dupesOffset),
    limit: String(GROUPS_PER_PAGE),
  });
  if ($("dupes-orientations").checked) params.set("orientations", "true");
  // Copies already moved into the destination folder are not shown again.
  if ($("dupes-destination").value.trim()) params.set("exclude", $("dupes-destination").value.trim());
  return params;
}

async function loadDuplicates(offset) {
  state.dupesOffset = Math.max(0, offset);
  state.dupesScanned = true;
  $("dupes-summary").textContent = "Scanning for copies…";
  try {
    const out = await api(`/api/duplicates?${dupesQuery()}`);
    state.dupesTotal = out.total;
    if (!$("dupes-destination").value) $("dupes-destination").value = out.destination;
    $("dupes-summary").replaceChildren(
      bold(out.total.toLocaleString()), out.total === 1 ? " group of copies, " : " groups of copies, ",
      bold(out.copies.toLocaleString()), " copies beside their keepers",
      ` (every two images of a group score at least ${out.threshold.toFixed(2)}; ${out.took_ms} ms)`,
    );
    $("dupes-list").replaceChildren(...out.groups.map(groupCard));
    const page = Math.floor(out.offset / GROUPS_PER_PAGE) + 1;
    const pages = Math.max(1, Math.ceil(out.total / GROUPS_PER_PAGE));
    $("dupes-page").textContent = `page ${page} of ${pages}`;
    $("dupes-prev").disabled = out.offset === 0;
    $("dupes-next").disabled = out.offset + GROUPS_PER_PAGE >= out.total;
  } catch (error) {
    $("dupes-summary").textContent = `No duplicates: ${error.message}`;
  }
}

function memberFigure(item, isKeeper, group) {
  const [name, dir] = splitPath(item.path);
  const figure = document.createElement("figure");
  figure.className = isKeeper ? "member keeper" : "member";
  figure.dataset.id = item.id;
  const link = document.createElement("a");
  link.href = item.original_url;
  link.target = "_blank";
  link.rel = "noopener";
  const img = document.createElement("img");
  img.src = item.thumbnail_url;
  img.alt = name;
  img.loading = "lazy";
  link.append(img);
  const caption = document.createElement("figcaption");
  caption.className = "caption";
  const size = item.width ? `${item.width}×${item.height}` : "";
  caption.append(
    // Scores are with the suggested keeper, which has none of its own.
    span("badge", isKeeper ? "keep"
      : item.score === undefined ? "suggested keeper" : `${item.score.toFixed(3)} ${item.band}`),
    item.transform ? span("transform", item.transform) : "",
    span("name", name), span("dir", dir),
    span("size", [size, formatBytes(item.size), item.taken_at ? item.taken_at.replace("T", " ") : ""]
      .filter(Boolean).join(" · ")),
  );
  figure.append(link, caption);
  if (!isKeeper) {
    figure.append(smallButton("keep-this", "Keep this", `Keep ${name} instead`,
      () => changeKeeper(group, item.id)));
  }
  return figure;
}

function groupCard(group) {
  const li = document.createElement("li");
  li.className = "group";
  li.dataset.key = group.key;
  li.group = group;
  li.keep = group.keep.id;
  const members = [group.keep, ...group.duplicates];
  const row = document.createElement("div");
  row.className = "members";
  const head = document.createElement("p");
  head.className = "group-head";
  const actions = document.createElement("div");
  actions.className = "row actions";
  actions.append(
    smallButton("not-dupes", "Not duplicates", "These images are not duplicates",
      () => notDuplicates(li, members)),
    smallButton("move-others", "Move the others", "Move every copy but the keeper",
      () => moveOthers(li, members)),
  );
  const plan = document.createElement("div");
  plan.className = "plan";
  li.append(head, row, actions, plan);
  li.render = () => {
    head.replaceChildren(
      bold(`${members.length} images`),
      li.keep === group.keep.id ? ` · kept for: ${group.reason}` : " · keeper chosen by hand",
    );
    row.replaceChildren(...[
      members.find((m) => m.id === li.keep),
      ...members.filter((m) => m.id !== li.keep),
    ].map((m) => memberFigure(m, m.id === li.keep, li)));
    plan.replaceChildren();
  };
  li.render();
  return li;
}

function changeKeeper(li, id) {
  li.keep = id;
  li.render();
}

async function notDuplicates(li, members) {
  try {
    await api("/api/duplicates/not-duplicates", {
      method: "POST",
      headers: {"content-type": "application/json"},
      body: JSON.stringify({ids: members.map((m) => m.id)}),
    });
    li.remove();
    toast("Recorded: later scans will not group these images.");
  } catch (error) {
    toast(error.message);
  }
}

async function moveOthers(li, members, apply = false) {
  const body = {
    keep: li.keep,
    ids: members.map((m) => m.id).filter((id) => id !== li.keep),
    destination: $("dupes-destination").value.trim(),
    apply,
  };
  const plan = li.querySelector(".plan");
  try {
    const out = await api("/api/duplicates/move", {
      method: "POST",
      headers: {"content-type": "application/json"},
      body: JSON.stringify(body),
    });
    if (!apply) {
      const list = document.createElement("ul");
      list.append(...out.moves.map((m) => {
        const item = document.createElement("li");
        item.textContent = `${m.from} → ${m.to}`;
        return item;
      }));
      const confirm = smallButton("primary confirm-move", `Move ${out.moves.length} file(s)`,
        "Move these files now", () => moveOthers(li, members, true));
      plan.replaceChildren(span("hint", "Nothing is deleted; a journal lets you undo."), list, confirm);
      return;
    }
    li.remove();
    toast(`Moved ${out.moves.length} file(s). Undo: lookalike dupes --undo ${out.journal}`);
  } catch (error) {
    toast(error.message);
  }
}

// ---- views ----

function showView(name) {
  for (const view of ["search", "collection", "duplicates", "layers"]) {
    $(`${view}-view`).hidden = view !== name;
    $(`tab-${view}`).setAttribute("aria-pressed", String(view === name));
  }
  if (name === "collection" && state.collectionOffset === 0) loadCollection(true);
  if (name === "duplicates" && !state.dupesScanned) loadDuplicates(0);
}

// ---- wiring ----

function setup() {
  $("drop").addEventListener("click", pickFile);
  $("drop").addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      pickFile();
      event.preventDefault();
    }
  });
  $("choose-again").addEventListener("click", pickFile);
  $("file").addEventListener("change", () => {
    const file = $("file").files[0];
    if (file) setFileQuery(file);
    $("file").value = ""; // choosing the same file again still fires "change"
  });

  let dragDepth = 0;
  document.addEventListener("dragenter", (event) => {
    if (![...event.dataTransfer.types].includes("Files")) return;
    dragDepth += 1;
    document.body.classList.add("dragging");
  });
  document.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) document.body.classList.remove("dragging");
  });
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    dragDepth = 0;
    document.body.classList.remove("dragging");
    const file = [...event.dataTransfer.files].find((f) => f.type.startsWith("image/"))
      || event.dataTransfer.files[0];
    if (file) {
      showView("search");
      setFileQuery(file);
    }
  });
  document.addEventListener("paste", (event) => {
    const item = [...event.clipboardData.items].find((i) => i.type.startsWith("image/"));
    if (!item) return;
    event.preventDefault();
    showView("search");
    setFileQuery(item.getAsFile());
  });

  $("text-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text-q").value.trim();
    if (!text) return;
    state.query = { kind: "text", text };
    if (location.hash) history.pushState(null, "", location.pathname + location.search);
    search();
  });

  setupRegionDrawing();
  $("region-search").addEventListener("click", search);
  $("region-clear").addEventListener("click", () => { setBox(null); search(); });

  let kTimer = 0;
  $("k").addEventListener("input", () => {
    $("k-out").textContent = $("k").value;
    clearTimeout(kTimer);
    kTimer = setTimeout(search, 250);
  });
  $("apply-filters").addEventListener("click", search);
  for (const input of document.querySelectorAll(".filters input")) {
    input.addEventListener("keydown", (event) => { if (event.key === "Enter") search(); });
  }

  $("tab-search").addEventListener("click", () => showView("search"));
  $("tab-collection").addEventListener("click", () => showView("collection"));
  $("tab-layers").addEventListener("click", () => showView("layers"));
  $("tab-duplicates").addEventListener("click", () => showView("duplicates"));
  $("dupes-form").addEventListener("submit", (event) => { event.preventDefault(); loadDuplicates(0); });
  $("dupes-prev").addEventListener("click", () => loadDuplicates(state.dupesOffset - GROUPS_PER_PAGE));
  $("dupes-next").addEventListener("click", () => loadDuplicates(state.dupesOffset + GROUPS_PER_PAGE));
  $("explain-close").addEventListener("click", () => $("explain").close());
  $("map-zoom-close").addEventListener("click", () => $("map-zoom").close());
  $("explain-show").addEventListener("change", setHeatOpacity);
  $("explain-opacity").addEventListener("input", setHeatOpacity);
  $("more").addEventListener("click", () => loadCollection(false));
  $("add-form").addEventListener("submit", addFolder);

  window.addEventListener("hashchange", () => {
    const id = idFromHash();
    if (id !== null) setIdQuery(id);
  });
  const id = idFromHash();
  if (id !== null) setIdQuery(id);
  else showStarters();
  pollHealth();
}

setup();
