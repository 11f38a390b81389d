/* The worker's phone (dashboard/pages/work.py, work_order.py): served by Dash from assets/ (no inline script: CSP).

   - Terminal: while a field page is open the phone reports itself (POST /_field/seen, every 5 minutes), with its
     position when the worker allows the browser's geolocation.
   - QR code: the camera reads it where the browser has the BarcodeDetector API (feature-detected here; the Scan
     button stays hidden otherwise and the worker types the code). <html data-qr-scan="camera|typed"> says which.
   - Signature: drawn on a canvas with pointer events (finger, pen or mouse); the confirm button's clientside
     callback (dash_clientside.wattlineField.confirmRequest) sends it as a PNG data URL with the position.
   - Evidence: files go into a queue kept in the browser (IndexedDB, so it survives a reload or a dead battery)
     and are sent in chunks to /_field/uploads: announced with their size and SHA-256, each chunk at the server's
     offset (a 409 answers the offset to continue from), so an interrupted upload resumes and a retried one never
     makes a duplicate. "Send later" keeps files queued; large files on a slow connection stay queued too.
   SHA-256: crypto.subtle where the page is a secure context (HTTPS, localhost); on plain HTTP over a site's LAN
   the browser has no crypto.subtle, so a small implementation below does it (no library: one function). */
