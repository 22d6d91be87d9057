// The Search tab: type a query, drop or choose a picture, or record a spoken query, and see the
// nearest indexed items (/v1/search) as a grid of cards — thumbnail, caption, score, metadata —
// narrowed by metadata filters (field = value). A card's metadata values add a filter when
// clicked. Thumbnails come from the item's `thumbnail` data URI, else from /v1/items/image.
"use strict";

const THUMB_SIZE = 192;
const HIDDEN_FIELDS = new Set(["thumbnail", "source", "caption", "text", "image"]);

const searching = {
  query: null, // {kind: "image"|"audio", value: data URI, name, preview}
  controller: null,
  objectUrls: [],
  fieldTypes: {}, // metadata field → "number" | "boolean" | "string", as results showed them
  filterCount: 0,
};

function searchError(message) {
  showAlert($("search-error"), message);
}

// ---------------------------------------------------------------- the query

function setQuery(query) {
  searching.query = query;
  const chip = $("search-query");
  chip.hidden = !query;
  if (!query) return;
  const preview = $("search-query-preview");
  preview.hidden = query.kind !== "image";
  if (query.kind === "image") preview.src = query.value;
  $("search-query-text").textContent =
    query.kind === "image" ? `Searching by picture ${query.name}` : `Searching by spoken query ${query.name}`;
}

async function searchByPicture(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) {
    searchError(`${file.name} is not a picture (${file.type || "unknown type"}).`);
    return;
  }
  const dataUrl = await readAsDataUrl(file);
  setQuery({ kind: "image", value: dataUrl, name: file.name });
  $("search-text").value = "";
  runSearch();
}

async function searchBySound(blob) {
  let attached;
  try {
    attached = await audioAttachment(blob, "recording");
  } catch (err) {
    searchError(`The browser could not decode the recording: ${err.message || err}`);
    return;
  }
  URL.revokeObjectURL(attached.url);
  setQuery({ kind: "audio", value: audioDataUri(attached), name: "(recorded)" });
  $("search-text").value = "";
  runSearch();
}

// ---------------------------------------------------------------- filters

function addFilterRow(field, value) {
  searching.filterCount += 1;
  const n = searching.filterCount;
  const row = element("div", "filter-row");
  const fieldInput = Object.assign(document.createElement("input"), {
    type: "text", className: "filter-field", value: field || "",
  });
  fieldInput.setAttribute("list", "filter-fields");
  fieldInput.setAttribute("aria-label", `Filter field ${n}`);
  fieldInput.placeholder = "field";
  const valueInput = Object.assign(document.createElement("input"), {
    type: "text", className: "filter-value", value: value ?? "",
  });
  valueInput.setAttribute("aria-label", `Filter value ${n}`);
  valueInput.placeholder = "value";
  const remove = element("button", "link", "Remove");
  remove.type = "button";
  remove.setAttribute("aria-label", `Remove filter ${n}`);
  remove.addEventListener("click", () => {
    row.remove();
    $("add-filter").focus();
  });
  row.append(fieldInput, element("span", "equals", "="), valueInput, remove);
  $("filter-rows").append(row);
  return fieldInput;
}

/** A typed value as the index stores it: a number or boolean when the field held those. */
function filterValue(field, text) {
  const kind = searching.fieldTypes[field];
  if (kind === "number" || (!kind && /^-?\d+(\.\d+)?$/.test(text))) {
    const value = Number(text);
    if (Number.isFinite(value)) return value;
  }
  if (kind === "boolean" || (!kind && /^(true|false)$/.test(text))) return text === "true";
  return text;
}

/** The filter of the rows filled in; throws with a message naming a half-filled row. */
function readFilters() {
  const filter = {};
  for (const row of $("filter-rows").querySelectorAll(".filter-row")) {
    const field = row.querySelector(".filter-field").value.trim();
    const text = row.querySelector(".filter-value").value.trim();
    if (!field && !text) continue;
    if (!field || !text) throw new Error("Each filter needs a field and a value (or remove it).");
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(field)) {
      throw new Error(`"${field}" is not a field name (letters, digits and _).`);
    }
    filter[field] = filterValue(field, text);
  }
  return filter;
}

function rememberFields(hits) {
  hits.forEach((hit) => {
    Object.entries(hit.metadata || {}).forEach(([field, value]) => {
      if (HIDDEN_FIELDS.has(field) || value === null || typeof value === "object") return;
      searching.fieldTypes[field] = typeof value === "number" ? "number" : typeof value === "boolean" ? "boolean" : "string";
    });
  });
  const list = $("filter-fields");
  list.replaceChildren(...Object.keys(searching.fieldTypes).sort().map((f) => new Option(f)));
}

// ---------------------------------------------------------------- searching

