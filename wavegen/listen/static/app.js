// wavegen listening test: the browser side (no libraries, no network but this server).
//
// The server gives opaque tokens only; this page never learns a system or file name. Audio is
// played with the Web Audio API: all stimuli of a page are decoded, started together on the
// same sample frame and looped, each through its own gain; switching moves the gains at one
// audio-clock instant, so the position in the sound is kept and the switch is sample-accurate.
"use strict";

const CROSSFADE = 0.005; // s: both gains ramp over the same 5 ms, which avoids a click
const START_DELAY = 0.05; // s: sources are scheduled this far ahead so they start together

const LOOP_MIN = 0.05; // s: the shortest loop region
const EDGE_GRAB = 24; // px: a pointer this close to a loop edge drags that edge

// Phones and tablets: no keyboard hints (they name keys the listener does not have).
const TOUCH_ONLY = window.matchMedia("(hover: none) and (pointer: coarse)").matches;

// The wording comes from the server (lang/en.yaml, a translation, the experimenter's texts).
let WORDS = {};
function T(key, vars = {}) {
  const text = WORDS[key];
  if (typeof text !== "string") return text === undefined ? key : text;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}
const plural = (key, n) => (n === 1 ? T(`${key}_one`) : T(key, { n }));
const keysHint = (text) => (TOUCH_ONLY ? null : el("p", { class: "keys", text }));

// ---- drafts: what the listener did on a page, kept in the browser until the server has it ----

