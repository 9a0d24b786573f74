// Desktop benchmark: start to first rendered work-order list with 10,000 orders on
// the device, idle memory (PSS summed over the app and its WebKit processes) beside an
// empty Tauri window built from the same dependencies, and search latency over the
// 10,000 orders (keystroke to rendered result), and the dispatcher's desk with 500 open
// items (click to its first page rendered; the data directory is made by `cargo bench -p
// outpost-tests --bench desk` with BENCH_DESK_DIR). Run by scripts/bench-desktop.sh, which
// builds the binaries and starts Xvfb; prints a table and writes
// target/bench-desktop.json.
//
// Start times are with a warm page cache (the binary and the database were just read);
// BENCH_DROP_CACHES=1 (root) drops the caches before each start for a truly cold one.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, existsSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { WebDriver, sleep } from './webdriver.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = resolve(process.env.OUTPOST_DESKTOP_BIN ?? join(root, 'target/release/outpost-desktop'));
const emptyBin = resolve(process.env.EMPTY_WINDOW_BIN ?? join(root, 'target/release/examples/empty_window'));
const ORDERS = Number(process.env.BENCH_ORDERS ?? 10_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 8_000);
const port = Number(process.env.E2E_DRIVER_PORT ?? 4444);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function descendants(pid) {
  const children = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
    } catch {
      /* gone */
    }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]) ?? []));
  return out;
}

/** PSS and RSS (MiB) summed over `pid` and every process under it. */
function memory(pid) {
  let pss = 0;
  let rss = 0;
  const procs = [];
  const per = {};
  for (const p of descendants(pid)) {
    try {
      const s = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
      const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0);
      pss += kb('Pss');
      rss += kb('Rss');
      const comm = readFileSync(`/proc/${p}/comm`, 'utf8').trim();
      procs.push(comm);
      per[comm] = +((per[comm] ?? 0) + kb('Pss') / 1024).toFixed(1);
    } catch {
      /* gone or kernel thread */
    }
  }
  return { pss_mib: +(pss / 1024).toFixed(1), rss_mib: +(rss / 1024).toFixed(1), procs, pss_mib_per_process: per };
}

function dropCaches() {
  if (process.env.BENCH_DROP_CACHES) {
    try {
      writeFileSync('/proc/sys/vm/drop_caches', '3');
    } catch (e) {
      console.warn(`cannot drop caches: ${e.message}`);
    }
  }
}

function launch(file, env) {
  const p = spawn(file, [], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (out += d));
  return { p, out: () => out };
}

function kill(p) {
  try {
    process.kill(-p.pid, 'SIGTERM');
  } catch {
    /* gone */
  }
}

async function waitOutput(proc, re, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = re.exec(proc.out());
    if (m) return m;
    if (proc.p.exitCode !== null) throw new Error(`exited early:\n${proc.out()}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}:\n${proc.out()}`);
    await sleep(20);
  }
}

const home = mkdtempSync(join(tmpdir(), 'outpost-bench-'));
const env = {
  ...process.env,
  HOME: home,
  XDG_DATA_HOME: join(home, 'xdg-data'),
  XDG_CONFIG_HOME: join(home, 'xdg-config'),
  XDG_CACHE_HOME: join(home, 'xdg-cache'),
  OUTPOST_DATA_DIR: join(home, 'data'),
  OUTPOST_DB_KEY: randomBytes(32).toString('hex'),
  OUTPOST_DEMO_ORDERS: String(ORDERS),
  DBUS_SESSION_BUS_ADDRESS: '',
  NO_COLOR: '1',
};
const result = { orders: ORDERS, runs: RUNS, idle_ms: IDLE_MS };

