/*
 * The Run widget: every element with a data-snippet attribute (a sample on a
 * chapter page, a code cell on the notebook page) gets Run / Stop / Edit / Reset
 * buttons and an output panel. A run is one POST /api/runs whose response streams
 * NDJSON events (started, output, timing, queries, check, finished); Stop aborts
 * that request and the runner kills the run when the client goes away.
 *
 * - Editing uses CodeMirror 6 (docs/assets/vendor/codemirror.js, built from the
 *   pinned npm packages by `make vendor`), loaded the first time a page needs it.
 *   Edits are kept in localStorage per sample, tied to the published code's
 *   SHA-256: when the sample changes, an older edit is set aside, not applied.
 * - Nothing touches the DOM while events arrive: they are queued and drawn once
 *   per animation frame, and only the head and the tail of a long output are in
 *   the page (the rest on demand, or as a download), so no output blocks the tab.
 * - Timings are drawn as a bar chart, the queries summary as a timeline with one
 *   lane per database connection (plain SVG), and what the run changed in its
 *   database as a small table.
 *
 * - Exercises (a Run block inside `.workshop-exercise`): the verdict of the
 *   runner's check, hints, and progress live in workshop-exercise.js.
 *
 * An ES module with no build step of its own.
 */

import { clearVerdict, setUpExercises, showVerdict } from "./workshop-exercise.js";

const READY = "data-workshop-ready";
const active = new Set(); // states of the runs in progress
const VENDOR = new URL("./vendor/codemirror.js", import.meta.url).href;

const HEAD_CHARS = 64 * 1024; // output drawn as it arrives
const TAIL_CHARS = 6 * 1024; // the end of a longer output, kept in view
const FRAME_CHARS = 8 * 1024; // most output text added to the page in one frame
const CHUNK_CHARS = 2 * 1024; // one block per chunk: appending lays out the last one only
const MAX_BUSY_RETRIES = 5;
const PERCENTILES_FROM = 20; // fewer queries than this: no p50/p95
// The simulated network round trips the runner offers (runner/round_trip.py ROUND_TRIPS_MS; a test keeps them in step).
const ROUND_TRIPS_MS = [0, 0.1, 0.25];
const CLEAR_SPEEDUP = 1.5; // below this ratio the chart explains instead of announcing "faster" or "slower"

/* ---------------------------------------------------------------- helpers */

// The runner's base URL comes from mkdocs.yml (extra.runner_url) through a meta
// tag; empty means the runner serves this site itself (same origin).
function apiUrl(path) {
  const meta = document.querySelector('meta[name="workshop-runner-url"]');
  const base = ((meta && meta.content) || "").trim().replace(/\/+$/, "");
  return `${base}/api${path}`;
}

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text != null) node.textContent = text;
  return node;
}

function seconds(value) {
  if (typeof value !== "number" || !isFinite(value)) return "?";
  return `${value < 10 ? value.toFixed(2) : value.toFixed(1)} s`;
}

function kib(bytes) {
  return bytes >= 1024 && bytes % 1024 === 0 ? `${bytes / 1024} KiB`
    : bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} bytes`;
}

// "output limit of 262144 bytes" reads better as "output limit of 256 KiB".
function inKib(text) {
  return String(text).replace(/\b(\d{4,}) bytes\b/g, (_, n) => kib(Number(n)));
}

function count(n, one, many) {
  return `${n.toLocaleString("en")} ${n === 1 ? one : many || one + "s"}`;
}

function ms(value) {
  return `${value < 1 ? value.toFixed(2) : value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
}

const store = {
  get(key) {
    try { return JSON.parse(localStorage.getItem(key)); } catch { return null; }
  },
  set(key, value) {
    try { localStorage.setItem(key, JSON.stringify(value)); } catch { /* private mode, quota: keep going */ }
  },
  remove(key) {
    try { localStorage.removeItem(key); } catch { /* as above */ }
  },
};
const editKey = (snippet) => `workshop:edit:${snippet}`;
const asideKey = (snippet) => `workshop:edit-aside:${snippet}`;
const lastRunKey = (snippet, edited) => `workshop:last-run:${snippet}${edited ? ":edited" : ""}`;
const roundTripKey = () => `workshop:round-trip:${location.pathname}`;

/* ---------------------------------------------------------------- simulated network */

// One choice per page, remembered in this browser: every sample's control shows it.
function savedRoundTrip() {
  const saved = store.get(roundTripKey());
  return ROUND_TRIPS_MS.includes(saved) ? saved : 0;
}

function roundTripControl() {
  const label = el("label", { class: "workshop-run__network" });
  const select = el("select", { class: "workshop-run__network-select" });
  for (const value of ROUND_TRIPS_MS) {
    select.append(el("option", { value: String(value) }, value ? `${value} ms` : "none"));
  }
  select.value = String(savedRoundTrip());
  select.addEventListener("change", () => {
    store.set(roundTripKey(), Number(select.value));
    document.querySelectorAll(".workshop-run__network-select").forEach((other) => { other.value = select.value; });
  });
  label.append(el("span", {}, "Simulated network round trip"), " ", select);
  return { label, select };
}

// The published code's SHA-256: written into the page by the site build (the same
// digest /api/snippets gives); computed here only for pages built without it.
async function publishedHash(block, text) {
  const given = block.getAttribute("data-sha256");
  if (given) return given;
  if (crypto.subtle) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
    return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  }
  let h = 0x811c9dc5; // FNV-1a where there is no WebCrypto (plain http on another host)
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return `fnv1a:${h.toString(16)}`;
}

// One callback per state and frame, whatever happened in between.
function schedule(state, what) {
  state.dirty.add(what);
  if (state.frame) return;
  state.frame = requestAnimationFrame(() => {
    state.frame = 0;
    const dirty = [...state.dirty];
    state.dirty.clear();
    if (dirty.includes("output")) flushOutput(state);
    if (dirty.includes("timings")) drawTimings(state);
    if (dirty.includes("timeline")) drawTimeline(state);
  });
}

/* ---------------------------------------------------------------- set-up */

