/* Live inpainting demo of the inpaint-book (book/04_live_demo.md): the book's best model, the stored run
 * data/runs/pconv-fill-scale (a PConv U-Net with a head that blends in a biharmonic fill), exported to ONNX at build
 * time with int8 weights in its large convolutions (computed in float32), runs in the page with onnxruntime-web's
 * WebAssembly backend; the biharmonic fill the head reads is computed by live_demo_fill.js.
 * Nothing leaves the page: the runtime, the network, the photos and the masks come from _static/live-demo/
 * (written by `python -m inpaintlib.live_demo`), and a photo the reader opens is only read into a canvas.
 *
 * The page itself stays light: the runtime and the network (about 10 MB, gzip-compressed, inflated here with
 * DecompressionStream) load only when the reader presses "Start the demo" or draws a first hole.
 * From file:// a page may run classic <script> files but may not fetch() or import() the files next to it, so
 * there the binaries come from script wrappers (base64); over http(s) the page fetches the plain .gz files.
 * Polarity as in inpaintlib: mask 1 = valid (known) pixel, 0 = hole. The steps of a fill are those of
 * inpaintlib.inference.inpaint(): pad by repeating the last row/column to a multiple of 2**layers, run the
 * network, crop, and keep the known pixels (the completion x_comp = M * x + (1 - M) * x_out of chapter 4).
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
    drawing: false, last: null, multiple: 128, threads: 1, assets: null, starting: null, loadedBytes: 0,
  };
  var FILE = location.protocol === "file:";

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
    var fillButton = el(".ld-fill"), hint = "";
    if (!state.session) hint = state.starting ? "The network is still loading (see the bar above)." : "Press “Start the demo” (or draw a hole) to load the network first.";
    else if (state.busy) hint = "Filling…";
    else if (holes === 0) hint = "Draw a hole on the photo first (or pick random holes).";
    fillButton.disabled = hint !== "";
    fillButton.title = hint || "Fill the holes with the network";
    el(".ld-hint").textContent = hint;
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
      startDemo();
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
      var t0 = performance.now(), iterations = state.assets.model.fill_iterations;
      if (iterations) feeds.fill = new ort.Tensor("float32", window.LIVE_DEMO.biharmonicFill(image, mask, W, H, iterations), [1, 3, H, W]);
      var t1 = performance.now();
      var output = await state.session.run(feeds);
      var ms = performance.now() - t1, fillMs = t1 - t0;
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
      state.lastSmoothMs = fillMs;
      state.lastTotalMs = performance.now() - start;
      el(".ld-time").textContent = "Filled in " + Math.round(state.lastTotalMs) + " ms (the network: " + Math.round(ms) +
        " ms, its biharmonic fill: " + Math.round(fillMs) + " ms, at " + W + "×" + H + " px, " + state.threads +
        " WebAssembly thread" + (state.threads > 1 ? "s" : "") + ")";
      setStatus("Ready: draw more holes, pick another photo, or toggle the holes and the original.", "filled");
    } catch (error) {
      setStatus("The network failed: " + error.message, "error");
    } finally {
      state.busy = false;
      render();
    }
  }

  // ---- loading the runtime and the network, only when the reader starts the demo --------------------------
  function progress(bytes) {
    var a = state.assets, total = FILE ? a.runtime.file_bytes + a.model.file_bytes : a.runtime.http_bytes + a.model.http_bytes;
    state.loadedBytes = Math.min(total, bytes);
    var bar = el(".ld-progress");
    bar.max = total; bar.value = state.loadedBytes;
    el(".ld-progress-text").textContent = (state.loadedBytes / 1e6).toFixed(1) + " / " + (total / 1e6).toFixed(1) + " MB";
  }

  async function fetchBytes(url, done) {
    var response = await fetch(url);
    if (!response.ok || !response.body) throw new Error("could not load " + url + " (" + response.status + ")");
    var reader = response.body.getReader(), parts = [], got = 0;
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) break;
      parts.push(chunk.value); got += chunk.value.length;
      progress(done + got);
    }
    var out = new Uint8Array(got), at = 0;
    parts.forEach(function (p) { out.set(p, at); at += p.length; });
    return out;
  }

  // gzip data inflated by the browser (a host that already sent it with Content-Encoding: gzip gives it plain)
  async function gunzip(bytes) {
    if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  async function loadRuntime(assets) {
    var t0 = performance.now(), done = 0;
    progress(0);
    await loadScript(new URL("live_demo_fill.js", script.src).href);
    await loadScript(BASE + assets.runtime.script);
    var params = new URLSearchParams(location.search);
    var wanted = parseInt(params.get("threads") || "0", 10) || Math.min(4, navigator.hardwareConcurrency || 1);
    // threads need SharedArrayBuffer, which browsers only give to cross-origin isolated pages (never file://)
    state.threads = self.crossOriginIsolated ? wanted : 1;
    ort.env.wasm.numThreads = state.threads;
    ort.env.wasm.proxy = false;
    var wasm, model;
    if (FILE) {
      await loadScript(BASE + assets.runtime.wasm + ".js");
      progress(done = assets.runtime.file_bytes);
      var runtime = window.LIVE_DEMO.runtime;
      wasm = await gunzip(fromBase64(runtime.wasm_gz));
      ort.env.wasm.wasmPaths = { mjs: URL.createObjectURL(new Blob([runtime.mjs], { type: "text/javascript" })) };
      delete window.LIVE_DEMO.runtime; // the decoded copies are all that is needed now
      await loadScript(BASE + assets.model.file + ".js");
      progress(done += assets.model.file_bytes);
      model = await gunzip(fromBase64(window.LIVE_DEMO.model.onnx_gz));
      delete window.LIVE_DEMO.model;
    } else {
      ort.env.wasm.wasmPaths = BASE;
      done = assets.runtime.http_bytes - assets.runtime.wasm_bytes;
      wasm = await gunzip(await fetchBytes(BASE + assets.runtime.wasm, done));
      done += assets.runtime.wasm_bytes;
      model = await gunzip(await fetchBytes(BASE + assets.model.file, done));
    }
    ort.env.wasm.wasmBinary = wasm.buffer;
    state.downloadMs = performance.now() - t0;
    state.multiple = assets.model.multiple;
    setStatus("Preparing the network…", "loading");
    t0 = performance.now();
    // disable_quant_qdq: the int8 weights' DequantizeLinear nodes are folded into float32 constants once, at
    // session creation, instead of running on every fill (the graph has no quantized activations to keep)
    var session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"], graphOptimizationLevel: "all",
      extra: { session: { disable_quant_qdq: "1" } } });
    state.sessionMs = performance.now() - t0;
    // The first run of a session prepares its kernels and takes several times longer than the next ones:
    // pay for it now, on a blank 256x256 picture, rather than on the reader's first Fill.
    var side = assets.size, blank = new Float32Array(side * side), feeds = {
      image: new ort.Tensor("float32", new Float32Array(3 * side * side), [1, 3, side, side]),
      mask: new ort.Tensor("float32", blank.fill(1), [1, 1, side, side]),
    };
    t0 = performance.now();
    if (assets.model.fill_iterations) { // the biharmonic fill too, on a small hole, so its code is compiled
      var holed = new Float32Array(side * side).fill(1);
      for (var y = side / 4; y < side / 2; y++) holed.fill(0, y * side + side / 4, y * side + side / 2);
      feeds.fill = new ort.Tensor("float32", window.LIVE_DEMO.biharmonicFill(feeds.image.data, holed, side, side,
        assets.model.fill_iterations), [1, 3, side, side]);
    }
    await session.run(feeds);
    state.warmupMs = performance.now() - t0;
    state.session = session;
  }

  function startDemo() {
    if (state.starting) return state.starting;
    var assets = state.assets;
    el(".ld-start").hidden = true;
    el(".ld-loading").hidden = false;
    setStatus("Loading the network and its runtime…", "loading");
    state.starting = loadRuntime(assets).then(function () {
      el(".ld-loading").hidden = true;
      setStatus("Ready: draw holes on the photo (or pick random ones), then press Fill.", "ready");
      render();
    }, function (error) {
      el(".ld-loading").hidden = true;
      setStatus("The network could not start in this browser (" + (error && error.message || error) +
        "); the figure below, filled by PyTorch when the book was built, shows what it does.", "error");
      el(".ld-static").hidden = false;
      render();
    });
    render(); // the hint now says that the network is loading
    return state.starting;
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
      button.firstChild.src = BASE + entry.thumb;
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
    el(".ld-start").addEventListener("click", startDemo);
    el(".ld-show-mask").addEventListener("change", render);
    el(".ld-show-original").addEventListener("change", render);
    bindDrawing();
  }

  async function choosePhoto(n) {
    if (state.busy) return;
    var entry = state.assets.photos[n];
    if (!entry.src) { // the full photo as a data URL: its pixels may be read back even from file://
      await loadScript(BASE + entry.script);
      entry.src = window.LIVE_DEMO["photo:" + entry.name].src;
    }
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
    if (typeof DecompressionStream !== "function") {
      setStatus("This browser cannot inflate compressed files (no DecompressionStream), so the network cannot " +
        "load here; the figure above, filled by PyTorch when the book was built, stays instead.", "unsupported");
      return;
    }
    var assets = (state.assets = window.LIVE_DEMO.assets);
    buildControls(assets);
    var size = ((FILE ? assets.runtime.file_bytes + assets.model.file_bytes : assets.runtime.http_bytes +
      assets.model.http_bytes) / 1e6).toFixed(1);
    el(".ld-start").textContent = "Start the demo (downloads " + size + " MB)";
    el(".ld-model").textContent = "Model: the book's best model, " + assets.model.name + " (" + assets.model.precision + ").";
    el(".ld-app").hidden = false;
    el(".ld-static").hidden = true;
    await choosePhoto(0);
    setStatus("Draw holes on the photo, or press “Start the demo”: the network (" + size + " MB) loads then.", "idle");
    render();
  }

  // A read-only view for tests and curious readers (browser console: liveDemo.snapshot()).
  window.liveDemo = {
    snapshot: function () {
      return {
        w: state.w, h: state.h, threads: state.threads, lastFillMs: state.lastFillMs, lastTotalMs: state.lastTotalMs,
        lastSmoothMs: state.lastSmoothMs, sessionMs: state.sessionMs, warmupMs: state.warmupMs,
        downloadMs: state.downloadMs, loadedBytes: state.loadedBytes, model: state.assets && state.assets.model.name,
        photo: state.photo && Array.from(state.photo.data), mask: state.mask && Array.from(state.mask),
      };
    },
  };
  root.dataset.state = "loading";
  start();
})();
