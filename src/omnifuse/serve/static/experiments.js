// The Experiments tab: every sweep and tune folder the server was pointed at (/v1/experiments),
// one at a time — its leaderboard as a table sortable by any column (click or Enter on a column
// heading; again to reverse), its plots, and for a sweep, per model, the accuracy with
// modalities missing and each modality's contribution (Shapley values).
"use strict";

const experiments = {
  list: [],
  current: null, // the detail of the open experiment
  sort: { column: null, descending: false },
  plotUrls: [],
  controller: null,
};

function experimentsError(message) {
  showAlert($("experiments-error"), message);
}

async function loadExperimentList() {
  experimentsError("");
  const select = $("experiment-select");
  try {
    const body = await getJson("/v1/experiments");
    experiments.list = Array.isArray(body.data) ? body.data : [];
  } catch (err) {
    experimentsError(`The experiments could not be listed: ${err.message}`);
    return;
  }
  const previous = select.value;
  select.replaceChildren(
    ...experiments.list.map((e) => new Option(`${e.title} — ${e.kind}, ${e.rows} rows (${e.id})`, e.id)),
  );
  const none = !experiments.list.length;
  $("experiments-none").hidden = !none;
  $("experiment-view").hidden = none;
  if (none) return;
  if (experiments.list.some((e) => e.id === previous)) select.value = previous;
  await openExperiment(select.value);
}

async function openExperiment(id) {
  experimentsError("");
  if (experiments.controller) experiments.controller.abort();
  const controller = (experiments.controller = new AbortController());
  let detail;
  try {
    detail = await getJson(`/v1/experiments/${encodeURIComponent(id)}`, controller.signal);
  } catch (err) {
    if (err.name !== "AbortError") experimentsError(`Experiment ${id} could not be read: ${err.message}`);
    return;
  }
  experiments.current = detail;
  experiments.sort = { column: null, descending: false };
  const problems = detail.problems.length ? ` Problems: ${detail.problems.join("; ")}` : "";
  $("experiment-summary").textContent = `${summaryLine(detail)}${problems}`;
  renderTable();
  renderModels();
  renderPlots(detail, controller.signal);
}

function summaryLine(detail) {
  const when = detail.modified ? new Date(detail.modified * 1000).toLocaleString() : "unknown";
  const parts = [`${detail.kind} · ${detail.rows} rows · last written ${when}`];
  const best = detail.summary && detail.summary.best;
  if (detail.kind === "tune" && best && typeof best === "object") {
    parts.push(`best trial #${best.trial} (${best.fusion ?? "?"}, validation ${formatNumber(best.val)})`);
  }
  return `${parts.join(" · ")}.`;
}

// ---------------------------------------------------------------- leaderboard