function setUp(block) {
  if (block.hasAttribute(READY)) return;
  const pre = block.querySelector("pre");
  if (!pre) return;
  block.setAttribute(READY, "");
  const snippet = block.getAttribute("data-snippet");
  const codeNode = pre.querySelector("code") || pre;
  // Material focuses scrollable code itself; make every sample reachable so
  // Ctrl/Cmd+Enter works from the code too.
  if (!pre.hasAttribute("tabindex") && !codeNode.hasAttribute("tabindex")) pre.tabIndex = 0;

  const bar = el("div", { class: "workshop-run__bar", role: "toolbar", "aria-label": `Sample ${snippet}` });
  // Accessible names start with the visible label (what voice control users say).
  const run = button("run", "Run", "Run this sample", "Ctrl+Enter (Cmd+Enter on macOS)");
  const stop = button("stop", "Stop", "Stop the run", "");
  const edit = button("edit", "Edit", "Edit the code", "Your version is kept in this browser");
  const reset = button("reset", "Reset", "Reset to the published code", "Undo brings your version back");
  // Only the start and the result of a run are announced; the clock is not.
  const status = el("span", { class: "workshop-run__status", role: "status", "aria-atomic": "true" });
  const progress = el("span", { class: "workshop-run__progress" });
  const meter = el("progress", { class: "workshop-run__meter", "aria-label": "Run progress" });
  meter.hidden = true;
  stop.hidden = true;
  reset.hidden = true;
  const network = roundTripControl();
  bar.append(run, stop, edit, reset, network.label, status, progress, meter);

  const notice = el("div", { class: "workshop-run__notice" });
  notice.hidden = true;
  const hint = el("p", { class: "workshop-run__hint", id: `workshop-hint-${uid()}` },
    "Tab indents. To leave the editor with the keyboard, press Esc, then Tab. Ctrl+Enter runs the code.");
  hint.hidden = true;

  const panel = el("div", { class: "workshop-run__panel" });
  panel.hidden = true;
  const origin = el("p", { class: "workshop-run__origin" }, "Output of your edited code");
  origin.hidden = true;
  // A log for assistive technology to find, not a live region: a sample may print
  // thousands of lines. The status announces when the run is over.
  const output = el("div", {
    class: "workshop-run__output", role: "log", "aria-live": "off",
    "aria-label": `Output of ${snippet}`, tabindex: "0",
  });
  const text = el("pre", { class: "workshop-run__text" });
  output.append(text);
  const timings = el("ul", { class: "workshop-run__timings", "aria-label": "Timings" });
  const ratio = el("p", { class: "workshop-run__ratio" });
  const timingFigure = figure("timings", [timings, ratio]);
  const summary = el("p", { class: "workshop-run__summary" });
  const legend = el("p", { class: "workshop-run__legend", "aria-hidden": "true" });
  const timelineFigure = figure("timeline", [summary, legend]);
  const charts = el("div", { class: "workshop-run__charts" });
  charts.append(timingFigure, timelineFigure);
  const changes = el("section", { class: "workshop-run__changes", "aria-label": "What the run did to the database" });
  changes.hidden = true;
  const detail = el("p", { class: "workshop-run__detail" });
  panel.append(origin, output, charts, changes, detail);
  block.append(bar, hint, notice, panel);

  const state = {
    block, snippet, pre, codeNode,
    published: codeNode.textContent.replace(/\n$/, ""), sha256: null,
    view: null, host: null, saveTimer: 0, undo: null,
    controller: null, ticker: 0, began: 0, expected: null,
    run, stop, edit, reset, status, progress, meter, notice, hint, roundTrip: network.select, sentRoundTrip: 0,
    panel, origin, output, text, timings, detail, changes,
    charts, timingFigure, ratio, timelineFigure, summary, legend,
    timingData: [], queries: null, chartWidth: 0,
    out: null, dirty: new Set(), frame: 0,
  };
  block.workshop = state;
  resetOutput(state);
  // Charts are drawn at the size they are shown (text stays legible on a
  // phone); draw them again when that width changes.
  new ResizeObserver(() => {
    if (charts.clientWidth && charts.clientWidth !== state.chartWidth) {
      schedule(state, "timings");
      schedule(state, "timeline");
    }
  }).observe(charts);
  run.addEventListener("click", () => start(state));
  stop.addEventListener("click", () => { if (state.controller) state.controller.abort(); });
  edit.addEventListener("click", () => openEditor(state, state.published, { focus: true }));
  reset.addEventListener("click", () => resetEdit(state));
  // The copy button copies what the editor holds (Material reads data-copy first).
  block.addEventListener("click", (event) => {
    if (event.target.closest("[data-clipboard-target], clipboard-copy")) updateCopy(state);
  }, true);

  publishedHash(block, state.published).then((sha) => {
    state.sha256 = sha;
    restoreEdit(state);
  });
}

let uidCounter = 0;
function uid() {
  uidCounter += 1;
  return uidCounter;
}

function button(kind, label, name, hint) {
  const node = el("button", {
    type: "button", class: `workshop-run__btn workshop-run__${kind}`,
    title: hint ? `${name} (${hint})` : name, "aria-label": name,
  });
  if (kind === "run") node.setAttribute("aria-keyshortcuts", "Control+Enter Meta+Enter");
  node.append(el("span", { class: "workshop-run__icon", "aria-hidden": "true" }), el("span", {}, label));
  return node;
}

function smallButton(label, name, onClick) {
  const node = el("button", { type: "button", class: "workshop-run__btn workshop-run__btn--small" }, label);
  if (name) node.setAttribute("aria-label", name);
  node.addEventListener("click", onClick);
  return node;
}

/* ---------------------------------------------------------------- editing */

let codemirror = null;
function loadCodeMirror() {
  codemirror = codemirror || import(VENDOR);
  return codemirror;
}

// Material's code colours, so the editor matches the published code in both schemes.
function highlightStyle(cm) {
  const t = cm.tags, v = (name) => `var(--md-code-hl-${name}-color)`;
  return cm.HighlightStyle.define([
    { tag: [t.keyword, t.controlKeyword, t.definitionKeyword, t.moduleKeyword, t.operatorKeyword], color: v("keyword") },
    { tag: [t.string, t.special(t.string), t.docString], color: v("string") },
    { tag: [t.comment, t.lineComment], color: v("comment"), fontStyle: "italic" },
    { tag: [t.number, t.integer, t.float], color: v("number") },
    { tag: [t.bool, t.null, t.atom, t.self], color: v("constant") },
    { tag: [t.function(t.variableName), t.function(t.definition(t.variableName)), t.function(t.propertyName)],
      color: v("function") },
    { tag: [t.definition(t.className), t.className], color: v("name") },
    { tag: [t.operator, t.derefOperator, t.compareOperator, t.arithmeticOperator], color: v("operator") },
    { tag: [t.punctuation, t.paren, t.squareBracket, t.brace, t.separator], color: v("punctuation") },
    { tag: [t.special(t.variableName), t.standard(t.variableName)], color: v("special") },
  ]);
}

