/* The biharmonic fill that the live demo's model reads (book/04_live_demo.md), in plain JavaScript.
 *
 * The same computation as inpaintlib.smooth_fill.biharmonic_fill, step for step: the known pixels averaged down
 * a pyramid of five halvings (a coarse pixel is known when any of its children is), the coarsest level started
 * from the mean known colour and given 4 * iterations conjugate-gradient (CG) steps on hole * lap(lap(u)) = 0,
 * each finer level started from the bilinear upsampling (align_corners = false) of the level below and given
 * `iterations` steps; lap is the 5-point Laplacian with replicate padding; each colour channel is its own system.
 * The exported network gets this fill as its input `fill` (inpaintlib.export), so the exporter need not unroll
 * the solver into the graph, and here it runs as a tight loop over the hole's pixels only: the search direction
 * and the residual are zero outside the hole, so lap(direction) is non-zero only within one pixel of it.
 * Values are stored as float32 like PyTorch's; sums run in float64, so results agree to rounding.
 */
(function () {
  "use strict";
  var LEVELS = 5; // halvings from the image to the coarsest level, as in smooth_fill._LEVELS

  // Indices of the pixels that are hole or next to one, with their 4 neighbours (replicate padding).
  function stencil(hole, w, h) {
    var near = new Uint8Array(w * h), list = [], holes = [];
    for (var y = 0; y < h; y++) {
      for (var x = 0; x < w; x++) {
        var i = y * w + x;
        if (!hole[i]) continue;
        holes.push(i);
        near[i] = 1;
        if (x > 0) near[i - 1] = 1;
        if (x < w - 1) near[i + 1] = 1;
        if (y > 0) near[i - w] = 1;
        if (y < h - 1) near[i + w] = 1;
      }
    }
    for (var j = 0; j < w * h; j++) if (near[j]) list.push(j);
    var nb = new Int32Array(4 * list.length);
    for (var k = 0; k < list.length; k++) {
      var p = list[k], px = p % w, py = (p - px) / w;
      nb[4 * k] = py > 0 ? p - w : p;
      nb[4 * k + 1] = py < h - 1 ? p + w : p;
      nb[4 * k + 2] = px > 0 ? p - 1 : p;
      nb[4 * k + 3] = px < w - 1 ? p + 1 : p;
    }
    var hnb = new Int32Array(4 * holes.length);
    for (var m = 0; m < holes.length; m++) {
      var q = holes[m], qx = q % w, qy = (q - qx) / w;
      hnb[4 * m] = qy > 0 ? q - w : q;
      hnb[4 * m + 1] = qy < h - 1 ? q + w : q;
      hnb[4 * m + 2] = qx > 0 ? q - 1 : q;
      hnb[4 * m + 3] = qx < w - 1 ? q + 1 : q;
    }
    return { near: Int32Array.from(list), nb: nb, holes: Int32Array.from(holes), hnb: hnb };
  }

  // out[hole] = lap(lap(v))[hole]; lap1 is scratch (only its entries near the hole are read).
  function apply(v, s, lap1, out) {
    var near = s.near, nb = s.nb, holes = s.holes, hnb = s.hnb, k, p;
    for (k = 0; k < near.length; k++) {
      p = near[k];
      lap1[p] = v[nb[4 * k]] + v[nb[4 * k + 1]] + v[nb[4 * k + 2]] + v[nb[4 * k + 3]] - 4 * v[p];
    }
    for (k = 0; k < holes.length; k++) {
      p = holes[k];
      out[p] = lap1[hnb[4 * k]] + lap1[hnb[4 * k + 1]] + lap1[hnb[4 * k + 2]] + lap1[hnb[4 * k + 3]] - 4 * lap1[p];
    }
  }

  // `iterations` CG steps on hole * lap(lap(u)) = 0 for one channel u (changed in place, only in the hole).
  function conjugateGradients(u, s, iterations) {
    var n = u.length, holes = s.holes, count = holes.length, k, p;
    if (!count) return;
    var lap1 = new Float32Array(n), r = new Float32Array(n), d = new Float32Array(n), ad = new Float32Array(n);
    apply(u, s, lap1, ad);
    var rr = 0;
    for (k = 0; k < count; k++) { p = holes[k]; r[p] = -ad[p]; d[p] = r[p]; rr += r[p] * r[p]; }
    rr = Math.fround(rr);
    for (var it = 0; it < iterations; it++) {
      apply(d, s, lap1, ad);
      var dad = 0;
      for (k = 0; k < count; k++) { p = holes[k]; dad += d[p] * ad[p]; }
      var alpha = Math.fround(rr / Math.max(Math.fround(dad), 1e-30)), next = 0;
      for (k = 0; k < count; k++) {
        p = holes[k];
        u[p] += alpha * d[p];
        r[p] -= alpha * ad[p];
        next += r[p] * r[p];
      }
      next = Math.fround(next);
      var beta = Math.fround(next / Math.max(rr, 1e-30));
      for (k = 0; k < count; k++) { p = holes[k]; d[p] = r[p] + beta * d[p]; }
      rr = next;
    }
  }

  // Bilinear upsampling of one (h, w) plane to (H, W), as torch's interpolate(..., align_corners=False).
  function upsample(src, h, w, H, W) {
    var out = new Float32Array(H * W), sy = h / H, sx = w / W;
    for (var y = 0; y < H; y++) {
      var fy = Math.max(sy * (y + 0.5) - 0.5, 0), y0 = Math.floor(fy), y1 = y0 < h - 1 ? y0 + 1 : y0, ly = fy - y0;
      for (var x = 0; x < W; x++) {
        var fx = Math.max(sx * (x + 0.5) - 0.5, 0), x0 = Math.floor(fx), x1 = x0 < w - 1 ? x0 + 1 : x0, lx = fx - x0;
        out[y * W + x] = (1 - ly) * ((1 - lx) * src[y0 * w + x0] + lx * src[y0 * w + x1]) +
          ly * ((1 - lx) * src[y1 * w + x0] + lx * src[y1 * w + x1]);
      }
    }
    return out;
  }

  // planes: C Float32Arrays (h*w) of image * known; known: Uint8Array or Float32Array of 0/1. Returns C planes.
  function solve(planes, known, w, h, iterations, levels) {
    var n = w * h, hole = new Uint8Array(n), c, i;
    for (i = 0; i < n; i++) hole[i] = known[i] ? 0 : 1;
    var s = stencil(hole, w, h), start;
    if (levels === 0) {
      var count = 0;
      for (i = 0; i < n; i++) count += known[i] ? 1 : 0;
      start = planes.map(function (plane) {
        var sum = 0;
        for (var j = 0; j < n; j++) if (known[j]) sum += plane[j];
        var mean = Math.fround(Math.fround(sum) / Math.max(count, 1)), out = new Float32Array(n);
        for (j = 0; j < n; j++) out[j] = known[j] ? plane[j] : mean;
        return out;
      });
      start.forEach(function (u) { conjugateGradients(u, s, 4 * iterations); });
      return start;
    }
    // avg_pool2d(kernel 2, ceil_mode): a window counts its pixels inside the image only
    var cw = Math.ceil(w / 2), ch = Math.ceil(h / 2), weight = new Float32Array(cw * ch);
    var coarse = planes.map(function () { return new Float32Array(cw * ch); });
    for (var y = 0; y < ch; y++) {
      for (var x = 0; x < cw; x++) {
        var o = y * cw + x, cells = 0, kn = 0, sums = planes.map(function () { return 0; });
        for (var dy = 0; dy < 2; dy++) {
          for (var dx = 0; dx < 2; dx++) {
            var yy = 2 * y + dy, xx = 2 * x + dx;
            if (yy >= h || xx >= w) continue;
            cells++;
            var q = yy * w + xx;
            kn += known[q] ? 1 : 0;
            for (c = 0; c < planes.length; c++) sums[c] += planes[c][q];
          }
        }
        weight[o] = kn / cells;
        for (c = 0; c < planes.length; c++) coarse[c][o] = Math.fround(sums[c] / cells) / Math.max(weight[o], 1e-12);
      }
    }
    var coarseKnown = new Uint8Array(cw * ch);
    for (i = 0; i < cw * ch; i++) coarseKnown[i] = weight[i] > 0 ? 1 : 0;
    var below = solve(coarse, coarseKnown, cw, ch, iterations, levels - 1);
    return below.map(function (plane, k) {
      var u = upsample(plane, ch, cw, h, w);
      for (var j = 0; j < n; j++) if (known[j]) u[j] = planes[k][j];
      conjugateGradients(u, s, iterations);
      return u;
    });
  }

  /* The fill of a (3, h, w) image (Float32Array, planes one after another, values in [0, 1]) with mask
   * (Float32Array h*w, 1 = known, 0 = hole), as biharmonic_fill(image * mask, mask, iterations): the known
   * pixels unchanged, the hole filled and clipped to [0, 1]. Returns a Float32Array of 3*h*w. */
  function biharmonicFill(image, mask, w, h, iterations) {
    var n = w * h, planes = [], c, i;
    for (c = 0; c < 3; c++) {
      var plane = new Float32Array(n);
      for (i = 0; i < n; i++) plane[i] = image[c * n + i] * mask[i];
      planes.push(plane);
    }
    var filled = solve(planes, mask, w, h, iterations, LEVELS), out = new Float32Array(3 * n);
    for (c = 0; c < 3; c++) {
      for (i = 0; i < n; i++) out[c * n + i] = mask[i] ? planes[c][i] : Math.min(1, Math.max(0, filled[c][i]));
    }
    return out;
  }

  window.LIVE_DEMO = window.LIVE_DEMO || {};
  window.LIVE_DEMO.biharmonicFill = biharmonicFill;
})();