function draftKey(page) {
  return `wavegen-draft:${app.state.listener}:${page}`;
}
function loadDraft(page) {
  try {
    return JSON.parse(window.localStorage.getItem(draftKey(page)) || "null");
  } catch (err) {
    return null;
  }
}
function saveDraft(page, draft) {
  try {
    window.localStorage.setItem(draftKey(page), JSON.stringify(draft));
  } catch (err) {
    /* private mode or full: the page still works, a reload loses the draft */
  }
}
function dropDraft(page) {
  try {
    window.localStorage.removeItem(draftKey(page));
  } catch (err) {
    /* nothing kept */
  }
}
// How far the listener got before their first answer (intro, calibration and training are not
// stored on the server): "test" once the training is done.
function stage(value) {
  const key = `wavegen-stage:${app.state.listener}`;
  try {
    if (value) window.localStorage.setItem(key, value);
    return window.localStorage.getItem(key);
  } catch (err) {
    return null;
  }
}

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
    this.loop = null; // [start, end] in seconds, the same for every buffer; null: the whole sound
    this.onchange = () => {};
  }

  duration() {
    return this.buffers.length ? this.buffers[0].duration : 0;
  }

  // The loop region of every source of the page. Running sources are restarted together at the
  // region's start (one frame for all), so switching stays sample-accurate.
  setLoop(start, end) {
    const d = this.duration();
    this.loop = start <= 0 && end >= d ? null : [Math.max(0, start), Math.min(d, end)];
    if (this.current >= 0) {
      const index = this.current;
      this.stop(false);
      this.select(index);
    }
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
    this.loop = null;
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
        if (this.loop) [source.loopStart, source.loopEnd] = this.loop;
        const gain = this.ctx.createGain();
        gain.gain.value = i === index ? 1 : 0;
        source.connect(gain).connect(this.ctx.destination);
        source.start(when, this.loop ? this.loop[0] : 0); // one frame for every source: aligned
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

  stop(notify = true) {
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
    if (was >= 0 && notify) this.onchange();
  }

  // Seconds into the loop (for tests and the position display).
  position() {
    if (this.current < 0 || !this.buffers.length) return 0;
    const elapsed = Math.max(0, this.ctx.currentTime - this.startTime);
    const [start, end] = this.loop || [0, this.duration()];
    return start + (elapsed % (end - start));
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
  const finished = state.done || state.questionnaire;
  const done = finished ? state.total : state.position;
  document.getElementById("progress-fill").style.width = `${(100 * done) / Math.max(1, state.total)}%`;
  const bar = document.getElementById("progress-bar");
  bar.setAttribute("aria-valuemax", String(state.total));
  bar.setAttribute("aria-valuenow", String(done));
  progressLabel(finished ? T("all_done", { total: state.total }) : T("page_of", { page: state.position + 1, total: state.total }));
}

function progressLabel(text) {
  document.getElementById("progress-text").textContent = text;
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

const stopButton = () => el("button", { type: "button", class: "stop", text: T("stop"), onclick: () => app.player.stop() });

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

// ---- waveform and loop region --------------------------------------------------------------------

// The waveform of the audible (else the first) sound of the page, with a loop region whose two
// edges are dragged with a mouse or a finger; the region applies to every sound of the page.
function waveform(onloop) {
  const canvas = el("canvas", { class: "waveform", id: "waveform", "aria-hidden": "true" });
  const reset = el("button", { type: "button", class: "loop-reset", id: "loop-reset", text: T("loop_reset") });
  const box = el("div", { class: "wave-box" }, el("p", { class: "loop-label", text: T("loop_label") }), canvas, reset);
  const player = app.player;
  let region = player.loop ? [...player.loop] : [0, player.duration()];
  let dragging = null; // 0: start edge, 1: end edge
  let peaksFor = null;
  let peaks = null;
  const toTime = (x) => (Math.max(0, Math.min(canvas.clientWidth, x)) / Math.max(1, canvas.clientWidth)) * player.duration();
  const toX = (t) => (t / Math.max(1e-9, player.duration())) * canvas.clientWidth;
  const draw = () => {
    if (!canvas.isConnected || !player.buffers.length) return;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) [canvas.width, canvas.height] = [width, height];
    const index = Math.max(0, player.current);
    if (peaksFor !== `${index}:${width}`) {
      const data = player.buffers[index].getChannelData(0);
      const step = data.length / width;
      peaks = new Float32Array(2 * width);
      for (let x = 0; x < width; x++) {
        let lo = 0;
        let hi = 0;
        for (let k = Math.floor(x * step); k < Math.min(data.length, Math.floor((x + 1) * step) + 1); k++) {
          if (data[k] < lo) lo = data[k];
          if (data[k] > hi) hi = data[k];
        }
        peaks[2 * x] = lo;
        peaks[2 * x + 1] = hi;
      }
      peaksFor = `${index}:${width}`;
    }
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, width, height);
    const [a, b] = [toX(region[0]) * ratio, toX(region[1]) * ratio];
    g.fillStyle = "#dce8f3";
    g.fillRect(a, 0, b - a, height);
    g.fillStyle = "#24527a";
    for (let x = 0; x < width; x++) {
      const top = ((1 - peaks[2 * x + 1]) * height) / 2;
      const bottom = ((1 - peaks[2 * x]) * height) / 2;
      g.fillRect(x, top, 1, Math.max(1, bottom - top));
    }
    g.fillStyle = "#b3261e";
    for (const edge of [a, b]) g.fillRect(Math.min(width - 3 * ratio, Math.max(0, edge - ratio)), 0, 3 * ratio, height);
    if (player.current >= 0) {
      g.fillStyle = "#1d2733";
      g.fillRect(toX(player.position()) * ratio, 0, ratio, height);
    }
  };
  const apply = () => {
    player.setLoop(region[0], region[1]);
    onloop();
    draw();
  };
  canvas.addEventListener("pointerdown", (event) => {
    const x = event.offsetX;
    const distances = region.map((t) => Math.abs(toX(t) - x));
    dragging = distances[0] <= distances[1] ? 0 : 1;
    if (distances[dragging] > EDGE_GRAB) region[dragging] = toTime(x); // a tap moves the nearer edge there
    canvas.setPointerCapture(event.pointerId);
    draw();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (dragging === null) return;
    const t = toTime(event.offsetX);
    region[dragging] = dragging === 0 ? Math.min(t, region[1] - LOOP_MIN) : Math.max(t, region[0] + LOOP_MIN);
    draw();
  });
  const release = () => {
    if (dragging === null) return;
    dragging = null;
    region = [Math.max(0, region[0]), Math.min(player.duration(), region[1])];
    apply();
  };
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", release);
  reset.addEventListener("click", () => {
    region = [0, player.duration()];
    apply();
  });
  const tick = () => {
    if (!canvas.isConnected) return;
    draw();
    window.requestAnimationFrame(tick);
  };
  window.requestAnimationFrame(tick);
  return box;
}