async function openEditor(state, doc, { focus }) {
  const cm = await loadCodeMirror();
  if (!state.view) {
    const runKey = { key: "Mod-Enter", run: () => { start(state); return true; } };
    const view = new cm.EditorView({
      doc,
      extensions: [
        cm.lineNumbers(),
        cm.highlightActiveLineGutter(),
        cm.highlightSpecialChars(),
        cm.history(),
        cm.drawSelection(),
        cm.indentOnInput(),
        cm.bracketMatching(),
        cm.syntaxHighlighting(highlightStyle(cm)),
        new cm.LanguageSupport(cm.pythonLanguage),
        cm.indentUnit.of("    "),
        cm.EditorState.tabSize.of(4),
        // Tab indents; CodeMirror's own way out is Escape, then Tab (the hint says so).
        cm.keymap.of([runKey, ...cm.defaultKeymap, ...cm.historyKeymap, cm.indentWithTab]),
        cm.EditorView.contentAttributes.of({
          "aria-label": `Code of ${state.snippet}`,
          "aria-describedby": state.hint.id,
          tabindex: "0", // focusable as it is; said outright for checkers of scrollable regions
        }),
        cm.EditorView.updateListener.of((update) => {
          if (update.docChanged) scheduleSave(state);
          if (update.focusChanged) state.hint.hidden = !update.view.hasFocus;
        }),
      ],
    });
    state.view = view;
    const host = el("div", { class: "workshop-run__editor" });
    // The published code's size, line height and padding (they differ between a
    // chapter and the notebook), so the editor takes exactly its room.
    const shown = getComputedStyle(state.codeNode);
    host.style.setProperty("--workshop-code-size", shown.fontSize);
    const ratio = parseFloat(shown.lineHeight) / parseFloat(shown.fontSize);
    if (ratio > 0) host.style.setProperty("--workshop-code-line", String(Math.round(ratio * 1000) / 1000));
    host.style.setProperty("--workshop-code-pad", `${shown.paddingTop} 0 ${shown.paddingBottom}`);
    host.append(view.dom);
    state.host = host;
    if (state.codeNode !== state.pre) {
      // Inside the published block: same box, same title and copy button, so the
      // toolbar below does not move.
      state.codeNode.hidden = true;
      state.codeNode.after(host);
    } else {
      state.pre.hidden = true;
      state.pre.after(host);
    }
  } else {
    state.view.dispatch({ changes: { from: 0, to: state.view.state.doc.length, insert: doc } });
  }
  state.edit.hidden = true;
  state.reset.hidden = false;
  state.block.setAttribute("data-edited", "");
  updateCopy(state);
  if (focus) state.view.focus();
}

function closeEditor(state) {
  if (state.view) {
    state.view.destroy();
    state.host.remove();
  }
  state.view = null;
  state.host = null;
  state.codeNode.hidden = false;
  state.pre.hidden = false;
  state.hint.hidden = true;
  state.edit.hidden = false;
  state.reset.hidden = true;
  state.block.removeAttribute("data-edited");
  updateCopy(state);
}

function editorCode(state) {
  return state.view ? state.view.state.doc.toString() : null;
}

function editedCode(state) {
  const code = editorCode(state);
  // An editor opened and left unchanged still runs the published sample, which
  // works even where the runner refuses edited code.
  return code === null || code === state.published ? null : code;
}

function scheduleSave(state) {
  clearTimeout(state.saveTimer);
  state.saveTimer = setTimeout(() => saveEdit(state), 250);
}

function saveEdit(state) {
  clearTimeout(state.saveTimer);
  const code = editedCode(state);
  if (code === null) store.remove(editKey(state.snippet));
  else store.set(editKey(state.snippet), { sha256: state.sha256, code, saved: Date.now() });
  updateCopy(state);
}

function updateCopy(state) {
  const code = editorCode(state);
  const copy = state.block.querySelector("clipboard-copy");
  if (code === null) {
    state.block.removeAttribute("data-copy");
    if (copy) copy.removeAttribute("value");
  } else {
    state.block.setAttribute("data-copy", code);
    if (copy) copy.setAttribute("value", code);
  }
}

function restoreEdit(state) {
  const saved = store.get(editKey(state.snippet));
  if (saved && typeof saved.code === "string") {
    if (saved.sha256 === state.sha256) {
      openEditor(state, saved.code, { focus: false });
      showNotice(state, "Your edited version, kept in this browser. Reset shows the published code.", []);
      return;
    }
    // The published sample changed: the old edit no longer applies to it.
    store.set(asideKey(state.snippet), saved);
    store.remove(editKey(state.snippet));
  }
  const aside = store.get(asideKey(state.snippet));
  if (aside && typeof aside.code === "string") showStaleNotice(state, aside);
}

function showStaleNotice(state, aside) {
  const when = aside.saved ? ` on ${new Date(aside.saved).toLocaleDateString("en")}` : "";
  showNotice(state, `This sample changed since you edited it${when}. Your version is kept aside.`, [
    smallButton("Open my version", "Open my earlier version in the editor", () => {
      store.remove(asideKey(state.snippet));
      hideNotice(state);
      openEditor(state, aside.code, { focus: true }).then(() => saveEdit(state));
    }),
    smallButton("Discard it", "Discard my earlier version", () => {
      store.remove(asideKey(state.snippet));
      hideNotice(state);
      state.run.focus();
    }),
  ]);
}

// Start over (workshop-exercise.js): back to the published code, with no Undo and nothing kept aside.
function forgetEdit(state) {
  clearTimeout(state.saveTimer);
  closeEditor(state);
  hideNotice(state);
  state.undo = null;
  store.remove(editKey(state.snippet));
  store.remove(asideKey(state.snippet));
}

function resetEdit(state) {
  const code = editorCode(state);
  closeEditor(state);
  store.remove(editKey(state.snippet));
  if (code === null || code === state.published) {
    hideNotice(state);
    state.edit.focus();
    return;
  }
  state.undo = code;
  const undo = smallButton("Undo", "Undo the reset", () => {
    hideNotice(state);
    openEditor(state, state.undo, { focus: true }).then(() => saveEdit(state));
  });
  showNotice(state, "Back to the published code.", [undo]);
  undo.focus();
}

function showNotice(state, message, buttons) {
  state.notice.replaceChildren(el("span", {}, message), ...buttons);
  state.notice.hidden = false;
}

function hideNotice(state) {
  state.notice.hidden = true;
  state.notice.replaceChildren();
}

/* ---------------------------------------------------------------- running */

function setStatus(state, kind, content) {
  state.block.setAttribute("data-state", kind);
  state.status.className = `workshop-run__status workshop-run__status--${kind}`;
  state.status.replaceChildren(...[].concat(content));
}

function unreachable(state) {
  setStatus(state, "unreachable", ["Runner unreachable — is ", el("code", {}, "make serve"), " running?"]);
}

