// The omnifuse page's start: the server's status and models, the settings every tab reads (chat
// model, fusion model, answer length, API key), and the tabs — Ask, Search, Chat, Experiments —
// as an ARIA tab list: arrow keys, Home and End move between tabs, the URL's #fragment names the
// open one. Loaded last, after common.js and each tab's script.
"use strict";

const site = {
  models: [],
  searchable: false,
};

const TABS = ["ask", "search", "chat", "experiments"];
const tabOpened = new Set();

// ---------------------------------------------------------------- models and status

function fillSelect(select, models, keepEmpty) {
  const previous = select.value;
  select.replaceChildren();
  if (keepEmpty) select.append(new Option("none", ""));
  models.forEach((m) => select.append(new Option(m.id, m.id)));
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
}

async function loadModels() {
  const body = await getJson("/v1/models");
  site.models = Array.isArray(body.data) ? body.data : [];
  const chat = site.models.filter((m) => m.kind === "chat");
  const fusion = site.models.filter((m) => m.kind === "fusion");
  fillSelect($("chat-model"), chat, false);
  fillSelect($("fusion-model"), fusion, true);
  if (fusion.length && !$("fusion-model").value) $("fusion-model").value = fusion[0].id;
}

async function loadStatus() {
  const status = $("server-status");
  try {
    const health = await getJson("/healthz");
    site.searchable = Boolean(health.index);
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

// ---------------------------------------------------------------- tabs

function tabButton(name) {
  return $(`tab-${name}`);
}

/** Shows tab `name` (and hides the others); `focus` moves the keyboard focus onto its tab. */
function openTab(name, focus) {
  if (!TABS.includes(name)) name = TABS[0];
  TABS.forEach((other) => {
    const selected = other === name;
    const button = tabButton(other);
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
    $(`panel-${other}`).hidden = !selected;
  });
  if (focus) tabButton(name).focus();
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  if (!tabOpened.has(name)) {
    tabOpened.add(name);
    if (name === "experiments") loadExperimentList();
  }
}

function onTabKey(event) {
  const current = TABS.indexOf(event.target.id.replace(/^tab-/, ""));
  if (current < 0) return;
  const moves = {
    ArrowRight: (current + 1) % TABS.length,
    ArrowLeft: (current - 1 + TABS.length) % TABS.length,
    Home: 0,
    End: TABS.length - 1,
  };
  if (!(event.key in moves)) return;
  event.preventDefault();
  openTab(TABS[moves[event.key]], true);
}

function initTabs() {
  TABS.forEach((name) => tabButton(name).addEventListener("click", () => openTab(name, false)));
  $("tabs").addEventListener("keydown", onTabKey);
  window.addEventListener("hashchange", () => openTab(location.hash.slice(1), false));
  openTab(location.hash.slice(1), false);
}

// ---------------------------------------------------------------- start

function init() {
  const key = $("api-key");
  key.value = localStorage.getItem(API_KEY_STORAGE) || "";
  key.addEventListener("change", () => {
    localStorage.setItem(API_KEY_STORAGE, key.value.trim());
    loadStatus();
    if (tabOpened.has("experiments")) loadExperimentList();
  });
  initAskTab();
  initSearchTab();
  initChatTab();
  initExperimentsTab();
  initTabs();
  loadStatus();
}

document.addEventListener("DOMContentLoaded", init);