try {
  // BENCH_ONLY=desk runs part 4 alone.
  if (process.env.BENCH_ONLY !== 'desk') {
  // 1. Seed 10,000 orders through the first-run screen and measure search, via WebDriver.
  const driver = spawn(process.env.TAURI_DRIVER ?? 'tauri-driver', ['--port', String(port)], {
    env,
    detached: true,
    stdio: 'ignore',
  });
  const wd = new WebDriver(`http://127.0.0.1:${port}`);
  try {
    await wd.start(bin);
    await wd.type(await wd.waitFor('[data-testid="demo-name"]', 30_000), 'Bench');
    await wd.click(await wd.find('[data-testid="start-demo"]'));
    await wd.waitFor('[data-testid="order-row"]', 120_000);
    const searches = [];
    for (const q of ['boiler', 'nordvik 12', 'pump seal #9', 'hvac', 'zzz-no-match']) {
      // From the keystroke until the list shows the answer to it (the page comes from
      // the device's database through IPC), then painted: the result-count paragraph
      // carries the search text its rows answer.
      const ms = await wd.exec(
        `const input = document.querySelector('[data-testid="order-search"]');
         const count = document.querySelector('[data-testid="result-count"]');
         input.value = ''; input.dispatchEvent(new Event('input', { bubbles: true }));
         const shown = (q) => new Promise((resolve) => {
           if (count.dataset.query === q) return resolve();
           const seen = new MutationObserver(() => {
             if (count.dataset.query === q) { seen.disconnect(); resolve(); }
           });
           seen.observe(count, { attributes: true, attributeFilter: ['data-query'] });
         });
         return shown('').then(() => new Promise((resolve) => requestAnimationFrame(() => {
           const t0 = performance.now();
           input.value = arguments[0];
           input.dispatchEvent(new Event('input', { bubbles: true }));
           shown(arguments[0]).then(() => requestAnimationFrame(() => resolve(performance.now() - t0)));
         })));`,
        [q],
      );
      searches.push(+Number(ms).toFixed(1));
    }
    result.search_ms = { each: searches, median: median(searches), max: Math.max(...searches) };
  } finally {
    await wd.quit().catch(() => {});
    kill(driver);
    await sleep(1_000);
  }

  // 2. Start to first rendered list, and idle memory, RUNS times.
  const starts = [];
  const mems = [];
  let appOut = '';
  for (let i = 0; i < RUNS; i++) {
    dropCaches();
    const t0 = performance.now();
    const app = launch(bin, env);
    const m = await waitOutput(app, /ui-ready.*screen="?orders"?.*elapsed_ms=(\d+)/, 60_000);
    const wall = performance.now() - t0;
    starts.push({ app_ms: Number(m[1]), wall_ms: Math.round(wall) });
    await sleep(IDLE_MS);
    mems.push(memory(app.p.pid));
    appOut = app.out();
    kill(app.p);
    await sleep(1_000);
  }
  result.start_to_list = {
    runs: starts,
    median_wall_ms: median(starts.map((s) => s.wall_ms)),
    median_app_ms: median(starts.map((s) => s.app_ms)),
  };
  result.app_idle = { runs: mems, median_pss_mib: median(mems.map((m) => m.pss_mib)) };

  // 3. The empty window, same dependencies, same run: as Tauri makes it (the
  //    baseline), and in the rendering mode the app chose on this machine (what the
  //    app's own content costs on top).
  // The app logs its rendering choice at start (src-tauri/src/rendering.rs).
  const appCompositingOff = /compositing_turned_off=true/.test(appOut);
  const measureEmpty = async (extraEnv) => {
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      const e = launch(emptyBin, { ...env, ...extraEnv });
      await waitOutput(e, /empty-window-ready/, 60_000);
      await sleep(IDLE_MS);
      runs.push(memory(e.p.pid));
      kill(e.p);
      await sleep(1_000);
    }
    return { runs, median_pss_mib: median(runs.map((m) => m.pss_mib)) };
  };
  if (existsSync(emptyBin)) {
    result.empty_idle = await measureEmpty({});
    result.pss_ratio = +(result.app_idle.median_pss_mib / result.empty_idle.median_pss_mib).toFixed(2);
    result.app_compositing_off = appCompositingOff;
    if (appCompositingOff) {
      result.empty_idle_same_rendering = await measureEmpty({ WEBKIT_DISABLE_COMPOSITING_MODE: '1' });
      result.pss_ratio_same_rendering = +(
        result.app_idle.median_pss_mib / result.empty_idle_same_rendering.median_pss_mib
      ).toFixed(2);
    }
  } else {
    result.empty_idle = `missing ${emptyBin}`;
  }
  }

  // 4. The dispatcher's desk, 500 open items: from the click on "Desk" until its first
  //    page (50 items and the oldest one side by side) is painted.
  const deskDir = process.env.BENCH_DESK_DIR;
  if (deskDir && existsSync(join(deskDir, 'bench.key'))) {
    const deskEnv = {
      ...env,
      OUTPOST_DATA_DIR: deskDir,
      OUTPOST_DB_KEY: readFileSync(join(deskDir, 'bench.key'), 'utf8').trim(),
      OUTPOST_DEMO_ORDERS: '',
    };
    const driver = spawn(process.env.TAURI_DRIVER ?? 'tauri-driver', ['--port', String(port)], {
      env: deskEnv,
      detached: true,
      stdio: 'ignore',
    });
    const wd = new WebDriver(`http://127.0.0.1:${port}`);
    try {
      await wd.start(bin);
      await wd.waitFor('[data-testid="nav-desk"]', 60_000);
      const renders = [];
      for (let i = 0; i < 7; i++) {
        const ms = await wd.exec(
          `const nav = document.querySelector('[data-testid="nav-desk"]');
           const away = document.querySelector('nav button');
           away.click();
           return new Promise((resolve) => setTimeout(() => requestAnimationFrame(() => {
             const t0 = performance.now();
             nav.click();
             const done = () => document.querySelectorAll('[data-testid="desk-item"]').length >= 50
               && document.querySelector('[data-testid="desk-detail"]');
             const wait = () => done() ? requestAnimationFrame(() => resolve(performance.now() - t0)) : setTimeout(wait, 1);
             wait();
           }), 300));`,
        );
        renders.push(+Number(ms).toFixed(1));
      }
      const first = renders.shift(); // the first includes WebKit's first layout of the screen
      result.desk_first_page_ms = { items: 500, first, each: renders, median: median(renders), max: Math.max(...renders) };
    } finally {
      await wd.quit().catch(() => {});
      kill(driver);
      await sleep(1_000);
    }
  } else {
    result.desk_first_page_ms = 'BENCH_DESK_DIR not prepared (scripts/bench-desktop.sh makes it)';
  }
} finally {
  rmSync(home, { recursive: true, force: true });
}

