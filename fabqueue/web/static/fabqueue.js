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
        if (fresh && old) old.replaceWith(document.importNode(fresh, true));
      }
    }, 250);
  }

  function regionsWatching(attr, id) {
    return Array.from(document.querySelectorAll("[data-region][" + attr + "]"))
      .filter(el => el.getAttribute(attr).split(" ").includes(String(id)) ||
                    el.getAttribute(attr) === "*")
      .map(el => el.dataset.region);
  }

  function onProgress(d) {
    document.querySelectorAll('[data-device-live="' + d.device + '"]').forEach(function (card) {
      const bar = card.querySelector("progress");
      if (bar && d.progress != null) { bar.value = d.progress; bar.textContent = Math.round(d.progress) + "%"; }
      const pct = card.querySelector("[data-progress-text]");
      if (pct && d.progress != null) pct.textContent = Math.round(d.progress) + "%";
      const left = card.querySelector("[data-time-left]");
      if (left && d.time_left_s != null) {
        const m = Math.round(d.time_left_s / 60);
        left.textContent = m >= 60 ? Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " min" : m + " min";
      }
      const temps = card.querySelector("[data-temperatures]");
      if (temps && d.temperatures) {
        temps.textContent = Object.entries(d.temperatures).map(function (kv) {
          const v = kv[1];
          const actual = (v && typeof v === "object") ? v.actual : v;
          return kv[0] + " " + (actual == null ? "–" : Math.round(actual)) + " °C";
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
    source.addEventListener("job:analysed", function (e) {
      const d = JSON.parse(e.data);
      regionsWatching("data-jobs", d.job).forEach(refresh);
    });
    source.addEventListener("device:state", function (e) {
      const d = JSON.parse(e.data);
      regionsWatching("data-devices", d.device).forEach(refresh);
    });
    source.addEventListener("device:progress", function (e) { onProgress(JSON.parse(e.data)); });
    source.addEventListener("hello", function () { document.body.dataset.connected = "1"; });
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

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-upload]").forEach(setupUpload);
    listen();
  });
  window.FQ = {postJSON: postJSON, refresh: refresh, flash: flash};
})();
