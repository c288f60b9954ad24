// Canvas time-series charts: many series, hundreds of thousands of points
// (each pixel column draws the min..max of its points), drag to zoom,
// double-click to reset, colours read from the CSS theme at each draw.

const PALETTE = ['--c1', '--c2', '--c3', '--c4', '--c5', '--c6'];

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

function timeLabel(ms, span) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (span > 2 * 86400e3) return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
  if (span < 10 * 60e3) return `${hm}:${pad(d.getSeconds())}`;
  return hm;
}

export class Chart {
  // opts: { series: [label...], format: (v) => string, onZoom(from, to), onReset() }
  constructor(canvas, opts) {
    this.canvas = canvas;
    this.opts = opts;
    this.xs = [];
    this.ys = opts.series.map(() => []);
    this.drag = null;
    canvas.addEventListener('pointerdown', (e) => {
      canvas.setPointerCapture(e.pointerId);
      this.drag = { x0: this.localX(e), x1: this.localX(e) };
    });
    canvas.addEventListener('pointermove', (e) => {
      if (!this.drag) return;
      this.drag.x1 = this.localX(e);
      this.draw();
    });
    canvas.addEventListener('pointerup', () => {
      const drag = this.drag;
      this.drag = null;
      if (!drag || Math.abs(drag.x1 - drag.x0) < 6 || !this.view) { this.draw(); return; }
      const [a, b] = [Math.min(drag.x0, drag.x1), Math.max(drag.x0, drag.x1)];
      const from = this.xAt(a), to = this.xAt(b);
      this.draw();
      if (opts.onZoom) opts.onZoom(Math.round(from), Math.round(to));
    });
    canvas.addEventListener('dblclick', () => { if (opts.onReset) opts.onReset(); });
    this.resize = new ResizeObserver(() => this.draw());
    this.resize.observe(canvas);
  }

  localX(e) {
    return e.clientX - this.canvas.getBoundingClientRect().left;
  }

  xAt(px) {
    const v = this.view;
    return v.x0 + ((px - v.left) / (v.width)) * (v.x1 - v.x0);
  }

  // xs: ascending unix ms; ys: one array per series (NaN: no value).
  setData(xs, ys, range) {
    this.xs = xs;
    this.ys = ys;
    this.range = range;
    this.draw();
  }

  // Adds a live point; keeps the window's width when the range follows now.
  append(x, values) {
    if (this.xs.length && x <= this.xs[this.xs.length - 1]) return;
    this.xs.push(x);
    values.forEach((v, i) => this.ys[i].push(v));
    if (this.range && this.range.follow) {
      const width = this.range.to - this.range.from;
      this.range = { from: x - width, to: x, follow: true };
      let drop = 0;
      while (drop < this.xs.length && this.xs[drop] < this.range.from) drop++;
      if (drop > 0) {
        this.xs.splice(0, drop);
        this.ys.forEach((s) => s.splice(0, drop));
      }
    }
    this.draw();
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const xs = this.xs;
    // What is drawn, for tests and for people who inspect the page.
    canvas.dataset.points = String(xs.length);
    canvas.dataset.lastX = String(xs.length ? xs[xs.length - 1] : '');
    canvas.dataset.lastY = String(xs.length ? this.ys[0][xs.length - 1] : '');
    const x0 = this.range ? this.range.from : xs[0];
    const x1 = this.range ? this.range.to : xs[xs.length - 1];
    let ymax = 0;
    for (const s of this.ys) for (let i = 0; i < s.length; i++) if (s[i] > ymax) ymax = s[i];
    if (this.opts.min && this.opts.min > ymax) ymax = this.opts.min;
    ymax = ymax > 0 ? ymax * 1.08 : 1;
    const left = 56, right = 8, top = 6, bottom = 18;
    const width = w - left - right, height = h - top - bottom;
    this.view = { x0, x1, left, width };
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = css('--muted');
    ctx.strokeStyle = css('--grid');
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = top + height - (i / 4) * height;
      ctx.beginPath(); ctx.moveTo(left, y + 0.5); ctx.lineTo(left + width, y + 0.5); ctx.stroke();
      ctx.textAlign = 'right';
      ctx.fillText(this.opts.format((ymax * i) / 4), left - 4, y + 4);
    }
    if (x0 === undefined || x1 === undefined || x1 <= x0) {
      ctx.textAlign = 'center';
      ctx.fillText('no data in this range', left + width / 2, top + height / 2);
      return;
    }
    const ticks = Math.max(2, Math.floor(width / 110));
    ctx.textAlign = 'center';
    for (let i = 0; i <= ticks; i++) {
      const t = x0 + ((x1 - x0) * i) / ticks;
      ctx.fillText(timeLabel(t, x1 - x0), left + (width * i) / ticks, h - 4);
    }
    const sx = width / (x1 - x0), sy = height / ymax;
    ctx.save();
    ctx.beginPath(); ctx.rect(left, top, width, height); ctx.clip();
    this.ys.forEach((s, k) => {
      ctx.strokeStyle = css(PALETTE[k % PALETTE.length]);
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      // One column per pixel: a line to its first point, then its min..max.
      let column = -1, lo = 0, hi = 0, pen = false, gap = false;
      const flush = () => {
        if (column < 0) return;
        const x = left + column + 0.5;
        ctx.lineTo(x, top + height - lo * sy);
        ctx.lineTo(x, top + height - hi * sy);
      };
      for (let i = 0; i < xs.length; i++) {
        const v = s[i];
        if (v === null || v === undefined || Number.isNaN(v)) { gap = true; continue; }
        const px = Math.floor((xs[i] - x0) * sx);
        if (px !== column || gap) {
          flush();
          const x = left + px + 0.5, y = top + height - v * sy;
          if (!pen || gap) { ctx.moveTo(x, y); pen = true; gap = false; } else ctx.lineTo(x, y);
          column = px; lo = v; hi = v;
        } else {
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      }
      flush();
      ctx.stroke();
    });
    ctx.restore();
    if (this.drag) {
      ctx.fillStyle = css('--accent');
      ctx.globalAlpha = 0.15;
      const a = Math.min(this.drag.x0, this.drag.x1), b = Math.max(this.drag.x0, this.drag.x1);
      ctx.fillRect(a, top, b - a, height);
      ctx.globalAlpha = 1;
    }
  }
}

// A small line of recent values, no axes.
export function sparkline(canvas, values) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 120, h = canvas.clientHeight || 24;
  canvas.width = Math.round(w * ratio);
  canvas.height = Math.round(h * ratio);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const clean = values.filter((v) => Number.isFinite(v));
  if (clean.length < 2) return;
  const max = Math.max(...clean, 1e-9);
  ctx.strokeStyle = css('--accent');
  ctx.lineWidth = 1.2;
  ctx.beginPath();
  clean.forEach((v, i) => {
    const x = (i / (clean.length - 1)) * (w - 2) + 1;
    const y = h - 2 - (v / max) * (h - 4);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
}
