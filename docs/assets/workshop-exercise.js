/*
 * Exercises on a chapter page: every `.workshop-exercise[data-exercise]` block
 * (a task, an editable Run block, `details.hint` blocks and a `details.success`
 * solution; see EXERCISES.md for the markup) gets
 *
 * - its verdict under the run's output: the runner checks what the code did and
 *   streams a `check` event (and the same object as `finished.check`);
 * - graduated hints: hint N+1 is offered once hint N was opened, the solution
 *   once every hint was (or earlier, after the reader confirms);
 * - progress kept in this browser with no account: a solved exercise is stored
 *   under `workshop:solved:<exercise id>`, marked on its heading and in the table
 *   of contents, and counted by an indicator under the page title, whose "Start
 *   over" forgets the progress, the hints opened and the edits of the exercises'
 *   code.
 *
 * Without JavaScript (or with no runner) the hints and the solution are plain
 * `details` in the page. Imported by workshop-run.js, which owns the runs and
 * the edits; this module only reads `block.workshop` (the Run block's state).
 */

const READY = "data-workshop-exercise-ready";
const SOLVED_PREFIX = "workshop:solved:";
const solvedKey = (id) => `${SOLVED_PREFIX}${id}`;
const helpKey = (id) => `workshop:hints:${id}`;

let forgetEditOf = () => {}; // given by workshop-run.js: closes a Run block's editor and forgets its edit

/* ---------------------------------------------------------------- helpers */

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text != null) node.textContent = text;
  return node;
}

function button(label, onClick, extra = "") {
  const node = el("button", { type: "button", class: `workshop-run__btn workshop-run__btn--small ${extra}`.trim() }, label);
  node.addEventListener("click", onClick);
  return node;
}

// localStorage may be missing or full (private mode): solved exercises are then kept for this visit only.
const store = {
  get(key) {
    try { return JSON.parse(localStorage.getItem(key)); } catch { return null; }
  },
  set(key, value) {
    try { localStorage.setItem(key, JSON.stringify(value)); } catch { /* keep going */ }
  },
  remove(key) {
    try { localStorage.removeItem(key); } catch { /* keep going */ }
  },
};

let uidCounter = 0;
function uid(prefix) {
  uidCounter += 1;
  return `${prefix}-${uidCounter}`;
}

function exercises(root = document) {
  return [...root.querySelectorAll(".workshop-exercise[data-exercise]")];
}

function exerciseById(id) {
  return exercises().find((node) => node.getAttribute("data-exercise") === id) || null;
}

// Where localStorage cannot be written (some private modes), solved stays solved for this visit.
const solvedThisVisit = new Set();

function isSolved(id) {
  return solvedThisVisit.has(id) || store.get(solvedKey(id)) !== null;
}

// The exercise's heading: the nearest heading before its block (the page puts it just above).
function headingOf(container) {
  for (let node = container.previousElementSibling; node; node = node.previousElementSibling) {
    if (/^H[1-6]$/.test(node.tagName)) return node;
  }
  return null;
}

// A small question in the page instead of window.confirm: it does not block the
// tab, it is read out as a group named by its question, and Escape answers no.
function ask(anchor, question, yes, no, focusYes) {
  return new Promise((resolve) => {
    const id = uid("workshop-ask");
    const group = el("div", { class: "workshop-exercise__ask", role: "group", "aria-labelledby": id });
    const answer = (value) => {
      group.remove();
      anchor.hidden = false;
      resolve(value);
    };
    const yesButton = button(yes, () => answer(true));
    const noButton = button(no, () => answer(false));
    group.append(el("span", { id }, question), yesButton, noButton);
    group.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { event.preventDefault(); answer(false); }
    });
    anchor.hidden = true;
    anchor.after(group);
    (focusYes ? yesButton : noButton).focus();
  });
}

/* ---------------------------------------------------------------- verdict */

// The verdict's live region sits under the run's output from the start, empty:
// a region that appears together with its text is not reliably announced.
function verdictRegion(state) {
  if (!state.verdict) {
    state.verdict = el("div", { class: "workshop-exercise__verdict", "aria-live": "polite", "aria-atomic": "true" });
    state.output.after(state.verdict);
  }
  return state.verdict;
}

// A message may start with the word the box already shows ("Solved: ...").
function withoutLead(message, passed) {
  const lead = passed ? /^\s*solved\s*[:.!-]\s*/i : /^\s*not (yet|solved)\s*[:.!-]\s*/i;
  const text = String(message || "");
  const rest = text.replace(lead, "");
  return rest === text ? text : rest.charAt(0).toUpperCase() + rest.slice(1);
}

