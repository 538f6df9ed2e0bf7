/* videomp3 — the browser UI's behaviour. Plain JavaScript, no build step, no inline code (CSP default-src 'self').
 *
 * Jobs page: uploads each chosen or dropped file resumably with tus-js-client (upload progress, resumes after a
 * dropped connection or a reload, cancel = abort and remove),
 * then keeps the list in step with GET /api/jobs/ by polling: every ~1.5 s while a job is queued or converting,
 * every 15 s otherwise. Job page: the same, for one job. Rows are updated in place, so a playing <audio> keeps
 * playing while the rest of the page changes.
 */
(function () {
  "use strict";

  const ACTIVE = new Set(["queued", "converting"]);
  const FAST_POLL_MS = 1500;
  const SLOW_POLL_MS = 15000;
  const HIDDEN_POLL_MS = 30000;
  const PARALLEL_UPLOADS = 3;
  const PROBE_BYTES = 1024 * 1024; // of each end of a file, sent to POST /api/jobs/check/ before the upload
  const STATUS_LABELS = {
    queued: "Queued",
    converting: "Converting",
    done: "Done",
    failed: "Failed",
    cancelled: "Cancelled",
    expired: "Expired",
  };

  // ---- small DOM helpers -----------------------------------------------------------------------

  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  // Each icon: a list of [element, attributes] drawn on a 24x24 grid with the stroke style of .icon.
  const ICONS = {
    music: [["path", { d: "M9 18V5.5l11-2V16" }], ["circle", { cx: 6, cy: 18, r: 3 }], ["circle", { cx: 17, cy: 16, r: 3 }]],
    clock: [["circle", { cx: 12, cy: 12, r: 9 }], ["path", { d: "M12 7v5l3.2 2" }]],
    convert: [["path", { d: "M20 11a8 8 0 0 0-14.6-4.2M4 4v4h4" }], ["path", { d: "M4 13a8 8 0 0 0 14.6 4.2M20 20v-4h-4" }]],
    alert: [["circle", { cx: 12, cy: 12, r: 9 }], ["path", { d: "M12 7.5v5.5M12 16.5v.01" }]],
    stop: [["circle", { cx: 12, cy: 12, r: 9 }], ["path", { d: "m9 9 6 6M15 9l-6 6" }]],
    archive: [["path", { d: "M3.5 4.5h17v4h-17zM5 8.5v11h14v-11M10 12h4" }]],
    download: [["path", { d: "M12 4v11M7 10l5 5 5-5M5 20h14" }]],
    trash: [["path", { d: "M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3" }]],
    retry: [["path", { d: "M20 12a8 8 0 1 1-2.3-5.7M20 4v4.5h-4.5" }]],
    close: [["path", { d: "M6 6l12 12M18 6 6 18" }]],
    play: [["path", { d: "M8 5.5v13l10.5-6.5z" }]],
    pause: [["path", { d: "M8.5 5.5v13M15.5 5.5v13" }]],
    options: [["path", { d: "M4 7h10M18 7h2M4 17h2M10 17h10" }], ["circle", { cx: 16, cy: 7, r: 2 }], ["circle", { cx: 8, cy: 17, r: 2 }]],
  };
  const STATUS_ICONS = { queued: "clock", converting: "convert", done: "music", failed: "alert", cancelled: "stop", expired: "archive" };

  function icon(name) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("class", "icon");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    for (const [tag, attrs] of ICONS[name]) {
      const part = document.createElementNS(SVG_NS, tag);
      for (const [key, value] of Object.entries(attrs)) part.setAttribute(key, value);
      svg.append(part);
    }
    return svg;
  }

  function readJson(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  // ---- formatting --------------------------------------------------------------------------------

  function formatBytes(bytes) {
    if (bytes === null || bytes === undefined) return "";
    if (bytes < 1024) return `${bytes} bytes`;
    const units = ["KB", "MB", "GB", "TB"];
    let value = bytes / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
  }

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
    // Whole seconds passed, as media players count: a 7.5 s MP3 reads 0:07 here and in the player.
    const total = Math.floor(seconds);
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const secs = String(total % 60).padStart(2, "0");
    return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
  }

  const relativeFormat = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
  const dateFormat = new Intl.DateTimeFormat("en", { dateStyle: "medium", timeStyle: "short" });

  function formatRelative(iso) {
    const seconds = (Date.parse(iso) - Date.now()) / 1000;
    const abs = Math.abs(seconds);
    if (abs < 45) return "just now";
    if (abs < 3600) return relativeFormat.format(Math.round(seconds / 60), "minute");
    if (abs < 86400) return relativeFormat.format(Math.round(seconds / 3600), "hour");
    if (abs < 7 * 86400) return relativeFormat.format(Math.round(seconds / 86400), "day");
    return dateFormat.format(new Date(iso));
  }

  function timeElement(iso, prefix) {
    return h("time", {
      datetime: iso,
      title: dateFormat.format(new Date(iso)),
      dataset: { relative: prefix || "" },
      text: `${prefix || ""}${formatRelative(iso)}`,
    });
  }

  function refreshRelativeTimes() {
    for (const node of document.querySelectorAll("time[data-relative]")) {
      node.textContent = `${node.dataset.relative}${formatRelative(node.getAttribute("datetime"))}`;
    }
  }

  // ---- talking to the API ---------------------------------------------------------------------------

  const config = readJson("page-config") || {};

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) return meta.content;
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  function signInAgain() {
    const next = window.location.pathname + window.location.search;
    window.location.assign(`${config.loginUrl || "/accounts/login/"}?next=${encodeURIComponent(next)}`);
  }

  function fallbackSentence(status) {
    if (status === 413) return config.tooLargeSentence || "This file is larger than the server accepts.";
    if (status === 0) return "The connection to the server was lost. Check your network and try again.";
    if (status >= 500) return "The server could not handle this just now. Try again in a minute.";
    return `The request failed (HTTP ${status}). Reload the page and try again.`;
  }

  /** Each field's sentence of a 400/422 body's `errors`, unless it only repeats the summary. */
  function refusalDetails(text, summary) {
    try {
      const body = JSON.parse(text);
      const lines = Object.values((body && body.errors) || {}).flat().map(String);
      return lines.length > 1 || (lines.length === 1 && lines[0] !== summary) ? lines : [];
    } catch (_) {
      return [];
    }
  }

  /** A 503 that says the server is receiving all the uploads it can hold right now (uploads_at_capacity). */
  function atCapacity(status, text) {
    if (status !== 503) return false;
    try {
      return JSON.parse(text).code === "uploads_at_capacity";
    } catch (_) {
      return false;
    }
  }

  function detailOf(status, text) {
    try {
      const body = JSON.parse(text);
      if (body && typeof body.detail === "string" && body.detail) return body.detail;
    } catch (_) {
      // not JSON: a proxy's error page, for example
    }
    return fallbackSentence(status);
  }

  /**
   * One API call. `etag`: the ETag of what the caller holds, sent as If-None-Match; a 304 then resolves to
   * { status: 304, data: null } (fetch hands it over as is: the cache is bypassed, the header is ours).
   * `body`: a FormData, or an object sent as JSON. A 400's parsed body rides on the error as `body`.
   */
  async function api(method, url, { etag, body } = {}) {
    const headers = { Accept: "application/json", "X-CSRFToken": csrfToken() };
    if (etag) headers["If-None-Match"] = etag;
    let payload = body;
    if (body && !(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, { method, credentials: "same-origin", cache: "no-store", headers, body: payload });
    } catch (_) {
      throw new ApiError(0, fallbackSentence(0));
    }
    if (response.status === 401) {
      signInAgain();
      throw new ApiError(401, "Your session has ended; sign in again.");
    }
    if (response.status === 304) return { status: 304, data: null, etag };
    const text = await response.text();
    if (!response.ok) {
      const error = new ApiError(response.status, detailOf(response.status, text));
      error.responseText = text;
      throw error;
    }
    return { status: response.status, data: text ? JSON.parse(text) : null, etag: response.headers.get("ETag") };
  }

  const jobUrl = (id) => `${config.jobsUrl}${id}/`;
  const mp3Url = (id) => `${config.jobsUrl}${id}/mp3`;
  const pageUrl = (id) => `/jobs/${id}/`;

  // ---- announcements, toasts and the confirm dialog ---------------------------------------------------

  function announce(message) {
    const region = document.querySelector("[data-announcer]");
    if (!region) return;
    // Clearing first makes screen readers read a repeated message again.
    region.textContent = "";
    window.setTimeout(() => {
      region.textContent = message;
    }, 50);
  }

  let toastTimer = null;
  function toast(message, kind) {
    let node = document.querySelector(".toast");
    if (!node) {
      node = h("div", { class: "toast", role: "alert" });
      document.body.append(node);
    }
    node.className = `toast${kind === "error" ? " toast-error" : ""}`;
    node.textContent = message;
    node.hidden = false;
    window.clearTimeout(toastTimer);
    toastTimer = window.setTimeout(() => {
      node.hidden = true;
    }, 6000);
  }

  // The answer comes from the button pressed (or Escape), not from the dialog's "close" event: that event
  // is dispatched later, and can arrive after the dialog was opened again for the next question.
  let settleConfirm = null;

  function confirmDialog({ title, text, confirmLabel }) {
    const dialog = document.querySelector("[data-confirm-dialog]");
    if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(window.confirm(`${title}\n\n${text}`));
    if (!dialog.dataset.ready) {
      dialog.dataset.ready = "true";
      dialog.querySelector("form").addEventListener("submit", (event) => {
        if (settleConfirm) settleConfirm(Boolean(event.submitter) && event.submitter.value === "confirm");
      });
      dialog.addEventListener("cancel", () => settleConfirm && settleConfirm(false));
    }
    dialog.querySelector("[data-confirm-title]").textContent = title;
    dialog.querySelector("[data-confirm-text]").textContent = text;
    dialog.querySelector("[data-confirm-button]").textContent = confirmLabel;
    if (settleConfirm) settleConfirm(false);
    return new Promise((resolve) => {
      settleConfirm = (answer) => {
        settleConfirm = null;
        resolve(answer);
      };
      dialog.showModal();
    });
  }

  /**
   * "Convert again" (issue #19): the job's options in the dialog's form, to change and send. A failed or
   * cancelled job is retried with them (the same job); a done one gets a new job beside it. Resolves to the
   * API's job, or null when the user closes the dialog. Refusals are shown in the dialog, beside their fields.
   */
  function convertDialog(job) {
    const template = document.querySelector("[data-convert-dialog-template]");
    if (!template) return Promise.resolve(null);
    const dialog = template.content.firstElementChild.cloneNode(true);
    document.body.append(dialog);
    const form = dialog.querySelector("[data-convert-form]");
    const failure = dialog.querySelector("[data-convert-error]");
    const retrying = RETRYABLE.has(job.status);
    dialog.querySelector("[data-convert-title]").textContent = `Convert ${jobTitle(job)} again`;
    dialog.querySelector("[data-convert-text]").textContent = retrying
      ? "Change what made it fail, then convert it again. Nothing is uploaded again."
      : "A new MP3 is made from the file you uploaded, with these options; this one stays. Nothing is uploaded again.";
    dialog.querySelector("[data-convert-button]").textContent = retrying ? "Retry with these options" : "Convert";
    form.reset();
    fillOptionsForm(form, job.options || {});
    showOptionErrors(form, "");
    failure.hidden = true;
    return new Promise((resolve) => {
      async function submit(event) {
        event.preventDefault();
        if (!event.submitter || event.submitter.value !== "confirm") return finish(null);
        const button = event.submitter;
        if (isBusy(button)) return;
        busy(button, true);
        try {
          const body = optionsFrom(form);
          const { data } = await api("POST", `${jobUrl(job.id)}${retrying ? "retry" : "convert"}/`, { body });
          finish(data);
        } catch (error) {
          showOptionErrors(form, error.responseText || "");
          failure.textContent = error.message;
          failure.hidden = false;
        } finally {
          busy(button, false);
        }
      }
      function cancel() {
        finish(null);
      }
      function finish(answer) {
        form.removeEventListener("submit", submit);
        dialog.removeEventListener("cancel", cancel);
        if (dialog.open) dialog.close();
        dialog.remove();
        resolve(answer);
      }
      form.addEventListener("submit", submit);
      dialog.addEventListener("cancel", cancel);
      dialog.showModal();
    });
  }

  // ---- one job, drawn as a list row or as the body of its own page ----------------------------------

  // What the user named it (the Title option), else the file's name.
  const jobTitle = (job) => (job.options && job.options.title) || job.filename;

  // What changes the row's structure; progress alone only moves the bar.
  const jobShape = (job) => [job.status, job.error, job.mp3_size, job.mp3_duration, job.duration, job.expires_at, JSON.stringify(job.options)].join("|");

  function jobMeta(job) {
    const parts = [];
    if (job.status === "done") {
      parts.push(`MP3 ${formatDuration(job.mp3_duration || job.duration)}`.trim(), formatBytes(job.mp3_size));
    } else {
      if (job.duration) parts.push(formatDuration(job.duration));
      parts.push(formatBytes(job.size));
    }
    // A row titled by the Title option still names the file it came from.
    if (jobTitle(job) !== job.filename) parts.unshift(job.filename);
    const meta = h("p", { class: "job-meta" }, parts.filter(Boolean).join(" · "), " · ", timeElement(job.created_at, "uploaded "));
    // Retention (RETENTION_DAYS): say when the server deletes the files.
    if (job.expires_at) meta.append(" · ", h("span", { dataset: { expires: "" } }, timeElement(job.expires_at, "deleted ")));
    return meta;
  }

  function jobState(job) {
    const box = h("div", { class: "job-state" });
    if (job.status === "queued") box.append("Waiting for a converter…");
    else if (job.status === "converting") {
      box.append(
        h(
          "div",
          { class: "job-progress" },
          h("progress", { max: 100, value: job.progress, "aria-label": `Converting ${job.filename}`, dataset: { jobProgress: "" } }),
          h("span", { class: "job-progress-text", dataset: { jobProgressText: "" }, text: `${job.progress} %` }),
        ),
      );
    } else if (job.status === "failed") box.append(h("p", { class: "job-error", text: job.error || "The conversion failed." }));
    else if (job.status === "cancelled") box.append("Cancelled before the MP3 was finished.");
    else if (job.status === "expired") box.append(job.error || "The files were removed after the retention period.");
    return box;
  }

  let nowPlaying = null;

  /**
   * The MP3's player. On the job's own page: the browser's player, which fetches nothing until it is played
   * (preload none). In a list row: one Play/Pause button (a single Tab stop, where the native player has six)
   * with the time and a bar to click; its <audio> is only made on the first Play, so a visit costs no audio
   * bytes. Left/Right on the button seek by 5 s.
   */
  function jobPlayer(job, mode) {
    if (job.status !== "done") return null;
    if (mode === "page") {
      return h("audio", { controls: true, preload: "none", src: mp3Url(job.id), "aria-label": `Play the MP3 of ${jobTitle(job)}` });
    }
    const duration = job.mp3_duration || job.duration;
    const label = h("span", { text: "Play" });
    const toggle = h("button", { type: "button", class: "button button-sm button-secondary player-toggle", "aria-label": `Play ${jobTitle(job)}`, "aria-keyshortcuts": "ArrowLeft ArrowRight" }, icon("play"), label);
    const time = h("span", { class: "player-time", text: `0:00 / ${formatDuration(duration)}` });
    const fill = h("span", { class: "player-fill" });
    const bar = h("span", { class: "player-bar", "aria-hidden": "true" }, fill);
    const node = h("div", { class: "player", dataset: { player: "" } }, toggle, bar, time);
    let audio = null;

    function sync() {
      const total = isFinite(audio.duration) ? audio.duration : duration;
      time.textContent = `${formatDuration(audio.currentTime)} / ${formatDuration(total)}`;
      fill.style.width = total ? `${Math.min(100, (audio.currentTime / total) * 100)}%` : "0";
      const playing = !audio.paused && !audio.ended;
      label.textContent = playing ? "Pause" : "Play";
      toggle.setAttribute("aria-label", `${playing ? "Pause" : "Play"} ${jobTitle(job)}`);
      toggle.replaceChild(icon(playing ? "pause" : "play"), toggle.firstChild);
      node.classList.toggle("is-playing", playing);
    }

    function ensureAudio() {
      if (audio) return audio;
      audio = new Audio(mp3Url(job.id));
      audio.preload = "auto";
      for (const name of ["play", "pause", "ended", "timeupdate", "loadedmetadata", "seeked"]) audio.addEventListener(name, sync);
      audio.addEventListener("error", () => toast(`The MP3 of ${jobTitle(job)} could not be played. Try downloading it.`, "error"));
      return audio;
    }

    function seekBy(seconds) {
      const player = ensureAudio();
      player.currentTime = Math.max(0, Math.min((isFinite(player.duration) ? player.duration : duration) || 0, player.currentTime + seconds));
    }

    toggle.addEventListener("click", () => {
      const player = ensureAudio();
      if (player.paused) {
        // One MP3 at a time: starting this one pauses any other.
        if (nowPlaying && nowPlaying !== player) nowPlaying.pause();
        nowPlaying = player;
        player.play().catch(() => {});
      } else player.pause();
    });
    toggle.addEventListener("keydown", (event) => {
      if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
        event.preventDefault();
        seekBy(event.key === "ArrowRight" ? 5 : -5);
      }
    });
    bar.addEventListener("click", (event) => {
      const player = ensureAudio();
      const rect = bar.getBoundingClientRect();
      const total = isFinite(player.duration) ? player.duration : duration;
      if (total) player.currentTime = ((event.clientX - rect.left) / rect.width) * total;
    });
    return node;
  }

  const RETRYABLE = new Set(["failed", "cancelled"]);
  // What "Convert again" accepts: the job's kept audio is still stored (it goes when the job expires).
  const RECONVERTIBLE = new Set(["done", "failed", "cancelled"]);

  /** The row's buttons, one Tab stop for all of them (a toolbar: the arrow keys move between them). */
  function jobActions(job, handlers) {
    const title = jobTitle(job);
    const box = h("div", { class: "job-actions", role: "toolbar", "aria-label": `Actions for ${title}` });
    // Each accessible name starts with the visible words, so voice control finds the button by what it shows.
    const button = (label, iconName, className, onClick, extra = {}) =>
      h("button", { type: "button", class: `button button-sm ${className}`, "aria-label": `${label} ${title}`, onclick: onClick, ...extra }, icon(iconName), label);
    if (job.status === "done") {
      box.append(
        h("a", { class: "button button-sm button-primary", href: mp3Url(job.id), download: true, "aria-label": `Download MP3 of ${title}` }, icon("download"), "Download MP3"),
      );
    }
    if (RETRYABLE.has(job.status)) box.append(button("Retry", "retry", "button-primary", handlers.retry));
    if (RECONVERTIBLE.has(job.status)) {
      box.append(button("Convert again", "options", "button-secondary", handlers.convertAgain, { "aria-haspopup": "dialog" }));
    }
    if (ACTIVE.has(job.status)) box.append(button("Cancel", "close", "button-secondary", handlers.cancel));
    else box.append(button("Delete", "trash", "button-ghost danger push", handlers.remove));
    rovingFocus(box);
    return box;
  }

  /** A toolbar's roving tabindex: one of its controls is in the Tab order; Left/Right, Home and End move along. */
  function rovingFocus(toolbar) {
    const controls = () => [...toolbar.querySelectorAll("a, button")];
    controls().forEach((control, index) => control.setAttribute("tabindex", index === 0 ? "0" : "-1"));
    toolbar.addEventListener("focusin", (event) => {
      for (const control of controls()) control.setAttribute("tabindex", control === event.target ? "0" : "-1");
    });
    toolbar.addEventListener("keydown", (event) => {
      const list = controls();
      const at = list.indexOf(document.activeElement);
      if (at < 0) return;
      const moves = { ArrowRight: at + 1, ArrowDown: at + 1, ArrowLeft: at - 1, ArrowUp: at - 1, Home: 0, End: list.length - 1 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      list[(moves[event.key] + list.length) % list.length].focus();
    });
  }

  // ffmpeg's demuxer and codec names, as people know them.
  const CONTAINERS = { "mov,mp4,m4a,3gp,3g2,mj2": "MP4 / QuickTime", "matroska,webm": "Matroska / WebM", mpegts: "MPEG-TS", mpeg: "MPEG", asf: "Windows Media" };
  const CODECS = {
    h264: "H.264", hevc: "H.265", vp8: "VP8", vp9: "VP9", av1: "AV1", mpeg4: "MPEG-4", mpeg2video: "MPEG-2", wmv2: "WMV",
    aac: "AAC", mp3: "MP3", opus: "Opus", vorbis: "Vorbis", flac: "FLAC", ac3: "AC-3", eac3: "E-AC-3", pcm_s16le: "PCM", alac: "ALAC",
  };
  const containerName = (name) => (name ? CONTAINERS[name] || name.split(",")[0].toUpperCase() : "");
  const codecName = (name) => (name ? CODECS[name] || name : "");

  function jobFacts(job) {
    const streams = [job.video_codec && `${codecName(job.video_codec)} video`, job.audio_codec && `${codecName(job.audio_codec)} audio`];
    const facts = [
      ["Uploaded", dateFormat.format(new Date(job.created_at))],
      ["File", [formatBytes(job.size), containerName(job.container), streams.filter(Boolean).join(", ")].filter(Boolean).join(" · ")],
      ["Duration", formatDuration(job.duration)],
    ];
    if (job.status === "done") facts.push(["MP3", [formatBytes(job.mp3_size), formatDuration(job.mp3_duration)].filter(Boolean).join(" · ")]);
    if (job.finished_at) facts.push(["Finished", dateFormat.format(new Date(job.finished_at))]);
    if (job.reused_from) facts.push(["Reused", "This MP3 comes from an earlier conversion of the same file with the same options."]);
    if (job.expires_at) facts.push(["Files kept until", dateFormat.format(new Date(job.expires_at))]);
    facts.push(["Options", optionsSummary(job)]); // issue #9
    return h("dl", { class: "facts" }, facts.filter(([, value]) => value).map(([term, value]) => [h("dt", { text: term }), h("dd", { text: value })]));
  }

  /** Draw `job` into `node` (a list row, or the job page's detail box). Returns true when the structure changed. */
  function drawJob(node, job, handlers, mode) {
    node.dataset.status = job.status;
    if (node.dataset.shape === jobShape(job)) {
      const bar = node.querySelector("[data-job-progress]");
      if (bar) {
        bar.value = job.progress;
        node.querySelector("[data-job-progress-text]").textContent = `${job.progress} %`;
      }
      return false;
    }
    const hadFocus = node.contains(document.activeElement);
    node.dataset.shape = jobShape(job);
    const badge = h("span", { class: `badge badge-${job.status}`, text: STATUS_LABELS[job.status] || job.status });
    if (mode === "page") {
      // replaceChildren() would draw a null part (no player before `done`) as the text "null".
      const parts = [h("div", { class: "job-head" }, badge), jobState(job), jobPlayer(job, "page"), jobActions(job, handlers), jobFacts(job)];
      node.replaceChildren(...parts.filter(Boolean));
    } else {
      node.replaceChildren(
        h("div", { class: "job-icon" }, icon(STATUS_ICONS[job.status] || "music")),
        h(
          "div",
          { class: "job-body" },
          h("div", { class: "job-head" }, h("a", { class: "job-name", href: pageUrl(job.id), title: job.filename, text: jobTitle(job) }), badge),
          jobMeta(job),
          jobState(job),
          h("div", { class: "job-controls" }, jobPlayer(job, "row"), jobActions(job, handlers)),
        ),
      );
    }
    if (hadFocus) {
      // The focused control went away with the old state: keep keyboard users in the same place.
      const target = node.querySelector(".job-actions .button") || node.querySelector(".job-name");
      if (target) target.focus();
    }
    return true;
  }

  function statusSentence(job) {
    if (job.status === "done") return `${job.filename} is converted; the MP3 is ready.`;
    if (job.status === "failed") return `${job.filename} failed: ${job.error}`;
    if (job.status === "converting") return `Converting ${job.filename}.`;
    if (job.status === "cancelled") return `${job.filename} was cancelled.`;
    if (job.status === "queued") return `${job.filename} is queued.`;
    return `${job.filename} is ${job.status}.`;
  }

  // ---- actions shared by both pages ------------------------------------------------------------------

  // aria-disabled rather than disabled: a disabled button drops keyboard focus to <body>.
  function busy(button, on) {
    if (!button) return;
    button.setAttribute("aria-disabled", on ? "true" : "false");
    button.setAttribute("aria-busy", on ? "true" : "false");
  }

  const isBusy = (button) => button.getAttribute("aria-disabled") === "true";

  function makeHandlers(job, { onChanged, onRemoved, onCreated }) {
    return {
      async convertAgain(event) {
        const button = event.currentTarget;
        if (isBusy(button)) return;
        const result = await convertDialog(job);
        if (!result) return;
        if (result.id === job.id) {
          onChanged(result);
          announce(`Converting ${jobTitle(job)} again with the new options.`);
        } else {
          onCreated(result);
          announce(`${jobTitle(job)} is queued for conversion with the new options.`);
        }
      },
      async retry(event) {
        const button = event.currentTarget;
        if (isBusy(button)) return;
        busy(button, true);
        try {
          const { data } = await api("POST", `${jobUrl(job.id)}retry/`);
          onChanged(data);
          announce(`Retrying ${job.filename}.`);
        } catch (error) {
          toast(error.message, "error");
          busy(button, false);
        }
      },
      async cancel(event) {
        const button = event.currentTarget;
        if (isBusy(button)) return;
        busy(button, true);
        try {
          const { status, data } = await api("DELETE", jobUrl(job.id));
          if (status === 202) onChanged(data);
          else onRemoved(job);
          announce(`Cancelled ${job.filename}.`);
        } catch (error) {
          toast(error.message, "error");
          busy(button, false);
        }
      },
      async remove(event) {
        const button = event.currentTarget;
        if (isBusy(button)) return;
        const confirmed = await confirmDialog({
          title: `Delete ${job.filename}?`,
          text: "Its MP3 and any stored copy of the video are removed for good. This can't be undone.",
          confirmLabel: "Delete",
        });
        if (!confirmed) return;
        busy(button, true);
        try {
          const { status, data } = await api("DELETE", jobUrl(job.id));
          if (status === 202) onChanged(data);
          else onRemoved(job);
          announce(`Deleted ${job.filename}.`);
        } catch (error) {
          if (error.status === 404) onRemoved(job);
          else toast(error.message, "error");
          busy(button, false);
        }
      },
    };
  }

  // ---- polling ----------------------------------------------------------------------------------------

  /** Calls `tick` (async; resolves to whether a job is active) on a timer that is fast while a job or keepFast() is active. */
  function poller(tick, keepFast) {
    let timer = null;
    let failures = 0;
    let running = false;
    const syncState = document.querySelector("[data-sync-state]");

    function show(state) {
      if (!syncState || syncState.dataset.state === state) return;
      syncState.dataset.state = state;
      syncState.textContent = { live: "Updating live", offline: "Can't reach the server — retrying…", idle: "" }[state];
      if (state === "offline") announce("Can't reach the server; retrying.");
    }

    async function run() {
      window.clearTimeout(timer);
      if (running) return;
      running = true;
      let delay;
      try {
        const active = await tick();
        failures = 0;
        show(active ? "live" : "idle");
        delay = active || keepFast() ? FAST_POLL_MS : SLOW_POLL_MS;
      } catch (error) {
        if (error.status === 401) return;
        failures += 1;
        show("offline");
        delay = Math.min(30000, FAST_POLL_MS * 2 ** failures);
      } finally {
        running = false;
      }
      if (document.hidden) delay = Math.max(delay, HIDDEN_POLL_MS);
      timer = window.setTimeout(run, delay);
    }

    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) run();
    });
    return {
      start(activeNow) {
        show(activeNow ? "live" : "idle");
        timer = window.setTimeout(run, activeNow ? FAST_POLL_MS : SLOW_POLL_MS);
      },
      soon() {
        window.clearTimeout(timer);
        timer = window.setTimeout(run, 250);
      },
    };
  }

  // ---- the jobs page -----------------------------------------------------------------------------------

  function jobsPage(root) {
    const list = root.querySelector("[data-jobs]");
    const empty = root.querySelector("[data-empty]");
    const loadMore = root.querySelector("[data-load-more]");
    const archiveLink = root.querySelector("[data-archive-link]");
    const jobs = new Map(); // id -> {job, node}
    let olderUrl = null;
    let browsedOlder = false; // once older pages are shown, "Show older" follows them, not the first page
    let uploader = null;

    function newestFirst(a, b) {
      return Date.parse(b.created_at) - Date.parse(a.created_at);
    }

    function place(node, job) {
      // Rows never move once placed (moving a playing <audio> would pause it); new rows go in by date.
      for (const other of list.children) {
        const entry = jobs.get(other.dataset.jobId);
        if (entry && newestFirst(job, entry.job) < 0) {
          list.insertBefore(node, other);
          return;
        }
      }
      list.append(node);
    }

    function upsert(job, { quiet } = {}) {
      const entry = jobs.get(job.id);
      if (!entry) {
        const node = h("li", { class: "job card", id: `job-${job.id}`, dataset: { jobId: job.id } });
        jobs.set(job.id, { job, node });
        drawJob(node, job, handlersFor(job), "row");
        place(node, job);
        if (!quiet) announce(statusSentence(job));
      } else {
        const changed = entry.job.status !== job.status;
        entry.job = job;
        drawJob(entry.node, job, handlersFor(job), "row");
        if (changed && !quiet) announce(statusSentence(job));
      }
      updateEmpty();
    }

    function removeJob(job) {
      const entry = jobs.get(job.id);
      if (!entry) return;
      const hadFocus = entry.node.contains(document.activeElement);
      const next = entry.node.nextElementSibling || entry.node.previousElementSibling;
      entry.node.remove();
      jobs.delete(job.id);
      updateEmpty();
      if (hadFocus) {
        const target = next ? next.querySelector(".job-name") : root.querySelector("#jobs-title");
        if (target) {
          if (!next) target.setAttribute("tabindex", "-1");
          target.focus();
        }
      }
    }

    function handlersFor(job) {
      return makeHandlers(job, {
        onChanged: (changed) => {
          upsert(changed, { quiet: true });
          polling.soon();
        },
        onRemoved: removeJob,
        onCreated: (created) => {
          upsert(created, { quiet: true });
          const row = jobs.get(created.id);
          if (row) row.node.querySelector(".job-name").focus();
          polling.soon();
        },
      });
    }

    function updateEmpty() {
      empty.hidden = jobs.size > 0 || (uploader && uploader.pending() > 0);
      updateArchive();
    }

    // One ZIP of the listed done MP3s, newest first: as many as a URL holds (the server takes up to 500 by POST).
    const ARCHIVE_URL_IDS = 100;
    function updateArchive() {
      if (!archiveLink) return;
      const done = [...jobs.values()].map(({ job }) => job).filter((job) => job.status === "done");
      const ids = done.sort(newestFirst).slice(0, ARCHIVE_URL_IDS).map((job) => job.id);
      archiveLink.hidden = ids.length < 2;
      if (ids.length < 2) return;
      archiveLink.href = `${config.jobsUrl}archive?ids=${ids.join(",")}`;
      archiveLink.textContent = `Download ${ids.length} MP3s (ZIP)`;
    }

    function anyActive() {
      for (const { job } of jobs.values()) if (ACTIVE.has(job.status)) return true;
      return false;
    }

    /** Take in a page of the list. `page.versions` (a ?known= poll) lists the whole page, `results` only its new jobs. */
    function merge(page, { first, quiet }) {
      for (const job of page.results) upsert(job, { quiet });
      let pageJobs = page.results;
      if (page.versions) {
        const held = new Map([...jobs.values()].map(({ job }) => [job.version, job]));
        pageJobs = page.versions.map((version) => held.get(version));
        if (pageJobs.includes(undefined)) {
          resync = true; // out of step (a version we never held): the next poll asks for the whole page
          return;
        }
      }
      const seen = new Set(pageJobs.map((job) => job.id));
      if (first) {
        // Rows missing from the first page were deleted elsewhere, unless they are older than it (page 2 on).
        const oldest = pageJobs.length ? Date.parse(pageJobs[pageJobs.length - 1].created_at) : Infinity;
        for (const { job } of [...jobs.values()]) {
          if (!seen.has(job.id) && (!page.next || Date.parse(job.created_at) >= oldest)) removeJob(job);
        }
        if (!browsedOlder) olderUrl = page.next;
      } else {
        browsedOlder = true;
        olderUrl = page.next;
      }
      loadMore.hidden = !olderUrl;
    }

    /**
     * One poll, costing only what changed: it names the versions of the newest rows it holds, so the answer
     * carries just the jobs that differ (and every version, to spot deletions), and it sends the last answer's
     * ETag, so a list that did not change at all costs a bodiless 304.
     */
    let listEtag = null;
    let resync = false;
    async function tick() {
      const held = [...jobs.values()].map(({ job }) => job).sort(newestFirst).slice(0, config.pageSize);
      const known = resync ? "" : held.map((job) => job.version).join(",");
      resync = false;
      const { status, data, etag } = await api("GET", `${config.jobsUrl}?known=${known}`, { etag: listEtag });
      listEtag = etag;
      if (status !== 304) merge(data, { first: true, quiet: false });
      // An active job beyond the first page (rare) is followed one by one.
      const onFirstPage = new Set(held.map((job) => job.id));
      await Promise.all(
        [...jobs.values()]
          .filter(({ job }) => ACTIVE.has(job.status) && !onFirstPage.has(job.id) && !(data && data.results.some((fresh) => fresh.id === job.id)))
          .map(({ job }) =>
            api("GET", jobUrl(job.id)).then(
              ({ data: fresh }) => upsert(fresh),
              (error) => error.status === 404 && removeJob(job),
            ),
          ),
      );
      return anyActive();
    }

    loadMore.addEventListener("click", async () => {
      if (isBusy(loadMore)) return;
      busy(loadMore, true);
      try {
        const { data } = await api("GET", olderUrl);
        merge(data, { first: false, quiet: true });
      } catch (error) {
        toast(error.message, "error");
      } finally {
        busy(loadMore, false);
      }
    });

    const polling = poller(tick, () => uploader && uploader.active() > 0);
    merge(readJson("initial-jobs") || { results: [], next: null }, { first: true, quiet: true });
    uploader = makeUploader(root.querySelector("[data-uploader]"), {
      onUploaded(job) {
        upsert(job, { quiet: true });
        polling.soon();
      },
      onChange: updateEmpty,
    });
    updateEmpty();
    polling.start(anyActive());
  }

  // ---- output options (issue #9) ---------------------------------------------------------------------------
  // The upload page's "Output options" form: its filled-in fields go with each upload as form fields of
  // the same name; the server validates them and answers 400 with field errors, shown beside the fields.

  const optionsForm = () => document.querySelector("[data-options-form]");

  /** The filled-in fields of an options form, as the API takes them (strings; empty ones left out). */
  function optionsFrom(form) {
    const chosen = {};
    if (!form) return chosen;
    for (const [name, value] of new FormData(form)) {
      if (String(value).trim() !== "") chosen[name] = String(value).trim();
    }
    return chosen;
  }

  /** Set an options form from a job's stored options (every field present, as the server keeps them). */
  function fillOptionsForm(form, options) {
    for (const field of form.elements) {
      if (!field.name || !(field.name in options)) continue;
      const value = options[field.name];
      if (field.type === "checkbox") field.checked = String(value) === field.value;
      else if (value === null || value === undefined || value === "source") field.value = "";
      else {
        field.value = String(value);
        if (field.value !== String(value)) field.value = ""; // a value the select does not offer
      }
    }
    // A job that may copy MP3 audio as is was not asked for a bitrate (asking turns copying off), so the
    // bitrate it stores is the default: left as "Default", sending it back would change the job's options.
    const bitrate = form.elements.namedItem("bitrate");
    if (options.stream_copy !== false && bitrate) bitrate.value = "";
    // The stored loudness target is the default one unless normalizing.
    if (options.normalize !== true && form.elements.namedItem("normalize")) form.elements.namedItem("normalize").value = "false";
  }

  /** Show a 400 `invalid_options` answer's field errors beside the form's fields ("" clears them). */
  function showOptionErrors(form, responseText) {
    if (!form) return;
    for (const old of form.querySelectorAll(".field-error")) old.remove();
    for (const field of form.querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
    if (!responseText) return;
    let body = null;
    try {
      body = JSON.parse(responseText);
    } catch (_) {
      return;
    }
    if (!body || !body.errors) return;
    const details = form.closest("details");
    let shown = false;
    for (const [name, sentences] of Object.entries(body.errors)) {
      const field = form.elements.namedItem(name);
      if (!field || !field.closest || !field.closest("label")) continue;
      field.setAttribute("aria-invalid", "true");
      field.closest("label").append(h("span", { class: "field-error", text: sentences.join(" ") }));
      shown = true;
    }
    if (shown && details) details.open = true;
  }

  const OPTION_LABELS = { mono: "mono", stereo: "stereo" };

  function formatClock(seconds) {
    const whole = Math.floor(seconds);
    const minutes = Math.floor(whole / 60);
    const rest = (seconds - minutes * 60).toFixed(seconds % 1 ? 3 : 0).padStart(seconds % 1 ? 6 : 2, "0");
    return `${minutes}:${rest}`;
  }

  /** One line saying what the job was asked for, e.g. "VBR V0 · 48000 Hz · mono · 0:01.500–0:04". */
  function optionsSummary(job) {
    const o = job.options || {};
    if (!Object.keys(o).length) return "";
    const parts = [o.vbr_quality !== null && o.vbr_quality !== undefined ? `VBR V${o.vbr_quality}` : `${o.bitrate} kb/s CBR`];
    if (o.sample_rate) parts.push(`${o.sample_rate} Hz`);
    if (o.channels && o.channels !== "source") parts.push(OPTION_LABELS[o.channels] || o.channels);
    if (o.start !== null || o.end !== null) parts.push(`${formatClock(o.start || 0)}–${o.end !== null ? formatClock(o.end) : "end"}`);
    if (o.audio_track !== null) parts.push(`audio track ${o.audio_track}`);
    if (o.audio_language) parts.push(`${o.audio_language} audio`);
    if (o.normalize) {
      const measured = job.input_loudness ? ` (input ${job.input_loudness.input_i.toFixed(1)} LUFS)` : "";
      parts.push(`normalized to ${o.loudness_target} LUFS${measured}`);
    }
    if (o.cover === false) parts.push("no cover");
    if (o.chapters === false) parts.push("no chapters");
    const tags = ["title", "artist", "album", "date"].filter((tag) => o[tag]).map((tag) => `${tag} “${o[tag]}”`);
    return [...parts, ...tags].join(" · ");
  }

  // ---- uploading ----------------------------------------------------------------------------------------

  function makeUploader(root, { onUploaded, onChange }) {
    const input = root.querySelector("[data-file-input]");
    const chooser = root.querySelector("[data-choose-files]");
    const dropzone = root.querySelector("[data-dropzone]");
    const list = root.querySelector("[data-uploads]");
    const items = [];

    const activeCount = () => items.filter((item) => item.state === "uploading" || item.state === "checking").length;

    function setStatus(item, text) {
      item.status.textContent = text;
    }

    function row(item) {
      item.status = h("span", { class: "upload-status" });
      item.bar = h("progress", { max: 100, value: 0, "aria-label": `Upload of ${item.file.name}` });
      item.error = h("p", { class: "upload-error", hidden: true });
      item.actions = h("div", { class: "upload-actions" });
      item.node = h(
        "li",
        { class: "upload", dataset: { state: item.state } },
        h("span", { class: "upload-name", title: item.file.name, text: item.file.name }),
        item.actions,
        item.status,
        item.bar,
        item.error,
      );
      return item.node;
    }

    function setActions(item, ...buttons) {
      const hadFocus = item.actions.contains(document.activeElement);
      item.actions.replaceChildren(...buttons);
      if (hadFocus) (buttons[0] || chooser).focus();
    }

    function button(label, iconName, ariaLabel, onClick) {
      return h("button", { type: "button", class: "button button-sm button-ghost", "aria-label": ariaLabel, onclick: onClick }, icon(iconName), label);
    }

    function setState(item, state) {
      item.state = state;
      item.node.dataset.state = state;
    }

    function forget(item, delay) {
      window.setTimeout(() => {
        item.node.classList.add("is-leaving");
        window.setTimeout(() => {
          const hadFocus = item.node.contains(document.activeElement);
          item.node.remove();
          items.splice(items.indexOf(item), 1);
          if (hadFocus) chooser.focus();
          onChange();
        }, 400);
      }, delay);
    }

    function fail(item, sentence, retryable, details = []) {
      setState(item, "error");
      setStatus(item, "Not uploaded");
      item.bar.hidden = true;
      // Every reason at once: the summary, then each field's sentence.
      item.error.replaceChildren(sentence, ...(details.length ? [h("ul", {}, details.map((line) => h("li", { text: line })))] : []));
      item.error.hidden = false;
      const buttons = [];
      if (retryable) buttons.push(button("Try again", "retry", `Upload ${item.file.name} again`, () => start(item)));
      buttons.push(button("Dismiss", "close", `Dismiss ${item.file.name}`, () => forget(item, 0)));
      setActions(item, ...buttons);
      announce(`${item.file.name} was not uploaded: ${sentence}`);
      pump();
    }

    const appendOptions = (form, options) => Object.entries(options).forEach(([name, value]) => form.append(name, value));

    /**
     * Before a byte of the body is sent, the server checks the options and the file's first and last MiB
     * (POST /api/jobs/check/): most layouts keep their streams and length there (an MP4's index at either
     * end, Matroska's head, MPEG-TS timestamps), so "no audio", "end past the file's length" and every option
     * error come back at once, in seconds. What it cannot tell, the upload itself still checks.
     */
    async function start(item) {
      setState(item, "checking");
      item.error.hidden = true;
      item.bar.hidden = true;
      setStatus(item, `Checking · ${formatBytes(item.file.size)}`);
      setActions(
        item,
        button("Cancel", "close", `Cancel the upload of ${item.file.name}`, () => {
          setState(item, "cancelled");
          forget(item, 0);
          pump();
        }),
      );
      const form = new FormData();
      appendOptions(form, item.options);
      form.append("name", item.file.name);
      form.append("size", String(item.file.size));
      const head = Math.min(item.file.size, PROBE_BYTES);
      form.append("head", item.file.slice(0, head), "head");
      if (item.file.size > head) form.append("tail", item.file.slice(Math.max(head, item.file.size - PROBE_BYTES)), "tail");
      let refusal = null;
      try {
        await api("POST", `${config.jobsUrl}check/`, { body: form });
      } catch (error) {
        // A refusal is the server's word on this file; an outage or an older server leaves it to the upload.
        if ((error.status >= 400 && error.status < 500 && ![404, 405, 408].includes(error.status)) || error.status === 503) refusal = error;
      }
      if (item.state !== "checking") return; // cancelled meanwhile
      if (refusal && atCapacity(refusal.status, refusal.responseText)) return waitForRoom(item);
      if (refusal) {
        showOptionErrors(optionsForm(), refusal.responseText);
        fail(item, refusal.message, false, refusalDetails(refusal.responseText, refusal.message));
        return;
      }
      send(item);
    }

    /** The server is receiving all the uploads it can hold (503 uploads_at_capacity): wait, then send again. */
    function waitForRoom(item, seconds) {
      const delay = Math.min(60, seconds > 0 ? seconds : 10);
      setState(item, "paused");
      item.bar.hidden = true;
      setStatus(item, "Waiting for room on the server…");
      window.setTimeout(() => {
        if (item.state === "paused") start(item);
      }, delay * 1000);
      pump();
    }

    /** Bytes sent so far, as the row shows them. */
    function showProgress(item, sent) {
      const size = item.file.size;
      const percent = size ? Math.min(100, Math.floor((sent / size) * 100)) : 100;
      item.bar.value = percent;
      if (sent >= size) setStatus(item, `${formatBytes(size)} · 100 % · checking the file…`); // the server checks it now
      else setStatus(item, `${formatBytes(sent)} of ${formatBytes(size)} · ${percent} %`);
    }

    function uploaded(item, job) {
      showOptionErrors(optionsForm(), "");
      setState(item, "done");
      item.bar.value = 100;
      setStatus(item, "Uploaded · 100 %");
      setActions(item);
      announce(`${item.file.name} is uploaded and queued for conversion.`);
      if (job) onUploaded(job);
      forget(item, 6000);
      pump();
    }

    function refused(item, status, text) {
      if (status === 401) {
        fail(item, "Your session has ended. Sign in again, then upload the file again.", false);
        return;
      }
      showOptionErrors(optionsForm(), text);
      const sentence = detailOf(status, text);
      fail(item, sentence, status >= 500 || status === 0, refusalDetails(text, sentence));
    }

    const responseOf = (error) => {
      const response = error && error.originalResponse;
      return response ? { status: response.getStatus(), text: response.getBody() || "" } : { status: 0, text: "" };
    };

    /**
     * Sends the file resumably (tus, POST /api/uploads/ then PATCHes of config.uploadChunkBytes): a dropped
     * connection is retried from the server's offset, and a file chosen again after a reload resumes where it
     * stopped (tus-js-client keeps the upload's URL in localStorage under the file's name, size and date), so
     * the bar goes on from there. The request with the last bytes answers with the job, as POST /api/jobs/ does.
     */
    function send(item) {
      setState(item, "uploading");
      item.error.hidden = true;
      item.bar.hidden = true; // shown with the first progress, which for a resumed upload starts at its offset
      item.bar.value = 0;
      setStatus(item, `0 of ${formatBytes(item.file.size)} · 0 %`);
      const upload = new window.tus.Upload(item.file, {
        endpoint: config.uploadsUrl,
        chunkSize: config.uploadChunkBytes,
        // A lost connection is tried again for about two minutes: long enough for a train tunnel or a Wi-Fi hand-over.
        retryDelays: [0, 1000, 3000, 5000, 10000, 10000, 20000, 30000, 30000],
        removeFingerprintOnSuccess: true,
        metadata: { filename: item.file.name, ...item.options },
        headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
        onProgress(sent) {
          // While waiting for room, a refused PATCH's body may still count as sent: the bar waits for one taken.
          if (item.state !== "uploading") return;
          item.bar.hidden = false;
          showProgress(item, sent);
        },
        onAfterResponse(request, response) {
          if (item.state === "paused" && request.getMethod() === "PATCH" && response.getStatus() < 300) {
            setState(item, "uploading"); // room again after a wait
          }
        },
        onShouldRetry(error) {
          if (item.state === "cancelled") return false;
          const { status, text } = responseOf(error);
          if (atCapacity(status, text)) {
            // The server is receiving all the uploads it can hold: wait for room, then go on from the offset.
            setState(item, "paused");
            item.bar.hidden = true;
            setStatus(item, "Waiting for room on the server…");
            return true;
          }
          return status === 0 || status >= 500 || status === 409 || status === 423;
        },
        onSuccess({ lastResponse }) {
          if (item.state === "cancelled") return;
          let job = null;
          try {
            job = JSON.parse(lastResponse.getBody() || "null");
          } catch (_) {
            // an answer without the job (a resumed upload that was already complete): ask the upload for it
          }
          if (job && job.id) return uploaded(item, job);
          api("GET", upload.url)
            .then(({ data }) => (data && data.job ? uploaded(item, data.job) : refused(item, 500, "")))
            .catch((error) => refused(item, error.status || 0, ""));
        },
        onError(error) {
          if (item.state === "cancelled") return;
          const { status, text } = responseOf(error);
          refused(item, status, text);
        },
      });
      item.upload = upload;
      setActions(
        item,
        button("Cancel", "close", `Cancel the upload of ${item.file.name}`, () => {
          setState(item, "cancelled");
          upload.abort(true).catch(() => {}); // and remove what the server holds of it (tus termination)
          setStatus(item, "Cancelled");
          setActions(item);
          announce(`The upload of ${item.file.name} was cancelled.`);
          forget(item, 1200);
          pump();
        }),
      );
      upload
        .findPreviousUploads()
        .then((previous) => {
          if (item.state !== "uploading") return;
          if (previous.length) {
            upload.resumeFromPreviousUpload(previous[0]);
            setStatus(item, "Resuming where the upload stopped…");
          }
          upload.start();
        })
        .catch(() => upload.start());
    }

    function pump() {
      for (const item of items) {
        if (activeCount() >= PARALLEL_UPLOADS) break;
        if (item.state === "waiting") start(item);
      }
      onChange();
    }

    function add(files) {
      const options = optionsFrom(optionsForm()); // as set when the files were chosen
      let first = null;
      for (const file of files) {
        const item = { file, state: "waiting", options };
        items.push(item);
        list.append(row(item));
        first = first || item.node;
        if (config.maxUploadSize && file.size > config.maxUploadSize) {
          fail(item, config.tooLargeSentence, false);
          continue;
        }
        setStatus(item, `Waiting · ${formatBytes(file.size)}`);
        setActions(
          item,
          button("Cancel", "close", `Cancel the upload of ${file.name}`, () => {
            setState(item, "cancelled");
            forget(item, 0);
          }),
        );
      }
      pump();
      // The new rows sit under the chooser; on a phone with the options open they may still be below the
      // fold, so bring the first into view (scroll-margin keeps it clear of the sticky header).
      if (first) first.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }

    chooser.addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
      add([...input.files]);
      input.value = "";
    });

    // The whole page takes dropped files, so a near miss does not make the browser open the video instead.
    let depth = 0;
    const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
    document.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      depth += 1;
      dropzone.classList.add("is-dragging");
    });
    document.addEventListener("dragleave", (event) => {
      if (!hasFiles(event)) return;
      depth = Math.max(0, depth - 1);
      if (!depth) dropzone.classList.remove("is-dragging");
    });
    document.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    document.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      dropzone.classList.remove("is-dragging");
      add([...event.dataTransfer.files]);
    });
    window.addEventListener("beforeunload", (event) => {
      if (activeCount() > 0) {
        event.preventDefault();
        event.returnValue = "";
      }
    });

    return { active: activeCount, pending: () => items.filter((item) => ["waiting", "checking", "paused", "uploading"].includes(item.state)).length };
  }

  // ---- one job's page ------------------------------------------------------------------------------------

  function jobPage(root) {
    const box = root.querySelector("[data-job-detail]");
    let job = readJson("initial-job");
    let gone = false;
    let etag = null; // of the last answer: an unchanged job then costs a bodiless 304

    const handlers = () =>
      makeHandlers(job, {
        onChanged(changed) {
          show(changed);
          polling.soon();
        },
        onRemoved() {
          gone = true;
          window.location.assign(config.homeUrl || "/");
        },
        onCreated(created) {
          window.location.assign(pageUrl(created.id));
        },
      });

    function show(fresh) {
      const changed = fresh.status !== job.status;
      job = fresh;
      drawJob(box, job, handlers(), "page");
      if (changed) announce(statusSentence(job));
    }

    async function tick() {
      if (gone) return false;
      try {
        const { status, data, etag: fresh } = await api("GET", jobUrl(job.id), { etag });
        etag = fresh;
        if (status !== 304) show(data);
      } catch (error) {
        if (error.status !== 404) throw error;
        gone = true;
        box.replaceChildren(h("p", { class: "job-error", text: "This conversion was deleted." }));
        announce("This conversion was deleted.");
        return false;
      }
      return ACTIVE.has(job.status);
    }

    drawJob(box, job, handlers(), "page");
    const polling = poller(tick, () => false);
    polling.start(ACTIVE.has(job.status));
  }

  // ---- the account menu -------------------------------------------------------------------------------------

  function accountMenu(menu) {
    document.addEventListener("click", (event) => {
      if (menu.open && !menu.contains(event.target)) menu.open = false;
    });
    menu.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && menu.open) {
        menu.open = false;
        menu.querySelector("summary").focus();
      }
    });
  }

  // ---- start ---------------------------------------------------------------------------------------------

  // Keyboard focus never sits under the sticky top bar: Chromium scrolls a focused control into view only
  // when it is wholly outside the window, and ignores scroll-padding-top when it does.
  const topbar = document.querySelector(".topbar");
  document.addEventListener("focusin", (event) => {
    if (!topbar || topbar.contains(event.target) || event.target === document.body) return;
    const barBottom = topbar.getBoundingClientRect().bottom;
    const top = event.target.getBoundingClientRect().top;
    if (top < barBottom + 4) window.scrollBy({ top: top - barBottom - 12, behavior: "instant" });
  });

  const menu = document.querySelector("[data-menu]");
  if (menu) accountMenu(menu);
  const main = document.getElementById("main");
  if (document.querySelector("[data-jobs]")) jobsPage(main);
  if (document.querySelector("[data-job-page]")) jobPage(main);
  window.setInterval(refreshRelativeTimes, 30000);
})();
