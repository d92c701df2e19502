// FabQueue pages: uploads with a progress bar, buttons that call the JSON API, live updates.
// No build step: plain browser JavaScript. Pages work without it except where noted.
"use strict";
(function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  function flash(message, kind) {
    const box = document.getElementById("flash");
    if (!box) return;
    box.textContent = message;
    box.className = "flash " + (kind || "error");
    box.hidden = false;
  }

  async function postJSON(url, body) {
    const res = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf()},
      body: JSON.stringify(body || {}),
    });
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) flash((data && data.detail) || res.statusText);
    return {ok: res.ok, data: data};
  }

  // Re-render marked regions from the server (the server's HTML stays the one truth).
  // A region marked data-patch (the machine board) is patched tile by tile instead.
  const pending = new Set();
  let timer = null;
  function refresh(region) {
    pending.add(region);
    clearTimeout(timer);
    timer = setTimeout(async function () {
      const names = Array.from(pending);
      pending.clear();
      const res = await fetch(location.href, {credentials: "same-origin"});
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      for (const name of names) {
        const fresh = doc.querySelector('[data-region="' + name + '"]');
        const old = document.querySelector('[data-region="' + name + '"]');
        if (!fresh || !old) continue;
        if (old.hasAttribute("data-patch")) patchBoard(old, fresh);
        else old.replaceWith(document.importNode(fresh, true));
      }
    }, 250);
  }

  // Patch the board in place: each tile's parts are replaced from the fresh HTML, except a
  // checklist whose data-key (the jobs it offers) is unchanged: the operator's ticks, the
  // chosen job and an open menu stay as they are while the machine's state moves on.
  function patchBoard(old, fresh) {
    const seen = new Set();
    fresh.querySelectorAll("[data-device-live]").forEach(function (tile) {
      const id = tile.dataset.deviceLive;
      seen.add(id);
      const mine = old.querySelector('[data-device-live="' + id + '"]');
      if (!mine) { old.appendChild(document.importNode(tile, true)); return; }
      mine.className = tile.className;
      mine.dataset.state = tile.dataset.state;
      let previous = null;
      tile.querySelectorAll("[data-part]").forEach(function (part) {
        const name = part.dataset.part;
        const current = mine.querySelector('[data-part="' + name + '"]');
        let kept = current;
        if (!current) {
          kept = document.importNode(part, true);
          if (previous) previous.after(kept); else mine.prepend(kept);
        } else if (!(name === "checklist" && current.dataset.key === part.dataset.key)) {
          kept = document.importNode(part, true);
          current.replaceWith(kept);
        }
        previous = kept;
      });
      const wanted = new Set(Array.from(tile.querySelectorAll("[data-part]")).map(p => p.dataset.part));
      mine.querySelectorAll("[data-part]").forEach(function (p) {
        if (!wanted.has(p.dataset.part)) p.remove();
      });
    });
    old.querySelectorAll("[data-device-live]").forEach(function (tile) {
      if (!seen.has(tile.dataset.deviceLive)) tile.remove();
    });
  }

  // Countdowns between updates: time left on running machines, the operator's confirmation.
  function units() {
    const board = document.querySelector("[data-units]");
    try { return JSON.parse(board.dataset.units); } catch (e) { return {h: "h", min: "min", s: "s"}; }
  }
  function duration(seconds, u) {
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    if (h) return h + " " + u.h + " " + String(m).padStart(2, "0") + " " + u.min;
    if (m) return m + " " + u.min + " " + String(r).padStart(2, "0") + " " + u.s;
    return r + " " + u.s;
  }
  function tick() {
    if (!document.querySelector("[data-units]")) return;
    const u = units();
    document.querySelectorAll("[data-time-left][data-seconds], [data-countdown][data-seconds]").forEach(function (el) {
      const tile = el.closest("[data-device-live]");
      if (el.hasAttribute("data-time-left") && tile && tile.dataset.state !== "busy") return;
      const left = Math.max(0, Number(el.dataset.seconds) - 1);
      el.dataset.seconds = String(left);
      el.textContent = duration(left, u);
    });
  }
  setInterval(tick, 1000);

  function regionsWatching(attr, id) {
    return Array.from(document.querySelectorAll("[data-region][" + attr + "]"))
      .filter(el => el.getAttribute(attr).split(" ").includes(String(id)) ||
                    el.getAttribute(attr) === "*")
      .map(el => el.dataset.region);
  }

  function onProgress(d) {
    const board = document.querySelector("[data-temp-names]");
    let names = {};
    if (board) { try { names = JSON.parse(board.dataset.tempNames); } catch (e) { names = {}; } }
    document.querySelectorAll('[data-device-live="' + d.device + '"]').forEach(function (card) {
      if (d.state && card.dataset.state && d.state !== card.dataset.state) refresh("board");
      const bar = card.querySelector("progress");
      if (bar && d.progress != null) { bar.value = d.progress; bar.textContent = Math.round(d.progress) + "%"; }
      const pct = card.querySelector("[data-progress-text]");
      if (pct && d.progress != null) pct.textContent = Math.round(d.progress) + "%";
      const left = card.querySelector("[data-time-left]");
      if (left && d.time_left_s != null) {
        left.dataset.seconds = String(Math.round(d.time_left_s));
        left.textContent = duration(d.time_left_s, units());
      }
      const temps = card.querySelector("[data-temperatures]");
      if (temps && d.temperatures) {
        temps.textContent = Object.entries(d.temperatures).map(function (kv) {
          const v = kv[1];
          const actual = (v && typeof v === "object") ? v.actual : v;
          const target = (v && typeof v === "object") ? v.target : null;
          return (names[kv[0]] || kv[0]) + " " + (actual == null ? "–" : Math.round(actual)) +
            (target ? " / " + Math.round(target) : "") + " °C";
        }).join(", ");
      }
    });
  }

  function listen() {
    if (!document.body.dataset.live || !window.EventSource) return;
    const source = new EventSource("/api/events");
    source.addEventListener("job:status", function (e) {
      const d = JSON.parse(e.data);
      regionsWatching("data-jobs", d.job).forEach(refresh);
      if (d.owner != null) refresh("notifications-badge");
    });
    ["job:analysed", "job:thumbnail"].forEach(function (topic) {
      source.addEventListener(topic, function (e) {
        const d = JSON.parse(e.data);
        regionsWatching("data-jobs", d.job).forEach(refresh);
      });
    });
    source.addEventListener("device:state", function (e) {
      const d = JSON.parse(e.data);
      regionsWatching("data-devices", d.device).forEach(refresh);
    });
    source.addEventListener("device:progress", function (e) { onProgress(JSON.parse(e.data)); });
    source.addEventListener("hello", function () {
      document.body.dataset.connected = "1";
      // An event published between this page's rendering and the subscription (a fast
      // analysis: the verdict before the page had connected) was missed: catch up once.
      document.querySelectorAll("[data-region][data-jobs], [data-region][data-devices]")
        .forEach(function (el) { refresh(el.dataset.region); });
    });
    window.addEventListener("beforeunload", function () { source.close(); });
  }

  // Buttons: <button data-post="/api/..." data-body='{"a":1}' data-confirm="…">
  document.addEventListener("click", async function (ev) {
    const btn = ev.target.closest("[data-post]");
    if (!btn) return;
    ev.preventDefault();
    if (btn.dataset.confirm && !window.confirm(btn.dataset.confirm)) return;
    let body = btn.dataset.body ? JSON.parse(btn.dataset.body) : {};
    const form = btn.closest("form[data-json]");
    if (form) {
      for (const el of form.elements) {
        if (!el.name) continue;
        const path = el.name.split(".");
        const value = el.type === "checkbox" ? el.checked : el.value;
        if (path.length === 2) { body[path[0]] = body[path[0]] || {}; body[path[0]][path[1]] = value; }
        else if (value !== "") body[el.name] = value;
      }
    }
    btn.disabled = true;
    const r = await postJSON(btn.dataset.post, body);
    btn.disabled = false;
    if (r.ok) {
      if (btn.dataset.okMessage) flash(btn.dataset.okMessage, "ok");
      if (btn.dataset.then === "reload") location.reload();
      else if (btn.dataset.then) location.href = btn.dataset.then;
      else (btn.dataset.refresh || "").split(" ").filter(Boolean).forEach(refresh);
    }
  });

  // Upload with a progress bar: <form data-upload="/api/jobs" data-next="/jobs/{id}">
  function setupUpload(form) {
    const input = form.querySelector('input[type="file"]');
    const zone = form.querySelector(".dropzone");
    const bar = form.querySelector("progress");
    const chosen = form.querySelector("[data-chosen]");
    function show() {
      if (chosen) chosen.textContent = Array.from(input.files).map(f => f.name).join(", ");
    }
    input.addEventListener("change", show);
    if (zone) {
      ["dragenter", "dragover"].forEach(t => zone.addEventListener(t, function (e) {
        e.preventDefault(); zone.classList.add("over");
      }));
      ["dragleave", "drop"].forEach(t => zone.addEventListener(t, function (e) {
        e.preventDefault(); zone.classList.remove("over");
      }));
      zone.addEventListener("drop", function (e) {
        if (!e.dataTransfer || !e.dataTransfer.files.length) return;
        input.files = e.dataTransfer.files;
        show();
      });
      zone.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
      });
    }
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (!input.files.length) { flash(form.dataset.needFile || "?"); return; }
      const data = new FormData(form);
      data.delete("csrf_token");
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.dataset.upload);
      xhr.setRequestHeader("X-CSRF-Token", csrf());
      bar.hidden = false;
      bar.value = 0;
      xhr.upload.addEventListener("progress", function (p) {
        if (p.lengthComputable) { bar.max = p.total; bar.value = p.loaded; }
      });
      xhr.addEventListener("load", function () {
        let out = null;
        try { out = JSON.parse(xhr.responseText); } catch (err) { out = null; }
        if (xhr.status >= 200 && xhr.status < 300 && out) {
          bar.value = bar.max;
          form.dataset.done = "1";
          location.href = form.dataset.next.replace("{id}", out.id);
        } else {
          bar.hidden = true;
          flash((out && out.detail) || xhr.statusText);
        }
      });
      xhr.addEventListener("error", function () { bar.hidden = true; flash(xhr.statusText || "network"); });
      xhr.send(data);
    });
  }

  // <select data-autosubmit>: a choice submits its form (no inline handlers: strict CSP)
  document.addEventListener("change", function (ev) {
    const el = ev.target.closest("[data-autosubmit]");
    if (el && el.form) el.form.submit();
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-upload]").forEach(setupUpload);
    listen();
  });
  window.FQ = {postJSON: postJSON, refresh: refresh, flash: flash};
})();
