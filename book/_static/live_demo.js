/* Live inpainting demo of the inpaint-book (book/04_live_demo.md): the stored PConv U-Net (data/runs/pconv-l1,
 * exported to ONNX with float16 weights at build time) runs in the page with onnxruntime-web's WebAssembly backend.
 * Nothing leaves the page: the runtime, the network, the photos and the masks come from _static/live-demo/
 * (written by `python -m inpaintlib.live_demo`), and a photo the reader opens is only read into a canvas.
 *
 * From file:// a page may run classic <script> files but may not fetch() or import() the files next to it, so
 * there the binaries come from script wrappers (base64); over http(s) the page fetches the plain .wasm/.onnx.
 * Polarity as in inpaintlib: mask 1 = valid (known) pixel, 0 = hole. The steps of a fill are those of
 * inpaintlib.inference.inpaint(): pad by repeating the last row/column to a multiple of 2**layers, run the
 * network, crop, and keep the known pixels (x_comp = M * x + (1 - M) * x_out, report section 3.2.2).
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var root = document.getElementById("live-demo");
  if (!root || !script) return;
  var BASE = new URL("live-demo/", script.src).href;
  var MAX_SIDE = 256; // photos the reader opens are scaled to this longest side (the run's training size)
  var el = function (sel) { return root.querySelector(sel); };
  var state = {
    w: 0, h: 0, photo: null, mask: null, result: null, undo: [], session: null, busy: false,
    drawing: false, last: null, multiple: 128, threads: 1, assets: null,
  };

  function setStatus(text, kind) {
    el(".ld-status").textContent = text;
    if (kind) root.dataset.state = kind;
  }

  function loadScript(url) {
    return new Promise(function (resolve, reject) {
      var s = document.createElement("script");
      s.src = url;
      s.onload = function () { resolve(); };
      s.onerror = function () { reject(new Error("could not load " + url)); };
      document.head.appendChild(s);
    });
  }

  function fromBase64(text) {
    if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
    var bin = atob(text), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function wasmAvailable() {
    try {
      return typeof WebAssembly === "object" &&
        WebAssembly.validate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
    } catch (e) {
      return false;
    }
  }

  function loadImage(src) {
    return new Promise(function (resolve, reject) {
      var img = new Image();
      img.onload = function () { resolve(img); };
      img.onerror = function () { reject(new Error("could not decode an image")); };
      img.src = src;
    });
  }

  function pixelsOf(source, w, h, smooth) {
    var c = document.createElement("canvas");
    c.width = w; c.height = h;
    var ctx = c.getContext("2d", { willReadFrequently: true });
    ctx.imageSmoothingEnabled = smooth;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(source, 0, 0, w, h);
    return ctx.getImageData(0, 0, w, h);
  }

  // ---- the picture, its mask and what the canvases show -------------------------------------------------
  function setPhoto(imageData, credit) {
    state.w = imageData.width; state.h = imageData.height;
    state.photo = imageData;
    state.mask = new Uint8Array(state.w * state.h).fill(1);
    state.result = null; state.undo = [];
    [el(".ld-image"), el(".ld-overlay")].forEach(function (c) { c.width = state.w; c.height = state.h; });
    el(".ld-credit").textContent = credit;
    el(".ld-time").textContent = "";
    render();
  }

  function render() {
    if (!state.photo) return;
    var showOriginal = el(".ld-show-original").checked;
    var shown = state.result && !showOriginal ? state.result : state.photo;
    el(".ld-image").getContext("2d").putImageData(shown, 0, 0);
    var overlay = el(".ld-overlay").getContext("2d");
    var tint = overlay.createImageData(state.w, state.h);
    if (el(".ld-show-mask").checked || !state.result) {
      for (var i = 0; i < state.mask.length; i++) {
        if (!state.mask[i]) { tint.data[4 * i] = 255; tint.data[4 * i + 2] = 255; tint.data[4 * i + 3] = 150; }
      }
    }
    overlay.putImageData(tint, 0, 0);
    var holes = 0;
    for (var j = 0; j < state.mask.length; j++) holes += 1 - state.mask[j];
    el(".ld-fill").disabled = !state.session || state.busy || holes === 0;
    el(".ld-undo").disabled = state.undo.length === 0;
    el(".ld-holes").textContent = (100 * holes / state.mask.length).toFixed(1) + " % hole";
  }

  function remember() {
    state.undo.push(state.mask.slice());
    if (state.undo.length > 40) state.undo.shift();
    state.result = null;
    el(".ld-show-mask").checked = true;
    el(".ld-time").textContent = "";
  }

  // ---- drawing holes with mouse, pen or touch -------------------------------------------------------------
  function toPixel(event) {
    var rect = el(".ld-overlay").getBoundingClientRect();
    return [(event.clientX - rect.left) * state.w / rect.width, (event.clientY - rect.top) * state.h / rect.height];
  }

  function stamp(a, b) {
    // every pixel within the brush radius of the segment a-b becomes a hole
    var r = Number(el(".ld-brush").value) / 2, m = state.mask, w = state.w, h = state.h;
    var x0 = Math.max(0, Math.floor(Math.min(a[0], b[0]) - r)), x1 = Math.min(w - 1, Math.ceil(Math.max(a[0], b[0]) + r));
    var y0 = Math.max(0, Math.floor(Math.min(a[1], b[1]) - r)), y1 = Math.min(h - 1, Math.ceil(Math.max(a[1], b[1]) + r));
    var dx = b[0] - a[0], dy = b[1] - a[1], len2 = dx * dx + dy * dy;
    for (var y = y0; y <= y1; y++) {
      for (var x = x0; x <= x1; x++) {
        var px = x + 0.5, py = y + 0.5;
        var t = len2 ? Math.max(0, Math.min(1, ((px - a[0]) * dx + (py - a[1]) * dy) / len2)) : 0;
        var ex = px - a[0] - t * dx, ey = py - a[1] - t * dy;
        if (ex * ex + ey * ey <= r * r) m[y * w + x] = 0;
      }
    }
  }

  function bindDrawing() {
    var overlay = el(".ld-overlay");
    overlay.addEventListener("pointerdown", function (e) {
      if (!state.photo || state.busy) return;
      e.preventDefault();
      overlay.setPointerCapture(e.pointerId);
      remember();
      state.drawing = true;
      state.last = toPixel(e);
      stamp(state.last, state.last);
      render();
    });
    overlay.addEventListener("pointermove", function (e) {
      if (!state.drawing) return;
      var p = toPixel(e);
      stamp(state.last, p);
      state.last = p;
      render();
    });
    var stop = function () { state.drawing = false; };
    overlay.addEventListener("pointerup", stop);
    overlay.addEventListener("pointercancel", stop);
  }

  async function randomMask(entry) {
    var img = await loadImage(entry.src);
    var data = pixelsOf(img, state.w, state.h, false).data;
    remember();
    for (var i = 0; i < state.mask.length; i++) state.mask[i] = data[4 * i] >= 128 ? 1 : 0;
    render();
  }

  // ---- the network ----------------------------------------------------------------------------------------
  async function fill() {
    if (!state.session || state.busy) return;
    state.busy = true;
    render();
    setStatus("Filling…", "filling");
    var start = performance.now();
    try {
      var w = state.w, h = state.h, m = state.multiple;
      var H = Math.ceil(h / m) * m, W = Math.ceil(w / m) * m, plane = H * W, p = state.photo.data;
      var image = new Float32Array(3 * plane), mask = new Float32Array(plane);
      for (var y = 0; y < H; y++) {
        var sy = Math.min(y, h - 1);
        for (var x = 0; x < W; x++) {
          var i = sy * w + Math.min(x, w - 1), o = y * W + x; // pad by repeating the last row/column
          mask[o] = state.mask[i];
          image[o] = p[4 * i] / 255; image[plane + o] = p[4 * i + 1] / 255; image[2 * plane + o] = p[4 * i + 2] / 255;
        }
      }
      var feeds = { image: new ort.Tensor("float32", image, [1, 3, H, W]), mask: new ort.Tensor("float32", mask, [1, 1, H, W]) };
      var t0 = performance.now();
      var output = await state.session.run(feeds);
      var ms = performance.now() - t0;
      var pred = output.prediction.data, result = new ImageData(w, h);
      for (var yy = 0; yy < h; yy++) {
        for (var xx = 0; xx < w; xx++) {
          var k = yy * w + xx, q = yy * W + xx;
          for (var c = 0; c < 3; c++) {
            var v = state.mask[k] ? p[4 * k + c] : Math.round(Math.min(1, Math.max(0, pred[c * plane + q])) * 255);
            result.data[4 * k + c] = v;
          }
          result.data[4 * k + 3] = 255;
        }
      }
      state.result = result;
      el(".ld-show-mask").checked = false;
      el(".ld-show-original").checked = false;
      render();
      state.lastFillMs = ms;
      state.lastTotalMs = performance.now() - start;
      el(".ld-time").textContent = "Filled in " + Math.round(state.lastTotalMs) + " ms (the network: " + Math.round(ms) +
        " ms at " + W + "×" + H + " px, " + state.threads + " WebAssembly thread" + (state.threads > 1 ? "s" : "") + ")";
      setStatus("Ready: draw more holes, pick another photo, or toggle the holes and the original.", "filled");
    } catch (error) {
      setStatus("The network failed: " + error.message, "error");
    } finally {
      state.busy = false;
      render();
    }
  }

  async function loadRuntime(assets) {
    await loadScript(BASE + "ort.wasm.min.js");
    var params = new URLSearchParams(location.search);
    var wanted = parseInt(params.get("threads") || "0", 10) || Math.min(4, navigator.hardwareConcurrency || 1);
    // threads need SharedArrayBuffer, which browsers only give to cross-origin isolated pages (never file://)
    state.threads = self.crossOriginIsolated ? wanted : 1;
    ort.env.wasm.numThreads = state.threads;
    ort.env.wasm.proxy = false;
    var model;
    if (location.protocol === "file:") {
      await loadScript(BASE + "ort-wasm-simd-threaded.wasm.js");
      var runtime = window.LIVE_DEMO.runtime;
      ort.env.wasm.wasmBinary = fromBase64(runtime.wasm).buffer;
      ort.env.wasm.wasmPaths = { mjs: URL.createObjectURL(new Blob([runtime.mjs], { type: "text/javascript" })) };
      delete window.LIVE_DEMO.runtime; // the decoded copies are all that is needed now
      await loadScript(BASE + assets.model.file + ".js");
      model = fromBase64(window.LIVE_DEMO.model.onnx);
      delete window.LIVE_DEMO.model;
    } else {
      ort.env.wasm.wasmPaths = BASE;
      var response = await fetch(BASE + assets.model.file);
      if (!response.ok) throw new Error("could not load " + assets.model.file + " (" + response.status + ")");
      model = new Uint8Array(await response.arrayBuffer());
    }
    state.multiple = assets.model.multiple;
    var t0 = performance.now();
    var session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
    state.sessionMs = performance.now() - t0;
    // The first run of a session prepares its kernels and takes several times longer than the next ones:
    // pay for it now, on a blank 256x256 picture, rather than on the reader's first Fill.
    setStatus("Preparing the network…", "loading");
    var side = assets.size, blank = new Float32Array(side * side);
    t0 = performance.now();
    await session.run({
      image: new ort.Tensor("float32", new Float32Array(3 * side * side), [1, 3, side, side]),
      mask: new ort.Tensor("float32", blank.fill(1), [1, 1, side, side]),
    });
    state.warmupMs = performance.now() - t0;
    state.session = session;
  }

  // ---- start-up -------------------------------------------------------------------------------------------
  function buildControls(assets) {
    var photos = el(".ld-photos");
    assets.photos.forEach(function (entry, n) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "ld-thumb";
      button.title = entry.name;
      button.innerHTML = '<img alt="' + entry.name + '">';
      button.firstChild.src = entry.src;
      button.addEventListener("click", function () { choosePhoto(n); });
      photos.insertBefore(button, el(".ld-own"));
    });
    var masks = el(".ld-masks");
    assets.masks.forEach(function (entry, n) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = Math.round(100 * entry.ratio) + " %";
      button.title = "random irregular holes (" + Math.round(100 * entry.ratio) + " % of the picture), from the training mask generator";
      button.addEventListener("click", function () { if (state.photo && !state.busy) randomMask(entry); });
      masks.appendChild(button);
    });
    el(".ld-own input").addEventListener("change", openOwnPhoto);
    el(".ld-undo").addEventListener("click", function () {
      if (!state.undo.length || state.busy) return;
      state.mask = state.undo.pop(); state.result = null; el(".ld-time").textContent = ""; render();
    });
    el(".ld-clear").addEventListener("click", function () {
      if (state.busy) return;
      remember(); state.mask.fill(1); render();
    });
    el(".ld-brush").addEventListener("input", function () { el(".ld-brush-size").textContent = el(".ld-brush").value + " px"; });
    el(".ld-fill").addEventListener("click", fill);
    el(".ld-show-mask").addEventListener("change", render);
    el(".ld-show-original").addEventListener("change", render);
    bindDrawing();
  }

  async function choosePhoto(n) {
    if (state.busy) return;
    var entry = state.assets.photos[n];
    var img = await loadImage(entry.src);
    setPhoto(pixelsOf(img, img.naturalWidth, img.naturalHeight, false),
      "Photo: " + entry.name + " — " + entry.author + (entry.licence ? ", " + entry.licence : "") +
      " (validation set, never trained on).");
  }

  async function openOwnPhoto(event) {
    var file = event.target.files && event.target.files[0];
    if (!file || state.busy) return;
    try {
      var bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
      var scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
      var w = Math.max(1, Math.round(bitmap.width * scale)), h = Math.max(1, Math.round(bitmap.height * scale));
      setPhoto(pixelsOf(bitmap, w, h, true), "Your photo, scaled to " + w + "×" + h +
        " px. It stays in this page: nothing is uploaded.");
    } catch (error) {
      setStatus("Could not read " + file.name + " as a picture (" + error.message + ").", root.dataset.state);
    }
  }

  async function start() {
    try {
      await loadScript(BASE + "assets.js");
    } catch (error) {
      setStatus("The demo's files are missing from this build of the book (`make book` writes them); the figure " +
        "above stays.", "error");
      return;
    }
    if (!wasmAvailable()) {
      setStatus("This browser has no WebAssembly, so the network cannot run here; the figure above, filled by " +
        "PyTorch when the book was built, stays instead.", "unsupported");
      return;
    }
    var assets = (state.assets = window.LIVE_DEMO.assets);
    buildControls(assets);
    el(".ld-app").hidden = false;
    el(".ld-static").hidden = true;
    await choosePhoto(0);
    setStatus("Loading the network (" + (assets.model.bytes / 1e6).toFixed(0) + " MB)…", "loading");
    try {
      await loadRuntime(assets);
    } catch (error) {
      el(".ld-app").hidden = true;
      el(".ld-static").hidden = false;
      setStatus("The network could not start in this browser (" + (error && error.message || error) +
        "); the figure above stays instead.", "error");
      return;
    }
    setStatus("Ready: draw holes on the photo (or pick random ones), then press Fill.", "ready");
    render();
  }

  // A read-only view for tests and curious readers (browser console: liveDemo.snapshot()).
  window.liveDemo = {
    snapshot: function () {
      return {
        w: state.w, h: state.h, threads: state.threads, lastFillMs: state.lastFillMs, lastTotalMs: state.lastTotalMs,
        sessionMs: state.sessionMs, warmupMs: state.warmupMs,
        photo: state.photo && Array.from(state.photo.data), mask: state.mask && Array.from(state.mask),
      };
    },
  };
  root.dataset.state = "loading";
  start();
})();