/** Show a run's verdict under its output (`check` event or `finished.check`); null clears it. */
export function showVerdict(state, check) {
  if (!check || typeof check.passed !== "boolean") {
    clearVerdict(state); // a sample that is not an exercise, or a run with no verdict
    return;
  }
  const region = verdictRegion(state);
  // `judged: false`: the check could not run or failed itself, so the run was neither solved nor not.
  const judged = check.judged !== false;
  const outcome = !judged ? "unjudged" : check.passed ? "passed" : "failed";
  const shown = `${outcome}:${check.message}`;
  if (region.getAttribute("data-verdict") === shown) return; // the event, then the same in `finished`
  region.setAttribute("data-verdict", shown);
  const container = state.block.closest(".workshop-exercise");
  const id = check.exercise || (container && container.getAttribute("data-exercise")) || state.snippet;
  const solved = judged && check.passed;
  if (solved) markSolved(id);
  const box = el("div", {
    class: `workshop-exercise__result workshop-exercise__result--${outcome}`,
    "data-passed": String(solved),
  });
  const word = { passed: "Solved.", failed: "Not yet.", unjudged: "Not checked." }[outcome];
  box.append(
    el("span", { class: "workshop-exercise__icon", "aria-hidden": "true" }),
    el("strong", { class: "workshop-exercise__word" }, word),
    " ",
    el("span", { class: "workshop-exercise__message" }, withoutLead(check.message, solved)),
  );
  const { solved: done, total } = tally();
  if (solved && total) {
    box.append(" ", el("span", { class: "workshop-exercise__tally" },
      `${done} of ${total} ${total === 1 ? "exercise" : "exercises"} on this page solved.`));
  }
  region.replaceChildren(box);
}

export function clearVerdict(state) {
  if (!state.verdict) return;
  state.verdict.replaceChildren();
  state.verdict.removeAttribute("data-verdict");
}

/* ---------------------------------------------------------------- progress */

function markSolved(id) {
  if (store.get(solvedKey(id)) === null) store.set(solvedKey(id), { solved: new Date().toISOString() });
  solvedThisVisit.add(id);
  refreshProgress();
}

function tally() {
  const all = exercises();
  return { solved: all.filter((node) => isSolved(node.getAttribute("data-exercise"))).length, total: all.length };
}

function solvedMark(cls) {
  const mark = el("span", { class: cls });
  mark.append(el("span", { class: "workshop-exercise__icon", "aria-hidden": "true" }),
    el("span", { class: "workshop-visually-hidden" }, " (solved)"));
  return mark;
}

// The marks on the headings, in the table of contents (every copy Material
// draws: the sidebar, and the one folded into the navigation on narrow
// screens), and the indicator: all drawn again from localStorage.
export function refreshProgress() {
  for (const container of exercises()) {
    const solved = isSolved(container.getAttribute("data-exercise"));
    container.toggleAttribute("data-solved", solved);
    const heading = headingOf(container);
    if (!heading) continue;
    heading.toggleAttribute("data-workshop-solved", solved);
    let mark = heading.querySelector(".workshop-exercise__mark");
    if (solved && !mark) {
      mark = el("span", { class: "workshop-exercise__mark" });
      mark.append(el("span", { class: "workshop-exercise__icon", "aria-hidden": "true" }), "Solved");
      const permalink = heading.querySelector(".headerlink");
      if (permalink) permalink.before(mark); else heading.append(mark);
    } else if (!solved && mark) {
      mark.remove();
    }
    if (!heading.id) continue;
    // Material writes the links out in full (page URL and anchor) once the page has loaded.
    const links = [...document.querySelectorAll("a.md-nav__link")]
      .filter((link) => link.hash === `#${heading.id}` && link.pathname === location.pathname);
    for (const link of links) {
      link.toggleAttribute("data-workshop-solved", solved);
      const tocMark = link.querySelector(".workshop-toc__mark");
      if (solved && !tocMark) link.append(solvedMark("workshop-toc__mark"));
      else if (!solved && tocMark) tocMark.remove();
    }
  }
  drawIndicator();
}

function drawIndicator() {
  const box = document.querySelector(".workshop-progress");
  if (!box) return;
  const { solved, total } = tally();
  const text = `${solved} of ${total} ${total === 1 ? "exercise" : "exercises"} solved`;
  box.querySelector(".workshop-progress__text").textContent = text;
  const bar = box.querySelector("[role='progressbar']");
  bar.setAttribute("aria-valuemax", String(total));
  bar.setAttribute("aria-valuenow", String(solved));
  bar.setAttribute("aria-valuetext", text);
  bar.firstElementChild.style.width = `${total ? (100 * solved) / total : 0}%`;
}

// Under the page title: "3 of 9 exercises solved", a bar, and Start over.
function setUpIndicator() {
  if (document.querySelector(".workshop-progress")) return;
  const article = document.querySelector("article.md-content__inner") || document.querySelector("main") || document.body;
  const title = article.querySelector("h1");
  const labelId = uid("workshop-progress");
  const box = el("section", { class: "workshop-progress", "aria-labelledby": labelId });
  const label = el("h2", { class: "workshop-visually-hidden", id: labelId }, "Your progress");
  const text = el("p", { class: "workshop-progress__text", id: uid("workshop-progress-text") });
  const bar = el("div", {
    class: "workshop-progress__bar", role: "progressbar", "aria-label": "Exercises solved",
    "aria-valuemin": "0", "aria-valuemax": "0", "aria-valuenow": "0",
  });
  bar.append(el("div", { class: "workshop-progress__fill" }));
  const said = el("p", { class: "workshop-progress__said", "aria-live": "polite" });
  const restart = button("Start over", () => startOver(restart, said), "workshop-progress__restart");
  restart.setAttribute("aria-describedby", text.id); // "Start over", and what it would forget
  box.append(label, text, bar, restart, said);
  if (title) title.after(box); else article.prepend(box);
}

