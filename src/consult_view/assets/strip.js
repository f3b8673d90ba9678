// Waveform strips on canvas, shared by the hub doctor's consult view and the operator's page.
// A stream keeps its chunks as the gateway signed them (integers per channel, with gain and
// baseline, sorted by sample index); drawing converts to millimetres and never changes a value.
'use strict';
window.SpokegateStrip = (() => {
  const PX_PER_MM = 96 / 25.4;
  const MM_PER_S = 25;
  const MM_PER_MV = 10;
  const mvPerUnit = (ucum) => ({ mV: 1, uV: 1e-3, 'µV': 1e-3, V: 1e3 })[ucum];

  // A stream from a chunk's description (JSON of a `wave` body with `s` samples per channel).
  function newStream(it) {
    const ch = it.ch.map((c) => ({ label: c.label, mdc: c.code.mdc, ucum: c.unit.ucum, gain: c.gain, base: c.base }));
    return { dev: it.dev, stream: it.stream, rate: it.rate, ch, ecg: ch.every((c) => mvPerUnit(c.ucum) !== undefined), chunks: [] };
  }

  // Places a chunk by its index (a repeated index is ignored); true when it was new.
  function addChunk(st, it) {
    const chunk = { i0: it.i0, n: it.n, t0: it.t0, s: it.ch.map((c) => Int32Array.from(c.s)) };
    const cs = st.chunks;
    let lo = 0, hi = cs.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (cs[m].i0 < chunk.i0) lo = m + 1; else hi = m;
    }
    if (cs[lo] && cs[lo].i0 === chunk.i0) return false;
    cs.splice(lo, 0, chunk);
    return true;
  }

  // Forgets chunks that end before index `i`.
  function dropBefore(st, i) {
    let k = 0;
    while (k < st.chunks.length && st.chunks[k].i0 + st.chunks[k].n <= i) k++;
    if (k) st.chunks.splice(0, k);
  }

  const endOf = (st) => (st.chunks.length ? st.chunks[st.chunks.length - 1].i0 + st.chunks[st.chunks.length - 1].n : 0);
  const startOf = (st) => (st.chunks.length ? st.chunks[0].i0 : 0);
  const pxPerSample = (st) => (PX_PER_MM * MM_PER_S) / st.rate;

  // The chunks' pieces of channel c within [a, b), in order, each marked when it continues the
  // one before without a gap (views into the stored arrays, no copies).
  function pieces(st, c, a, b) {
    const cs = st.chunks;
    let lo = 0, hi = cs.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (cs[m].i0 + cs[m].n <= a) lo = m + 1; else hi = m;
    }
    const out = [];
    let end = null;
    for (let k = lo; k < cs.length && cs[k].i0 < b; k++) {
      const ch = cs[k];
      const from = Math.max(a, ch.i0), to = Math.min(b, ch.i0 + ch.n);
      out.push({ i0: from, s: ch.s[c].subarray(from - ch.i0, to - ch.i0), joined: end === from });
      end = to;
    }
    return out;
  }

  function concat(a, b) {
    const r = new Int32Array(a.length + b.length);
    r.set(a);
    r.set(b, a.length);
    return r;
  }

  // Contiguous runs of channel c's exact samples within [a, b).
  function runs(st, c, a, b) {
    const out = [];
    for (const p of pieces(st, c, a, b)) {
      const last = out[out.length - 1];
      if (last && p.joined) last.s = concat(last.s, p.s);
      else out.push({ i0: p.i0, s: p.s });
    }
    return out;
  }

  // What a strip shows [a, b) as plain arrays: for tests and integrators.
  function shown(st, a, b) {
    return { a, b, rate: st.rate, ch: st.ch.map((c, i) => ({ label: c.label, runs: runs(st, i, a, b).map((r) => ({ i0: r.i0, s: Array.from(r.s) })) })) };
  }

  function line(ctx, x0, y0, x1, y1, color) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(Math.round(x0) + 0.5, Math.round(y0) + 0.5);
    ctx.lineTo(Math.round(x1) + 0.5, Math.round(y1) + 0.5);
    ctx.stroke();
  }

  // The 1 mm / 5 mm grid, drawn once per size.
  const grids = new Map();
  function grid(w, h) {
    const id = `${w}x${h}`;
    if (grids.has(id)) return grids.get(id);
    const g = document.createElement('canvas');
    const dpr = window.devicePixelRatio || 1;
    g.width = Math.round(w * dpr);
    g.height = Math.round(h * dpr);
    const ctx = g.getContext('2d');
    ctx.scale(dpr, dpr);
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, w, h);
    for (let mm = 0; mm * PX_PER_MM <= w; mm++) line(ctx, mm * PX_PER_MM, 0, mm * PX_PER_MM, h, mm % 5 ? '#f7d4d4' : '#e59a9a');
    for (let mm = 0; mm * PX_PER_MM <= h; mm++) line(ctx, 0, mm * PX_PER_MM, w, mm * PX_PER_MM, mm % 5 ? '#f7d4d4' : '#e59a9a');
    grids.set(id, g);
    return g;
  }

  function sizeCanvas(cv, w, h) {
    const dpr = window.devicePixelRatio || 1;
    if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(h * dpr)) {
      cv.width = Math.round(w * dpr);
      cv.height = Math.round(h * dpr);
      cv.style.width = `${w}px`;
      cv.style.height = `${h}px`;
    }
    const ctx = cv.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return ctx;
  }

  // Draws channel c's samples [a, b) from x0, baseline at yMid; `toPx` maps a count to pixels
  // up. Where one pixel holds several samples their minimum and maximum are drawn; a gap lifts
  // the pen.
  function trace(ctx, st, c, a, b, x0, yMid, toPx) {
    const pps = pxPerSample(st);
    const base = st.ch[c].base;
    ctx.strokeStyle = '#111';
    ctx.lineWidth = 1.2;
    ctx.beginPath();
    let pen = false;
    for (const r of pieces(st, c, a, b)) {
      if (!r.joined) pen = false;
      const s = r.s;
      if (pps >= 1) {
        for (let i = 0; i < s.length; i++) {
          const x = x0 + (r.i0 + i - a) * pps, y = yMid - toPx(s[i] - base);
          if (pen) ctx.lineTo(x, y); else { ctx.moveTo(x, y); pen = true; }
        }
      } else {
        let col = -1, mn = 0, mx = 0;
        const flush = () => {
          const x = x0 + col + 0.5;
          if (pen) ctx.lineTo(x, yMid - toPx(mn - base)); else { ctx.moveTo(x, yMid - toPx(mn - base)); pen = true; }
          if (mx !== mn) ctx.lineTo(x, yMid - toPx(mx - base));
        };
        for (let i = 0; i < s.length; i++) {
          const cx = Math.floor((r.i0 + i - a) * pps);
          if (cx !== col) {
            if (col >= 0) flush();
            col = cx; mn = mx = s[i];
          } else if (s[i] < mn) mn = s[i];
          else if (s[i] > mx) mx = s[i];
        }
        if (col >= 0) flush();
      }
    }
    ctx.stroke();
  }

  // Counts to pixels at 10 mm/mV (a voltage channel).
  const ecgToPx = (st, c) => {
    const k = st.ch[c].gain * mvPerUnit(st.ch[c].ucum) * MM_PER_MV * PX_PER_MM;
    return (v) => v * k;
  };

  // Counts to pixels filling half of `h` with the window's largest swing (not a voltage).
  function autoToPx(st, c, a, b, h) {
    let peak = 1;
    const base = st.ch[c].base;
    for (const r of pieces(st, c, a, b)) for (const x of r.s) peak = Math.max(peak, Math.abs(x - base));
    const k = (h / 2 - 4) / peak;
    return (x) => x * k;
  }

  // One channel on its own strip of `w` x `h` px ending at sample `end`: grid for a voltage,
  // plain for anything else. Returns the window [a, b).
  function drawStrip(cv, st, c, w, h, end) {
    const span = Math.floor(w / pxPerSample(st));
    const b = Math.max(end, startOf(st) + Math.min(span, endOf(st) - startOf(st)));
    const a = b - span;
    const ctx = sizeCanvas(cv, w, h);
    if (st.ecg) {
      ctx.drawImage(grid(Math.ceil(w), Math.ceil(h)), 0, 0, Math.ceil(w), Math.ceil(h));
      trace(ctx, st, c, a, b, 0, h / 2, ecgToPx(st, c));
    } else {
      ctx.fillStyle = '#fcfcfd';
      ctx.fillRect(0, 0, w, h);
      line(ctx, 0, h / 2, w, h / 2, '#dde');
      trace(ctx, st, c, a, b, 0, h / 2, autoToPx(st, c, a, b, h));
    }
    return [a, b];
  }

  return {
    PX_PER_MM, MM_PER_S, MM_PER_MV, mvPerUnit, newStream, addChunk, dropBefore, endOf, startOf, pxPerSample,
    pieces, runs, shown, line, grid, sizeCanvas, trace, ecgToPx, autoToPx, drawStrip,
  };
})();
