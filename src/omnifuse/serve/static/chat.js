// The Chat tab: a conversation kept in the page (and in the tab's session storage), where a
// picture or voice note attached once stays with the conversation — every turn resends the
// history, and the server perceives the latest attachment of each kind that the newest message
// lacks. Replies stream in (/v1/chat/completions, stream: true) with the tools they used, and
// can be spoken: by the server's text-to-speech (/v1/audio/speech), else, when the browser has
// an offline voice, by the browser.
"use strict";

const CHAT_STORAGE = "omnifuse.chat";
const SPEECH_CHARS = 4096;

const chat = {
  messages: [], // {role: "user"|"assistant", text, image?, audio?, tools?, transcript?, error?}
  pending: { image: null, audio: null },
  controller: null,
  spokenUrls: [],
};

function chatError(message) {
  showAlert($("chat-error"), message);
}

// ---------------------------------------------------------------- storage

function saveConversation() {
  try {
    sessionStorage.setItem(CHAT_STORAGE, JSON.stringify(chat.messages));
  } catch (_) {
    // Over the storage quota (large attachments): the conversation stays in the page only.
  }
}

function restoreConversation() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(CHAT_STORAGE) || "[]");
    if (Array.isArray(saved)) chat.messages = saved.filter((m) => m && typeof m.text === "string");
  } catch (_) {
    chat.messages = [];
  }
}

// ---------------------------------------------------------------- attachments

async function attachChatPicture(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) {
    chatError(`${file.name} is not a picture (${file.type || "unknown type"}).`);
    return;
  }
  chat.pending.image = { dataUrl: await readAsDataUrl(file), name: file.name };
  $("chat-picture").value = "";
  renderPending();
}

async function attachChatSound(blob, name) {
  if (!blob) return;
  try {
    const attached = await audioAttachment(blob, name);
    URL.revokeObjectURL(attached.url);
    chat.pending.audio = { base64: attached.base64, format: attached.format, name };
  } catch (err) {
    chatError(`The browser could not decode the audio ${name || ""}: ${err.message || err}`);
  }
  $("chat-sound").value = "";
  renderPending();
}

function attachmentChip(label, onRemove) {
  const chip = element("span", "chip", label);
  const remove = element("button", "link", "Remove");
  remove.type = "button";
  remove.setAttribute("aria-label", `Remove ${label}`);
  remove.addEventListener("click", onRemove);
  chip.append(" ", remove);
  return chip;
}

/** What the next message will carry. */
function renderPending() {
  const holder = $("chat-pending");
  holder.replaceChildren();
  const { image, audio } = chat.pending;
  if (image) {
    holder.append(attachmentChip(`picture ${image.name}`, () => {
      chat.pending.image = null;
      renderPending();
    }));
  }
  if (audio) {
    holder.append(attachmentChip(`voice note ${audio.name}`, () => {
      chat.pending.audio = null;
      renderPending();
    }));
  }
  holder.hidden = !image && !audio;
}

/** The attachments the conversation keeps talking about: the latest picture and voice note. */
function renderKept() {
  const latest = (kind) => [...chat.messages].reverse().find((m) => m.role === "user" && m[kind]);
  const picture = latest("image");
  const sound = latest("audio");
  const holder = $("chat-kept");
  holder.replaceChildren();
  if (picture) {
    const img = document.createElement("img");
    img.src = picture.image.dataUrl;
    img.alt = `Picture kept in the conversation: ${picture.image.name}`;
    holder.append(img, element("span", "", `picture ${picture.image.name}`));
  }
  if (sound) holder.append(element("span", "", `voice note ${sound.audio.name}`));
  $("chat-kept-box").hidden = !picture && !sound;
}

// ---------------------------------------------------------------- the log

function messageItem(message) {
  const mine = message.role === "user";
  const li = element("li", `message ${message.role}`);
  li.append(element("div", "who", mine ? "You" : "Assistant"));
  const text = element("p", "text", message.text);
  if (!mine && !message.text && !message.error) text.classList.add("typing");
  li.append(text);
  if (message.image) {
    const img = document.createElement("img");
    img.src = message.image.dataUrl;
    img.alt = `Picture you sent: ${message.image.name}`;
    li.append(img);
  }
  if (message.audio) {
    const player = document.createElement("audio");
    player.controls = true;
    player.src = audioDataUri(message.audio);
    player.setAttribute("aria-label", `Voice note you sent: ${message.audio.name}`);
    li.append(player);
  }
  if (message.transcript) li.append(element("p", "meta", `heard: ${message.transcript}`));
  if (message.error) li.append(element("p", "message-error", message.error));
  if (!mine && Array.isArray(message.tools)) {
    const details = element("details", "tools");
    details.append(element("summary", "", "What I used"));
    const list = document.createElement("ol");
    fillTools(list, message.tools);
    details.append(list);
    li.append(details);
  }
  if (!mine && message.text) {
    const speak = element("button", "link speak", "Read aloud");
    speak.type = "button";
    speak.addEventListener("click", () => speakReply(message, li));
    li.append(speak);
  }
  return li;
}