async function startOver(restart, said) {
  said.textContent = "";
  const forget = await ask(restart,
    "Forget which exercises you solved on this page, the hints you opened and your edits of their code?",
    "Forget my progress", "Keep it", false);
  restart.focus();
  if (!forget) return;
  for (const container of exercises()) {
    const id = container.getAttribute("data-exercise");
    store.remove(solvedKey(id));
    store.remove(helpKey(id));
    solvedThisVisit.delete(id);
    for (const block of container.querySelectorAll("[data-snippet]")) {
      if (!block.workshop) continue;
      forgetEditOf(block.workshop);
      clearVerdict(block.workshop);
    }
    if (container.workshopHelp) container.workshopHelp.reset();
  }
  refreshProgress();
  said.textContent = `Progress forgotten: ${tally().solved} of ${tally().total} exercises solved, your code as published.`;
}

/* ---------------------------------------------------------------- hints */

// Hints are revealed one at a time; what was revealed and opened is kept per
// exercise, so a reload does not hide it again.
function setUpHelp(container, id) {
  const hints = [...container.querySelectorAll("details.hint")];
  const solution = container.querySelector("details.success");
  if (!hints.length && !solution) return;
  const saved = store.get(helpKey(id)) || {};
  const clamp = (n, low) => Math.max(low, Math.min(hints.length, Number.isInteger(n) ? n : low));
  const help = {
    revealed: clamp(saved.revealed, Math.min(1, hints.length)),
    seen: 0,
    solution: saved.solution === true,
  };
  help.seen = Math.min(help.revealed, clamp(saved.seen, 0));
  hints.forEach((hint, i) => { if (hint.open) help.seen = Math.max(help.seen, i + 1); });

  const row = el("div", { class: "workshop-exercise__help" });
  const next = button("", () => {
    help.revealed += 1;
    const hint = hints[help.revealed - 1];
    hint.hidden = false;
    hint.open = true;
    opened(help.revealed);
    hint.querySelector("summary").focus();
  }, "workshop-exercise__next-hint");
  const show = button("Show the solution", async () => {
    if (help.seen < hints.length && !isSolved(id)) {
      const anyway = await ask(show,
        `You have opened ${help.seen} of ${hints.length} ${hints.length === 1 ? "hint" : "hints"}. Show the solution anyway?`,
        "Show the solution anyway", "Keep trying", true);
      if (!anyway) { show.focus(); return; }
    }
    help.solution = true;
    save();
    draw();
    solution.open = true;
    solution.querySelector("summary").focus();
  }, "workshop-exercise__show-solution");
  row.append(next, show);
  const last = hints[hints.length - 1];
  if (last) last.after(row); else solution.before(row);

  const save = () => store.set(helpKey(id), { revealed: help.revealed, seen: help.seen, solution: help.solution });
  const opened = (n) => {
    if (n <= help.seen) return;
    help.seen = n;
    save();
    draw();
  };
  const draw = () => {
    hints.forEach((hint, i) => { hint.hidden = i >= help.revealed; });
    next.hidden = !(help.seen >= help.revealed && help.revealed < hints.length);
    next.textContent = `Show hint ${help.revealed + 1}`;
    if (solution) solution.hidden = !help.solution;
    show.hidden = !solution || help.solution;
  };
  hints.forEach((hint, i) => hint.addEventListener("toggle", () => { if (hint.open) opened(i + 1); }));
  container.workshopHelp = {
    reset() {
      help.revealed = Math.min(1, hints.length);
      help.seen = 0;
      help.solution = false;
      hints.forEach((hint) => { hint.open = false; });
      if (solution) solution.open = false;
      container.querySelectorAll(".workshop-exercise__ask").forEach((node) => node.remove());
      draw();
    },
  };
  draw();
}

/* ---------------------------------------------------------------- wiring */

/**
 * Set up the exercises of a page (after its Run blocks): verdict regions, hints,
 * marks and the indicator. `forgetEdit(state)` forgets a Run block's edit.
 */
export function setUpExercises(root, { forgetEdit }) {
  forgetEditOf = forgetEdit;
  const found = exercises(root);
  if (!found.length) return;
  for (const container of found) {
    if (container.hasAttribute(READY)) continue;
    container.setAttribute(READY, "");
    const id = container.getAttribute("data-exercise");
    for (const block of container.querySelectorAll("[data-snippet]")) {
      if (block.workshop) verdictRegion(block.workshop);
    }
    setUpHelp(container, id);
  }
  setUpIndicator();
  refreshProgress();
}

// Another tab solved or started over: follow it.
window.addEventListener("storage", (event) => {
  if (event.key !== null && !event.key.startsWith(SOLVED_PREFIX)) return;
  if (event.key === null) solvedThisVisit.clear();
  else if (event.newValue === null) solvedThisVisit.delete(event.key.slice(SOLVED_PREFIX.length));
  refreshProgress();
});
