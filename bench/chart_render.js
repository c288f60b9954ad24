// Run by WebDriver's execute/async on a dashboard page (bench/dashboard_render.py
// and crates/jaga-server/tests/dashboard_browser.rs): the dashboard's chart
// code draws 7 days of minute rollups for 30 containers (302,400 points) on
// a 1200 px canvas, ten times; answers { runs: [ms...], points } or { error }.
const done = arguments[arguments.length - 1];
import('/assets/chart.js').then(({ Chart }) => {
  const canvas = document.createElement('canvas');
  canvas.style.width = '1200px';
  canvas.style.height = '300px';
  document.body.append(canvas);
  const n = 7 * 1440, start = Date.now() - 7 * 86400e3;
  const xs = Array.from({ length: n }, (_, i) => start + i * 60e3);
  const ys = Array.from({ length: 30 }, (_, k) => {
    let v = 10 + k;
    return Array.from({ length: n }, () => (v = Math.max(0, v + Math.random() - 0.5)));
  });
  const chart = new Chart(canvas, { series: ys.map((_, k) => `c${k}`), format: (v) => v.toFixed(0) });
  const runs = [];
  for (let r = 0; r < 10; r++) {
    const t = performance.now();
    chart.setData(xs, ys, { from: xs[0], to: xs[n - 1] });
    runs.push(Math.round((performance.now() - t) * 10) / 10);
  }
  done({ runs, points: Number(canvas.dataset.points) * ys.length });
}).catch((e) => done({ error: String(e) }));