function start(state) {
  if (state.controller) return;
  const controller = new AbortController();
  state.controller = controller;
  active.add(state);
  const hadFocus = document.activeElement === state.run;
  state.run.hidden = true;
  state.stop.hidden = false;
  if (hadFocus) state.stop.focus();
  // Keep the panel's height while the new run gets going: the page does not jump.
  if (!state.panel.hidden) state.panel.style.minHeight = `${state.panel.offsetHeight}px`;
  state.panel.hidden = false;
  state.block.removeAttribute("data-run-id");

  const body = { snippet: state.snippet };
  const code = editedCode(state);
  if (code !== null) body.code = code;
  state.sentRoundTrip = Number(state.roundTrip.value) || 0;
  if (state.sentRoundTrip) body.network_rtt_ms = state.sentRoundTrip;
  state.expected = store.get(lastRunKey(state.snippet, code !== null));
  state.runningMessage = code !== null ? "Running your edited code…" : "Running…";
  setStatus(state, "running", state.runningMessage);

  execute(state, body, controller.signal, 0)
    .catch((error) => {
      if (controller.signal.aborted) setStatus(state, "stopped", "Stopped");
      else setStatus(state, "error", "Connection to the runner was lost");
      if (!controller.signal.aborted) console.error(error);
    })
    .finally(() => {
      stopClock(state);
      state.panel.style.minHeight = "";
      state.controller = null;
      active.delete(state);
      const stopFocused = document.activeElement === state.stop;
      state.stop.hidden = true;
      state.run.hidden = false;
      if (stopFocused) state.run.focus();
    });
}

// The clock beside the status: elapsed time, and the last run's duration when
// there is one (a progress bar). Not a live region.
function startClock(state) {
  stopClock(state);
  state.began = performance.now();
  const expected = typeof state.expected === "number" && state.expected >= 1 ? state.expected : null;
  state.meter.hidden = !expected;
  if (expected) state.meter.max = expected;
  const tick = () => {
    const elapsed = (performance.now() - state.began) / 1000;
    if (elapsed < 0.5) return;
    state.progress.textContent = expected ? `${seconds(elapsed)} of about ${seconds(expected)} (last run)` : seconds(elapsed);
    if (expected) state.meter.value = Math.min(elapsed, expected);
  };
  state.ticker = setInterval(tick, 250);
}

function stopClock(state) {
  clearInterval(state.ticker);
  state.ticker = 0;
  state.progress.textContent = "";
  state.meter.hidden = true;
}

async function execute(state, body, signal, attempt) {
  let response;
  try {
    response = await fetch(apiUrl("/runs"), {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/x-ndjson" },
      body: JSON.stringify(body),
      signal,
    });
  } catch (error) {
    // fetch itself failed: nothing answered at that address (or CORS refused).
    if (signal.aborted) throw error;
    return unreachable(state);
  }
  const type = response.headers.get("Content-Type") || "";
  if (response.ok && type.includes("ndjson") && response.body) {
    clearPanel(state);
    startClock(state);
    return stream(state, response.body.getReader());
  }
  if (response.status === 429 && attempt < MAX_BUSY_RETRIES) {
    const wait = Math.min(60, Math.max(1, parseInt(response.headers.get("Retry-After"), 10) || 3));
    await busyWait(state, wait, signal);
    return execute(state, body, signal, attempt + 1);
  }
  return refused(state, response);
}

// Busy: say so once, count down beside it, then try again by itself (Stop cancels).
function busyWait(state, wait, signal) {
  setStatus(state, "busy", `The runner is busy; trying again in ${wait} s`);
  return new Promise((resolve, reject) => {
    let left = wait;
    state.progress.textContent = `retry in ${left} s`;
    const timer = setInterval(() => {
      left -= 1;
      state.progress.textContent = left > 0 ? `retry in ${left} s` : "";
      if (left > 0) return;
      clearInterval(timer);
      setStatus(state, "running", "Trying again…");
      resolve();
    }, 1000);
    signal.addEventListener("abort", () => {
      clearInterval(timer);
      state.progress.textContent = "";
      reject(new DOMException("stopped", "AbortError"));
    }, { once: true });
  });
}

// Read the body chunk by chunk and queue each complete line's event; the page
// is updated once per frame, however fast the events come.
async function stream(state, reader) {
  const decoder = new TextDecoder();
  let buffer = "";
  let finished = false;
  const handleLines = (final) => {
    const lines = buffer.split("\n");
    buffer = final ? "" : lines.pop();
    for (const line of lines) {
      if (!line.trim()) continue;
      let event;
      try { event = JSON.parse(line); } catch { continue; }
      if (event.event === "finished") finished = true;
      handle(state, event);
    }
  };
  for (;;) {
    const chunk = await reader.read();
    if (chunk.done) {
      buffer += decoder.decode();
      handleLines(true);
      if (!finished) setStatus(state, "error", "Connection to the runner was lost before the run finished");
      return;
    }
    buffer += decoder.decode(chunk.value, { stream: true });
    handleLines(false);
  }
}

// 1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st
function ordinal(n) {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  return `${n}${teen ? "th" : ["th", "st", "nd", "rd"][n % 10] || "th"}`;
}

function handle(state, event) {
  if (event.event === "queued") {
    // a burst: the run waits for a slot; its place in line comes again each time it moves up
    const wait = Math.max(1, Math.round(Number(event.expected_wait) || 0));
    setStatus(state, "waiting", `Waiting: ${ordinal(event.position)} in line (about ${wait} s)`);
  } else if (event.event === "started") {
    state.block.setAttribute("data-run-id", event.id || "");
    if (state.block.getAttribute("data-state") === "waiting") setStatus(state, "running", state.runningMessage);
  } else if (event.event === "output") {
    queueOutput(state, event.stream === "stderr" ? "stderr" : "stdout", String(event.text || ""));
  } else if (event.event === "timing") {
    const item = el("li", { class: "workshop-run__timing" });
    item.append(el("span", { class: "workshop-run__timing-name" }, event.name), " ",
      el("span", { class: "workshop-run__timing-value" }, seconds(event.seconds)));
    state.timings.append(item);
    state.timingData.push(event);
    schedule(state, "timings");
  } else if (event.event === "queries") {
    state.queries = event;
    schedule(state, "timeline");
  } else if (event.event === "check") {
    showVerdict(state, event); // an exercise's verdict, before `finished`
  } else if (event.event === "finished") {
    finish(state, event);
  }
}

function clearPanel(state) {
  resetOutput(state);
  state.timings.replaceChildren();
  state.timingData = [];
  state.queries = null;
  state.timingFigure.hidden = true;
  state.timelineFigure.hidden = true;
  state.ratio.textContent = "";
  state.changes.hidden = true;
  state.changes.replaceChildren();
  state.detail.textContent = "";
  state.origin.hidden = true;
  state.block.removeAttribute("data-output-from");
  clearVerdict(state);
}

