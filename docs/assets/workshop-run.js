/*
 * The Run widget: every element with a data-snippet attribute (a sample on a
 * chapter page, a code cell on the notebook page) gets Run / Stop / Edit / Reset
 * buttons and an output panel. A run is one POST /api/runs whose response streams
 * NDJSON events (started, output, timing, queries, finished); Stop aborts that
 * request and the runner kills the run when the client goes away. Timings are
 * drawn as a bar chart, the queries summary as a timeline with one lane per
 * database connection (plain SVG, no chart library).
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
    var ratio = el("p", { class: "workshop-run__ratio" });
    var timingFigure = figure("timings", [timings, ratio]);
    var summary = el("p", { class: "workshop-run__summary" });
    var legend = el("p", { class: "workshop-run__legend", "aria-hidden": "true" });
    var timelineFigure = figure("timeline", [summary, legend]);
    var charts = el("div", { class: "workshop-run__charts" });
    charts.append(timingFigure, timelineFigure);
    var detail = el("p", { class: "workshop-run__detail" });
    panel.append(output, charts, detail);
    block.append(bar, panel);

    var state = {
      block: block, snippet: snippet, pre: pre,
      view: pre, // hidden while editing; a code block's title stays in place
      published: codeNode.textContent, editor: null, controller: null, timer: null,
      run: run, stop: stop, edit: edit, reset: reset, status: status,
      panel: panel, output: output, timings: timings, detail: detail,
      charts: charts, timingFigure: timingFigure, ratio: ratio,
      timelineFigure: timelineFigure, summary: summary, legend: legend,
      timingData: [], queries: null, chartWidth: 0,
    };
    block.workshop = state;
    // Charts are drawn at the size they are shown (text stays legible on a
    // phone); draw them again when that width changes.
    if (window.ResizeObserver) {
      new ResizeObserver(function () {
        if (charts.clientWidth && charts.clientWidth !== state.chartWidth) drawCharts(state);
      }).observe(charts);
    }
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
    state.timingData = [];
    state.queries = null;
    drawCharts(state);
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
      state.timingData.push(event);
      drawTimings(state);
    } else if (event.event === "queries") {
      state.queries = event;
      drawTimeline(state);
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
    // One entry per final status of a run (tests/test_contract.py keeps the keys in step with the runner's).
    var STATUS_WORDS = {
      ok: ["ok", "Done in " + took],
      error: ["error", "Failed (exit " + summary.exit_code + ") in " + took],
      timeout: ["timeout", "Timed out after " + took],
      killed: ["error", "Killed after " + took + " (" + (summary.reason || "a resource limit was reached") + ")"],
      cancelled: ["stopped", "Cancelled"],
    };
    var message = STATUS_WORDS[summary.status] || ["error", "Finished: " + summary.status];
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

  /* ---------------------------------------------------------------- charts */

  // The timings as a bar chart, and what the run did to the database as a
  // timeline: one lane per connection, busy intervals as bars, failed queries as
  // pins, the async_timed phases as bands above and behind the lanes. Each SVG is
  // one image to assistive technology (role="img" and a label); a text summary
  // is shown beside it. Colours are CSS classes on Material's variables, so the
  // dark scheme needs nothing of its own.

  var SVG = "http://www.w3.org/2000/svg";

  function figure(kind, caption) {
    var node = el("figure", { class: "workshop-run__figure workshop-run__figure--" + kind });
    var text = el("figcaption", {});
    text.append.apply(text, caption);
    node.append(svg("svg", {}), text);
    node.hidden = true;
    return node;
  }

  function svg(tag, attrs, text, parent) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text != null) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function newSvg(fig, cls, label) {
    var node = svg("svg", { class: "workshop-run__svg " + cls, role: "img", "aria-label": label });
    fig.replaceChild(node, fig.firstChild);
    return node;
  }

  function finishSvg(node, width, height) {
    node.setAttribute("viewBox", "0 0 " + width + " " + Math.ceil(height));
  }

  function textWidth(node) {
    try { return node.getComputedTextLength(); } catch (ignored) { return 0; }
  }

  // Shorten an SVG text with an ellipsis until it fits `max` (empty if nothing fits).
  function fit(node, max) {
    var full = node.textContent;
    if (textWidth(node) <= max) return;
    var low = 0, high = full.length;
    while (low < high) { // the longest prefix that fits, with its ellipsis
      var mid = Math.ceil((low + high) / 2);
      node.textContent = full.slice(0, mid) + "…";
      if (textWidth(node) <= max) low = mid; else high = mid - 1;
    }
    node.textContent = low ? full.slice(0, low) + "…" : "";
  }

  function count(n, one, many) {
    return n.toLocaleString("en") + " " + (n === 1 ? one : many || one + "s");
  }

  function ms(value) {
    return (value < 1 ? value.toFixed(2) : value < 10 ? value.toFixed(1) : Math.round(value)) + " ms";
  }

  // concurrent / sequential (or synchronous, but not asynchronous) by name.
  function kind(name) {
    if (/concurren/i.test(name)) return "concurrent";
    if (/sequential|(^|[^a-z])synchronous/i.test(name)) return "sequential";
    return "other";
  }

  function speedup(items) {
    var conc = items.filter(function (t) { return kind(t.name) === "concurrent"; })[0];
    var seq = items.filter(function (t) { return kind(t.name) === "sequential"; })[0];
    if (!conc || !seq || !(conc.seconds > 0) || !(seq.seconds > 0)) return "";
    var r = seq.seconds / conc.seconds;
    var times = function (x) { return (x < 10 ? x.toFixed(1) : Math.round(x)) + "×"; };
    return "concurrent was " + (r >= 1 ? times(r) + " faster" : times(1 / r) + " slower") +
      " than sequential (" + seconds(conc.seconds) + " against " + seconds(seq.seconds) + ")";
  }

  function drawCharts(state) {
    drawTimings(state);
    drawTimeline(state);
  }

  // The width the charts are shown at, in CSS pixels: the viewBox uses it too.
  function chartWidth(state) {
    var box = state.charts, style = getComputedStyle(box);
    state.chartWidth = box.clientWidth;
    var inner = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    return Math.max(240, Math.floor(inner) || 640);
  }

  function drawTimings(state) {
    var fig = state.timingFigure;
    var items = state.timingData.map(function (t, i) { return { name: String(t.name), seconds: +t.seconds || 0, start: t.start, i: i }; });
    fig.hidden = !items.length;
    state.ratio.textContent = "";
    if (!items.length) return;
    // In the order they started (main first), as they happened.
    items.sort(function (a, b) {
      var sa = typeof a.start === "number" ? a.start : Infinity, sb = typeof b.start === "number" ? b.start : Infinity;
      return sa - sb || a.i - b.i;
    });
    var ratio = speedup(items);
    state.ratio.textContent = ratio ? ratio.charAt(0).toUpperCase() + ratio.slice(1) + "." : "";
    var width = chartWidth(state);
    var label = "Bar chart of the timings: " + items.map(function (t) { return t.name + " " + seconds(t.seconds); }).join(", ") +
      (ratio ? "; " + ratio : "");
    var node = newSvg(fig, "workshop-run__bars", label);
    var max = Math.max.apply(null, items.map(function (t) { return t.seconds; })) || 1;
    // Wide: names in a column left of the bars. Narrow: each name above its bar.
    var names = items.map(function (t) { return svg("text", { class: "workshop-run__svg-label" }, t.name, node); });
    var values = items.map(function (t) { return svg("text", { class: "workshop-run__svg-value" }, seconds(t.seconds), node); });
    var column = width >= 560 ? Math.min(width * 0.4, Math.max.apply(null, names.map(textWidth)) + 12) : 0;
    var room = Math.max.apply(null, values.map(textWidth)) + 8;
    var row = column ? 24 : 36, y = 4;
    items.forEach(function (t, i) {
      var barY = column ? y + 3 : y + 17, barH = column ? 16 : 14;
      var length = Math.max(2, (width - column - room) * t.seconds / max);
      if (column) fit(names[i], column - 12);
      else fit(names[i], width);
      names[i].setAttribute("x", 0);
      names[i].setAttribute("y", column ? barY + barH - 3 : y + 12);
      svg("rect", { class: "workshop-run__bar-fill workshop-run__kind--" + kind(t.name), x: column, y: barY,
        width: length, height: barH, rx: 2 }, null, node);
      values[i].setAttribute("x", column + length + 5);
      values[i].setAttribute("y", barY + barH - 3);
      y += row;
    });
    finishSvg(node, width, y);
  }

  // Rows for the phase brackets: a phase goes on the first row where it overlaps
  // nothing, so main sits above the functions it calls.
  function phaseRows(phases) {
    var rows = [];
    phases.slice().sort(function (a, b) { return a.start - b.start || (b.end - b.start) - (a.end - a.start); })
      .forEach(function (p) {
        for (var r = 0; ; r++) {
          rows[r] = rows[r] || [];
          if (!rows[r].some(function (o) { return p.start < o.end && o.start < p.end; })) { rows[r].push(p); p.row = r; return; }
        }
      });
    return rows.length;
  }

  function niceStep(raw) {
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    return [1, 2, 5, 10].map(function (m) { return m * mag; }).filter(function (s) { return s >= raw * 0.999; })[0];
  }

  function drawTimeline(state) {
    var fig = state.timelineFigure, q = state.queries;
    fig.hidden = !q;
    if (!q) return;
    var all = q.connections || [];
    var lanes = all.slice(0, 64);
    var phases = (q.phases || []).filter(function (p) { return p.end >= p.start; })
      .map(function (p) { return Object.assign({}, p); });
    var leaves = phases.filter(function (p) {
      return !phases.some(function (o) { return o !== p && o.start >= p.start && o.end <= p.end && (o.end - o.start) < (p.end - p.start); });
    });
    var errorNames = {};
    (q.sample || []).forEach(function (s) { if (s.error) errorNames[s.connection + "@" + s.start] = s.error; });
    var kinds = Object.keys((q.sample || []).reduce(function (seen, s) { if (s.error) seen[s.error] = 1; return seen; }, {}));

    // The text summary (shown, and the image's label).
    var parts = [count(all.length, "connection") + ", " + count(q.count || 0, "query", "queries") +
      (q.errors ? ", " + q.errors.toLocaleString("en") + " failed" + (kinds.length ? " (" + kinds.join(", ") + ")" : "") : "") +
      (q.latency_ms ? "; latency p50 " + ms(q.latency_ms.p50) + ", p95 " + ms(q.latency_ms.p95) : "")];
    if (q.max_concurrency > all.length) {
      parts.push(q.max_concurrency + " queries at once on " + count(all.length, "connection") + ": they clash");
    }
    leaves.forEach(function (p) {
      parts.push(p.name + ": " + (p.queries ? count(p.queries, "query", "queries") + " on " +
        count(p.connections, "connection") + ", " + (p.max_concurrency > 1 ? "up to " + p.max_concurrency + " at once" : "one at a time")
        : "no queries"));
    });
    if (lanes.length < all.length) parts.push("the first " + lanes.length + " connections are drawn");
    if (q.dropped) parts.push("only the first " + (q.count - q.dropped).toLocaleString("en") + " queries were recorded");
    state.summary.textContent = parts.join(". ") + ".";
    state.legend.replaceChildren(legendItem("busy", "running a query"));
    if (q.errors) state.legend.append(legendItem("error", "a query failed"));
    if (phases.length) state.legend.append(legendItem("phase", "@async_timed"));

    var width = chartWidth(state);
    var node = newSvg(fig, "workshop-run__timeline",
      "Timeline of the database connections, one lane each: " + state.summary.textContent);
    var end = Math.max.apply(null, [q.span ? q.span[1] : 0].concat(phases.map(function (p) { return p.end; }))) || 1;
    var laneLabels = lanes.map(function (c, i) { return svg("text", { class: "workshop-run__svg-label" }, "conn " + (i + 1), node); });
    var left = Math.max.apply(null, laneLabels.map(textWidth).concat([30])) + 8, right = 14;
    var x = function (t) { return left + Math.max(0, Math.min(1, t / end)) * (width - left - right); };

    // Phase brackets, one row each, labels cut to their width.
    var rowH = 18, top = phaseRows(phases) * rowH + (phases.length ? 4 : 0);
    var errorSpace = q.errors ? (q.errors <= 3 ? 16 : 8) : 0;
    var laneH = lanes.length <= 8 ? 16 : Math.max(4, Math.floor(160 / lanes.length));
    var gap = Math.max(errorSpace, lanes.length <= 8 ? 8 : 2);
    var lanesTop = top + gap, lanesBottom = lanesTop + lanes.length * (laneH + gap) - gap;
    var bands = svg("g", {}, null, node);
    leaves.forEach(function (p) {
      svg("rect", { class: "workshop-run__band workshop-run__kind--" + kind(p.name), x: x(p.start), y: top,
        width: Math.max(1, x(p.end) - x(p.start)), height: lanesBottom - top + 4 }, null, bands);
    });
    phases.forEach(function (p) {
      var y = p.row * rowH + rowH, x0 = x(p.start), x1 = Math.max(x0 + 1, x(p.end));
      svg("path", { class: "workshop-run__bracket workshop-run__kind--" + kind(p.name),
        d: "M" + x0 + " " + (y + 3) + "V" + (y - 2) + "H" + x1 + "V" + (y + 3) }, null, node);
      // The name and its duration if they fit, else the name, cut if need be.
      var text = svg("text", { class: "workshop-run__svg-label", x: x0 + 3, y: y - 5 }, p.name + " " + seconds(p.end - p.start), node);
      if (textWidth(text) > x1 - x0 - 6) text.textContent = p.name;
      fit(text, x1 - x0 - 6);
    });

    // Lanes: a faint track, the busy intervals, the failed queries as pins.
    var few = q.errors <= 3;
    lanes.forEach(function (c, i) {
      var y = lanesTop + i * (laneH + gap);
      var step = Math.ceil(13 / (laneH + gap));
      laneLabels[i].setAttribute("x", left - 8);
      laneLabels[i].setAttribute("y", y + laneH / 2 + 4);
      laneLabels[i].setAttribute("text-anchor", "end");
      if (i % step) laneLabels[i].textContent = "";
      var lane = svg("g", { class: "workshop-run__lane", "data-connection": c.id }, null, node);
      svg("rect", { class: "workshop-run__track", x: left, y: y, width: width - left - right, height: laneH }, null, lane);
      (c.intervals || []).forEach(function (iv) {
        svg("rect", { class: "workshop-run__busy", x: x(iv[0]), y: y, width: Math.max(1, x(iv[1]) - x(iv[0])), height: laneH }, null, lane);
      });
      (c.errors_at || []).forEach(function (t) {
        var px = x(t);
        svg("path", { class: "workshop-run__error-mark", d: "M" + px + " " + (y + laneH + 1) + "V" + (y - 2) +
          "M" + (px - 4.5) + " " + (y - 8) + "h9l-4.5 7z" }, null, lane);
        if (!few) return;
        var name = svg("text", { class: "workshop-run__svg-error", x: px + 7, y: y - 3 }, errorNames[c.id + "@" + t] || "error", lane);
        if (px + 7 + textWidth(name) > width) { name.setAttribute("x", px - 7); name.setAttribute("text-anchor", "end"); }
      });
    });

    // Time axis: seconds since the code was handed over (ms for short runs).
    var axisY = lanesBottom + 8, inMs = end < 1;
    svg("path", { class: "workshop-run__axis", d: "M" + left + " " + axisY + "H" + (width - right) }, null, node);
    var tick = niceStep(end / Math.max(2, Math.floor((width - left - right) / 50)));
    for (var k = 0; k * tick <= end * 1.0001; k++) {
      var t = k * tick, v = inMs ? t * 1000 : t, s = inMs ? tick * 1000 : tick;
      svg("path", { class: "workshop-run__axis", d: "M" + x(t) + " " + axisY + "v4" }, null, node);
      var tickText = svg("text", { class: "workshop-run__svg-tick", x: x(t), y: axisY + 16, "text-anchor": "middle" },
        k ? v.toFixed(Math.max(0, Math.ceil(-Math.log10(s) - 1e-9))) + (inMs ? " ms" : " s") : "0", node);
      if (x(t) + textWidth(tickText) / 2 > width) tickText.setAttribute("text-anchor", "end");
    }
    svg("text", { class: "workshop-run__svg-tick", x: width - right, y: axisY + 32, "text-anchor": "end" },
      "time since the code was handed over", node);
    finishSvg(node, width, axisY + 36);
  }

  function legendItem(cls, text) {
    var item = el("span", { class: "workshop-run__key" });
    item.append(el("span", { class: "workshop-run__swatch workshop-run__swatch--" + cls }), text);
    return item;
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
