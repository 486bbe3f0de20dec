// wavegen listening test: the browser side (no libraries, no network but this server).
//
// The server gives opaque tokens only; this page never learns a system or file name. Audio is
// played with the Web Audio API: all stimuli of a page are decoded, started together on the
// same sample frame and looped, each through its own gain; switching moves the gains at one
// audio-clock instant, so the position in the sound is kept and the switch is sample-accurate.
"use strict";

const CROSSFADE = 0.005; // s: both gains ramp over the same 5 ms, which avoids a click
const START_DELAY = 0.05; // s: sources are scheduled this far ahead so they start together

const MUSHRA_BANDS = [
  ["Excellent", 80, 100],
  ["Good", 60, 80],
  ["Fair", 40, 60],
  ["Poor", 20, 40],
  ["Bad", 0, 20],
];
const ACR = [
  [5, "Excellent"],
  [4, "Good"],
  [3, "Fair"],
  [2, "Poor"],
  [1, "Bad"],
];

const TEXT = {
  mushra: {
    title: "Rate the quality of several versions of the same sound",
    heading: "Rate each version against the reference",
    body: [
      "On each page you hear a reference recording and several versions of it, labelled with numbers. " +
        "One of the versions is the reference itself, hidden among the others.",
      "Rate the quality of each version against the reference on the scale from 0 to 100 " +
        "(Excellent, Good, Fair, Poor, Bad). Any difference from the reference counts as a loss of quality; " +
        "give 100 to a version you cannot tell apart from the reference.",
      "The sounds loop. Switching between them keeps the position in the sound, so you can compare the same moment.",
      "Listen to every version and move every slider before you go on.",
    ],
    keys: "Keys: R reference · 1–9, 0 version · ←/→ previous/next version · ↑/↓ its rating ±5 · Space play/stop · Enter next",
  },
  mos: {
    title: "Rate the quality of each sound",
    heading: "How good is the quality of this speech?",
    body: [
      "On each page you hear one recording of speech. Rate its overall quality on the five-point scale " +
        "5 Excellent, 4 Good, 3 Fair, 2 Poor, 1 Bad.",
      "Listen to the sound at least once before you rate it.",
    ],
    keys: "Keys: Space play/stop · 1–5 rating · Enter next",
  },
  ab: {
    title: "Which of two versions sounds better?",
    heading: "Which version sounds better?",
    body: [
      "On each page you hear two versions of the same recording, A and B. Choose the one that sounds better, " +
        "or “No preference” if you cannot choose.",
      "The sounds loop; switching keeps the position in the sound. Listen to both before you answer.",
    ],
    keys: "Keys: A / B listen · Space stop · 1 A is better · 2 no preference · 3 B is better · Enter next",
  },
  abx: {
    title: "Which of two versions is X?",
    heading: "Is X the same as A or as B?",
    body: [
      "On each page you hear two different versions of the same recording, A and B, and a third one, X, " +
        "which is the same as either A or B. Tell which one X is.",
      "The sounds loop; switching keeps the position in the sound. Listen to all three before you answer.",
    ],
    keys: "Keys: A / B / X listen · Space stop · 1 X is A · 2 X is B · Enter next",
  },
};

// ---- server ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const options = { method, cache: "no-store", headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.error || response.statusText);
  return data;
}

// ---- audio -----------------------------------------------------------------------------------

class LoopPlayer {
  constructor() {
    this.ctx = null;
    this.buffers = [];
    this.sources = [];
    this.gains = [];
    this.current = -1; // index of the audible buffer, -1 when stopped
    this.startTime = 0;
    this.played = new Set(); // indices heard at least once on this page
    this.onchange = () => {};
  }

  async context(sampleRate) {
    if (!this.ctx) {
      try {
        this.ctx = new AudioContext({ sampleRate }); // no resampling of the stimuli
      } catch (err) {
        this.ctx = new AudioContext();
      }
    }
    if (this.ctx.state === "suspended") await this.ctx.resume();
    return this.ctx;
  }

  async load(listener, tokens) {
    this.stop();
    this.played = new Set();
    const ctx = this.ctx;
    this.buffers = await Promise.all(
      tokens.map(async (token) => {
        const url = `/api/audio/${token}?listener=${encodeURIComponent(listener)}`;
        const response = await fetch(url);
        if (!response.ok) throw new ApiError(response.status, "could not load a sound");
        return ctx.decodeAudioData(await response.arrayBuffer());
      }),
    );
  }

