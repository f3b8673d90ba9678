// The consult view: a hub doctor's live page. Plain canvas, no library, nothing from the internet.
// Waveform samples are kept exactly as the gateway signed them (integers per channel, with gain
// and baseline); drawing converts them to millimetres and never changes the stored values.
'use strict';
(() => {
  const cfg = JSON.parse(document.getElementById('cfg').textContent);
  if (!cfg.accounts) document.querySelector('header form').remove();
  const S = window.SpokegateStrip;
  const PX_PER_MM = S.PX_PER_MM;
  const HR_MDC = 147842; // MDC_ECG_HEART_RATE
  const LAYOUT_12 = [['I', 'II', 'III'], ['AVR', 'AVL', 'AVF'], ['V1', 'V2', 'V3'], ['V4', 'V5', 'V6']];
  const LEAD_MM = 30; // height of one lead's row
  const PLAY_AT_LEAST_HZ = 8000;

  const state = {
    streams: {}, readings: [], images: {}, commands: {}, devices: {}, hr: {},
    latencies: [], pending: [], frozen: false, back: 0, calipers: null, loaded: false, live: false,
  };
  const seen = new Set();
  const hub = (window.hubview = { state, audio: null });
  const $ = (id) => document.getElementById(id);
  const fmtTime = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
  const when = (us) => (us == null ? '—' : fmtTime.format(new Date(us / 1000)));
  // A gateway time on the gateway's clock after the steps it reported since it signed the item
  // (msg.clock_fix, µs: its clock-stepped events); the signed time stays in the title.
  const gwTime = (it) => it.t + (it.msg.clock_fix || 0);
  const setTime = (td, it) => {
    const fix = it.msg.clock_fix || 0;
    td.className = fix ? 'clock-fixed' : '';
    td.title = fix ? `gateway clock stepped ${fix > 0 ? '+' : ''}${fix / 1e6} s after this was signed; signed time ${when(it.t)}` : '';
    td.textContent = fix ? `${when(gwTime(it))} *` : when(it.t);
  };
  // The gateway times shown ({ it, td, r: the reading }), to correct when a step is reported.
  const timed = [];
  const gwCell = (it, r) => {
    const td = document.createElement('td');
    setTime(td, it);
    timed.push({ it, td, r });
    return td;
  };
  // A clock step reported live: the times already shown are corrected as the hub gives them now
  // (what arrives after it comes corrected).
  async function followClockStep() {
    const r = await fetch(`/api/history?${query}`);
    if (!r.ok) return;
    const fixes = new Map((await r.json()).items.map((i) => [i.msg.id, i.msg.clock_fix || 0]));
    for (const x of timed) {
      const fix = fixes.get(x.it.msg.id);
      if (fix === undefined || fix === (x.it.msg.clock_fix || 0)) continue;
      x.it.msg.clock_fix = fix;
      setTime(x.td, x.it);
      if (x.r) x.r.t = gwTime(x.it);
    }
  }
  const el = (tag, props, ...kids) => {
    const e = document.createElement(tag);
    Object.assign(e, props || {});
    for (const k of kids) e.append(k);
    return e;
  };

  // ---- waveforms: storage ----
  function stream(it) {
    const key = `${it.site}/${it.gw}/${it.dev}/${it.stream}`;
    let st = state.streams[key];
    if (!st) {
      st = state.streams[key] = Object.assign(S.newStream(it), { key, dirty: true, frozenEnd: null });
      const labels = st.ch.map((c) => c.label.toUpperCase());
      st.twelve = st.ecg && LAYOUT_12.flat().every((l) => labels.includes(l));
      makeStreamView(st);
    }
    return st;
  }

  function addWave(it) {
    if (!it.ch || it.wave_error) return;
    const st = stream(it);
    if (S.addChunk(st, it)) st.dirty = true;
  }

  const { endOf, startOf, pxPerSample, runs, trace, ecgToPx, line } = S;

  // The sample window [a, b) shown for a stream `span` samples wide.
  function windowOf(st, span) {
    const end = state.frozen && st.frozenEnd != null ? st.frozenEnd - Math.round(state.back * st.rate) : endOf(st);
    const b = Math.max(end, startOf(st) + Math.min(span, endOf(st) - startOf(st)));
    return [b - span, b];
  }

  // ---- waveforms: drawing ----
  const setText = (e, text) => { if (e.textContent !== text) e.textContent = text; };
  function calipers(ctx, st, a, x0, h) {
    const cal = state.calipers;
    if (!cal || cal.key !== st.key) return;
    for (const i of [cal.a, cal.b]) {
      if (i == null) continue;
      const x = x0 + (i - a) * pxPerSample(st);
      line(ctx, x, 0, x, h, '#1565c0');
    }
  }

  function drawStream(st) {
    const v = st.view;
    if (st.twelve) {
      // Four columns of 2.5 s (I-III, aVR-aVF, V1-V3, V4-V6) over the last 10 s, and lead II
      // as the rhythm strip under them: the printed 12-lead layout.
      const colS = Math.round(2.5 * st.rate);
      const span = colS * 4;
      const [a, b] = windowOf(st, span);
      const colW = colS * pxPerSample(st);
      const rowH = LEAD_MM * PX_PER_MM;
      const w = colW * 4, h = rowH * 4;
      const ctx = S.sizeCanvas(v.canvas, w, h);
      ctx.drawImage(S.grid(Math.ceil(w), Math.ceil(h)), 0, 0, Math.ceil(w), Math.ceil(h));
      const idx = (l) => st.ch.findIndex((c) => c.label.toUpperCase() === l);
      ctx.font = '12px system-ui';
      LAYOUT_12.forEach((leads, col) => leads.forEach((l, row) => {
        const c = idx(l);
        const a0 = a + col * colS;
        trace(ctx, st, c, a0, a0 + colS, col * colW, row * rowH + rowH / 2, ecgToPx(st, c));
        ctx.fillStyle = '#000';
        ctx.fillText(l.startsWith('A') ? `a${l.slice(1)}` : l, col * colW + 4, row * rowH + 14);
      }));
      const ii = idx('II');
      trace(ctx, st, ii, a, b, 0, 3 * rowH + rowH / 2, ecgToPx(st, ii));
      ctx.fillText(`${st.ch[ii].label} (rhythm)`, 4, 3 * rowH + 14);
      calipers(ctx, st, a, 0, h);
      st.shown = [a, b];
    } else {
      const w = Math.max(300, v.box.clientWidth - 4);
      const span = Math.floor(w / pxPerSample(st));
      const end = windowOf(st, span)[1];
      const h = st.ecg ? LEAD_MM * PX_PER_MM : 90;
      st.ch.forEach((ch, c) => {
        const [a] = S.drawStrip(v.canvases[c], st, c, w, h, end);
        calipers(v.canvases[c].getContext('2d'), st, a, 0, h);
        st.shown = [a, a + span];
      });
    }
    // Text only when it changes: a change lays the page out again.
    const hr = state.hr[st.dev];
    setText(v.hr, hr ? `HR ${hr.val} ${hr.ucum === '/min' ? '/min' : hr.ucum} (from the device, ${when(hr.t)})` : '');
    const [a, b] = st.shown;
    setText(v.span, `${(a / st.rate).toFixed(1)}–${(b / st.rate).toFixed(1)} s of the stream`);
  }

  function makeStreamView(st) {
    const box = el('div', { className: 'stream' });
    const hr = el('span', { className: 'hr' });
    const span = el('small');
    const title = el('h3', {}, `${st.dev} · ${st.stream} · ${st.rate} Hz · ${st.ch.length} channel${st.ch.length > 1 ? 's' : ''}`, hr, span);
    box.append(title);
    const view = { box, hr, span, canvases: [], canvas: null };
    const click = (e) => caliperClick(st, e);
    if (st.twelve) {
      view.canvas = el('canvas', { className: 'strip' });
      view.canvas.addEventListener('click', click);
      box.append(view.canvas);
    } else {
      for (const ch of st.ch) {
        box.append(el('div', { className: 'lead' }, `${ch.label} (${ch.ucum}, MDC ${ch.mdc})`));
        const cv = el('canvas', { className: 'strip' });
        cv.addEventListener('click', click);
        view.canvases.push(cv);
        box.append(cv);
      }
    }
    if (!st.ecg) {
      const gain = el('input', { type: 'range', min: '0', max: '4', step: '0.1', value: '1' });
      const play = el('button', { type: 'button', textContent: 'Play' });
      play.addEventListener('click', () => playSound(st, Number(gain.value)));
      box.append(el('div', { className: 'tools' }, play, el('label', {}, 'Gain ', gain),
        el('small', {}, `Plays the strip's samples (the last 10 s, or the frozen window), resampled to at least ${PLAY_AT_LEAST_HZ / 1000} kHz for the browser's audio; gaps play as silence.`)));
    }
    st.view = view;
    $('streams').append(box);
  }

  function caliperClick(st, e) {
    if (!state.frozen || !st.shown) return;
    const rect = e.target.getBoundingClientRect();
    // Every layout runs left to right in time from the window's start (the 12-lead's columns
    // are consecutive 2.5 s, and its rhythm strip is the whole window).
    const x = e.clientX - rect.left;
    const i = st.shown[0] + Math.round(x / pxPerSample(st));
    const cal = state.calipers && state.calipers.key === st.key && state.calipers.b == null ? state.calipers : { key: st.key, a: null, b: null };
    if (cal.a == null) cal.a = i; else cal.b = i;
    state.calipers = cal;
    if (cal.b != null) {
      cal.ms = (Math.abs(cal.b - cal.a) / st.rate) * 1000;
      cal.bpm = cal.ms > 0 ? 60000 / cal.ms : null;
      $('caliper').textContent = `Δt ${cal.ms.toFixed(0)} ms${cal.bpm ? ` · as RR: ${cal.bpm.toFixed(0)} /min` : ''} (${st.dev})`;
    } else {
      $('caliper').textContent = 'Click the second point.';
    }
    st.dirty = true;
    schedule();
  }

  function playSound(st, gain) {
    const span = Math.round(10 * st.rate);
    const [a, b] = state.frozen && st.shown ? st.shown : [Math.max(startOf(st), endOf(st) - span), endOf(st)];
    const n = b - a;
    if (n <= 0) return;
    const x = new Float32Array(n); // gaps stay 0: silence
    let peak = 1;
    for (const r of runs(st, 0, a, b)) {
      for (let i = 0; i < r.s.length; i++) {
        const v = r.s[i] - st.ch[0].base;
        x[r.i0 - a + i] = v;
        peak = Math.max(peak, Math.abs(v));
      }
    }
    const factor = Math.max(1, Math.ceil(PLAY_AT_LEAST_HZ / st.rate));
    const out = new Float32Array(n * factor);
    for (let i = 0; i < n; i++) {
      const v0 = x[i] / peak, v1 = (i + 1 < n ? x[i + 1] : x[i]) / peak;
      for (let j = 0; j < factor; j++) out[i * factor + j] = v0 + ((v1 - v0) * j) / factor;
    }
    const ctx = hub.audioCtx || (hub.audioCtx = new AudioContext());
    const buf = ctx.createBuffer(1, out.length, st.rate * factor);
    buf.copyToChannel(out, 0);
    const src = ctx.createBufferSource();
    const g = ctx.createGain();
    g.gain.value = gain;
    src.buffer = buf;
    src.connect(g).connect(ctx.destination);
    hub.audio = { stream: st.key, rate: st.rate, playedAt: st.rate * factor, samples: n, seconds: n / st.rate, gain, playing: true };
    src.onended = () => { hub.audio.playing = false; };
    src.start();
  }

  // ---- readings, events, images, replies ----
  function proof(it) {
    const m = it.msg;
    const a = el('a', { href: `/api/messages/${m.id}`, target: '_blank', className: m.verified ? 'proof' : 'proof bad' });
    a.textContent = m.verified ? '✔ verified' : '✖ not verified';
    a.title = m.verified ? `COSE_Sign1 signed by kid ${m.kid}, seq ${it.seq}` : `not verified: ${m.why}`;
    return a;
  }

  function addRow(tr) {
    const body = $('readings');
    body.insertBefore(tr, body.firstChild);
  }

  function addObs(it) {
    for (const o of it.obs || []) {
      const name = o.code.name || `MDC ${o.code.mdc}`;
      const r = {
        name, mdc: o.code.mdc, loinc: o.code.loinc || null, val: o.val, ucum: o.unit.ucum, q: o.q,
        tdev: o.tdev ?? it.tdev ?? null, t: gwTime(it), dev: it.dev, seq: it.seq, kid: it.msg.kid, verified: it.msg.verified, msg: it.msg.id,
      };
      state.readings.push(r);
      if (o.code.mdc === HR_MDC && o.val != null) {
        state.hr[it.dev] = { val: o.val, ucum: o.unit.ucum, t: gwTime(it) };
        for (const st of Object.values(state.streams)) if (st.dev === it.dev) st.dirty = true;
      }
      const code = el('div', { className: 'code' }, `MDC ${o.code.mdc}${o.code.loinc ? ` · LOINC ${o.code.loinc}` : ''}`);
      addRow(el('tr', {},
        el('td', {}, name, code),
        el('td', { className: 'v' }, o.val == null ? `— (${o.q})` : String(o.val)),
        el('td', {}, o.unit.ucum),
        el('td', {}, when(r.tdev)),
        gwCell(it, r),
        el('td', {}, it.dev || ''),
        el('td', {}, proof(it))));
    }
  }

  function addEvent(it, text) {
    const sev = it.event ? it.event.sev : 'info';
    addRow(el('tr', { className: `event ${sev}` },
      el('td', { colSpan: 4 }, text),
      gwCell(it),
      el('td', {}, it.dev || ''),
      el('td', {}, proof(it))));
  }

  function addMedia(it) {
    const m = it.media;
    let im = state.images[m.id];
    if (!im) {
      im = state.images[m.id] = { id: m.id, dev: it.dev, mime: m.mime, size: m.size, sha256: m.sha256, parts: m.parts, got: new Set(), done: null, box: el('div', { className: 'thumb' }), verified: true, meta: null };
      $('thumbs').prepend(im.box);
    }
    im.got.add(m.part);
    im.verified = im.verified && it.msg.verified;
    if (m.meta) im.meta = m.meta;
    if (it.image) im.done = it.image;
    im.received = im.got.size;
    renderThumb(im);
  }

  function renderThumb(im) {
    im.box.replaceChildren();
    if (im.done) {
      const img = el('img', { src: im.done.url, alt: `image ${im.id}` });
      img.addEventListener('click', () => openFull(im));
      im.box.append(img, el('div', {}, `${im.dev} · ${im.verified ? '✔ verified, SHA-256 checked' : '✖ not verified'}`));
    } else {
      im.box.append(el('progress', { max: im.parts, value: im.got.size }),
        el('div', {}, `${im.dev} · ${im.got.size} of ${im.parts} parts`));
    }
  }

  let zoom = 1;
  function openFull(im) {
    zoom = 1;
    $('fullimg').src = im.done.url;
    $('fullimg').style.transform = 'scale(1)';
    $('prov').textContent = JSON.stringify({ media: im.id, device: im.dev, mime: im.mime, bytes: im.size, sha256: im.done.sha256, verified: im.verified, provenance: im.done.meta || im.meta }, null, 2);
    $('full').hidden = false;
  }
  const setZoom = (z) => { zoom = Math.min(16, Math.max(0.25, z)); $('fullimg').style.transform = `scale(${zoom})`; };
  $('zin').addEventListener('click', () => setZoom(zoom * 1.5));
  $('zout').addEventListener('click', () => setZoom(zoom / 1.5));
  $('zclose').addEventListener('click', () => { $('full').hidden = true; });
  $('full').addEventListener('wheel', (e) => { e.preventDefault(); setZoom(zoom * (e.deltaY < 0 ? 1.2 : 1 / 1.2)); }, { passive: false });

  function addReply(it) {
    const c = state.commands[it.cmd];
    if (!c) return addEvent(it, `reply to ${it.cmd}: ${it.state} ${it.code} ${it.text}`);
    c.replies.push({ state: it.state, code: it.code, text: it.text });
    c.li.textContent = `${c.name} ${c.dev}: ${it.state} · ${it.code} · ${it.text}`;
  }

  // The spoke's devices, with the questions a page may ask them: those that sent something, and
  // any other by its id (a camera says nothing until asked).
  const asks = [['Take picture', 'capture'], ['Fetch records', 'records.fetch'], ['Start stream', 'stream.start'], ['Stop stream', 'stream.stop']];
  function askButtons(target) {
    return asks.map(([label, name]) => {
      const b = el('button', { type: 'button', textContent: label });
      b.dataset.cmd = name;
      b.addEventListener('click', () => { const d = target(); if (d.dev) send(d, name); });
      return b;
    });
  }
  function noteDevice(it) {
    const gwKey = `${it.site}/${it.gw}`;
    if (!state.devices[gwKey]) {
      state.devices[gwKey] = { site: it.site, gw: it.gw };
      const input = el('input', { placeholder: 'device id', size: 12 });
      input.dataset.gateway = gwKey;
      $('devices').append(el('div', { className: 'device gateway' }, el('b', {}, `${it.site} / ${it.gw}`), input,
        ...askButtons(() => ({ site: it.site, gw: it.gw, dev: input.value.trim() }))));
    }
    if (!it.dev || it.dev === 'spokegate') return;
    const key = `${gwKey}/${it.dev}`;
    if (state.devices[key]) return;
    const d = (state.devices[key] = { site: it.site, gw: it.gw, dev: it.dev, prof: it.prof });
    $('devices').append(el('div', { className: 'device' }, el('b', {}, it.dev), el('small', {}, it.prof || ''), ...askButtons(() => d)));
  }

  async function send(d, name) {
    const li = el('li', {}, `${name} ${d.dev}: sending…`);
    $('replies').prepend(li);
    try {
      const r = await fetch('/api/command', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': cfg.csrf },
        body: JSON.stringify({ site: d.site, gw: d.gw, name, args: { dev: d.dev } }),
      });
      if (!r.ok) { li.textContent = `${name} ${d.dev}: refused by the hub (${r.status}) ${await r.text()}`; return; }
      const { id } = await r.json();
      state.commands[id] = { id, name, dev: d.dev, li, replies: [] };
      li.textContent = `${name} ${d.dev}: sent, signed by the hub (${id})`;
    } catch (e) {
      li.textContent = `${name} ${d.dev}: not sent (${e})`;
    }
  }

  // ---- items ----
  function take(it, live) {
    if (seen.has(it.msg.id)) return;
    seen.add(it.msg.id);
    noteDevice(it);
    switch (it.type) {
      case 'wave': addWave(it); break;
      case 'obs': addObs(it); break;
      case 'event':
        addEvent(it, `${it.event.code}: ${it.event.text}`);
        if (live && it.event.code === 'clock-stepped' && !it.dev) followClockStep();
        break;
      case 'media': addMedia(it); break;
      case 'reply': addReply(it); break;
      case 'consult': addEvent(it, it.consult ? `consult ${it.consult} bound (${it.by})` : `consult ended (${it.by})`); break;
      default: break;
    }
    if (live) state.pending.push({ id: it.msg.id, stored: it.msg.stored });
    schedule();
  }

  let frame = 0;
  function schedule() {
    if (!frame) frame = requestAnimationFrame(draw);
  }
  function draw() {
    frame = 0;
    for (const st of Object.values(state.streams)) {
      if (st.dirty) {
        st.dirty = false;
        drawStream(st);
      }
    }
    if (state.pending.length) {
      // Stored at the hub -> drawn on this frame (both clocks are this machine's or NTP-synced).
      const now = Date.now();
      for (const p of state.pending) state.latencies.push({ id: p.id, ms: now - p.stored });
      state.pending = [];
      if (state.latencies.length > 20000) state.latencies.splice(0, 10000);
    }
    if (state.frozen) updateScroll();
  }

  function updateScroll() {
    const s = $('scroll');
    let max = 0;
    for (const st of Object.values(state.streams)) {
      if (st.frozenEnd == null || !st.shown) continue;
      max = Math.max(max, (st.frozenEnd - startOf(st) - (st.shown[1] - st.shown[0])) / st.rate);
    }
    s.max = String(Math.max(0, max));
    s.disabled = !state.frozen;
    s.value = String(Math.max(0, max - state.back));
  }

  $('freeze').addEventListener('click', () => {
    state.frozen = !state.frozen;
    state.back = 0;
    state.calipers = null;
    for (const st of Object.values(state.streams)) {
      st.frozenEnd = state.frozen ? endOf(st) : null;
      st.dirty = true;
    }
    $('freeze').textContent = state.frozen ? 'Live' : 'Freeze';
    if (!state.frozen) { $('scroll').disabled = true; $('scroll').value = '0'; }
    $('caliper').textContent = state.frozen ? 'Click twice on a strip to measure.' : 'Freeze, then click twice on a strip to measure.';
    // Drawn at once, not on the next frame: a caliper click reads the window last drawn, which
    // must be the frozen one from the moment the strip is frozen.
    if (frame) cancelAnimationFrame(frame);
    draw();
  });
  $('scroll').addEventListener('input', (e) => {
    state.back = Math.max(0, Number(e.target.max) - Number(e.target.value));
    for (const st of Object.values(state.streams)) st.dirty = true;
    schedule();
  });
  window.addEventListener('resize', () => {
    for (const st of Object.values(state.streams)) st.dirty = true;
    schedule();
  });

  // ---- history, then live ----
  const query = cfg.scope === 'consult'
    ? `consult=${encodeURIComponent(cfg.consult)}`
    : `site=${encodeURIComponent(cfg.site)}&gw=${encodeURIComponent(cfg.gw)}`;
  let buffered = [];
  async function loadHistory() {
    const r = await fetch(`/api/history?${query}`);
    if (!r.ok) return;
    const h = await r.json();
    for (const it of h.items) take(it, false);
    state.truncated = h.truncated;
    if (h.truncated) $('streams').before(el('p', { className: 'note' }, 'The oldest messages of this consult are not loaded (the page holds its newest 50,000).'));
    state.loaded = true;
    for (const it of buffered) take(it, true);
    buffered = [];
  }
  const es = new EventSource(`/api/live?${query}`);
  es.addEventListener('item', (e) => {
    const it = JSON.parse(e.data);
    if (state.loaded) take(it, true); else buffered.push(it);
  });
  es.addEventListener('reload', () => { loadHistory(); });
  es.onopen = () => {
    state.live = true;
    $('live').textContent = 'live';
    $('live').className = 'on';
    if (!state.loaded) loadHistory();
  };
  es.onerror = () => {
    state.live = false;
    $('live').textContent = 'reconnecting…';
    $('live').className = 'off';
  };

  // For tests and integrators: the exact samples of what a stream's strip shows now.
  hub.shown = (key) => {
    const st = state.streams[key];
    return st && st.shown ? S.shown(st, st.shown[0], st.shown[1]) : null;
  };
  hub.keys = () => Object.keys(state.streams);
})();