async function runSearch(event) {
  if (event) event.preventDefault();
  searchError("");
  const text = $("search-text").value.trim();
  if (text) setQuery(null);
  let query;
  if (text) query = { text };
  else if (searching.query) query = { [searching.query.kind]: searching.query.value };
  else {
    searchError("Type something to search for, drop a picture or record a spoken query.");
    $("search-text").focus();
    return;
  }
  let filter;
  let k;
  try {
    filter = readFilters();
    k = Number.parseInt($("search-k").value, 10);
    if (!Number.isFinite(k) || k < 1 || k > 200) throw new Error("Results must be between 1 and 200.");
  } catch (err) {
    searchError(err.message);
    return;
  }
  if (searching.controller) searching.controller.abort();
  const controller = (searching.controller = new AbortController());
  $("search-results").setAttribute("aria-busy", "true");
  $("search-summary").textContent = "Searching…";
  try {
    const body = { query, k };
    if (Object.keys(filter).length) body.filter = filter;
    const answer = await postJson("/v1/search", body, controller.signal);
    showResults(answer, filter);
  } catch (err) {
    if (err.name === "AbortError") return;
    $("search-summary").textContent = "";
    searchError(err.message || String(err));
  } finally {
    if (searching.controller === controller) searching.controller = null;
    $("search-results").setAttribute("aria-busy", "false");
  }
}

function showResults(answer, filter) {
  searching.objectUrls.forEach((url) => URL.revokeObjectURL(url));
  searching.objectUrls = [];
  const hits = Array.isArray(answer.data) ? answer.data : [];
  rememberFields(hits);
  const filters = Object.entries(filter).map(([f, v]) => `${f} = ${v}`).join(", ");
  $("search-summary").textContent =
    `${hits.length} nearest ${hits.length === 1 ? "item" : "items"} by ${answer.modality} ` +
    `(model ${answer.model})${filters ? `, where ${filters}` : ""}.`;
  const grid = $("search-results");
  grid.replaceChildren(...hits.map(resultCard));
  if (!hits.length) grid.append(element("li", "empty", "Nothing matches. Remove a filter or search for something else."));
}

function caption(meta, id) {
  const source = typeof meta.source === "string" && !meta.source.startsWith("data:") ? meta.source : undefined;
  return String(meta.caption ?? meta.text ?? (meta.modality === "text" ? source : undefined) ?? meta.label ?? id);
}

/** One result: its picture (when it has one), caption, score and metadata as filter buttons. */
function resultCard(hit) {
  const meta = hit.metadata || {};
  const card = element("li", "card");
  const thumb = element("div", "thumb");
  const wantsFile = typeof meta.image === "string" || meta.modality === "image";
  if (typeof meta.thumbnail === "string" && meta.thumbnail.startsWith("data:image/") && !wantsFile) {
    thumb.append(thumbnailImage(meta.thumbnail, hit.id));
  } else if (wantsFile) {
    loadThumbnail(thumb, hit.id);
  } else {
    thumb.append(element("span", "no-thumb", meta.modality || "item"));
  }
  const score = element("span", "score", Number(hit.score).toFixed(3));
  score.title = "similarity score";
  card.append(thumb, element("p", "caption", caption(meta, hit.id)), score, metadataChips(meta, hit.id));
  return card;
}

function thumbnailImage(src, id) {
  const img = document.createElement("img");
  img.src = src;
  img.alt = `Picture of item ${id}`;
  img.loading = "lazy";
  return img;
}

async function loadThumbnail(holder, id) {
  holder.append(element("span", "no-thumb", "loading…"));
  try {
    const url = await fetchObjectUrl(`/v1/items/image?id=${encodeURIComponent(id)}&size=${THUMB_SIZE}`);
    searching.objectUrls.push(url);
    holder.replaceChildren(thumbnailImage(url, id));
  } catch (err) {
    const note = element("span", "no-thumb", "no preview");
    note.title = err.message || String(err);
    holder.replaceChildren(note);
  }
}

function metadataChips(meta, id) {
  const list = element("div", "chips");
  Object.entries(meta).forEach(([field, value]) => {
    if (HIDDEN_FIELDS.has(field) || value === null || typeof value === "object") return;
    const chip = element("button", "chip", `${field}: ${value}`);
    chip.type = "button";
    chip.title = `Only items whose ${field} is ${value}`;
    chip.addEventListener("click", () => {
      addFilterRow(field, String(value));
      runSearch();
    });
    list.append(chip);
  });
  list.append(element("span", "item-id", id));
  return list;
}

// ---------------------------------------------------------------- wiring

function initSearchTab() {
  $("search-form").addEventListener("submit", runSearch);
  $("search-picture").addEventListener("change", (e) => searchByPicture(e.target.files[0]));
  $("search-query-clear").addEventListener("click", () => {
    setQuery(null);
    $("search-picture").value = "";
    $("search-text").focus();
  });
  $("add-filter").addEventListener("click", () => addFilterRow().focus());
  recorderButton($("search-record"), $("search-record-status"), searchBySound);
  const drop = $("search-drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("dragging");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("dragging");
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) searchByPicture(file);
    else searchError("Drop a picture file here.");
  });
}