mkdirSync(join(root, 'target'), { recursive: true });
writeFileSync(join(root, 'target/bench-desktop.json'), JSON.stringify(result, null, 2));
if (result.start_to_list) {
console.log(`orders on the device:            ${ORDERS}`);
console.log(`start to first rendered list:    median ${result.start_to_list.median_wall_ms} ms wall (app-reported ${result.start_to_list.median_app_ms} ms; target < 1500)`);
console.log(`search keystroke to render:      median ${result.search_ms.median} ms, max ${result.search_ms.max} ms (target < 50)`);
console.log(`idle PSS, app + WebKit:          ${result.app_idle.median_pss_mib} MiB (RSS ${result.app_idle.runs[0].rss_mib} MiB; ${JSON.stringify(result.app_idle.runs[0].pss_mib_per_process)})`);
if (typeof result.empty_idle === 'object') {
  console.log(`idle PSS, empty Tauri window:    ${result.empty_idle.median_pss_mib} MiB (${JSON.stringify(result.empty_idle.runs[0].pss_mib_per_process)})`);
  console.log(`ratio:                           ${result.pss_ratio}x (target <= 1.3)`);
}
if (typeof result.empty_idle_same_rendering === 'object') {
  console.log(`the app painted without GPU compositing (no GPU here); the empty window the same way:`);
  console.log(`idle PSS, empty window, same:    ${result.empty_idle_same_rendering.median_pss_mib} MiB (${JSON.stringify(result.empty_idle_same_rendering.runs[0].pss_mib_per_process)})`);
  console.log(`ratio, same rendering:           ${result.pss_ratio_same_rendering}x`);
}
}
if (typeof result.desk_first_page_ms === 'object') {
  console.log(`desk, 500 open items, first page: median ${result.desk_first_page_ms.median} ms, max ${result.desk_first_page_ms.max} ms (first view ${result.desk_first_page_ms.first} ms; target < 200)`);
}