  // Make buffer ``index`` audible: start all loops together, or move the gains if running.
  select(index) {
    if (this.ctx.state === "suspended") this.ctx.resume();
    if (this.current < 0) {
      const when = this.ctx.currentTime + START_DELAY;
      this.sources = [];
      this.gains = [];
      this.buffers.forEach((buffer, i) => {
        const source = this.ctx.createBufferSource();
        source.buffer = buffer;
        source.loop = true;
        const gain = this.ctx.createGain();
        gain.gain.value = i === index ? 1 : 0;
        source.connect(gain).connect(this.ctx.destination);
        source.start(when); // the same frame for every source: they stay aligned
        this.sources.push(source);
        this.gains.push(gain);
      });
      this.startTime = when;
    } else if (index !== this.current) {
      const t = this.ctx.currentTime;
      this.gains.forEach((gain, i) => {
        gain.gain.cancelScheduledValues(t);
        gain.gain.setValueAtTime(i === this.current ? 1 : 0, t);
        gain.gain.linearRampToValueAtTime(i === index ? 1 : 0, t + CROSSFADE);
      });
    }
    this.current = index;
    this.played.add(index);
    this.onchange();
  }

  toggle(index) {
    if (this.current === index) this.stop();
    else this.select(index);
  }

  stop() {
    this.sources.forEach((s) => {
      try {
        s.stop();
      } catch (err) {
        /* never started */
      }
      s.disconnect();
    });
    this.sources = [];
    this.gains = [];
    const was = this.current;
    this.current = -1;
    if (was >= 0) this.onchange();
  }

  // Seconds into the loop (for tests and the position display).
  position() {
    if (this.current < 0 || !this.buffers.length) return 0;
    const elapsed = Math.max(0, this.ctx.currentTime - this.startTime);
    return elapsed % this.buffers[0].duration;
  }
}

// ---- page building -----------------------------------------------------------------------------