function finish(state, summary) {
  const d = summary.duration || {};
  const took = seconds(d.run);
  // one entry per run status of the API (runner/models.py STATUSES; a test keeps them in step)
  const STATUS_WORDS = {
    ok: ["ok", `Done in ${took}`],
    error: ["error", `Failed (exit ${summary.exit_code}) in ${took}`],
    timeout: ["timeout", `Timed out after ${took}`],
    killed: ["error", `Killed after ${took} (${inKib(summary.reason || "a resource limit was reached")})`],
    cancelled: ["stopped", "Cancelled"],
  };
  let [kind, message] = STATUS_WORDS[summary.status] || ["error", `Finished: ${summary.status}`];
  if (summary.truncated) {
    message += " — output truncated";
    queueOutput(state, "stderr", "\n[output truncated by the runner]\n");
  }
  const roundTrip = summary.network && summary.network.round_trip_ms;
  state.block.setAttribute("data-round-trip", String(roundTrip || 0));
  if (roundTrip) message += ` with a simulated ${roundTrip} ms round trip`;
  if (summary.edited) {
    message += " (your edited code)";
    state.origin.hidden = false;
    state.block.setAttribute("data-output-from", "edited");
  }
  setStatus(state, kind, message);
  if (!state.out.chars && !state.out.pending.length) queueOutput(state, "stdout", "(no output)");
  state.detail.textContent = ["queue", "setup", "run", "total"]
    .filter((key) => typeof d[key] === "number")
    .map((key) => `${key} ${seconds(d[key])}`)
    .join(" · ");
  drawChanges(state, summary.changes);
  if (summary.check) showVerdict(state, summary.check); // the same verdict as the `check` event
  if (typeof d.run === "number" && (summary.status === "ok" || summary.status === "error")) {
    store.set(lastRunKey(state.snippet, !!summary.edited), d.run);
  }
}

// A non-streaming answer: one of the runner's JSON errors, or something that
// is not a runner at all (a static host answering 404/405/501 with HTML).
async function refused(state, response) {
  const text = await response.text();
  let error = null;
  try { error = JSON.parse(text); } catch { /* not JSON */ }
  if (!error || typeof error.error !== "string") return unreachable(state);
  const detail = error.detail ? `: ${inKib(error.detail)}` : "";
  switch (response.status) {
    case 429:
      return setStatus(state, "busy", `Still busy after ${MAX_BUSY_RETRIES} tries; press Run to try again`);
    case 403:
      return setStatus(state, "error", "Editing is disabled on this site");
    case 404:
      return setStatus(state, "error", `Unknown sample${detail}`);
    case 413:
      return setStatus(state, "error", `The code is too large to run${detail}`);
    case 503:
      return setStatus(state, "error", `The database is unavailable, try again shortly${detail}`);
    default:
      return setStatus(state, "error", `Refused (${response.status})${detail}`);
  }
}

/* ---------------------------------------------------------------- output */

// The output as it arrived (`pieces`), and how much of it is in the page: the
// first HEAD_CHARS, in blocks of about CHUNK_CHARS that end at a line break;
// past that a line saying how much is hidden, the last TAIL_CHARS, and buttons
// to show everything or download it.
function resetOutput(state) {
  state.out = {
    pieces: [], pending: [], chars: 0, shown: 0, hidden: [], hiddenChars: 0, hiddenLines: 0,
    chunk: null, chunkChars: 0, lastStream: null, lineOpen: false, more: null, tail: null, showingAll: false,
  };
  state.text.replaceChildren();
  state.output.querySelectorAll(".workshop-run__more, .workshop-run__tail").forEach((node) => node.remove());
}

function queueOutput(state, streamName, text) {
  if (!text) return;
  const piece = { stream: streamName, text };
  state.out.pieces.push(piece);
  state.out.pending.push(piece);
  state.out.chars += text.length;
  schedule(state, "output");
}

function flushOutput(state) {
  const o = state.out, out = state.output;
  // Read the scroll position first, while the layout is still clean.
  const stick = out.scrollHeight - out.scrollTop - out.clientHeight < 24;
  let budget = FRAME_CHARS;
  while (o.pending.length && budget > 0) {
    const piece = o.pending[0];
    if (o.shown >= HEAD_CHARS && !o.showingAll) {
      o.pending.shift();
      hide(o, piece);
      continue;
    }
    const room = Math.min(budget, o.showingAll ? Infinity : HEAD_CHARS - o.shown);
    let take = piece.text.length <= room ? piece.text.length : cutAtLine(piece.text, room);
    const part = piece.text.slice(0, take);
    appendShown(state, piece.stream, part);
    budget -= part.length;
    if (take >= piece.text.length) o.pending.shift();
    else o.pending[0] = { stream: piece.stream, text: piece.text.slice(take) };
  }
  if (o.hiddenChars) drawOverflow(state);
  if (o.pending.length) schedule(state, "output");
  if (stick) out.scrollTop = out.scrollHeight;
}

function cutAtLine(text, room) {
  const at = text.lastIndexOf("\n", room - 1);
  return at >= room / 2 ? at + 1 : room;
}

function hide(o, piece) {
  o.hidden.push(piece);
  o.hiddenChars += piece.text.length;
  for (let i = piece.text.indexOf("\n"); i !== -1; i = piece.text.indexOf("\n", i + 1)) o.hiddenLines += 1;
}

function appendShown(state, streamName, text) {
  const o = state.out;
  o.shown += text.length;
  let rest = text;
  while (rest) {
    if (!o.chunk || (o.chunkChars >= CHUNK_CHARS && !o.lineOpen)) {
      o.chunk = el("span", { class: "workshop-run__chunk" });
      o.chunkChars = 0;
      o.lastStream = null;
      state.text.append(o.chunk);
    }
    // Fill this chunk up to its size, ending at a line break when there is one.
    let take = rest.length;
    if (o.chunkChars + take > CHUNK_CHARS) {
      const at = rest.indexOf("\n", Math.max(0, CHUNK_CHARS - o.chunkChars - 1));
      take = at === -1 ? rest.length : at + 1;
    }
    const part = rest.slice(0, take);
    rest = rest.slice(take);
    // Consecutive text of one stream goes into one span, so a traceback stays a
    // single block however many pieces it arrives in.
    let span = o.chunk.lastElementChild;
    if (!span || o.lastStream !== streamName) {
      span = el("span", { class: `workshop-run__${streamName}`, "data-stream": streamName });
      o.chunk.append(span);
      o.lastStream = streamName;
    }
    span.append(part);
    o.chunkChars += part.length;
    o.lineOpen = !part.endsWith("\n");
  }
}

