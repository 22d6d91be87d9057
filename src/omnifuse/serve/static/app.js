// The omnifuse web page: attach an image and/or audio, type or speak a question, stream the
// answer from /v1/chat/completions, then show modality contributions (/v1/predict) and the
// nearest indexed items (/v1/search). Plain browser JavaScript: no build step, no dependencies.
"use strict";

const API_KEY_STORAGE = "omnifuse.apiKey";
const WAV_SAMPLE_RATE = 16000;
const NEIGHBOURS_K = 5;

const $ = (id) => document.getElementById(id);

const state = {
  image: null, // {dataUrl, name}
  audio: null, // {base64, format, url, name}
  models: [],
  searchable: false,
  recorder: null,
  controller: null,
};

// ---------------------------------------------------------------- HTTP

class ApiError extends Error {}

function authHeaders(json) {
  const headers = {};
  if (json) headers["Content-Type"] = "application/json";
  const key = $("api-key").value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

/** The readable message of an error response: the API's JSON error message when there is one. */
async function errorMessage(response) {
  const text = await response.text();
  let message = text.trim();
  try {
    const body = JSON.parse(text);
    message = describeErrorBody(body) || message;
  } catch (_) {
    // Not JSON: keep the text as it is.
  }
  const status = `${response.status} ${response.statusText}`.trim();
  return message ? `${status}: ${message}` : status;
}

function describeErrorBody(body) {
  if (!body || typeof body !== "object") return "";
  const error = body.error;
  if (error && typeof error === "object" && error.message) return String(error.message);
  if (typeof error === "string") return error;
  if (typeof body.detail === "string") return body.detail;
  if (Array.isArray(body.detail)) {
    return body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("\n");
  }
  if (body.message) return String(body.message);
  return "";
}

async function getJson(path) {
  const response = await fetch(path, { headers: authHeaders(false) });
  if (!response.ok) throw new ApiError(await errorMessage(response));
  return response.json();
}

async function postJson(path, body, signal) {
  const response = await fetch(path, {
    method: "POST",
    headers: authHeaders(true),
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw new ApiError(await errorMessage(response));
  return response.json();
}

/** Yields the JSON payload of every `data:` event of a server-sent-event stream until [DONE]. */
async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = event
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}

// ---------------------------------------------------------------- page state

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setBusy(busy) {
  $("ask-button").disabled = busy;
  $("stop-button").disabled = !busy;
  $("answer").setAttribute("aria-busy", String(busy));
}

function readAsDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

function dataUrlBase64(dataUrl) {
  return dataUrl.slice(dataUrl.indexOf(",") + 1);
}

// ---------------------------------------------------------------- image

async function attachImage(file) {
  if (!file) return clearImage();
  const dataUrl = await readAsDataUrl(file);
  state.image = { dataUrl, name: file.name };
  $("image-preview").src = dataUrl;
  $("image-figure").hidden = false;
}

function clearImage() {
  state.image = null;
  $("image-input").value = "";
  $("image-preview").removeAttribute("src");
  $("image-figure").hidden = true;
}

// ---------------------------------------------------------------- audio

/** WAV (16-bit PCM, mono) bytes of an AudioBuffer, resampled to `rate`. */
async function encodeWav(buffer, rate) {
  const frames = Math.max(1, Math.ceil(buffer.duration * rate));
  const offline = new OfflineAudioContext(1, frames, rate);
  const source = offline.createBufferSource();
  source.buffer = buffer;
  source.connect(offline.destination);
  source.start();
  const samples = (await offline.startRendering()).getChannelData(0);
  const view = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const ascii = (offset, text) => {
    for (let i = 0; i < text.length; i += 1) view.setUint8(offset + i, text.charCodeAt(i));
  };
  ascii(0, "RIFF");
  view.setUint32(4, 36 + samples.length * 2, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, 1, true);
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  ascii(36, "data");
  view.setUint32(40, samples.length * 2, true);
  samples.forEach((s, i) => {
    const clipped = Math.max(-1, Math.min(1, s));
    view.setInt16(44 + i * 2, clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff, true);
  });
  return new Blob([view], { type: "audio/wav" });
}

function audioFormat(blob, name) {
  const type = (blob.type || "").toLowerCase();
  const lower = (name || "").toLowerCase();
  if (type.includes("wav") || lower.endsWith(".wav")) return "wav";
  if (type.includes("mpeg") || type.includes("mp3") || lower.endsWith(".mp3")) return "mp3";
  return null;
}

/** The API takes WAV or MP3; anything else the browser can decode is converted to WAV first. */
async function toApiAudio(blob, name) {
  const format = audioFormat(blob, name);
  if (format) return { blob, format };
  const context = new AudioContext();
  try {
    const decoded = await context.decodeAudioData(await blob.arrayBuffer());
    return { blob: await encodeWav(decoded, WAV_SAMPLE_RATE), format: "wav" };
  } finally {
    context.close();
  }
}

async function attachAudio(blob, name) {
  if (!blob) return clearAudio();
  let converted;
  try {
    converted = await toApiAudio(blob, name);
  } catch (err) {
    showError(`The browser could not decode the audio ${name || ""}: ${err.message || err}`);
    return clearAudio();
  }
  if (state.audio) URL.revokeObjectURL(state.audio.url);
  const url = URL.createObjectURL(converted.blob);
  const base64 = dataUrlBase64(await readAsDataUrl(converted.blob));
  state.audio = { base64, format: converted.format, url, name };
  $("audio-player").src = url;
  $("audio-figure").hidden = false;
}

function clearAudio() {
  if (state.audio) URL.revokeObjectURL(state.audio.url);
  state.audio = null;
  $("audio-input").value = "";
  $("audio-player").removeAttribute("src");
  $("audio-figure").hidden = true;
}

async function toggleRecording() {
  const button = $("record-button");
  const status = $("record-status");
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    status.textContent = "This browser cannot record audio here (recording needs https or localhost).";
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    const reason = err.message || err.name;
    status.textContent = `Microphone access was refused: ${reason}. Attach an audio file instead.`;
    return;
  }
  const chunks = [];
  const recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (event) => chunks.push(event.data);
  recorder.onstop = async () => {
    stream.getTracks().forEach((track) => track.stop());
    state.recorder = null;
    button.textContent = "Record question";
    button.setAttribute("aria-pressed", "false");
    status.textContent = "Recorded.";
    await attachAudio(new Blob(chunks, { type: recorder.mimeType }), "recording");
  };
  state.recorder = recorder;
  recorder.start();
  button.textContent = "Stop recording";
  button.setAttribute("aria-pressed", "true");
  status.textContent = "Recording… speak your question.";
}

// ---------------------------------------------------------------- models

function fillSelect(select, models, keepEmpty) {
  const previous = select.value;
  select.replaceChildren();
  if (keepEmpty) select.append(new Option("none", ""));
  models.forEach((m) => select.append(new Option(m.id, m.id)));
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
}

async function loadModels() {
  const body = await getJson("/v1/models");
  state.models = Array.isArray(body.data) ? body.data : [];
  const chat = state.models.filter((m) => m.kind === "chat");
  const fusion = state.models.filter((m) => m.kind === "fusion");
  fillSelect($("chat-model"), chat, false);
  fillSelect($("fusion-model"), fusion, true);
  if (fusion.length && !$("fusion-model").value) $("fusion-model").value = fusion[0].id;
}

async function loadStatus() {
  const status = $("server-status");
  try {
    const health = await getJson("/healthz");
    state.searchable = Boolean(health.index);
    status.textContent = `Server ${health.status || "ok"}${health.index ? " · index loaded" : ""}`;
  } catch (err) {
    status.textContent = `Server unreachable: ${err.message}`;
    return;
  }
  try {
    await loadModels();
  } catch (err) {
    status.textContent += ` — models unavailable: ${err.message}`;
  }
}

// ---------------------------------------------------------------- ask

function userContent(question) {
  const parts = [];
  if (question) parts.push({ type: "text", text: question });
  if (state.image) parts.push({ type: "image_url", image_url: { url: state.image.dataUrl } });
  if (state.audio) {
    const { base64, format } = state.audio;
    parts.push({ type: "input_audio", input_audio: { data: base64, format } });
  }
  return parts;
}

function maxTokens() {
  const value = Number.parseInt($("max-tokens").value, 10);
  return Number.isFinite(value) && value > 0 ? value : 64;
}

/** The perceived context as a definition list: question, transcript, what was seen. */
function showContext(fields) {
  const list = $("context");
  list.replaceChildren();
  Object.entries(fields).forEach(([name, value]) => {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    list.append(dt, dd);
  });
  list.hidden = !list.children.length;
}

/** "What I used": one item per tool the assistant consulted (the `tools` of the API's
 * `omnifuse` extra): its name, what it found, its confidence, how good it is known to be and
 * what it cost. `null` hides the list; an empty list says no tool was consulted. */
function showTools(tools) {
  const section = $("tools");
  const list = $("tools-list");
  list.replaceChildren();
  section.hidden = tools === null;
  if (tools === null) return;
  if (!tools.length) list.append(listItem("No tools were consulted."));
  tools.forEach((tool) => list.append(toolItem(tool)));
}

function toolItem(tool) {
  const li = document.createElement("li");
  const name = Object.assign(document.createElement("span"), { className: "tool-name" });
  name.textContent = String(tool.name);
  const finding = Object.assign(document.createElement("span"), { className: "finding" });
  finding.textContent = String(tool.text || "(nothing found)");
  const facts = [];
  if (tool.confidence !== null && tool.confidence !== undefined) {
    facts.push(`confidence ${Math.round(100 * Number(tool.confidence))} %`);
  }
  if (tool.quality) facts.push(String(tool.quality));
  facts.push(`${Number(tool.seconds || 0).toFixed(3)} s`);
  const meta = Object.assign(document.createElement("div"), { className: "meta" });
  meta.textContent = facts.join(" · ");
  li.append(name, finding, meta);
  return li;
}

/** What the assistant perceived so far: the `omnifuse` extras of a chunk merged into `known`
 * (a later chunk may carry only some of the fields). */
function mergeContext(known, chunk) {
  const extra = chunk.omnifuse;
  if (!extra || typeof extra !== "object") return known;
  const fields = { question: extra.question, transcript: extra.transcript, perceived: extra.context };
  const merged = { ...known };
  Object.entries(fields).forEach(([name, value]) => {
    if (value !== undefined && value !== null && value !== "") merged[name] = value;
  });
  return merged;
}

/** Streams the answer into the page; `onContext` gets what the assistant perceived as it comes. */
async function streamAnswer(question, signal, onContext) {
  const answer = $("answer");
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: authHeaders(true),
    body: JSON.stringify({
      model: $("chat-model").value || undefined,
      messages: [{ role: "user", content: userContent(question) }],
      stream: true,
      max_tokens: maxTokens(),
    }),
    signal,
  });
  if (!response.ok) throw new ApiError(await errorMessage(response));
  let context = {};
  let toolsShown = false;
  for await (const chunk of sseEvents(response)) {
    if (chunk.error) throw new ApiError(describeErrorBody(chunk));
    // The opening chunk's extra names the tools; the closing one carries only the short answer.
    if (!toolsShown && chunk.omnifuse && typeof chunk.omnifuse === "object") {
      showTools(Array.isArray(chunk.omnifuse.tools) ? chunk.omnifuse.tools : []);
      toolsShown = true;
    }
    const merged = mergeContext(context, chunk);
    if (merged !== context) {
      context = merged;
      showContext(context);
      onContext(context);
    }
    const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
    if (delta && delta.content) answer.textContent += delta.content;
  }
  if (!answer.textContent.trim()) answer.textContent = "(the model returned an empty answer)";
}

