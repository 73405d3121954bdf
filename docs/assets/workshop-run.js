/*
 * The Run widget: every element with a data-snippet attribute (a sample on a
 * chapter page, a code cell on the notebook page) gets Run / Stop / Edit / Reset
 * buttons and an output panel. A run is one POST /api/runs whose response streams
 * NDJSON events (started, output, timing, finished); Stop aborts that request and
 * the runner kills the run when the client goes away.
 *
 * Plain browser JavaScript on purpose: no framework, no build step.
 */
(function () {
  "use strict";

  var READY = "data-workshop-ready";
  var active = new Set(); // states of the runs in progress

  // The runner's base URL comes from mkdocs.yml (extra.runner_url) through a meta
  // tag; empty means the runner serves this site itself (same origin).
  function apiUrl(path) {
    var meta = document.querySelector('meta[name="workshop-runner-url"]');
    var base = ((meta && meta.content) || "").trim().replace(/\/+$/, "");
    return base + "/api" + path;
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text != null) node.textContent = text;
    return node;
  }

  function seconds(value) {
    if (typeof value !== "number" || !isFinite(value)) return "?";
    return (value < 10 ? value.toFixed(2) : value.toFixed(1)) + " s";
  }

  /* ---------------------------------------------------------------- set-up */

  function setUp(block) {
    if (block.hasAttribute(READY)) return;
    var pre = block.querySelector("pre");
    if (!pre) return;
    block.setAttribute(READY, "");
    var snippet = block.getAttribute("data-snippet");
    var codeNode = pre.querySelector("code") || pre;
    // Material focuses scrollable code itself; make every sample reachable so
    // Ctrl/Cmd+Enter works from the code too.
    if (!pre.hasAttribute("tabindex") && !codeNode.hasAttribute("tabindex")) pre.tabIndex = 0;

    var bar = el("div", { class: "workshop-run__bar", role: "toolbar", "aria-label": "Sample " + snippet });
    // Accessible names start with the visible label (what voice control users say).
    var run = button("run", "Run", "Run this sample", "Ctrl+Enter (Cmd+Enter on macOS)");
    var stop = button("stop", "Stop", "Stop the run", "");
    var edit = button("edit", "Edit", "Edit the code", "Your version runs until you reset");
    var reset = button("reset", "Reset", "Reset to the published code", "Discards your edits");
    var status = el("span", { class: "workshop-run__status", role: "status", "aria-live": "polite" });
    stop.hidden = true;
    reset.hidden = true;
    bar.append(run, stop, edit, reset, status);

    var panel = el("div", { class: "workshop-run__panel" });
    panel.hidden = true;
    var output = el("pre", {
      class: "workshop-run__output", role: "log", "aria-live": "polite",
      "aria-label": "Output of " + snippet, tabindex: "0",
    });
    var timings = el("ul", { class: "workshop-run__timings", "aria-label": "Timings" });
    var detail = el("p", { class: "workshop-run__detail" });
    panel.append(output, timings, detail);
    block.append(bar, panel);

    var state = {
      block: block, snippet: snippet, pre: pre,
      view: pre, // hidden while editing; a code block's title stays in place
      published: codeNode.textContent, editor: null, controller: null, timer: null,
      run: run, stop: stop, edit: edit, reset: reset, status: status,
      panel: panel, output: output, timings: timings, detail: detail,
    };
    block.workshop = state;
    run.addEventListener("click", function () { start(state); });
    stop.addEventListener("click", function () { if (state.controller) state.controller.abort(); });
    edit.addEventListener("click", function () { openEditor(state); });
    reset.addEventListener("click", function () { closeEditor(state); });
  }

  function button(kind, label, name, hint) {
    var node = el("button", {
      type: "button", class: "workshop-run__btn workshop-run__" + kind,
      title: hint ? name + " (" + hint + ")" : name, "aria-label": name,
    });
    if (kind === "run") node.setAttribute("aria-keyshortcuts", "Control+Enter Meta+Enter");
    node.append(el("span", { class: "workshop-run__icon", "aria-hidden": "true" }), el("span", {}, label));
    return node;
  }

  /* ---------------------------------------------------------------- editing */

  // A textarea rather than contenteditable: its value is exactly what the reader
  // typed (no stray <br>/<div> from the browser), and it is a familiar control
  // for screen readers.
  function openEditor(state) {
    if (!state.editor) {
      var editor = el("textarea", {
        class: "workshop-run__editor", spellcheck: "false", autocapitalize: "off",
        autocomplete: "off", wrap: "off",
        "aria-label": "Code of " + state.snippet + ". Ctrl+Enter runs it; Escape leaves the editor.",
      });
      editor.value = state.published.replace(/\n$/, "");
      editor.rows = Math.min(40, editor.value.split("\n").length + 1);
      editor.addEventListener("keydown", function (event) { editorKey(state, event); });
      state.view.after(editor);
      state.editor = editor;
    }
    state.view.hidden = true;
    state.edit.hidden = true;
    state.reset.hidden = false;
    state.block.setAttribute("data-edited", "");
    state.editor.focus();
  }

  function closeEditor(state) {
    if (state.editor) state.editor.remove();
    state.editor = null;
    state.view.hidden = false;
    state.edit.hidden = false;
    state.reset.hidden = true;
    state.block.removeAttribute("data-edited");
    state.edit.focus();
  }

  function editorKey(state, event) {
    if (event.key === "Tab" && !event.shiftKey && !event.ctrlKey && !event.metaKey && !event.altKey) {
      // Python is indented with spaces; Escape first to move focus away with Tab.
      event.preventDefault();
      document.execCommand("insertText", false, "    ") || insertSpaces(event.target);
    } else if (event.key === "Escape") {
      event.preventDefault();
      state.run.focus();
    }
  }

  function insertSpaces(area) {
    var at = area.selectionStart;
    area.setRangeText("    ", at, area.selectionEnd, "end");
  }

  function editedCode(state) {
    if (!state.editor) return null;
    var code = state.editor.value;
    // An editor opened and left unchanged still runs the published sample, which
    // works even where the runner refuses edited code.
    return code === state.published.replace(/\n$/, "") ? null : code;
  }

  /* ---------------------------------------------------------------- running */

  function setStatus(state, kind, content) {
    state.block.setAttribute("data-state", kind);
    state.status.className = "workshop-run__status workshop-run__status--" + kind;
    state.status.replaceChildren.apply(state.status, [].concat(content));
  }

  function unreachable(state) {
    setStatus(state, "unreachable", ["Runner unreachable — is ", el("code", {}, "make serve"), " running?"]);
  }

  function start(state) {
    if (state.controller) return;
    var controller = new AbortController();
    state.controller = controller;
    active.add(state);
    var hadFocus = document.activeElement === state.run;
    state.run.hidden = true;
    state.stop.hidden = false;
    if (hadFocus) state.stop.focus();
    state.output.replaceChildren();
    state.timings.replaceChildren();
    state.detail.textContent = "";
    state.panel.hidden = false;
    state.block.removeAttribute("data-run-id");

    var began = performance.now();
    setStatus(state, "running", "Running…");
    state.timer = setInterval(function () {
      setStatus(state, "running", "Running… " + seconds((performance.now() - began) / 1000));
    }, 250);

    var body = { snippet: state.snippet };
    var code = editedCode(state);
    if (code !== null) body.code = code;

    execute(state, body, controller.signal)
      .catch(function (error) {
        if (controller.signal.aborted) setStatus(state, "stopped", "Stopped");
        else setStatus(state, "error", "Connection to the runner was lost");
        if (!controller.signal.aborted && window.console) console.error(error);
      })
      .then(function () {
        clearInterval(state.timer);
        state.controller = null;
        active.delete(state);
        var stopFocused = document.activeElement === state.stop;
        state.stop.hidden = true;
        state.run.hidden = false;
        if (stopFocused) state.run.focus();
      });
  }

  function execute(state, body, signal) {
    return fetch(apiUrl("/runs"), {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/x-ndjson" },
      body: JSON.stringify(body),
      signal: signal,
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (response.ok && type.indexOf("ndjson") !== -1 && response.body) {
        return stream(state, response.body.getReader());
      }
      return refused(state, response);
    }, function (error) {
      // fetch itself failed: nothing answered at that address (or CORS refused).
      if (signal.aborted) throw error;
      unreachable(state);
    });
  }

  // Read the body chunk by chunk and hand over each complete line: events must
  // show up as they arrive, not when the run is over.
  function stream(state, reader) {
    var decoder = new TextDecoder();
    var buffer = "";
    var finished = false;
    function handleLines(final) {
      var lines = buffer.split("\n");
      buffer = final ? "" : lines.pop();
      lines.forEach(function (line) {
        if (!line.trim()) return;
        var event;
        try { event = JSON.parse(line); } catch (ignored) { return; }
        if (event.event === "finished") finished = true;
        handle(state, event);
      });
    }
    function next() {
      return reader.read().then(function (chunk) {
        if (chunk.done) {
          buffer += decoder.decode();
          handleLines(true);
          if (!finished) setStatus(state, "error", "Connection to the runner was lost before the run finished");
          return;
        }
        buffer += decoder.decode(chunk.value, { stream: true });
        handleLines(false);
        return next();
      });
    }
    return next();
  }

  function handle(state, event) {
    if (event.event === "started") {
      state.block.setAttribute("data-run-id", event.id || "");
    } else if (event.event === "output") {
      append(state, event.stream === "stderr" ? "stderr" : "stdout", String(event.text || ""));
    } else if (event.event === "timing") {
      var item = el("li", { class: "workshop-run__timing" });
      item.append(el("span", { class: "workshop-run__timing-name" }, event.name), " ",
        el("span", { class: "workshop-run__timing-value" }, seconds(event.seconds)));
      state.timings.append(item);
    } else if (event.event === "finished") {
      finish(state, event);
    }
  }

  // Consecutive text of one stream goes into one span, so a traceback stays a
  // single block (and the DOM small) however many chunks it arrives in.
  function append(state, streamName, text) {
    var out = state.output;
    var nearBottom = out.scrollHeight - out.scrollTop - out.clientHeight < 24;
    var last = out.lastElementChild;
    if (!last || last.getAttribute("data-stream") !== streamName) {
      last = el("span", { class: "workshop-run__" + streamName, "data-stream": streamName });
      out.append(last);
    }
    last.append(text);
    if (nearBottom) out.scrollTop = out.scrollHeight;
  }

  function finish(state, summary) {
    clearInterval(state.timer);
    var d = summary.duration || {};
    var took = seconds(d.run);
    var messages = {
      ok: ["ok", "Done in " + took],
      error: ["error", "Failed (exit " + summary.exit_code + ") in " + took],
      timeout: ["timeout", "Timed out after " + took],
      killed: ["error", "Killed after " + took + " (" + (summary.reason || "a resource limit was reached") + ")"],
      cancelled: ["stopped", "Cancelled"],
    };
    var message = messages[summary.status] || ["error", "Finished: " + summary.status];
    if (summary.truncated) {
      message = [message[0], message[1] + " — output truncated"];
      append(state, "stderr", "\n[output truncated by the runner]\n");
    }
    setStatus(state, message[0], message[1]);
    if (!state.output.textContent) append(state, "stdout", "(no output)");
    state.detail.textContent = ["queue", "setup", "run", "total"]
      .filter(function (key) { return typeof d[key] === "number"; })
      .map(function (key) { return key + " " + seconds(d[key]); })
      .join(" · ");
  }

  // A non-streaming answer: one of the runner's JSON errors, or something that
  // is not a runner at all (a static host answering 404/405/501 with HTML).
  function refused(state, response) {
    return response.text().then(function (text) {
      var error = null;
      try { error = JSON.parse(text); } catch (ignored) { /* not JSON */ }
      if (!error || typeof error.error !== "string") return unreachable(state);
      var detail = error.detail ? ": " + error.detail : "";
      switch (response.status) {
        case 429:
          var wait = parseInt(response.headers.get("Retry-After"), 10);
          return setStatus(state, "busy", "Busy, retry in " + (isNaN(wait) ? "a few" : wait) + " s");
        case 403:
          return setStatus(state, "error", "Editing is disabled on this site");
        case 404:
          return setStatus(state, "error", "Unknown sample" + detail);
        case 413:
          return setStatus(state, "error", "The code is too large to run");
        case 503:
          return setStatus(state, "error", "The database is unavailable, try again shortly" + detail);
        default:
          return setStatus(state, "error", "Refused (" + response.status + ")" + detail);
      }
    });
  }

  /* ---------------------------------------------------------------- wiring */

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-snippet]"), setUp);
  }

  // After an instant navigation the previous page's blocks are gone: stop their
  // runs rather than let them stream into detached nodes.
  function abortDetached() {
    active.forEach(function (state) {
      if (!state.block.isConnected && state.controller) state.controller.abort();
    });
  }

  // Ctrl+Enter (Cmd+Enter on macOS) runs the sample that has the focus.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    var target = document.activeElement;
    var block = target && target.closest ? target.closest("[" + READY + "]") : null;
    if (!block || !block.workshop) return;
    event.preventDefault();
    start(block.workshop);
  });

  // Material's instant navigation swaps the page without reloading scripts;
  // document$ emits for the first page and after every navigation.
  if (window.document$ && typeof window.document$.subscribe === "function") {
    window.document$.subscribe(function () { abortDetached(); init(); });
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