function compareCells(a, b) {
  const missingA = a === null || a === undefined || a === "";
  const missingB = b === null || b === undefined || b === "";
  if (missingA || missingB) return missingA - missingB; // missing values last either way
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

function sortedRows() {
  const { column, descending } = experiments.sort;
  const rows = [...experiments.current.table];
  if (column === null) return rows;
  return rows.sort((x, y) => {
    const order = compareCells(x[column], y[column]);
    const missing = [x[column], y[column]].some((v) => v === null || v === undefined || v === "");
    return descending && !missing ? -order : order;
  });
}

function sortBy(column) {
  const same = experiments.sort.column === column;
  experiments.sort = { column, descending: same ? !experiments.sort.descending : false };
  renderTable();
  const heading = [...$("leaderboard").querySelectorAll("th button")].find((b) => b.dataset.column === column);
  if (heading) heading.focus();
}

function renderTable() {
  const { columns } = experiments.current;
  const { column: sorted, descending } = experiments.sort;
  const head = document.createElement("tr");
  columns.forEach((column) => {
    const th = element("th");
    th.scope = "col";
    const state = column === sorted ? (descending ? "descending" : "ascending") : "none";
    th.setAttribute("aria-sort", state);
    const button = element("button", "sort", column);
    const arrow = element("span", "arrow", { ascending: " ▲", descending: " ▼" }[state] || "");
    arrow.setAttribute("aria-hidden", "true"); // the heading's aria-sort says it to screen readers
    button.append(arrow);
    button.type = "button";
    button.dataset.column = column;
    button.title = `Sort by ${column}`;
    button.addEventListener("click", () => sortBy(column));
    th.append(button);
    head.append(th);
  });
  $("leaderboard-head").replaceChildren(head);
  const body = sortedRows().map((row) => {
    const tr = document.createElement("tr");
    columns.forEach((column) => {
      const value = row[column];
      const td = element("td", typeof value === "number" ? "number" : "", formatNumber(value));
      tr.append(td);
    });
    return tr;
  });
  $("leaderboard-body").replaceChildren(...body);
  $("leaderboard-caption").textContent = sorted === null
    ? "Leaderboard (as written: best first)"
    : `Leaderboard sorted by ${sorted}, ${descending ? "descending" : "ascending"}`;
}

// ---------------------------------------------------------------- per model

function renderModels() {
  const { models } = experiments.current;
  const section = $("model-views");
  const select = $("model-select");
  if (!models.length) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  const previous = select.value;
  select.replaceChildren(...models.map((m, i) => new Option(`${m.name} (accuracy ${formatNumber(m.accuracy)})`, String(i))));
  const again = models.findIndex((m, i) => String(i) === previous);
  select.value = again >= 0 ? previous : "0";
  renderModel();
}

/** Accuracy with every subset of modalities present (the full set first), and the Shapley value
 * of each modality (the fusion's own weights when no Shapley values were computed). */
function renderModel() {
  const model = experiments.current.models[Number($("model-select").value)];
  if (!model) return;
  const subsets = [...model.subsets].sort((a, b) => b.present.length - a.present.length);
  const missing = subsets.map((s) => [s.present.length ? `${s.present.join(" + ")}` : "none", Number(s.accuracy)]);
  drawBars($("missing-chart"), missing, `${model.name} was not evaluated with modalities missing.`);
  const values = Object.keys(model.shapley).length ? model.shapley : model.weights;
  const source = Object.keys(model.shapley).length ? "Shapley value" : "fusion weight";
  $("contribution-caption").textContent = `Contribution of each modality (${source})`;
  drawBars(
    $("contribution-chart"),
    Object.entries(values).map(([name, value]) => [name, Number(value)]),
    `${model.name} reads one modality: nothing to share out.`,
  );
}

// ---------------------------------------------------------------- plots

async function renderPlots(detail, signal) {
  experiments.plotUrls.forEach((url) => URL.revokeObjectURL(url));
  experiments.plotUrls = [];
  const holder = $("plots");
  holder.replaceChildren();
  $("plots-none").hidden = detail.plots.length > 0;
  for (const name of detail.plots) {
    const figure = element("figure", "plot");
    const caption = element("figcaption", "", name);
    figure.append(caption);
    holder.append(figure);
    try {
      const path = `/v1/experiments/${encodeURIComponent(detail.id)}/plots/${encodeURIComponent(name)}`;
      const url = await fetchObjectUrl(path, { signal });
      experiments.plotUrls.push(url);
      const img = document.createElement("img");
      img.src = url;
      img.alt = `Plot ${name} of ${detail.title}`;
      figure.prepend(img);
    } catch (err) {
      if (err.name === "AbortError") return;
      caption.textContent = `${name}: could not be loaded (${err.message})`;
      caption.classList.add("message-error");
    }
  }
}

// ---------------------------------------------------------------- wiring

function initExperimentsTab() {
  $("experiment-select").addEventListener("change", (e) => openExperiment(e.target.value));
  $("experiments-reload").addEventListener("click", loadExperimentList);
  $("model-select").addEventListener("change", renderModel);
}