function renderLog() {
  $("chat-log").replaceChildren(...chat.messages.map(messageItem));
  $("chat-empty").hidden = chat.messages.length > 0;
  renderKept();
  const last = $("chat-log").lastElementChild;
  if (last) last.scrollIntoView({ block: "nearest" });
}

/** The conversation as the API takes it; failed replies (no text) are left out. */
function apiMessages(messages) {
  return messages
    .filter((m) => m.role === "user" || m.text)
    .map((m) => {
      if (m.role === "assistant") return { role: "assistant", content: m.text };
      const parts = [];
      if (m.text) parts.push({ type: "text", text: m.text });
      if (m.image) parts.push({ type: "image_url", image_url: { url: m.image.dataUrl } });
      if (m.audio) parts.push({ type: "input_audio", input_audio: { data: m.audio.base64, format: m.audio.format } });
      return { role: "user", content: parts };
    });
}

// ---------------------------------------------------------------- sending

function setChatBusy(busy) {
  $("chat-send").disabled = busy;
  $("chat-stop").disabled = !busy;
  $("chat-log").setAttribute("aria-busy", String(busy));
}

async function sendMessage(event) {
  event.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text && !chat.pending.audio) {
    chatError("Type a message, or attach or record a voice note.");
    input.focus();
    return;
  }
  chatError("");
  const { image, audio } = chat.pending;
  chat.messages.push({ role: "user", text, ...(image && { image }), ...(audio && { audio }) });
  chat.pending = { image: null, audio: null };
  renderPending();
  input.value = "";
  const sent = apiMessages(chat.messages);
  const reply = { role: "assistant", text: "" };
  chat.messages.push(reply);
  renderLog();
  const item = $("chat-log").lastElementChild;
  const shown = item.querySelector(".text");
  const controller = (chat.controller = new AbortController());
  setChatBusy(true);
  try {
    const body = { model: chatModel(), messages: sent, max_tokens: maxTokens() };
    await streamChat(body, controller.signal, {
      onChunk(chunk) {
        const extra = chunk.omnifuse;
        if (!extra || typeof extra !== "object") return;
        if (Array.isArray(extra.tools) && !reply.tools) reply.tools = extra.tools;
        if (extra.transcript) reply.transcript = extra.transcript;
      },
      onText(piece) {
        reply.text += piece;
        shown.textContent = reply.text;
        shown.classList.remove("typing");
      },
    });
    if (!reply.text.trim()) reply.error = "(the model returned an empty answer)";
  } catch (err) {
    reply.error = err.name === "AbortError" ? "Stopped." : err.message || String(err);
    if (err.name !== "AbortError") chatError(reply.error);
  } finally {
    chat.controller = null;
    setChatBusy(false);
    saveConversation();
    renderLog();
  }
  if (reply.text && $("chat-speak").checked) {
    await speakReply(reply, $("chat-log").lastElementChild);
  }
  input.focus();
}

// ---------------------------------------------------------------- speaking

function offlineBrowserVoice() {
  if (!window.speechSynthesis) return null;
  return speechSynthesis.getVoices().find((voice) => voice.localService) || null;
}

/** Speaks a reply: the server's speech as an audio player in the message, played at once. */
async function speakReply(message, item) {
  const input = message.text.slice(0, SPEECH_CHARS);
  try {
    const url = await fetchObjectUrl("/v1/audio/speech", {
      body: { model: "espeak-ng", input, voice: "en-us", response_format: "wav" },
    });
    chat.spokenUrls.push(url);
    let player = item.querySelector("audio.spoken");
    if (!player) {
      player = document.createElement("audio");
      player.className = "spoken";
      player.controls = true;
      player.setAttribute("aria-label", "Spoken reply");
      item.append(player);
    }
    player.src = url;
    player.play().catch(() => {
      // Autoplay refused: the player is there to press.
    });
  } catch (err) {
    const voice = offlineBrowserVoice();
    if (voice) {
      const utterance = new SpeechSynthesisUtterance(input);
      utterance.voice = voice;
      speechSynthesis.speak(utterance);
      return;
    }
    chatError(`The reply could not be spoken: ${err.message || err}`);
  }
}

function newConversation() {
  if (chat.controller) chat.controller.abort();
  chat.spokenUrls.forEach((url) => URL.revokeObjectURL(url));
  chat.spokenUrls = [];
  chat.messages = [];
  chat.pending = { image: null, audio: null };
  saveConversation();
  renderPending();
  renderLog();
  chatError("");
  $("chat-input").focus();
}

// ---------------------------------------------------------------- wiring

function initChatTab() {
  restoreConversation();
  renderLog();
  renderPending();
  $("chat-form").addEventListener("submit", sendMessage);
  $("chat-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("chat-form").requestSubmit();
    }
  });
  $("chat-picture").addEventListener("change", (e) => attachChatPicture(e.target.files[0]));
  $("chat-sound").addEventListener("change", (e) => {
    const file = e.target.files[0];
    attachChatSound(file, file && file.name);
  });
  recorderButton($("chat-record"), $("chat-record-status"), (blob) => attachChatSound(blob, "recording"));
  $("chat-stop").addEventListener("click", () => chat.controller && chat.controller.abort());
  $("chat-new").addEventListener("click", newConversation);
}