const view = () => document.getElementById("view");
const statusLine = (text, isError = false) => {
  const el = document.getElementById("status");
  el.textContent = text || "";
  el.classList.toggle("error", isError);
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function setProgress(state) {
  const box = document.getElementById("progress");
  box.hidden = false;
  const done = state.done ? state.total : state.position;
  document.getElementById("progress-fill").style.width = `${(100 * done) / Math.max(1, state.total)}%`;
  const bar = document.getElementById("progress-bar");
  bar.setAttribute("aria-valuemax", String(state.total));
  bar.setAttribute("aria-valuenow", String(done));
  document.getElementById("progress-text").textContent = state.done
    ? `${state.total} of ${state.total} done`
    : `Page ${state.position + 1} of ${state.total}`;
}

function playButton(label, index, extraClass = "") {
  return el("button", {
    class: `play ${extraClass}`.trim(),
    "data-index": String(index),
    type: "button",
    text: label,
    onclick: () => app.player.toggle(index),
  });
}

// Highlight the audible button and mark the heard ones.
function refreshButtons() {
  document.querySelectorAll("button.play").forEach((b) => {
    const i = Number(b.dataset.index);
    b.classList.toggle("playing", i === app.player.current);
    b.classList.toggle("heard", app.player.played.has(i));
    b.setAttribute("aria-pressed", String(i === app.player.current));
  });
  if (app.page && app.page.refresh) app.page.refresh();
}

// ---- the app ---------------------------------------------------------------------------------

const app = {
  state: null,
  player: new LoopPlayer(),
  page: null, // {keys(event), refresh(), answer(), ready()} of the page on screen
  busy: false,
};
window.wavegen = app; // read by the browser tests: state, player

function listenerFromUrl() {
  return new URLSearchParams(window.location.search).get("listener");
}

async function startSession() {
  let listener = listenerFromUrl();
  if (!listener) {
    try {
      listener = window.localStorage.getItem("wavegen-listener");
    } catch (err) {
      listener = null;
    }
  }
  const state = await api("POST", "/api/session", { listener: listener || null });
  try {
    window.localStorage.setItem("wavegen-listener", state.listener);
  } catch (err) {
    /* private mode: the URL still carries the id */
  }
  const url = new URL(window.location.href);
  url.searchParams.set("listener", state.listener);
  window.history.replaceState(null, "", url.toString());
  return state;
}

function show(state) {
  app.state = state;
  setProgress(state);
  if (state.done) renderDone(state);
  else if (state.position === 0 && state.training) renderInstructions(state);
  else renderContinue(state);
}

function progressLabel(text) {
  document.getElementById("progress-text").textContent = text;
}

function renderInstructions(state) {
  const text = TEXT[state.type];
  app.page = null;
  progressLabel(`Introduction · ${state.total} pages`);
  view().replaceChildren(
    el(
      "section",
      { class: "card", id: "instructions" },
      el("h2", { text: text.title }),
      ...text.body.map((p) => el("p", { text: p })),
      el("p", { text: "Use headphones in a quiet room, and set a comfortable volume during the training." }),
      el("p", { class: "keys", text: text.keys }),
      el("button", { class: "primary", id: "start", type: "button", text: "Start training", onclick: () => renderTraining(state) }),
    ),
  );
  document.getElementById("start").focus();
}

function renderContinue(state) {
  app.page = null;
  view().replaceChildren(
    el(
      "section",
      { class: "card", id: "welcome-back" },
      el("h2", { text: "Welcome back" }),
      el("p", { text: `Your answers so far are saved. You continue at page ${state.position + 1} of ${state.total}.` }),
      el("p", { class: "keys", text: TEXT[state.type].keys }),
      el("button", { class: "primary", id: "continue", type: "button", text: "Continue", onclick: () => renderPage(state) }),
    ),
  );
  document.getElementById("continue").focus();
}

async function renderTraining(state) {
  await app.player.context(state.sample_rate);
  const training = state.training;
  const tokens = (training.reference ? [training.reference] : []).concat(training.stimuli);
  statusLine("Loading sounds…");
  await app.player.load(state.listener, tokens);
  statusLine("");
  progressLabel(`Training · ${state.total} pages`);
  const offset = training.reference ? 1 : 0;
  const buttons = [];
  if (training.reference) buttons.push(playButton("Reference", 0, "reference"));
  training.stimuli.forEach((_, i) => buttons.push(playButton(`Sound ${i + 1}`, i + offset)));
  app.page = {
    keys(event) {
      if (event.key === "r" || event.key === "R") {
        if (training.reference) app.player.toggle(0);
      } else if (/^[1-9]$/.test(event.key)) {
        const i = Number(event.key) - 1 + offset;
        if (i < tokens.length) app.player.toggle(i);
      } else return false;
      return true;
    },
    refresh() {},
  };
  app.player.onchange = refreshButtons;
  view().replaceChildren(
    el(
      "section",
      { class: "card", id: "training" },
      el("h2", { text: "Training" }),
      el("p", {
        text:
          "These are all the versions of one example, including the best and the worst quality in this test. " +
          "Listen to them to get used to the range of quality and to set a comfortable volume. Nothing is recorded on this page.",
      }),
      el("div", { class: "buttons" }, ...buttons, el("button", { type: "button", class: "stop", text: "Stop", onclick: () => app.player.stop() })),
      el("p", { class: "keys", text: "Keys: R reference · 1–9 sound · Space play/stop" }),
      el("button", {
        class: "primary",
        id: "begin",
        type: "button",
        text: "Start the test",
        onclick: () => {
          app.player.stop();
          renderPage(app.state);
        },
      }),
    ),
  );
}

async function renderPage(state) {
  await app.player.context(state.sample_rate);
  const page = state.page;
  const tokens = (page.reference ? [page.reference] : []).concat(page.stimuli, page.x ? [page.x] : []);
  view().replaceChildren(el("section", { class: "card" }, el("p", { text: "Loading sounds…" })));
  try {
    await app.player.load(state.listener, tokens);
  } catch (err) {
    statusLine(`Could not load the sounds (${err.message}). Reload the page to try again.`, true);
    return;
  }
  statusLine("");
  app.player.onchange = refreshButtons;
  setProgress(state);
  const started = performance.now();
  const next = el("button", { class: "primary", id: "next", type: "button", disabled: true, text: state.position + 1 === state.total ? "Finish" : "Next" });
  const builder = { mushra: mushraPage, mos: mosPage, ab: abPage, abx: abxPage }[page.kind];
  const { body, answer, ready } = builder(page, next);
  const hint = el("p", { class: "hint", id: "hint" });
  next.addEventListener("click", () => submit(page, answer, started));
  const refreshNext = () => {
    const missing = ready();
    next.disabled = missing !== "" || app.busy;
    hint.textContent = missing;
  };
  app.page.refresh = refreshNext;
  view().replaceChildren(
    el("section", { class: "card", id: `page-${page.kind}` }, el("h2", { text: TEXT[page.kind].heading }), body, el("div", { class: "actions" }, hint, next), el("p", { class: "keys", text: TEXT[page.kind].keys })),
  );
  refreshButtons();
}

function mushraPage(page, next) {
  const n = page.stimuli.length;
  const values = new Array(n).fill(0);
  const moved = new Array(n).fill(false);
  const sliders = [];
  let selected = 0; // the version the arrow keys act on
  const scale = el("div", { class: "scale" }, ...MUSHRA_BANDS.map(([name, lo, hi]) => el("div", { class: "band", text: `${name} (${lo}–${hi})` })));
  const columns = page.stimuli.map((_, i) => {
    const output = el("output", { class: "value", id: `value-${i + 1}`, text: "–" });
    const slider = el("input", {
      type: "range",
      class: "rating",
      id: `rating-${i + 1}`,
      min: "0",
      max: "100",
      step: "1",
      value: "0",
      "aria-label": `Rating of version ${i + 1}`,
    });
    const rated = () => {
      values[i] = Number(slider.value);
      moved[i] = true;
      output.textContent = slider.value;
      selected = i;
      app.page.refresh();
    };
    // A click that lands on the current value fires no "input"; it is still a rating (of 0, say).
    for (const type of ["input", "change", "pointerup"]) slider.addEventListener(type, rated);
    sliders.push(slider);
    return el("div", { class: "column" }, output, slider, playButton(String(i + 1), i + 1));
  });
  const body = el(
    "div",
    {},
    el("div", { class: "buttons" }, playButton("Reference", 0, "reference"), el("button", { type: "button", class: "stop", text: "Stop", onclick: () => app.player.stop() })),
    el("div", { class: "mushra" }, scale, el("div", { class: "columns" }, ...columns)),
  );
  const nudge = (i, delta) => {
    const v = Math.max(0, Math.min(100, values[i] + delta));
    sliders[i].value = String(v);
    sliders[i].dispatchEvent(new Event("input"));
  };
  app.page = {
    keys(event) {
      const k = event.key;
      if (k === "r" || k === "R") app.player.select(0);
      else if (/^[0-9]$/.test(k)) {
        const i = k === "0" ? 9 : Number(k) - 1;
        if (i >= n) return false;
        selected = i;
        app.player.select(i + 1);
      } else if (k === "ArrowRight" || k === "ArrowLeft") {
        selected = (selected + (k === "ArrowRight" ? 1 : n - 1)) % n;
        app.player.select(selected + 1);
      } else if (k === "ArrowUp" || k === "ArrowDown") nudge(selected, k === "ArrowUp" ? 5 : -5);
      else return false;
      return true;
    },
  };
  return {
    body,
    ready() {
      const unheard = page.stimuli.filter((_, i) => !app.player.played.has(i + 1)).length;
      const unrated = moved.filter((m) => !m).length;
      if (unheard) return `Listen to ${unheard} more version${unheard > 1 ? "s" : ""}.`;
      if (unrated) return `Rate ${unrated} more version${unrated > 1 ? "s" : ""}.`;
      return "";
    },
    answer() {
      const ratings = {};
      page.stimuli.forEach((token, i) => (ratings[token] = values[i]));
      return { ratings };
    },
  };
}

// options: [value, label, key] each; the key is shown beside the label.
function choiceList(name, options, onpick) {
  return el(
    "fieldset",
    { class: "choices" },
    ...options.map(([value, label, key]) =>
      el(
        "label",
        { class: "choice" },
        el("input", { type: "radio", name, value: String(value), id: `${name}-${value}`, onchange: () => onpick(value) }),
        el("span", { class: "key", text: key }),
        el("span", { text: label }),
      ),
    ),
  );
}

function pick(name, value) {
  const input = document.getElementById(`${name}-${value}`);
  if (input) {
    input.checked = true;
    input.dispatchEvent(new Event("change"));
  }
}

function mosPage(page) {
  let score = null;
  const body = el(
    "div",
    {},
    el("div", { class: "buttons" }, playButton("Play", 0, "single"), el("button", { type: "button", class: "stop", text: "Stop", onclick: () => app.player.stop() })),
    choiceList("score", ACR.map(([v, label]) => [v, `${v} – ${label}`, String(v)]), (v) => {
      score = v;
      app.page.refresh();
    }),
  );
  app.page = {
    keys(event) {
      if (/^[1-5]$/.test(event.key)) pick("score", Number(event.key));
      else if (event.key === "p" || event.key === "P") app.player.toggle(0);
      else return false;
      return true;
    },
  };
  return {
    body,
    ready: () => (!app.player.played.has(0) ? "Listen to the sound." : score === null ? "Choose a rating." : ""),
    answer: () => ({ score }),
  };
}

// AB and ABX pages: play buttons for the sounds (keys a, b, x) and one choice (keys 1, 2, 3).
function choicePage(labels, options, listenHint) {
  let choice = null;
  const stop = el("button", { type: "button", class: "stop", text: "Stop", onclick: () => app.player.stop() });
  const buttons = labels.map((label, i) => playButton(label, i, label === "X" ? "x" : ""));
  const body = el(
    "div",
    {},
    el("div", { class: "buttons" }, ...buttons, stop),
    choiceList("choice", options, (v) => {
      choice = v;
      app.page.refresh();
    }),
  );
  app.page = {
    keys(event) {
      const k = event.key.toLowerCase();
      const sound = labels.findIndex((label) => label.toLowerCase() === k);
      const option = options.find((o) => o[2] === k);
      if (sound >= 0) app.player.select(sound);
      else if (option) pick("choice", option[0]);
      else return false;
      return true;
    },
  };
  return {
    body,
    ready: () => (app.player.played.size < labels.length ? listenHint : choice === null ? "Choose an answer." : ""),
    answer: () => ({ choice }),
  };
}

function abPage() {
  const options = [
    ["A", "A is better", "1"],
    ["none", "No preference", "2"],
    ["B", "B is better", "3"],
  ];
  return choicePage(["A", "B"], options, "Listen to A and B.");
}

function abxPage() {
  const options = [
    ["A", "X is A", "1"],
    ["B", "X is B", "2"],
  ];
  return choicePage(["A", "B", "X"], options, "Listen to A, B and X.");
}

async function submit(page, answer, started) {
  if (app.busy) return;
  app.busy = true;
  document.getElementById("next").disabled = true;
  statusLine("Saving…");
  const body = { listener: app.state.listener, page: page.token, elapsed_ms: Math.round(performance.now() - started), ...answer() };
  for (let attempt = 0; ; attempt++) {
    try {
      const reply = await api("POST", "/api/answer", body);
      app.busy = false;
      app.player.stop();
      statusLine("Saved.");
      app.state = reply.state;
      setProgress(reply.state);
      if (reply.state.done) renderDone(reply.state);
      else renderPage(reply.state);
      return;
    } catch (err) {
      if (err instanceof ApiError) {
        // The server refused the answer: show why; reloading shows the page it expects.
        app.busy = false;
        statusLine(`Your answer was not saved: ${err.message}. Reload the page to continue.`, true);
        return;
      }
      // Network trouble: the same answer is safe to send again (the server stores it once).
      statusLine(`Could not reach the server; trying again (${attempt + 1})…`, true);
      await new Promise((r) => setTimeout(r, Math.min(8000, 500 * 2 ** attempt)));
    }
  }
}

function renderDone(state) {
  app.page = null;
  app.player.stop();
  statusLine("");
  view().replaceChildren(
    el(
      "section",
      { class: "card", id: "done" },
      el("h2", { text: "Thank you!" }),
      el("p", { text: "The test is complete and all your answers are saved." }),
      el("p", { text: "Your completion code:" }),
      el("p", { class: "code", id: "completion-code", text: state.code }),
    ),
  );
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const tag = event.target && event.target.tagName;
  if (event.key === "Enter") {
    const next = document.getElementById("next");
    if (next && !next.disabled) {
      event.preventDefault();
      next.click();
    }
    return;
  }
  if (event.key === " " && tag !== "BUTTON") {
    event.preventDefault();
    if (app.player.current >= 0) app.player.stop();
    else if (app.player.buffers.length) app.player.select(0);
    return;
  }
  // A focused slider keeps its own arrow keys.
  if (tag === "INPUT" && event.target.type === "range" && event.key.startsWith("Arrow")) return;
  if (app.page && app.page.keys && app.page.keys(event)) event.preventDefault();
});

async function main() {
  try {
    show(await startSession());
  } catch (err) {
    statusLine(`Could not start the test: ${err.message}`, true);
    view().replaceChildren(el("section", { class: "card" }, el("p", { text: "The test could not be started. Check the address you were given." })));
  }
}

main();
