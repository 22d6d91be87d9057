// The Ask tab: attach an image and/or audio, type or speak a question, stream the answer from
// /v1/chat/completions with what the assistant perceived and the tools it used ("What I used"),
// then show modality contributions (/v1/predict) and the nearest indexed items (/v1/search).
"use strict";

const NEIGHBOURS_K = 5;

const ask = {
  image: null, // {dataUrl, name}
  audio: null, // {base64, format, url, name}
  controller: null,
};

function showError(message) {
  showAlert($("error"), message);
}

function setBusy(busy) {
  $("ask-button").disabled = busy;
  $("stop-button").disabled = !busy;
  $("answer").setAttribute("aria-busy", String(busy));
}

// ---------------------------------------------------------------- attachments

async function attachImage(file) {
  if (!file) return clearImage();
  const dataUrl = await readAsDataUrl(file);
  ask.image = { dataUrl, name: file.name };
  $("image-preview").src = dataUrl;
  $("image-figure").hidden = false;
}

function clearImage() {
  ask.image = null;
  $("image-input").value = "";
  $("image-preview").removeAttribute("src");
  $("image-figure").hidden = true;
}

async function attachAudio(blob, name) {
  if (!blob) return clearAudio();
  let attached;
  try {
    attached = await audioAttachment(blob, name);
  } catch (err) {
    showError(`The browser could not decode the audio ${name || ""}: ${err.message || err}`);
    return clearAudio();
  }
  if (ask.audio) URL.revokeObjectURL(ask.audio.url);
  ask.audio = attached;
  $("audio-player").src = attached.url;
  $("audio-figure").hidden = false;
}

function clearAudio() {
  if (ask.audio) URL.revokeObjectURL(ask.audio.url);
  ask.audio = null;
  $("audio-input").value = "";
  $("audio-player").removeAttribute("src");
  $("audio-figure").hidden = true;
}

// ---------------------------------------------------------------- ask

function userContent(question) {
  const parts = [];
  if (question) parts.push({ type: "text", text: question });
  if (ask.image) parts.push({ type: "image_url", image_url: { url: ask.image.dataUrl } });
  if (ask.audio) {
    const { base64, format } = ask.audio;
    parts.push({ type: "input_audio", input_audio: { data: base64, format } });
  }
  return parts;
}

/** The perceived context as a definition list: question, transcript, what was seen. */
function showContext(fields) {
  const list = $("context");
  list.replaceChildren();
  Object.entries(fields).forEach(([name, value]) => {
    list.append(element("dt", "", name), element("dd", "", String(value)));
  });
  list.hidden = !list.children.length;
}

/** `null` hides "What I used"; a list (possibly empty) shows it. */
function showTools(tools) {
  $("tools").hidden = tools === null;
  if (tools !== null) fillTools($("tools-list"), tools);
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
  const body = {
    model: chatModel(),
    messages: [{ role: "user", content: userContent(question) }],
    max_tokens: maxTokens(),
  };
  let context = {};
  let toolsShown = false;
  await streamChat(body, signal, {
    onChunk(chunk) {
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
    },
    onText(piece) {
      answer.textContent += piece;
    },
  });
  if (!answer.textContent.trim()) answer.textContent = "(the model returned an empty answer)";
}

async function askQuestion(event) {
  event.preventDefault();
  const question = $("question-input").value.trim();
  if (!question && !ask.audio) {
    showError("Type a question, or attach or record audio that asks one.");
    return;
  }
  showError("");
  $("answer").textContent = "";
  showContext({});
  showTools(null);
  const { signal } = (ask.controller = new AbortController());
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
    ask.controller = null;
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

/** The attached inputs keyed by modality, restricted to the modalities the model reads. */
function predictInputs(model, question) {
  const card = site.models.find((m) => m.id === model);
  const reads = new Set(card ? card.modalities : []);
  const inputs = {};
  if (question && reads.has("text")) inputs.text = question;
  if (ask.image && reads.has("image")) inputs.image = ask.image.dataUrl;
  if (ask.audio && reads.has("audio")) inputs.audio = audioDataUri(ask.audio);
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
    $("prediction").textContent = `Prediction: ${result.label} (${Number(result.score).toFixed(2)})`;
    drawBars($("contributions"), contributionsOf(result));
  } catch (err) {
    if (err.name !== "AbortError") $("prediction").textContent = `Prediction failed: ${err.message}`;
  }
}

/** Shapley contributions of the present modalities; the fusion's own weights when the server
 * did not compute them (models with many modalities). */
function contributionsOf(result) {
  const values = result.contributions ?? result.weights ?? {};
  return Object.entries(values).map(([name, value]) => [name, Number(value)]);
}

// ---------------------------------------------------------------- nearest items

/** Queries to try, best first: the image, then the question, then the audio. */
function searchQueries(question) {
  const queries = [];
  if (ask.image) queries.push({ image: ask.image.dataUrl });
  if (question) queries.push({ text: question });
  if (ask.audio) queries.push({ audio: audioDataUri(ask.audio) });
  return queries;
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
      if (!/unsupported|dimension|no loaded model embeds|cannot query this index/i.test(err.message)) break;
    }
  }
  throw lastError;
}

async function showNeighbours(question, signal) {
  const panel = $("neighbours-panel");
  const list = $("neighbours");
  const queries = searchQueries(question);
  if (!queries.length || !site.searchable) {
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
  const source = isImageData(meta.source) ? undefined : meta.source;
  const title = element("span", "", String(meta.caption ?? meta.text ?? source ?? meta.label ?? hit.id));
  const details = [meta.modality, meta.label, meta.split, hit.id]
    .filter((v) => v !== undefined && v !== null && v !== "")
    .join(" · ");
  li.append(title, element("span", "score", Number(hit.score).toFixed(3)), element("div", "meta", details));
  return li;
}

// ---------------------------------------------------------------- wiring

function initAskTab() {
  $("image-input").addEventListener("change", (e) => attachImage(e.target.files[0]));
  $("image-clear").addEventListener("click", clearImage);
  $("audio-input").addEventListener("change", (e) => {
    const file = e.target.files[0];
    attachAudio(file, file && file.name);
  });
  $("audio-clear").addEventListener("click", clearAudio);
  recorderButton($("record-button"), $("record-status"), (blob) => attachAudio(blob, "recording"));
  $("ask-form").addEventListener("submit", askQuestion);
  $("question-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("ask-form").requestSubmit();
  });
  $("stop-button").addEventListener("click", () => ask.controller && ask.controller.abort());
}