(function () {
  "use strict";
  var ROOT = "work-field";
  var SEEN_EVERY_MS = 5 * 60 * 1000;
  var position = null;
  var seenTimer = null;

  function root() { return document.getElementById(ROOT); }
  function data(name, fallback) {
    var r = root();
    return (r && r.getAttribute("data-" + name)) || fallback;
  }
  function text(key) { return data("t-" + key, key); }
  function csrf() { return data("csrf", ""); }

  // --- position and terminal -------------------------------------------------------------------------
  function locate(then) {
    if (!navigator.geolocation) { then(); return; }
    navigator.geolocation.getCurrentPosition(function (p) {
      position = { lat: p.coords.latitude, lon: p.coords.longitude };
      then();
    }, function () { then(); }, { maximumAge: 300000, timeout: 8000 });
  }

  function postSeen() {
    var body = { app_version: data("app-version", "web") };
    if (position) { body.lat = position.lat; body.lon = position.lon; }
    fetch("/_field/seen", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body) })
      .then(function (r) { return r.text(); })   // read the answer: an unread one stays open in the browser
      .then(showBlocked)
      .catch(function () { /* offline: next time */ });
  }

  // The office blocked this phone: the server refuses its reports and uploads; say so at the top of the page.
  function showBlocked(answer) {
    var body = null;
    try { body = JSON.parse(answer); } catch (e) { return; }
    if (!body || body.error !== "terminal_blocked" || document.getElementById("field-blocked")) { return; }
    var r = root();
    if (!r || !r.parentNode) { return; }
    var note = document.createElement("div");
    note.id = "field-blocked";
    note.className = "alert alert-danger small";
    note.setAttribute("role", "alert");
    note.textContent = body.message || "";
    r.parentNode.insertBefore(note, r.parentNode.firstChild);
  }

  // Seen at once (a prompt for the position may wait for the worker), and again with the position when given.
  function reportSeen() {
    if (!root()) { return; }
    postSeen();
    var before = position;
    locate(function () { if (position && position !== before) { postSeen(); } });
  }

  // --- QR code ---------------------------------------------------------------------------------------
  var scanning = null;
  function scanSupported() { return typeof window.BarcodeDetector === "function"; }

  function prepareScan() {
    var button = document.getElementById("field-confirm-scan");
    document.documentElement.setAttribute("data-qr-scan", scanSupported() ? "camera" : "typed");
    if (!button || button.getAttribute("data-ready")) { return; }
    button.setAttribute("data-ready", "1");
    if (!scanSupported()) { return; }
    button.classList.remove("d-none");
    var note = document.getElementById("field-confirm-scan-note");
    if (note) { note.textContent = data("t-scan_camera", note.textContent); }
  }

  function setQr(value) {
    if (window.dash_clientside && window.dash_clientside.set_props) {
      window.dash_clientside.set_props("field-confirm-qr", { value: value });
    }
    var input = document.getElementById("field-confirm-qr");
    if (input) { input.value = value; }
  }

  function stopScan() {
    if (!scanning) { return; }
    scanning.stream.getTracks().forEach(function (t) { t.stop(); });
    scanning.video.classList.add("d-none");
    scanning = null;
  }

  function startScan() {
    var video = document.getElementById("field-confirm-video");
    if (!video || !scanSupported() || !navigator.mediaDevices) { return; }
    var detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } }).then(function (stream) {
      scanning = { stream: stream, video: video };
      video.srcObject = stream;
      video.classList.remove("d-none");
      video.play();
      var look = function () {
        if (!scanning) { return; }
        detector.detect(video).then(function (codes) {
          if (codes.length) {
            setQr(codes[0].rawValue);
            status(text("scanned"), "success");
            stopScan();
          } else {
            window.setTimeout(look, 250);
          }
        }).catch(function () { window.setTimeout(look, 500); });
      };
      look();
    }).catch(function () { status(text("camera_missing"), "warning"); });
  }

  // --- signature -------------------------------------------------------------------------------------
  var pad = { drawing: false, drawn: false, last: null };
  function canvas() { return document.getElementById("field-confirm-signature"); }

  function fitCanvas(c) {
    var ratio = window.devicePixelRatio || 1;
    var width = Math.max(1, Math.round(c.clientWidth * ratio));
    var height = Math.max(1, Math.round(c.clientHeight * ratio));
    if (c.width !== width || c.height !== height) {
      c.width = width;
      c.height = height;
      pad.drawn = false;
    }
    var g = c.getContext("2d");
    g.lineWidth = 2.5 * ratio;
    g.lineCap = "round";
    g.lineJoin = "round";
    g.strokeStyle = "#111";
    return g;
  }

  function point(c, e) {
    var r = c.getBoundingClientRect();
    var sx = c.width / r.width, sy = c.height / r.height;
    return { x: (e.clientX - r.left) * sx, y: (e.clientY - r.top) * sy };
  }

  document.addEventListener("pointerdown", function (e) {
    var c = canvas();
    if (!c || e.target !== c) { return; }
    if (!c.getAttribute("data-fitted")) { fitCanvas(c); c.setAttribute("data-fitted", "1"); }
    pad.drawing = true;
    pad.last = point(c, e);
    if (c.setPointerCapture) { try { c.setPointerCapture(e.pointerId); } catch (err) { /* ignore */ } }
    e.preventDefault();
  });
  document.addEventListener("pointermove", function (e) {
    var c = canvas();
    if (!pad.drawing || !c || e.target !== c) { return; }
    var g = c.getContext("2d");
    var p = point(c, e);
    g.beginPath();
    g.moveTo(pad.last.x, pad.last.y);
    g.lineTo(p.x, p.y);
    g.stroke();
    pad.last = p;
    pad.drawn = true;
    c.setAttribute("data-drawn", "1");
    e.preventDefault();
  });
  function endStroke() { pad.drawing = false; pad.last = null; }
  document.addEventListener("pointerup", endStroke);
  document.addEventListener("pointercancel", endStroke);

  function clearSignature() {
    var c = canvas();
    if (!c) { return; }
    c.getContext("2d").clearRect(0, 0, c.width, c.height);
    pad.drawn = false;
    c.removeAttribute("data-drawn");
  }

  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.wattlineField = {
    confirmRequest: function (n) {
      var c = canvas();
      var request = { n: n, signature: null };
      if (c && pad.drawn) { request.signature = c.toDataURL("image/png"); }
      if (position) { request.lat = position.lat; request.lon = position.lon; }
      return request;
    }
  };

  // --- SHA-256 -----------------------------------------------------------------------------------------
  var K = [0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1,
    0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d,
    0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
    0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3,
    0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb,
    0xbef9a3f7, 0xc67178f2];

  function sha256Plain(bytes) {
    var h = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    var n = bytes.length;
    var total = ((n + 9 + 63) >> 6) << 6;
    var m = new Uint8Array(total);
    m.set(bytes);
    m[n] = 0x80;
    var bits = n * 8;
    var dv = new DataView(m.buffer);
    dv.setUint32(total - 4, bits >>> 0);
    dv.setUint32(total - 8, Math.floor(bits / 4294967296));
    var w = new Array(64);
    for (var off = 0; off < total; off += 64) {
      for (var i = 0; i < 16; i++) { w[i] = dv.getUint32(off + i * 4); }
      for (i = 16; i < 64; i++) {
        var a0 = w[i - 15], a1 = w[i - 2];
        var s0 = ((a0 >>> 7) | (a0 << 25)) ^ ((a0 >>> 18) | (a0 << 14)) ^ (a0 >>> 3);
        var s1 = ((a1 >>> 17) | (a1 << 15)) ^ ((a1 >>> 19) | (a1 << 13)) ^ (a1 >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
      for (i = 0; i < 64; i++) {
        var S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        var ch = (e & f) ^ (~e & g);
        var t1 = (k + S1 + ch + K[i] + w[i]) | 0;
        var S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        var maj = (a & b) ^ (a & c) ^ (b & c);
        var t2 = (S0 + maj) | 0;
        k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
      h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + k) | 0;
    }
    return h.map(function (x) { return ("00000000" + (x >>> 0).toString(16)).slice(-8); }).join("");
  }

  function sha256(blob) {
    return blob.arrayBuffer().then(function (buf) {
      if (window.crypto && window.crypto.subtle) {
        return window.crypto.subtle.digest("SHA-256", buf).then(function (d) {
          return Array.prototype.map.call(new Uint8Array(d), function (x) {
            return ("0" + x.toString(16)).slice(-2);
          }).join("");
        });
      }
      return sha256Plain(new Uint8Array(buf));
    });
  }
  window.wattlineSha256 = sha256;   // the browser test compares it with Python's hashlib

  // --- the queue (IndexedDB) ---------------------------------------------------------------------------
  function db() {
    return new Promise(function (resolve, reject) {
      var open = indexedDB.open("wattline-field", 1);
      open.onupgradeneeded = function () { open.result.createObjectStore("uploads", { keyPath: "upload_id" }); };
      open.onsuccess = function () { resolve(open.result); };
      open.onerror = function () { reject(open.error); };
    });
  }
  function tx(mode, work) {
    return db().then(function (d) {
      return new Promise(function (resolve, reject) {
        var t = d.transaction("uploads", mode);
        var result = work(t.objectStore("uploads"));
        t.oncomplete = function () { resolve(result && result.result !== undefined ? result.result : result); };
        t.onerror = function () { reject(t.error); };
      });
    });
  }
  function queued() { return tx("readonly", function (s) { return s.getAll(); }); }
  function enqueue(entry) { return tx("readwrite", function (s) { s.put(entry); }); }
  function dequeue(id) { return tx("readwrite", function (s) { s["delete"](id); }); }

  function orderId() {
    var m = /[?&]id=([0-9]+)/.exec(window.location.search);
    return m ? parseInt(m[1], 10) : null;
  }

  function status(message, color) {
    var box = document.getElementById("field-evidence-status");
    if (!box) { return; }
    box.className = "small text-" + (color || "body");
    box.textContent = message;
  }

  function showQueue() {
    var list = document.getElementById("field-evidence-queue");
    if (!list) { return Promise.resolve(); }
    return queued().then(function (items) {
      var mine = items.filter(function (q) { return q.order_id === orderId(); });
      list.textContent = "";
      if (!mine.length) { list.setAttribute("data-count", "0"); return; }
      list.setAttribute("data-count", String(mine.length));
      mine.forEach(function (q) {
        var li = document.createElement("li");
        li.textContent = text("queued") + ": " + q.name + " (" + Math.ceil(q.size / 1024) + " KiB)";
        list.appendChild(li);
      });
    });
  }

  function randomId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return "up-" + Array.prototype.map.call(bytes, function (x) { return ("0" + x.toString(16)).slice(-2); }).join("");
  }

  function kindOf(file) {
    var type = (file.type || "").split("/")[0];
    return type === "audio" ? "audio" : type === "video" ? "video" : "photo";
  }

  function slowLink() {
    var c = navigator.connection;
    return !!(c && (c.saveData || /(^|-)2g$|^3g$/.test(c.effectiveType || "")));
  }

  function addFiles(later) {
    var input = document.getElementById("field-evidence-file");
    var stepSelect = document.getElementById("field-evidence-step");
    if (!input || !input.files || !input.files.length) { return Promise.resolve(false); }
    var files = Array.prototype.slice.call(input.files);
    var step = stepSelect && stepSelect.value ? parseInt(stepSelect.value, 10) : null;
    var deferBytes = parseInt(data("defer-bytes", "2097152"), 10);
    var keepAll = later;
    return Promise.all(files.map(function (file) {
      return sha256(file).then(function (hash) {
        if (!later && file.size > deferBytes && slowLink()) { keepAll = true; status(text("large"), "warning"); }
        return enqueue({ upload_id: randomId(), order_id: orderId(), step: step, kind: kindOf(file),
          name: file.name, size: file.size, sha256: hash, blob: file, added: Date.now(),
          lat: position ? position.lat : null, lon: position ? position.lon : null });
      });
    })).then(function () {
      input.value = "";
      return showQueue().then(function () { return !keepAll; });
    });
  }

  function send(path, options) {
    options.credentials = "same-origin";
    options.headers = Object.assign({ "X-CSRF-Token": csrf() }, options.headers || {});
    return fetch(path, options).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) { return { status: r.status, body: body }; });
    });
  }

  function uploadOne(q) {
    var chunk = parseInt(data("chunk-bytes", "524288"), 10);
    return send("/_field/uploads", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ upload_id: q.upload_id, size: q.size, sha256: q.sha256, kind: q.kind,
        order_id: q.order_id, step: q.step, name: q.name, lat: q.lat, lon: q.lon }) }).then(function (r) {
      if (r.status !== 200) { return r; }
      var next = function (state) {
        if (state.evidence_id) { return { status: 200, body: state }; }
        var from = state.received;
        var piece = q.blob.slice(from, Math.min(from + chunk, q.size));
        status(text("sending") + ": " + q.name + " " + Math.round(100 * from / q.size) + " %", "body");
        return send("/_field/uploads/" + encodeURIComponent(q.upload_id) + "?offset=" + from,
          { method: "PUT", headers: { "Content-Type": "application/octet-stream" }, body: piece })
          .then(function (answer) {
            if (answer.status === 200) { return next(answer.body); }
            if (answer.status === 409 && typeof answer.body.received === "number") {
              return next({ received: answer.body.received });
            }
            return answer;
          });
      };
      return next(r.body);
    });
  }

  var busy = false;
  function sendQueued() {
    if (busy) { return Promise.resolve(); }
    busy = true;
    var sent = 0;
    return queued().then(function (items) {
      var mine = items.filter(function (q) { return q.order_id === orderId(); });
      if (!mine.length) { status(text("none_queued"), "muted"); return; }
      return mine.reduce(function (chain, q) {
        return chain.then(function (stop) {
          if (stop) { return true; }
          return uploadOne(q).then(function (r) {
            if (r.status === 200) { sent += 1; status(text("sent") + ": " + q.name, "success"); return dequeue(q.upload_id); }
            if (r.status >= 400 && r.status < 500 && r.status !== 401 && r.status !== 403 && r.status !== 429) {
              status(text("refused") + ": " + q.name + " - " + (r.body.message || r.status), "danger");
              return dequeue(q.upload_id);   // refused for what it is (type, size): sending again changes nothing
            }
            status(text("failed") + ": " + q.name + ". " + (r.body.message || text("retry")), "danger");
            return true;
          }, function () { status(text("offline"), "warning"); return true; });
        });
      }, Promise.resolve(false));
    }).then(function () {
      busy = false;
      if (sent && window.dash_clientside && window.dash_clientside.set_props) {
        window.dash_clientside.set_props("field-evidence-uploaded", { data: Date.now() });
      }
      return showQueue();
    }, function () { busy = false; });
  }

  // --- wiring --------------------------------------------------------------------------------------------
  document.addEventListener("click", function (e) {
    var target = e.target.closest ? e.target.closest("button") : null;
    if (!target) { return; }
    if (target.id === "field-evidence-send") {
      addFiles(false).then(function (now) { if (now) { sendQueued(); } });
    } else if (target.id === "field-evidence-later") {
      addFiles(true).then(function () { status(text("retry"), "muted"); });
    } else if (target.id === "field-evidence-send-queued") {
      sendQueued();
    } else if (target.id === "field-confirm-scan") {
      if (scanning) { stopScan(); } else { startScan(); }
    } else if (target.id === "field-confirm-signature-clear") {
      clearSignature();
    }
  });

  function onPage() {
    var r = root();
    if (r && !seenTimer && data("seen", "1") !== "0") {
      reportSeen();
      seenTimer = window.setInterval(reportSeen, SEEN_EVERY_MS);
    } else if (!r && seenTimer) {
      window.clearInterval(seenTimer);
      seenTimer = null;
    }
    prepareScan();
    var slot = document.getElementById("field-evidence-file-slot");
    if (slot && !document.getElementById("field-evidence-file")) {
      var input = document.createElement("input");
      input.type = "file";
      input.id = "field-evidence-file";
      input.multiple = true;
      input.accept = "image/*,audio/*,video/*";
      input.className = "form-control form-control-sm";
      slot.appendChild(input);
    }
    var list = document.getElementById("field-evidence-queue");
    if (list && !list.getAttribute("data-shown")) {
      list.setAttribute("data-shown", "1");
      showQueue();
    }
  }
  new MutationObserver(onPage).observe(document.documentElement, { childList: true, subtree: true });
  document.addEventListener("DOMContentLoaded", onPage);
})();