function drawOverflow(state) {
  const o = state.out;
  if (!o.more) {
    o.more = el("p", { class: "workshop-run__more" });
    o.moreText = el("span", {});
    const all = smallButton("Show all", "Show all of the output", () => showAll(state));
    const save = smallButton("Download", "Download the whole output as a text file", () => download(state));
    o.more.append(o.moreText, " ", all, " ", save);
    o.tail = el("pre", { class: "workshop-run__tail" });
    state.output.append(o.more, o.tail);
  }
  // The tail: the last TAIL_CHARS of what is hidden, from the hidden pieces' ends.
  const parts = [];
  let need = TAIL_CHARS;
  for (let i = o.hidden.length - 1; i >= 0 && need > 0; i--) {
    const t = o.hidden[i].text;
    parts.unshift({ stream: o.hidden[i].stream, text: t.length > need ? t.slice(t.length - need) : t });
    need -= t.length;
  }
  if (parts.length && need <= 0) {
    const first = parts[0], nl = first.text.indexOf("\n"); // start the tail at a line's start
    if (nl !== -1 && nl < first.text.length - 1) first.text = first.text.slice(nl + 1);
  }
  const tailChars = parts.reduce((n, p) => n + p.text.length, 0);
  const skipped = o.hiddenChars - tailChars;
  const skippedLines = Math.max(0, o.hiddenLines - parts.reduce((n, p) => n + (p.text.match(/\n/g) || []).length, 0));
  o.moreText.textContent = skipped > 0
    ? `… ${count(skippedLines, "more line")} (${kib(skipped)}) not shown here; the last lines follow.`
    : "";
  o.more.hidden = skipped <= 0;
  o.tail.replaceChildren(...parts.map((p) => el("span", { class: `workshop-run__${p.stream}`, "data-stream": p.stream }, p.text)));
}

// Everything into the page, a frame's worth at a time (in blocks that are only
// laid out when scrolled to: content-visibility).
function showAll(state) {
  const o = state.out;
  o.showingAll = true;
  o.pending = o.hidden.concat(o.pending);
  o.hidden = [];
  o.hiddenChars = 0;
  o.hiddenLines = 0;
  o.more.remove();
  o.tail.remove();
  o.more = o.tail = null;
  state.output.focus();
  schedule(state, "output");
}