// ---- the app ---------------------------------------------------------------------------------

const app = {
  config: null,
  state: null,
  player: new LoopPlayer(),
  page: null, // {keys(event), refresh()} of the page on screen
  busy: false,
};
window.wavegen = app; // read by the browser tests: state, player

function listenerFromUrl() {
  return new URLSearchParams(window.location.search).get("listener");
}

function storedListener() {
  try {
    return window.localStorage.getItem("wavegen-listener");
  } catch (err) {
    return null;
  }
}

async function register(listener, consent) {
  const body = { listener: listener || null };
  if (consent) body.consent = true;
  const state = await api("POST", "/api/session", body);
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

// A known listener's state, or null for someone the server has not registered (yet).
async function knownState(listener) {
  if (!listener) return null;
  try {
    return await api("GET", `/api/state?listener=${encodeURIComponent(listener)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

function card(id, ...children) {
  return el("section", { class: "card", id }, ...children);
}

function show(state) {
  app.state = state;
  setProgress(state);
  if (state.done) renderDone(state);
  else if (state.questionnaire) renderQuestionnaire(state);
  else if (state.position === 0 && state.training && stage() !== "test") renderInstructions(state);
  else renderContinue(state);
}

function renderConsent(listener) {
  app.page = null;
  const paragraphs = app.config.consent.split(/\n\s*\n/).map((p) => el("p", { text: p.trim() }));
  view().replaceChildren(
    card(
      "consent",
      el("h2", { text: T("consent_title") }),
      el("div", { class: "consent-text" }, ...paragraphs),
      el(
        "div",
        { class: "buttons" },
        el("button", {
          class: "primary",
          id: "agree",
          type: "button",
          text: T("consent_agree"),
          onclick: async () => show(await register(listener, true)),
        }),
        el("button", { id: "refuse", type: "button", text: T("consent_refuse"), onclick: renderRefused }),
      ),
    ),
  );
}

// Nothing was sent to the server before the consent: refusing leaves nothing behind.
function renderRefused() {
  view().replaceChildren(card("refused", el("h2", { text: T("refused_title") }), el("p", { text: T("refused_body") })));
}

function renderInstructions(state) {
  const type = state.type;
  app.page = null;
  progressLabel(T("intro_label", { total: state.total }));
  const next = app.config.calibration ? () => renderCalibration(state) : () => renderTraining(state);
  view().replaceChildren(
    card(
      "instructions",
      el("h2", { text: T(`${type}_title`) }),
      ...T(`${type}_body`).map((p) => el("p", { text: p })),
      el("p", { text: T("headphones") }),
      keysHint(T(`${type}_keys`)),
      el("button", { class: "primary", id: "start", type: "button", text: T("start_training"), onclick: next }),
    ),
  );
  if (!TOUCH_ONLY) document.getElementById("start").focus();
}

// The volume page: a sound of the test (all are at the test's loudness) on a loop.
async function renderCalibration(state) {
  await app.player.context(state.sample_rate);
  const training = state.training;
  await app.player.load(state.listener, [training.reference || training.stimuli[0]]);
  const done = el("button", {
    class: "primary",
    id: "calibrated",
    type: "button",
    text: T("calibration_done"),
    disabled: true,
    onclick: () => {
      app.player.stop();
      renderTraining(state);
    },
  });
  app.page = { keys: () => false, refresh: () => (done.disabled = !app.player.played.has(0)) };
  app.player.onchange = refreshButtons;
  view().replaceChildren(
    card(
      "calibration",
      el("h2", { text: T("calibration_title") }),
      el("p", { text: T("calibration_body") }),
      el("div", { class: "buttons" }, playButton(T("play"), 0, "single"), stopButton()),
      el("div", { class: "actions" }, done),
    ),
  );
}

function renderContinue(state) {
  app.page = null;
  view().replaceChildren(
    card(
      "welcome-back",
      el("h2", { text: T("welcome_back") }),
      el("p", { text: T("continue_at", { page: state.position + 1, total: state.total }) }),
      keysHint(T(`${state.type}_keys`)),
      el("button", { class: "primary", id: "continue", type: "button", text: T("continue"), onclick: () => renderPage(state) }),
    ),
  );
  if (!TOUCH_ONLY) document.getElementById("continue").focus();
}

async function renderTraining(state) {
  await app.player.context(state.sample_rate);
  const training = state.training;
  const tokens = (training.reference ? [training.reference] : []).concat(training.stimuli);
  statusLine(T("loading"));
  await app.player.load(state.listener, tokens);
  statusLine("");
  progressLabel(T("training_label", { total: state.total }));
  const offset = training.reference ? 1 : 0;
  const buttons = [];
  if (training.reference) buttons.push(playButton(T("reference"), 0, "reference"));
  training.stimuli.forEach((_, i) => buttons.push(playButton(T("sound", { n: i + 1 }), i + offset)));
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
    card(
      "training",
      el("h2", { text: T("training") }),
      el("p", { text: T("training_body") }),
      el("div", { class: "buttons" }, ...buttons, stopButton()),
      keysHint(T(training.reference ? "training_keys_reference" : "training_keys")),
      el("button", {
        class: "primary",
        id: "begin",
        type: "button",
        text: T("start_test"),
        onclick: () => {
          app.player.stop();
          stage("test");
          renderPage(app.state);
        },
      }),
    ),
  );
}

// A rating page: the current page of ``state``, or (``revising``) the previous one, shown with
// its stored answer for a change. A draft kept in the browser comes back after a reload.
async function renderPage(state, revising = false) {
  await app.player.context(state.sample_rate);
  const page = revising ? state.previous : state.page;
  const tokens = (page.reference ? [page.reference] : []).concat(page.stimuli, page.x ? [page.x] : []);
  view().replaceChildren(card("loading", el("p", { text: T("loading") })));
  try {
    await app.player.load(state.listener, tokens);
  } catch (err) {
    statusLine(T("load_failed", { error: err.message }), true);
    return;
  }
  statusLine("");
  const draft = loadDraft(page.token) || (revising ? { ...page.answer, played: tokens.map((_, i) => i) } : {});
  (draft.played || []).forEach((i) => i < tokens.length && app.player.played.add(i));
  if (draft.loop) app.player.setLoop(draft.loop[0], draft.loop[1]);
  setProgress(state);
  if (revising) progressLabel(T("page_of", { page: state.position, total: state.total }));
  const started = performance.now();
  const last = state.position + 1 === state.total && !revising;
  const next = el("button", { class: "primary", id: "next", type: "button", disabled: true, text: T(revising ? "back_to_current" : last ? "finish" : "next") });
  const builder = { mushra: mushraPage, mos: mosPage, ab: abPage, abx: abxPage }[page.kind];
  const { body, answer, ready, keep } = builder(page, draft);
  const comment = app.config.comments ? el("textarea", { id: "comment", rows: "2", maxlength: "2000" }) : null;
  if (comment) comment.value = draft.comment || "";
  const remember = () => saveDraft(page.token, { ...keep(), played: [...app.player.played], comment: comment ? comment.value : "" });
  const hint = el("p", { class: "hint", id: "hint" });
  const full = () => ({ ...answer(), ...(comment ? { comment: comment.value } : {}) });
  next.addEventListener("click", () => submit(page, full, started));
  app.page.refresh = () => {
    const missing = ready();
    next.disabled = missing !== "" || app.busy;
    hint.textContent = missing;
    remember();
  };
  if (comment) comment.addEventListener("input", remember);
  app.player.onchange = refreshButtons;
  const previous =
    state.previous && !revising
      ? el("button", {
          type: "button",
          id: "previous",
          text: T("previous"),
          onclick: () => {
            app.player.stop();
            renderPage(app.state, true);
          },
        })
      : null;
  // The waveform goes under the sound buttons (MOS pages have one sound and no loop).
  if (page.kind !== "mos") body.firstChild.after(waveform(remember));
  view().replaceChildren(
    card(
      `page-${page.kind}`,
      el("h2", { text: T(`${page.kind}_heading`) }),
      body,
      comment ? el("label", { class: "comment", for: "comment", text: T("comment_label") }) : null,
      comment,
      el("div", { class: "actions" }, previous, hint, next),
      keysHint(T(`${page.kind}_keys`)),
    ),
  );
  refreshButtons();
}

function mushraPage(page, draft) {
  const n = page.stimuli.length;
  const restored = draft.ratings || {};
  const values = page.stimuli.map((token) => (token in restored ? restored[token] : null)); // null: untouched
  const sliders = [];
  let selected = 0; // the version the arrow keys act on
  const scale = T("scale");
  const bands = el("div", { class: "scale", "aria-hidden": "true" }, ...scale.map((name, i) => el("div", { class: "band", text: `${name} (${20 * i}–${20 * i + 20})` })).reverse());
  const across = el("div", { class: "scale-across", "aria-hidden": "true" }, ...scale.map((name) => el("span", { text: name })));
  const rows = page.stimuli.map((_, i) => {
    const output = el("output", { class: "value", id: `value-${i + 1}` });
    const slider = el("input", {
      type: "range",
      class: "rating",
      id: `rating-${i + 1}`,
      min: "0",
      max: "100",
      step: "1",
      value: String(values[i] ?? 0),
      "aria-label": T("rating_of", { n: i + 1 }),
    });
    const show = () => {
      const untouched = values[i] === null;
      slider.classList.toggle("untouched", untouched);
      output.textContent = untouched ? "–" : String(values[i]);
      output.title = untouched ? T("not_rated") : "";
      slider.setAttribute("aria-valuetext", untouched ? T("not_rated") : String(values[i]));
    };
    const rated = () => {
      values[i] = Number(slider.value);
      selected = i;
      show();
      app.page.refresh();
    };
    // A click that lands on the current value fires no "input"; it is still a rating (of 0, say).
    for (const type of ["input", "change", "pointerup"]) slider.addEventListener(type, rated);
    show();
    sliders.push(slider);
    return el("div", { class: "column" }, output, slider, playButton(String(i + 1), i + 1));
  });
  const body = el(
    "div",
    {},
    el("div", { class: "buttons" }, playButton(T("reference"), 0, "reference"), stopButton()),
    el("div", { class: "mushra" }, bands, el("div", { class: "columns" }, across, ...rows)),
  );
  const nudge = (i, delta) => {
    const v = Math.max(0, Math.min(100, Number(sliders[i].value) + delta));
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
  const ratings = () => {
    const out = {};
    page.stimuli.forEach((token, i) => values[i] !== null && (out[token] = values[i]));
    return out;
  };
  return {
    body,
    ready() {
      const unheard = page.stimuli.filter((_, i) => !app.player.played.has(i + 1)).length;
      const unrated = values.filter((v) => v === null).length;
      if (unheard) return plural("listen_more", unheard);
      if (unrated) return plural("rate_more", unrated);
      return "";
    },
    answer: () => ({ ratings: ratings() }),
    keep: () => ({ ratings: ratings(), loop: app.player.loop }),
  };
}

// options: [value, label, key] each; the key is shown beside the label (not on touch screens).
function choiceList(name, options, onpick, checked) {
  return el(
    "fieldset",
    { class: "choices" },
    ...options.map(([value, label, key]) =>
      el(
        "label",
        { class: "choice" },
        el("input", { type: "radio", name, value: String(value), id: `${name}-${value}`, checked: value === checked, onchange: () => onpick(value) }),
        TOUCH_ONLY ? null : el("span", { class: "key", text: key }),
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

function mosPage(page, draft) {
  let score = draft.score ?? null;
  const scale = T("scale");
  const body = el(
    "div",
    {},
    el("div", { class: "buttons" }, playButton(T("play"), 0, "single"), stopButton()),
    choiceList(
      "score",
      [5, 4, 3, 2, 1].map((v) => [v, `${v} – ${scale[v - 1]}`, String(v)]),
      (v) => {
        score = v;
        app.page.refresh();
      },
      score,
    ),
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
    ready: () => (!app.player.played.has(0) ? T("listen_sound") : score === null ? T("choose_rating") : ""),
    answer: () => ({ score }),
    keep: () => ({ score }),
  };
}

// AB and ABX pages: play buttons for the sounds (keys a, b, x) and one choice (keys 1, 2, 3).
function choicePage(labels, options, listenHint, draft) {
  let choice = draft.choice ?? null;
  const buttons = labels.map((label, i) => playButton(label, i, label === "X" ? "x" : ""));
  const body = el(
    "div",
    {},
    el("div", { class: "buttons" }, ...buttons, stopButton()),
    choiceList(
      "choice",
      options,
      (v) => {
        choice = v;
        app.page.refresh();
      },
      choice,
    ),
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
    ready: () => (app.player.played.size < labels.length ? listenHint : choice === null ? T("choose_answer") : ""),
    answer: () => ({ choice }),
    keep: () => ({ choice, loop: app.player.loop }),
  };
}

function abPage(page, draft) {
  const options = [
    ["A", T("ab_a"), "1"],
    ["none", T("ab_none"), "2"],
    ["B", T("ab_b"), "3"],
  ];
  return choicePage(["A", "B"], options, T("listen_ab"), draft);
}

function abxPage(page, draft) {
  const options = [
    ["A", T("abx_a"), "1"],
    ["B", T("abx_b"), "2"],
  ];
  return choicePage(["A", "B", "X"], options, T("listen_abx"), draft);
}

// Send an answer until the server has it; a draft is dropped only once the answer is stored.
async function send(path, body) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await api("POST", path, body);
    } catch (err) {
      if (err instanceof ApiError) throw err;
      // Network trouble: the same answer is safe to send again (the server stores it once).
      statusLine(T("retrying", { n: attempt + 1 }), true);
      await new Promise((r) => setTimeout(r, Math.min(8000, 500 * 2 ** attempt)));
    }
  }
}

async function submit(page, answer, started) {
  if (app.busy) return;
  app.busy = true;
  document.getElementById("next").disabled = true;
  statusLine(T("saving"));
  const body = { listener: app.state.listener, page: page.token, elapsed_ms: Math.round(performance.now() - started), ...answer() };
  let reply;
  try {
    reply = await send("/api/answer", body);
  } catch (err) {
    // The server refused the answer: show why; reloading shows the page it expects.
    app.busy = false;
    statusLine(T("not_saved", { error: err.message }), true);
    return;
  }
  app.busy = false;
  dropDraft(page.token);
  app.player.stop();
  statusLine(T("saved"));
  app.state = reply.state;
  setProgress(reply.state);
  if (reply.state.done) renderDone(reply.state);
  else if (reply.state.questionnaire) renderQuestionnaire(reply.state);
  else renderPage(reply.state);
}

// ---- the questionnaire, after the last page ----------------------------------------------------

function question(q, value, onchange) {
  const id = `q-${q.id}`;
  const label = `${q.label}${q.required ? " *" : ""}`;
  if (q.type === "text" || q.type === "number") {
    const input =
      q.type === "text"
        ? el("textarea", { id, rows: "2", maxlength: "2000" })
        : el("input", { id, type: "number", inputmode: "decimal", step: "any", min: q.min ?? null, max: q.max ?? null });
    input.value = value ?? "";
    input.addEventListener("input", () => onchange(input.value));
    return el("div", { class: "question-box", "data-question": q.id }, el("label", { class: "question", for: id, text: label }), input);
  }
  const options = q.type === "likert" && !q.options.length ? T("likert").map((text, i) => [String(i + 1), text]) : q.options.map((o) => [o, o]);
  return el(
    "fieldset",
    { class: `choices question-box q-${q.type}`, "data-question": q.id },
    el("legend", { class: "question", text: label }),
    ...options.map(([v, text], i) =>
      el(
        "label",
        { class: "choice" },
        el("input", { type: "radio", name: id, value: v, id: `${id}-${i}`, checked: v === value, onchange: () => onchange(v) }),
        el("span", { text }),
      ),
    ),
  );
}

function renderQuestionnaire(state) {
  app.page = null;
  app.player.stop();
  const key = "questionnaire";
  const answers = loadDraft(key) || {};
  const questions = app.config.questionnaire;
  const hint = el("p", { class: "hint", id: "hint" });
  const submitButton = el("button", { class: "primary", id: "next", type: "button", text: T("questionnaire_submit") });
  submitButton.addEventListener("click", async () => {
    const missing = questions.filter((q) => q.required && (answers[q.id] ?? "") === "").map((q) => q.label);
    const bad = questions.find((q) => q.type === "number" && (answers[q.id] ?? "") !== "" && !Number.isFinite(Number(answers[q.id])));
    if (missing.length || bad) {
      hint.textContent = missing.length ? T("required_missing", { names: missing.join(", ") }) : T("number_invalid", { name: bad.label });
      return;
    }
    const body = {};
    for (const q of questions) {
      const v = answers[q.id] ?? "";
      body[q.id] = q.type === "number" && v !== "" ? Number(v) : v;
    }
    submitButton.disabled = true;
    statusLine(T("saving"));
    try {
      const reply = await send("/api/questionnaire", { listener: state.listener, answers: body });
      dropDraft(key);
      statusLine(T("saved"));
      app.state = reply.state;
      setProgress(reply.state);
      renderDone(reply.state);
    } catch (err) {
      submitButton.disabled = false;
      statusLine(T("not_saved", { error: err.message }), true);
    }
  });
  view().replaceChildren(
    card(
      "questionnaire",
      el("h2", { text: T("questionnaire_title") }),
      el("p", { text: T("questionnaire_body") }),
      ...questions.map((q) =>
        question(q, answers[q.id], (v) => {
          answers[q.id] = v;
          hint.textContent = "";
          saveDraft(key, answers);
        }),
      ),
      el("div", { class: "actions" }, hint, submitButton),
    ),
  );
}

function renderDone(state) {
  app.page = null;
  app.player.stop();
  statusLine("");
  view().replaceChildren(
    card(
      "done",
      el("h2", { text: T("thanks") }),
      el("p", { text: T("complete") }),
      el("p", { text: T("code_label") }),
      el("p", { class: "code", id: "completion-code", text: state.code }),
      state.return_url ? el("a", { class: "button primary", id: "return", href: state.return_url, text: T("return_link") }) : null,
    ),
  );
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const tag = event.target && event.target.tagName;
  if (tag === "TEXTAREA" || (tag === "INPUT" && event.target.type !== "range" && event.target.type !== "radio")) return;
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
    app.config = await api("GET", "/api/config");
    WORDS = app.config.texts;
    document.documentElement.lang = app.config.language;
    document.title = T("title");
    document.getElementById("title").textContent = T("title");
    const listener = listenerFromUrl() || storedListener();
    // With a consent page, nobody is registered before agreeing: ask the server whether it knows
    // this listener already. Without one, registering is the same as asking.
    const state = app.config.consent ? await knownState(listener) : await register(listener, false);
    if (!state) return renderConsent(listener);
    show(state);
  } catch (err) {
    statusLine(WORDS.start_failed ? T("start_failed", { error: err.message }) : `Could not start the test: ${err.message}`, true);
    view().replaceChildren(card("failed", el("p", { text: WORDS.start_failed_body || "The test could not be started." })));
  }
}

main();
