/* videomp3 — the browser UI's behaviour. Plain JavaScript, no build step, no inline code (CSP default-src 'self').
 *
 * Jobs page: uploads each chosen or dropped file with its own XMLHttpRequest (upload progress, cancel = abort),
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
    const total = Math.round(seconds);
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

  function detailOf(status, text) {
    try {
      const body = JSON.parse(text);
      if (body && typeof body.detail === "string" && body.detail) return body.detail;
    } catch (_) {
      // not JSON: a proxy's error page, for example
    }
    return fallbackSentence(status);
  }

  async function api(method, url) {
    let response;
    try {
      response = await fetch(url, {
        method,
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
      });
    } catch (_) {
      throw new ApiError(0, fallbackSentence(0));
    }
    if (response.status === 401) {
      signInAgain();
      throw new ApiError(401, "Your session has ended; sign in again.");
    }
    const text = await response.text();
    if (!response.ok) throw new ApiError(response.status, detailOf(response.status, text));
    return { status: response.status, data: text ? JSON.parse(text) : null };
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

  // ---- one job, drawn as a list row or as the body of its own page ----------------------------------

  // What changes the row's structure; progress alone only moves the bar.
  const jobShape = (job) => [job.status, job.error, job.mp3_size, job.mp3_duration, job.duration, job.expires_at].join("|");

  function jobMeta(job) {
    const parts = [];
    if (job.status === "done") {
      parts.push(`MP3 ${formatDuration(job.mp3_duration || job.duration)}`.trim(), formatBytes(job.mp3_size));
    } else {
      if (job.duration) parts.push(formatDuration(job.duration));
      parts.push(formatBytes(job.size));
    }
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

  function jobPlayer(job) {
    if (job.status !== "done") return null;
    return h("audio", { controls: true, preload: "metadata", src: mp3Url(job.id), "aria-label": `Play the MP3 of ${job.filename}` });
  }

  function jobActions(job, handlers) {
    const box = h("div", { class: "job-actions" });
    const button = (label, iconName, className, onClick, ariaLabel) =>
      h("button", { type: "button", class: `button button-sm ${className}`, "aria-label": ariaLabel, onclick: onClick }, icon(iconName), label);
    if (job.status === "done") {
      box.append(
        h(
          "a",
          { class: "button button-sm button-primary", href: mp3Url(job.id), download: true, "aria-label": `Download the MP3 of ${job.filename}` },
          icon("download"),
          "Download MP3",
        ),
      );
    }
    if (job.status === "failed") box.append(button("Retry", "retry", "button-primary", handlers.retry, `Retry ${job.filename}`));
    if (ACTIVE.has(job.status)) box.append(button("Cancel", "close", "button-secondary", handlers.cancel, `Cancel ${job.filename}`));
    else box.append(button("Delete", "trash", "button-ghost danger push", handlers.remove, `Delete ${job.filename}`));
    return box;
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
    if (job.reused_from) facts.push(["Converted", "no: the same file with the same options was converted before, so its MP3 is reused"]);
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
      const parts = [h("div", { class: "job-head" }, badge), jobState(job), jobPlayer(job), jobActions(job, handlers), jobFacts(job)];
      node.replaceChildren(...parts.filter(Boolean));
    } else {
      node.replaceChildren(
        h("div", { class: "job-icon" }, icon(STATUS_ICONS[job.status] || "music")),
        h(
          "div",
          { class: "job-body" },
          h("div", { class: "job-head" }, h("a", { class: "job-name", href: pageUrl(job.id), title: job.filename, text: job.filename }), badge),
          jobMeta(job),
          jobState(job),
          h("div", { class: "job-controls" }, jobPlayer(job), jobActions(job, handlers)),
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

  function makeHandlers(job, { onChanged, onRemoved }) {
    return {
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
      });
    }

    function updateEmpty() {
      empty.hidden = jobs.size > 0 || (uploader && uploader.pending() > 0);
    }

    function anyActive() {
      for (const { job } of jobs.values()) if (ACTIVE.has(job.status)) return true;
      return false;
    }

    function merge(page, { first, quiet }) {
      const seen = new Set(page.results.map((job) => job.id));
      for (const job of page.results) upsert(job, { quiet });
      if (first) {
        // Rows missing from the first page were deleted elsewhere, unless they are older than it (page 2 on).
        const oldest = page.results.length ? Date.parse(page.results[page.results.length - 1].created_at) : Infinity;
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

    async function tick() {
      const { data } = await api("GET", config.jobsUrl);
      merge(data, { first: true, quiet: false });
      // An active job beyond the first page (rare) is followed one by one.
      await Promise.all(
        [...jobs.values()]
          .filter(({ job }) => ACTIVE.has(job.status) && !data.results.some((fresh) => fresh.id === job.id))
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

  function appendOutputOptions(form) {
    const source = optionsForm();
    if (!source) return;
    for (const [name, value] of new FormData(source)) {
      if (String(value).trim() !== "") form.append(name, String(value).trim());
    }
  }

  function showOptionErrors(responseText) {
    const source = optionsForm();
    if (!source) return;
    for (const old of source.querySelectorAll(".field-error")) old.remove();
    for (const field of source.querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
    if (!responseText) return;
    let body = null;
    try {
      body = JSON.parse(responseText);
    } catch (_) {
      return;
    }
    if (!body || body.code !== "invalid_options" || !body.errors) return;
    source.closest("details").open = true;
    for (const [name, sentences] of Object.entries(body.errors)) {
      const field = source.elements.namedItem(name);
      if (!field || !field.closest) continue;
      field.setAttribute("aria-invalid", "true");
      field.closest("label").append(h("span", { class: "field-error", text: sentences.join(" ") }));
    }
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

    const activeCount = () => items.filter((item) => item.state === "uploading").length;

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

    function fail(item, sentence, retryable) {
      setState(item, "error");
      setStatus(item, "Not uploaded");
      item.bar.hidden = true;
      item.error.textContent = sentence;
      item.error.hidden = false;
      const buttons = [];
      if (retryable) buttons.push(button("Try again", "retry", `Upload ${item.file.name} again`, () => start(item)));
      buttons.push(button("Dismiss", "close", `Dismiss ${item.file.name}`, () => forget(item, 0)));
      setActions(item, ...buttons);
      announce(`${item.file.name} was not uploaded: ${sentence}`);
      pump();
    }

    function start(item) {
      setState(item, "uploading");
      item.error.hidden = true;
      item.bar.hidden = false;
      item.bar.value = 0;
      setStatus(item, `0 of ${formatBytes(item.file.size)} · 0 %`);
      const xhr = new XMLHttpRequest();
      item.xhr = xhr;
      setActions(item, button("Cancel", "close", `Cancel the upload of ${item.file.name}`, () => xhr.abort()));
      xhr.open("POST", config.jobsUrl);
      xhr.setRequestHeader("X-CSRFToken", csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable || item.state !== "uploading") return;
        // event.total includes the multipart framing; report it as a share of the file's own size.
        const percent = Math.min(100, Math.floor((event.loaded / event.total) * 100));
        item.bar.value = percent;
        setStatus(item, `${formatBytes(Math.round((item.file.size * percent) / 100))} of ${formatBytes(item.file.size)} · ${percent} %`);
      });
      xhr.upload.addEventListener("load", () => {
        // Every byte is sent; the server now checks the file before it answers.
        if (item.state !== "uploading") return;
        item.bar.value = 100;
        setStatus(item, `${formatBytes(item.file.size)} · 100 % · checking the file…`);
      });
      xhr.addEventListener("load", () => {
        if (xhr.status === 202 || xhr.status === 200) {
          showOptionErrors("");
          setState(item, "done");
          item.bar.value = 100;
          setStatus(item, "Uploaded · 100 %");
          setActions(item);
          let job = null;
          try {
            job = JSON.parse(xhr.responseText);
          } catch (_) {
            // the poll picks the job up anyway
          }
          announce(`${item.file.name} is uploaded and queued for conversion.`);
          if (job) onUploaded(job);
          forget(item, 6000);
        } else if (xhr.status === 401) {
          fail(item, "Your session has ended. Sign in again, then upload the file again.", false);
        } else {
          if (xhr.status === 400) showOptionErrors(xhr.responseText);
          fail(item, detailOf(xhr.status, xhr.responseText), xhr.status >= 500 || xhr.status === 0);
        }
        pump();
      });
      xhr.addEventListener("error", () => fail(item, fallbackSentence(0), true));
      xhr.addEventListener("abort", () => {
        setState(item, "cancelled");
        setStatus(item, "Cancelled");
        setActions(item);
        announce(`The upload of ${item.file.name} was cancelled.`);
        forget(item, 1200);
        pump();
      });
      const form = new FormData();
      form.append("file", item.file, item.file.name);
      appendOutputOptions(form);
      xhr.send(form);
    }

    function pump() {
      for (const item of items) {
        if (activeCount() >= PARALLEL_UPLOADS) break;
        if (item.state === "waiting") start(item);
      }
      onChange();
    }

    function add(files) {
      for (const file of files) {
        const item = { file, state: "waiting" };
        items.push(item);
        list.append(row(item));
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

    return { active: activeCount, pending: () => items.filter((item) => ["waiting", "uploading"].includes(item.state)).length };
  }

  // ---- one job's page ------------------------------------------------------------------------------------

  function jobPage(root) {
    const box = root.querySelector("[data-job-detail]");
    let job = readJson("initial-job");
    let gone = false;

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
        const { data } = await api("GET", jobUrl(job.id));
        show(data);
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

  const menu = document.querySelector("[data-menu]");
  if (menu) accountMenu(menu);
  const main = document.getElementById("main");
  if (document.querySelector("[data-jobs]")) jobsPage(main);
  if (document.querySelector("[data-job-page]")) jobPage(main);
  window.setInterval(refreshRelativeTimes, 30000);
})();