async function ask(event) {
  event.preventDefault();
  const question = $("question-input").value.trim();
  if (!question && !state.audio) {
    showError("Type a question, or attach or record audio that asks one.");
    return;
  }
  showError("");
  $("answer").textContent = "";
  showContext({});
  showTools(null);
  const { signal } = (state.controller = new AbortController());
  setBusy(true);
  // A spoken question is known once the server has transcribed it: the contributions and the
  // search then use its text, as they would a typed question.
  const heard = deferred();
  if (question) heard.resolve(question);
  const side = Promise.allSettled([
    heard.promise.then((text) => showContributions(text, signal)),
    heard.promise.then((text) => showNeighbours(text, signal)),
  ]);
  try {
    await streamAnswer(question, signal, (context) => {
      if (context.question || context.transcript) heard.resolve(context.question || context.transcript);
    });
  } catch (err) {
    if (err.name !== "AbortError") showError(err.message || String(err));
  } finally {
    heard.resolve("");
    setBusy(false);
    state.controller = null;
  }
  await side;
}

function deferred() {
  let resolve;
  const promise = new Promise((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

// ---------------------------------------------------------------- contributions

function audioDataUrl() {
  return `data:audio/${state.audio.format};base64,${state.audio.base64}`;
}

/** The attached inputs keyed by modality, restricted to the modalities the model reads. */
function predictInputs(model, question) {
  const card = state.models.find((m) => m.id === model);
  const reads = new Set(card ? card.modalities : []);
  const inputs = {};
  if (question && reads.has("text")) inputs.text = question;
  if (state.image && reads.has("image")) inputs.image = state.image.dataUrl;
  if (state.audio && reads.has("audio")) inputs.audio = audioDataUrl();
  return inputs;
}

async function showContributions(question, signal) {
  const model = $("fusion-model").value;
  const panel = $("contributions-panel");
  if (!model) {
    panel.hidden = true;
    return;
  }
  const inputs = predictInputs(model, question);
  panel.hidden = false;
  $("contributions").replaceChildren();
  if (!Object.keys(inputs).length) {
    $("prediction").textContent = `Model ${model} reads none of the attached inputs.`;
    return;
  }
  $("prediction").textContent = "Predicting…";
  try {
    const body = await postJson("/v1/predict", { model, inputs, explain: true }, signal);
    const result = body.data[0];
    $("prediction").textContent = predictionText(result);
    drawBars($("contributions"), contributionsOf(result));
  } catch (err) {
    if (err.name !== "AbortError") $("prediction").textContent = `Prediction failed: ${err.message}`;
  }
}

function predictionText(result) {
  return `Prediction: ${result.label} (${Number(result.score).toFixed(2)})`;
}

/** Shapley contributions of the present modalities; the fusion's own weights when the server
 * did not compute them (models with many modalities). */
function contributionsOf(result) {
  const values = result.contributions ?? result.weights ?? {};
  return Object.entries(values).map(([name, value]) => [name, Number(value)]);
}

/** A horizontal bar chart in plain SVG; bars grow right for positive values, left for negative. */
function drawBars(container, entries) {
  const ns = "http://www.w3.org/2000/svg";
  const rows = entries.filter(([, value]) => Number.isFinite(value));
  if (!rows.length) {
    container.textContent = "This model reports no modality contributions.";
    return;
  }
  const width = 420;
  const rowHeight = 26;
  const labelWidth = 80;
  const valueWidth = 56;
  const plot = width - labelWidth - valueWidth;
  const extent = Math.max(...rows.map(([, v]) => Math.abs(v)), 1e-9);
  const hasNegative = rows.some(([, v]) => v < 0);
  const zero = labelWidth + (hasNegative ? plot / 2 : 0);
  const scale = (hasNegative ? plot / 2 : plot) / extent;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${rows.length * rowHeight + 4}`);
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(ns, tag);
    Object.entries(attrs).forEach(([k, v]) => el.setAttribute(k, String(v)));
    if (text !== undefined) el.textContent = text;
    svg.append(el);
    return el;
  };
  rows.forEach(([name, value], i) => {
    const y = i * rowHeight + 4;
    const length = Math.abs(value) * scale;
    add("text", { x: 0, y: y + 15 }, name);
    const bar = add("rect", {
      x: value < 0 ? zero - length : zero, y, width: Math.max(length, 1), height: rowHeight - 8,
      class: value < 0 ? "bar-neg" : "bar-pos",
    });
    add("title", {}, `${name}: ${value.toFixed(3)}`);
    bar.setAttribute("aria-label", `${name} ${value.toFixed(3)}`);
    add("text", { x: width - valueWidth + 6, y: y + 15 }, value.toFixed(3));
  });
  add("line", { x1: zero, x2: zero, y1: 0, y2: rows.length * rowHeight + 4, class: "axis" });
  container.replaceChildren(svg);
}

// ---------------------------------------------------------------- nearest items

/** Queries to try, best first: the image, then the question, then the audio. */
function searchQueries(question) {
  const queries = [];
  if (state.image) queries.push({ image: state.image.dataUrl });
  if (question) queries.push({ text: question });
  if (state.audio) queries.push({ audio: audioDataUrl() });
  return queries;
}

function listItem(text) {
  return Object.assign(document.createElement("li"), { textContent: text });
}

/** The first query whose modality the index can be searched with; others are skipped. */
async function searchFirstUsable(queries, signal) {
  let lastError = null;
  for (const query of queries) {
    try {
      const body = await postJson("/v1/search", { query, k: NEIGHBOURS_K }, signal);
      return { modality: Object.keys(query)[0], body };
    } catch (err) {
      if (err.name === "AbortError") throw err;
      lastError = err;
      if (!/unsupported|dimension|no loaded model embeds/i.test(err.message)) break;
    }
  }
  throw lastError;
}

async function showNeighbours(question, signal) {
  const panel = $("neighbours-panel");
  const list = $("neighbours");
  const queries = searchQueries(question);
  if (!queries.length || !state.searchable) {
    panel.hidden = true;
    return;
  }
  list.replaceChildren();
  $("neighbours-by").textContent = "";
  try {
    const { modality, body } = await searchFirstUsable(queries, signal);
    const hits = Array.isArray(body.data) ? body.data : [];
    $("neighbours-by").textContent = `Searched by ${modality}.`;
    hits.forEach((hit) => list.append(neighbourItem(hit)));
    if (!hits.length) list.append(listItem("No items."));
    panel.hidden = false;
  } catch (err) {
    if (err.name === "AbortError") return;
    list.append(listItem(`Search failed: ${err.message}`));
    panel.hidden = false;
  }
}

function isImageData(value) {
  return typeof value === "string" && value.startsWith("data:image/");
}

/** One search hit: a thumbnail when its metadata carries one (a `thumbnail` data URI, or a
 * `source` that is one), its caption or text, the score, and what it is. */
function neighbourItem(hit) {
  const meta = hit.metadata || {};
  const li = document.createElement("li");
  const thumb = [meta.thumbnail, meta.source].find(isImageData);
  if (thumb) {
    const img = document.createElement("img");
    img.src = thumb;
    img.alt = `Indexed image ${hit.id}`;
    li.append(img);
  }
  const title = document.createElement("span");
  const source = isImageData(meta.source) ? undefined : meta.source;
  title.textContent = String(meta.caption ?? meta.text ?? source ?? meta.label ?? hit.id);
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = Number(hit.score).toFixed(3);
  const details = document.createElement("div");
  details.className = "meta";
  details.textContent = [meta.modality, meta.label, meta.split, hit.id]
    .filter((v) => v !== undefined && v !== null && v !== "")
    .join(" · ");
  li.append(title, score, details);
  return li;
}

// ---------------------------------------------------------------- wiring

function init() {
  const key = $("api-key");
  key.value = localStorage.getItem(API_KEY_STORAGE) || "";
  key.addEventListener("change", () => {
    localStorage.setItem(API_KEY_STORAGE, key.value.trim());
    loadStatus();
  });
  $("image-input").addEventListener("change", (e) => attachImage(e.target.files[0]));
  $("image-clear").addEventListener("click", clearImage);
  $("audio-input").addEventListener("change", (e) => {
    const file = e.target.files[0];
    attachAudio(file, file && file.name);
  });
  $("audio-clear").addEventListener("click", clearAudio);
  $("record-button").addEventListener("click", toggleRecording);
  $("ask-form").addEventListener("submit", ask);
  $("question-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("ask-form").requestSubmit();
  });
  $("stop-button").addEventListener("click", () => state.controller && state.controller.abort());
  loadStatus();
}

document.addEventListener("DOMContentLoaded", init);