function download(state) {
  const text = state.out.pieces.map((p) => p.text).join("");
  const url = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
  const link = el("a", { href: url, download: `${state.snippet.replace(/[^\w.-]+/g, "_")}.output.txt` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/* ---------------------------------------------------------------- database */

// What the run left in its database, compared with the template it was cloned from.
function drawChanges(state, changes) {
  const box = state.changes;
  box.replaceChildren();
  if (!changes) { box.hidden = true; return; }
  box.hidden = false;
  const tables = changes.tables || [], created = changes.created || [], dropped = changes.dropped || [];
  const committed = tables.filter((t) => t.inserted || t.updated || t.deleted);
  const heading = el("p", { class: "workshop-run__changes-title" }, "The database after the run: ");
  if (!committed.length && !created.length && !dropped.length) {
    heading.append(el("strong", {}, "unchanged"), " — nothing was committed.");
  } else {
    heading.append(el("strong", {}, "changed"), " — committed changes, compared with the seeded database:");
  }
  box.append(heading);
  if (tables.length) {
    const table = el("table", { class: "workshop-run__changes-table" });
    const head = el("tr", {});
    for (const title of ["table", "rows inserted", "updated", "deleted", "rolled back"]) head.append(el("th", { scope: "col" }, title));
    table.append(el("thead", {}), el("tbody", {}));
    table.tHead.append(head);
    for (const t of tables) {
      const row = el("tr", {});
      row.append(el("th", { scope: "row" }, t.table));
      for (const n of [t.inserted, t.updated, t.deleted, t.rolled_back || 0]) {
        row.append(el("td", { class: n ? "" : "workshop-run__zero" }, n.toLocaleString("en")));
      }
      table.tBodies[0].append(row);
    }
    box.append(table);
  }
  const list = (label, items) => {
    if (!items.length) return;
    const p = el("p", { class: "workshop-run__changes-list" });
    p.append(el("span", {}, `${label}: `), items.join(", "));
    box.append(p);
  };
  list("Created", created);
  list("Dropped", dropped);
}

/* ---------------------------------------------------------------- charts */

// The timings as a bar chart, and what the run did with its connections as a
// timeline: one lane per connection, its queries as grey bars (a query running),
// failed queries as red pins, the async_timed phases as brackets above and bands
// behind the lanes. Each colour has one meaning in both: blue a concurrent phase,
// orange a sequential one, grey a query running, red an error; how many queries
// ran at once shows as how many lanes are busy together. Each SVG is one image to
// assistive technology (role="img" and a label); a text summary is shown beside it.

const SVG = "http://www.w3.org/2000/svg";

function figure(kind, caption) {
  const node = el("figure", { class: `workshop-run__figure workshop-run__figure--${kind}` });
  const text = el("figcaption", {});
  text.append(...caption);
  node.append(svg("svg", {}), text);
  node.hidden = true;
  return node;
}

function svg(tag, attrs, text, parent) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text != null) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function newSvg(fig, cls, label) {
  const node = svg("svg", { class: `workshop-run__svg ${cls}`, role: "img", "aria-label": label });
  fig.replaceChild(node, fig.firstChild);
  return node;
}

function finishSvg(node, width, height) {
  node.setAttribute("viewBox", `0 0 ${width} ${Math.ceil(height)}`);
}

function textWidth(node) {
  try { return node.getComputedTextLength(); } catch { return 0; }
}

// Shorten an SVG text with an ellipsis until it fits `max` (empty if nothing fits).
function fit(node, max) {
  const full = node.textContent;
  if (textWidth(node) <= max) return;
  let low = 0, high = full.length;
  while (low < high) { // the longest prefix that fits, with its ellipsis
    const mid = Math.ceil((low + high) / 2);
    node.textContent = `${full.slice(0, mid)}…`;
    if (textWidth(node) <= max) low = mid; else high = mid - 1;
  }
  node.textContent = low ? `${full.slice(0, low)}…` : "";
}

// concurrent / sequential (or synchronous, but not asynchronous) by name.
function kind(name) {
  if (/concurren/i.test(name)) return "concurrent";
  if (/sequential|(^|[^a-z])synchronous/i.test(name)) return "sequential";
  return "other";
}

// A clear speed-up is announced; a small one (or none) is explained: on a local
// socket a query hardly waits, the work is CPU-bound, and the concurrent half
// shares the cores with the database and with other runs.
function speedup(items, roundTrip) {
  const conc = items.find((t) => kind(t.name) === "concurrent");
  const seq = items.find((t) => kind(t.name) === "sequential");
  if (!conc || !seq || !(conc.seconds > 0) || !(seq.seconds > 0)) return "";
  const r = seq.seconds / conc.seconds;
  const times = (x) => `${x < 10 ? x.toFixed(1) : Math.round(x)}×`;
  const both = `(${seconds(conc.seconds)} against ${seconds(seq.seconds)})`;
  if (r >= CLEAR_SPEEDUP) return `concurrent was ${times(r)} faster than sequential ${both}`;
  const why = roundTrip
    ? `a ${roundTrip} ms round trip is still short next to the computing, or the runner is busy with other runs`
    : "on a local socket a query hardly waits, so the work is CPU-bound and the concurrent half shares the cores with the database";
  const next = roundTrip === ROUND_TRIPS_MS[ROUND_TRIPS_MS.length - 1] ? "run it again in a moment"
    : "choose a longer simulated network round trip and run it again";
  return `concurrent was not clearly faster than sequential ${both}: ${why}; ${next}`;
}

// The width the charts are shown at, in CSS pixels: the viewBox uses it too.
function chartWidth(state) {
  const box = state.charts, style = getComputedStyle(box);
  state.chartWidth = box.clientWidth;
  const inner = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return Math.max(240, Math.floor(inner) || 640);
}

function drawTimings(state) {
  const fig = state.timingFigure;
  const items = state.timingData.map((t, i) => ({ name: String(t.name), seconds: +t.seconds || 0, start: t.start, i }));
  fig.hidden = !items.length;
  state.ratio.textContent = "";
  if (!items.length) return;
  // In the order they started (main first), as they happened.
  const at = (t) => (typeof t.start === "number" ? t.start : Infinity);
  items.sort((a, b) => at(a) - at(b) || a.i - b.i);
  const ratio = speedup(items, state.sentRoundTrip);
  state.ratio.textContent = ratio ? `${ratio.charAt(0).toUpperCase()}${ratio.slice(1)}.` : "";
  const width = chartWidth(state);
  const label = `Bar chart of the time each timed function took: ${items.map((t) => `${t.name} ${seconds(t.seconds)}`).join(", ")}` +
    (ratio ? `; ${ratio}` : "");
  const node = newSvg(fig, "workshop-run__bars", label);
  const max = Math.max(...items.map((t) => t.seconds)) || 1;
  // Wide: names in a column left of the bars. Narrow: each name above its bar.
  const names = items.map((t) => svg("text", { class: "workshop-run__svg-label" }, t.name, node));
  const values = items.map((t) => svg("text", { class: "workshop-run__svg-value" }, seconds(t.seconds), node));
  const column = width >= 560 ? Math.min(width * 0.4, Math.max(...names.map(textWidth)) + 12) : 0;
  const room = Math.max(...values.map(textWidth)) + 8;
  const row = column ? 24 : 36;
  let y = 4;
  items.forEach((t, i) => {
    const barY = column ? y + 3 : y + 17, barH = column ? 16 : 14;
    const length = Math.max(2, (width - column - room) * t.seconds / max);
    fit(names[i], column ? column - 12 : width);
    names[i].setAttribute("x", 0);
    names[i].setAttribute("y", column ? barY + barH - 3 : y + 12);
    svg("rect", { class: `workshop-run__bar-fill workshop-run__kind--${kind(t.name)}`, x: column, y: barY,
      width: length, height: barH, rx: 2 }, null, node);
    values[i].setAttribute("x", column + length + 5);
    values[i].setAttribute("y", barY + barH - 3);
    y += row;
  });
  // The axis title, in plain words.
  const title = svg("text", { class: "workshop-run__svg-tick workshop-run__axis-title", x: column, y: y + 12 },
    "seconds each call took, from start to return", node);
  fit(title, width - column);
  finishSvg(node, width, y + 18);
}

// Rows for the phase brackets: a phase goes on the first row where it overlaps
// nothing, so main sits above the functions it calls.
function phaseRows(phases) {
  const rows = [];
  phases.slice().sort((a, b) => a.start - b.start || (b.end - b.start) - (a.end - a.start))
    .forEach((p) => {
      for (let r = 0; ; r++) {
        rows[r] = rows[r] || [];
        if (!rows[r].some((o) => p.start < o.end && o.start < p.end)) { rows[r].push(p); p.row = r; return; }
      }
    });
  return rows.length;
}

function niceStep(raw) {
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  return [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw * 0.999);
}

function drawTimeline(state) {
  const fig = state.timelineFigure, q = state.queries;
  fig.hidden = !q;
  if (!q) return;
  const all = q.connections || [];
  const lanes = all.slice(0, 64);
  const phases = (q.phases || []).filter((p) => p.end >= p.start).map((p) => ({ ...p }));
  const leaves = phases.filter((p) => !phases.some((o) => o !== p && o.start >= p.start && o.end <= p.end &&
    (o.end - o.start) < (p.end - p.start)));
  const errorNames = {};
  for (const s of q.sample || []) if (s.error) errorNames[`${s.connection}@${s.start}`] = s.error;
  const kinds = [...new Set((q.sample || []).filter((s) => s.error).map((s) => s.error))];
  const firstQuery = q.span && q.span[0] > 0 ? q.span[0] : 0;

  // The text summary (shown, and the image's label).
  const queries = q.count || 0;
  const parts = [`${count(all.length, "connection")}, ${count(queries, "query", "queries")}` +
    (q.errors ? `, ${q.errors.toLocaleString("en")} failed${kinds.length ? ` (${kinds.join(", ")})` : ""}` : "") +
    (q.latency_ms && queries >= PERCENTILES_FROM ? `; latency p50 ${ms(q.latency_ms.p50)}, p95 ${ms(q.latency_ms.p95)}` : "")];
  if (firstQuery) parts.push(`The first query began ${ms(firstQuery * 1000)} in (connecting, before it)`);
  if (q.max_concurrency > all.length) {
    parts.push(`${q.max_concurrency} queries at once on ${count(all.length, "connection")}: they clash`);
  }
  for (const p of leaves) {
    parts.push(`${p.name}: ${p.queries ? `${count(p.queries, "query", "queries")} on ${count(p.connections, "connection")}, ` +
      (p.max_concurrency > 1 ? `up to ${p.max_concurrency} at once` : "one at a time") : "no queries"}`);
  }
  if (lanes.length < all.length) parts.push(`the first ${lanes.length} connections are drawn`);
  if (q.dropped) parts.push(`only the first ${(q.count - q.dropped).toLocaleString("en")} queries were recorded`);
  state.summary.textContent = `${parts.join(". ")}.`;
  const phaseKinds = new Set(leaves.map((p) => kind(p.name)));
  state.legend.replaceChildren(legendItem("busy", "a query running"));
  if (q.errors) state.legend.append(legendItem("error", "a query failed"));
  if (phaseKinds.has("concurrent")) state.legend.append(legendItem("concurrent", "concurrent phase"));
  if (phaseKinds.has("sequential")) state.legend.append(legendItem("sequential", "sequential phase"));
  if (firstQuery) state.legend.append(legendItem("gap", "connecting"));

  const width = chartWidth(state);
  const node = newSvg(fig, "workshop-run__timeline",
    `Timeline of the database connections, one lane each: ${state.summary.textContent}`);
  const end = Math.max(q.span ? q.span[1] : 0, ...phases.map((p) => p.end)) || 1;
  const laneLabels = lanes.map((c, i) => svg("text", { class: "workshop-run__svg-label" }, `conn ${i + 1}`, node));
  const left = Math.max(...laneLabels.map(textWidth), 30) + 8, right = 14;
  const x = (t) => left + Math.max(0, Math.min(1, t / end)) * (width - left - right);

  // Phase brackets, one row each, labels cut to their width.
  const rowH = 18, top = phaseRows(phases) * rowH + (phases.length ? 4 : 0);
  const errorSpace = q.errors ? (q.errors <= 3 ? 16 : 8) : 0;
  const laneH = lanes.length <= 8 ? 16 : Math.max(4, Math.floor(160 / lanes.length));
  const gap = Math.max(errorSpace, lanes.length <= 8 ? 8 : 2);
  const lanesTop = top + (firstQuery ? 14 : 0) + gap, lanesBottom = lanesTop + lanes.length * (laneH + gap) - gap;
  const bands = svg("g", {}, null, node);
  for (const p of leaves) {
    svg("rect", { class: `workshop-run__band workshop-run__kind--${kind(p.name)}`, x: x(p.start), y: top,
      width: Math.max(1, x(p.end) - x(p.start)), height: lanesBottom - top + 4 }, null, bands);
  }
  // Before the first query: opening connections (a pool opens all of its own).
  if (firstQuery && x(firstQuery) - x(0) >= 3) {
    svg("rect", { class: "workshop-run__gap", x: x(0), y: top + 14,
      width: x(firstQuery) - x(0), height: lanesBottom - top - 10 }, null, bands);
    // In a row of its own, above the room the failed queries' names take.
    const gapLabel = svg("text", { class: "workshop-run__svg-tick", x: x(0) + 3, y: top + 11 },
      `connecting ${ms(firstQuery * 1000)}`, node);
    fit(gapLabel, Math.max(0, x(firstQuery) - x(0) - 4));
  }
  for (const p of phases) {
    const y = p.row * rowH + rowH, x0 = x(p.start), x1 = Math.max(x0 + 1, x(p.end));
    svg("path", { class: `workshop-run__bracket workshop-run__kind--${kind(p.name)}`,
      d: `M${x0} ${y + 3}V${y - 2}H${x1}V${y + 3}` }, null, node);
    // The name, its duration and how many queries ran at once if they fit, else less.
    const atOnce = p.queries ? (p.max_concurrency > 1 ? ` · up to ${p.max_concurrency} at once` : " · one at a time") : "";
    const text = svg("text", { class: "workshop-run__svg-label", x: x0 + 3, y: y - 5 },
      `${p.name} ${seconds(p.end - p.start)}${atOnce}`, node);
    if (textWidth(text) > x1 - x0 - 6) text.textContent = `${p.name} ${seconds(p.end - p.start)}`;
    if (textWidth(text) > x1 - x0 - 6) text.textContent = p.name;
    fit(text, x1 - x0 - 6);
  }
  // Lanes: a faint track, the busy intervals, the failed queries as pins.
  const few = q.errors <= 3;
  lanes.forEach((c, i) => {
    const y = lanesTop + i * (laneH + gap);
    const step = Math.ceil(13 / (laneH + gap));
    laneLabels[i].setAttribute("x", left - 8);
    laneLabels[i].setAttribute("y", y + laneH / 2 + 4);
    laneLabels[i].setAttribute("text-anchor", "end");
    if (i % step) laneLabels[i].textContent = "";
    const lane = svg("g", { class: "workshop-run__lane", "data-connection": c.id }, null, node);
    svg("rect", { class: "workshop-run__track", x: left, y, width: width - left - right, height: laneH }, null, lane);
    for (const iv of c.intervals || []) {
      svg("rect", { class: "workshop-run__busy", x: x(iv[0]), y, width: Math.max(1, x(iv[1]) - x(iv[0])), height: laneH }, null, lane);
    }
    for (const t of c.errors_at || []) {
      const px = x(t);
      svg("path", { class: "workshop-run__error-mark", d: `M${px} ${y + laneH + 1}V${y - 2}M${px - 4.5} ${y - 8}h9l-4.5 7z` }, null, lane);
      if (!few) continue;
      const name = svg("text", { class: "workshop-run__svg-error", x: px + 7, y: y - 3 }, errorNames[`${c.id}@${t}`] || "error", lane);
      if (px + 7 + textWidth(name) > width) { name.setAttribute("x", px - 7); name.setAttribute("text-anchor", "end"); }
    }
  });

  // Time axis: seconds since the code was handed over (ms for short runs).
  const axisY = lanesBottom + 8, inMs = end < 1;
  svg("path", { class: "workshop-run__axis", d: `M${left} ${axisY}H${width - right}` }, null, node);
  const tick = niceStep(end / Math.max(2, Math.floor((width - left - right) / 50)));
  for (let k = 0; k * tick <= end * 1.0001; k++) {
    const t = k * tick, v = inMs ? t * 1000 : t, s = inMs ? tick * 1000 : tick;
    svg("path", { class: "workshop-run__axis", d: `M${x(t)} ${axisY}v4` }, null, node);
    const tickText = svg("text", { class: "workshop-run__svg-tick", x: x(t), y: axisY + 16, "text-anchor": "middle" },
      k ? `${v.toFixed(Math.max(0, Math.ceil(-Math.log10(s) - 1e-9)))}${inMs ? " ms" : " s"}` : "0", node);
    if (x(t) + textWidth(tickText) / 2 > width) tickText.setAttribute("text-anchor", "end");
  }
  const axisTitle = svg("text", { class: "workshop-run__svg-tick workshop-run__axis-title", x: width - right, y: axisY + 32, "text-anchor": "end" },
    "time since your code started", node);
  fit(axisTitle, width - right);
  finishSvg(node, width, axisY + 36);
}

function legendItem(cls, text) {
  const item = el("span", { class: "workshop-run__key" });
  item.append(el("span", { class: `workshop-run__swatch workshop-run__swatch--${cls}` }), text);
  return item;
}

/* ---------------------------------------------------------------- wiring */

function init() {
  const blocks = document.querySelectorAll("[data-snippet]");
  blocks.forEach(setUp);
  setUpExercises(document, { forgetEdit });
  if (blocks.length) loadCodeMirror(); // in the background: Edit opens at once
}

// After an instant navigation the previous page's blocks are gone: stop their
// runs rather than let them stream into detached nodes.
function abortDetached() {
  for (const state of active) {
    if (!state.block.isConnected && state.controller) state.controller.abort();
  }
}

// Ctrl+Enter (Cmd+Enter on macOS) runs the sample that has the focus.
document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
  const target = document.activeElement;
  const block = target && target.closest ? target.closest(`[${READY}]`) : null;
  if (!block || !block.workshop) return;
  event.preventDefault();
  start(block.workshop);
});

// Material's instant navigation swaps the page without reloading scripts;
// document$ emits for the first page and after every navigation.
if (window.document$ && typeof window.document$.subscribe === "function") {
  window.document$.subscribe(() => { abortDetached(); init(); });
} else if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", init);
} else {
  init();
}
