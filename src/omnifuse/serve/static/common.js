// What every tab of the omnifuse page shares: requests to the API (with the API key), its JSON
// errors as readable messages, server-sent events, media helpers (data URLs, WAV for the API,
// recording) and a bar chart in plain SVG. Plain browser JavaScript loaded before the tabs'
// scripts: no build step, no dependencies.
"use strict";

const API_KEY_STORAGE = "omnifuse.apiKey";
const WAV_SAMPLE_RATE = 16000;

const $ = (id) => document.getElementById(id);

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

async function getJson(path, signal) {
  const response = await fetch(path, { headers: authHeaders(false), signal });
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

/** An object URL for a binary answer (a picture, a plot, speech): `<img>` and `<audio>` cannot
 * send the API key, so the page fetches the bytes itself. The caller revokes the URL. */
async function fetchObjectUrl(path, options = {}) {
  const response = await fetch(path, {
    method: options.body ? "POST" : "GET",
    headers: authHeaders(Boolean(options.body)),
    body: options.body ? JSON.stringify(options.body) : undefined,
    signal: options.signal,
  });
  if (!response.ok) throw new ApiError(await errorMessage(response));
  return URL.createObjectURL(await response.blob());
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

/** Streams a chat completion: `onChunk(chunk)` for every chunk, `onText(piece)` for every piece
 * of the answer. An error event of the stream is thrown as an ApiError. */
async function streamChat(body, signal, { onChunk, onText }) {
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: authHeaders(true),
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  if (!response.ok) throw new ApiError(await errorMessage(response));
  for await (const chunk of sseEvents(response)) {
    if (chunk.error) throw new ApiError(describeErrorBody(chunk));
    if (onChunk) onChunk(chunk);
    const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
    if (delta && delta.content && onText) onText(delta.content);
  }
}

/** Shows `message` in an alert box (hidden when the message is empty). */
function showAlert(box, message) {
  box.textContent = message || "";
  box.hidden = !message;
}

function chatModel() {
  return $("chat-model").value || undefined;
}

function maxTokens() {
  const value = Number.parseInt($("max-tokens").value, 10);
  return Number.isFinite(value) && value > 0 ? value : 64;
}

// ---------------------------------------------------------------- media

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

/** An attachment the API can take: `{base64, format, url, name}` (`url` plays it here). */
async function audioAttachment(blob, name) {
  const converted = await toApiAudio(blob, name);
  const base64 = dataUrlBase64(await readAsDataUrl(converted.blob));
  return { base64, format: converted.format, url: URL.createObjectURL(converted.blob), name };
}

function audioDataUri(audio) {
  return `data:audio/${audio.format};base64,${audio.base64}`;
}

/** A record button: the first click records from the microphone, the next stops and hands the
 * recording to `onRecorded(blob)`; `status` says what happens (and why recording cannot). */
function recorderButton(button, status, onRecorded) {
  const idle = button.textContent;
  let recorder = null;
  button.addEventListener("click", async () => {
    if (recorder) {
      recorder.stop();
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
    const active = new MediaRecorder(stream);
    active.ondataavailable = (event) => chunks.push(event.data);
    active.onstop = async () => {
      stream.getTracks().forEach((track) => track.stop());
      recorder = null;
      button.textContent = idle;
      button.setAttribute("aria-pressed", "false");
      status.textContent = "Recorded.";
      await onRecorded(new Blob(chunks, { type: active.mimeType }));
    };
    recorder = active;
    active.start();
    button.textContent = "Stop recording";
    button.setAttribute("aria-pressed", "true");
    status.textContent = "Recording… speak now.";
  });
}

// ---------------------------------------------------------------- display

function listItem(text) {
  return Object.assign(document.createElement("li"), { textContent: text });
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A number as the page shows it: integers whole, others with 3 decimals, missing as "—". */
function formatNumber(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 1000 ? value.toFixed(1) : value.toFixed(3);
}

/** A horizontal bar chart in plain SVG; bars grow right for positive values, left for negative. */
function drawBars(container, entries, emptyText) {
  const ns = "http://www.w3.org/2000/svg";
  const rows = entries.filter(([, value]) => Number.isFinite(value));
  if (!rows.length) {
    container.textContent = emptyText || "This model reports no modality contributions.";
    return;
  }
  const width = 420;
  const rowHeight = 26;
  const labelWidth = Math.min(180, 12 + 7 * Math.max(...rows.map(([name]) => name.length)));
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

/** "What I used": one item per tool the assistant consulted (the `tools` of the API's
 * `omnifuse` extra): its name, what it found, its confidence, how good it is known to be and
 * what it cost. An empty list says no tool was consulted. */
function fillTools(list, tools) {
  list.replaceChildren();
  if (!tools.length) list.append(listItem("No tools were consulted."));
  tools.forEach((tool) => list.append(toolItem(tool)));
}

function toolItem(tool) {
  const li = document.createElement("li");
  const name = element("span", "tool-name", String(tool.name));
  const finding = element("span", "finding", String(tool.text || "(nothing found)"));
  const facts = [];
  if (tool.confidence !== null && tool.confidence !== undefined) {
    facts.push(`confidence ${Math.round(100 * Number(tool.confidence))} %`);
  }
  if (tool.quality) facts.push(String(tool.quality));
  facts.push(`${Number(tool.seconds || 0).toFixed(3)} s`);
  li.append(name, finding, element("div", "meta", facts.join(" · ")));
  return li;
}
