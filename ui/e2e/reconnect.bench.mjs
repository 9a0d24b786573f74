// The desktop's reconnect (issue 24 item 4): a technician's device that created and
// completed 1,000 orders offline (each with a note, a part and a distinct signature;
// prepared by `BENCH_RECONNECT_DIR=DIR cargo bench -p outpost-tests --bench reconnect`)
// is open in the desktop app (release build, real window under Xvfb, WebDriver) on the
// order list when its link to the server comes back. Measured, per round:
//
//  (a) search latency on the order list, keystroke to rendered result (as ui/e2e/bench.mjs
//      measures it: the input's value changes and an `input` event is sent, then the
//      time until the list shows the answer to that text and the next frame is painted),
//      repeated back to back WHILE the sync runs, and the same with no sync running
//      (before the link returns: offline; and after the sync: online, idle);
//  (b) what the sync indicator (`[data-testid^="sync-"]`) showed during the sync: every
//      change of its text, with its time;
//  (c) the sync's duration in the app: link restored (and the first connection through
//      it) until the indicator says "Online" and "Nothing waiting".
//
// The server (`outpost-server serve` on the prepared database) is reached through a TCP
// relay listening where the device signed in (rig.mjs), cut when the app starts. Each
// round starts from fresh copies of the prepared server database and device.
//
//   BENCH_RECONNECT_DIR=DIR BENCH_ROUNDS=3 node ui/e2e/reconnect.bench.mjs [--quick]
//
// Run by scripts/bench-desktop-reconnect.sh (which builds, prepares and starts Xvfb).
// Prints a summary, `bench-result:` lines for docs/benchmarks.md, and writes the whole
// record (every latency, every indicator change) to <DIR>/reconnect-desktop.json.
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebDriver, sleep, startDriver, stopGroup } from './webdriver.mjs';
import { appEnv, desktopBin, driverBin, driverPort, relay, serve } from './rig.mjs';

const quick = process.argv.includes('--quick');
const dir = process.env.BENCH_RECONNECT_DIR;
if (!dir || !existsSync(join(dir, 'bench.json'))) {
  console.error('BENCH_RECONNECT_DIR must name a directory prepared by `cargo bench -p outpost-tests --bench reconnect` (scripts/bench-desktop-reconnect.sh)');
  process.exit(2);
}
if (!process.env.DISPLAY) {
  console.error('DISPLAY is not set: run under Xvfb (scripts/bench-desktop-reconnect.sh)');
  process.exit(2);
}
const prepared = JSON.parse(readFileSync(join(dir, 'bench.json'), 'utf8'));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (quick ? 1 : 3));
// Searches with no sync running, before the link returns and after the sync.
const IDLE_SEARCHES = Number(process.env.BENCH_IDLE_SEARCHES ?? (quick ? 10 : 60));
// Pause between two searches while the sync runs (a quick typist's pace is ~100 ms).
const GAP_MS = Number(process.env.BENCH_SEARCH_GAP_MS ?? 20);
const SYNC_TIMEOUT_MS = 300_000;
// Each text differs from the one before, so each is a change of the search box.
const QUERIES = ['seal', 'harbour', 'follow-up 0-1', 'pump tested', 'zzz-no-match', 'bakery', 'replace the', ''];

const percentile = (xs, p) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const stats = (xs) => ({
  n: xs.length,
  p50: percentile(xs, 50),
  p99: percentile(xs, 99),
  max: xs.length ? Math.max(...xs) : null,
});

// In the page: a search loop (window.__bench.search) and a recorder of the sync
// indicator's text (window.__bench.indicator), both started by `install`.
const INSTALL = `
  const b = (window.__bench = { searches: [], indicator: [], events: [], stop: false, running: false });
  // What the shell sent (each \`sync-status\` event's progress), beside what was shown.
  const T = window.__TAURI_INTERNALS__;
  T.invoke('plugin:event|listen', {
    event: 'sync-status',
    target: { kind: 'Any' },
    handler: T.transformCallback((e) => {
      const p = e.payload.progress;
      b.events.push({ at: Date.now(), connectivity: e.payload.connectivity, pending: e.payload.pending, progress: p ? p.label + ' ' + p.done + '/' + p.total : null });
    }),
  });
  const text = (id) => document.querySelector('[data-testid="' + id + '"]')?.textContent.trim() ?? null;
  const read = () => ({
    connection: text('sync-connection'),
    progress: document.querySelector('.sync-progress .progress-label')?.textContent.trim() ?? null,
    progress_value: document.querySelector('[data-testid="sync-progress"]')?.getAttribute('value') ?? null,
    progress_max: document.querySelector('[data-testid="sync-progress"]')?.getAttribute('max') ?? null,
    pending: text('sync-pending'),
    failed: text('sync-failed-count'),
    conflicts: text('sync-conflict-count'),
    last: text('sync-last'),
  });
  let last = '';
  const record = () => {
    const r = read();
    const key = JSON.stringify(r);
    if (key !== last) {
      last = key;
      b.indicator.push({ at: Date.now(), ...r });
    }
  };
  record();
  const section = document.querySelector('.sync-indicator');
  new MutationObserver(record).observe(section, { subtree: true, childList: true, characterData: true, attributes: true });
  // One keystroke: from the input event until the list answers that text, then painted.
  b.one = (q) => new Promise((resolve) => {
    const input = document.querySelector('[data-testid="order-search"]');
    const count = document.querySelector('[data-testid="result-count"]');
    requestAnimationFrame(() => {
      const at = Date.now();
      const t0 = performance.now();
      input.value = q;
      input.dispatchEvent(new Event('input', { bubbles: true }));
      const done = () => requestAnimationFrame(() => resolve({ at, q, ms: +(performance.now() - t0).toFixed(1) }));
      if (count.dataset.query === q) return done();
      const seen = new MutationObserver(() => {
        if (count.dataset.query === q) { seen.disconnect(); done(); }
      });
      seen.observe(count, { attributes: true, attributeFilter: ['data-query'] });
    });
  });
  b.loop = async (queries, gap) => {
    b.running = true;
    let i = 0;
    while (!b.stop) {
      b.searches.push(await b.one(queries[i++ % queries.length]));
      await new Promise((r) => setTimeout(r, gap));
    }
    b.running = false;
  };
  return true;`;

async function idleSearches(wd, n) {
  return wd.exec(
    `const [queries, n] = arguments;
     return (async () => {
       const out = [];
       // Start from a text none of the queries is, so the first is a change.
       await window.__bench.one('warm-up');
       for (let i = 0; i < n; i++) out.push((await window.__bench.one(queries[i % queries.length])).ms);
       return out;
     })();`,
    [QUERIES, n],
  );
}

async function round(r) {
  const work = mkdtempSync(join(tmpdir(), 'outpost-bench-reconnect-'));
  const db = join(work, 'server.db');
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(prepared.server_db + suffix)) cpSync(prepared.server_db + suffix, db + suffix);
  }
  const deviceDir = join(work, 'device');
  cpSync(prepared.device_dir, deviceDir, { recursive: true });
  const server = await serve(`sqlite:${db}`);
  let firstConnection = null;
  let restoredAt = null;
  const listenPort = Number(new URL(prepared.signed_in_to).port);
  const link = await relay(server.port, {
    listenPort,
    cut: true,
    onConnect: () => {
      if (restoredAt !== null && firstConnection === null) firstConnection = Date.now();
    },
  });
  const env = {
    ...appEnv(work, link.url),
    OUTPOST_DATA_DIR: deviceDir,
    OUTPOST_DB_KEY: prepared.key,
  };
  const driver = startDriver(driverBin, driverPort, env);
  const wd = new WebDriver(`http://127.0.0.1:${driverPort}`);
  const out = { round: r, load: loadavg().map((l) => +l.toFixed(2)) };
  try {
    await wd.start(desktopBin);
    await wd.waitFor('[data-testid="order-row"]', 60_000);
    // The completed tab: the orders this device finished offline, which the sync sends.
    await wd.exec(`document.getElementById('tab-completed').click(); return true;`);
    await wd.waitUntil(
      `return document.querySelector('[data-testid="result-count"]')?.dataset.tab === 'completed'`,
      [],
      20_000,
      'the completed tab is shown',
    );
    await wd.exec(INSTALL);
    out.before = await wd.exec(`return window.__bench.indicator.at(-1)`);

    // (a) with no sync running: the link is cut (the app is offline).
    out.idle_offline_ms = await idleSearches(wd, IDLE_SEARCHES);

    // The link returns; searches run back to back until the indicator says synced.
    await wd.exec(`window.__bench.searches = []; window.__bench.loop(arguments[0], arguments[1]); return true;`, [QUERIES, GAP_MS]);
    await sleep(200);
    restoredAt = Date.now();
    link.restore();
    const deadline = Date.now() + SYNC_TIMEOUT_MS;
    let syncedAt = null;
    while (syncedAt === null) {
      syncedAt = await wd.exec(
        `const [from] = arguments;
         const s = window.__bench.indicator.find((s) => s.at >= from && s.connection === 'Online' && s.pending === 'Nothing waiting');
         return s ? s.at : null;`,
        [restoredAt],
      );
      if (syncedAt === null) {
        if (Date.now() > deadline) throw new Error(`not synced after ${SYNC_TIMEOUT_MS} ms: ${JSON.stringify(await wd.exec(`return window.__bench.indicator.at(-1)`))}`);
        await sleep(100);
      }
    }
    await wd.exec(`window.__bench.stop = true; return true;`);
    await wd.waitUntil(`return !window.__bench.running`, [], 20_000, 'the search loop stops');
    const searches = await wd.exec(`return window.__bench.searches`);
    out.during_sync_ms = searches.filter((s) => s.at >= restoredAt && s.at < syncedAt).map((s) => s.ms);
    const indicator = await wd.exec(`return window.__bench.indicator`);
    out.indicator = indicator.filter((s) => s.at >= restoredAt).map((s) => ({ ...s, t_ms: s.at - restoredAt }));
    out.events = (await wd.exec(`return window.__bench.events`)).filter((s) => s.at >= restoredAt).map((s) => ({ ...s, t_ms: s.at - restoredAt }));
    out.restored_to_synced_ms = syncedAt - restoredAt;
    out.first_connection_to_synced_ms = firstConnection === null ? null : syncedAt - firstConnection;
    const pushedAt = out.indicator.find((s) => s.pending === 'Nothing waiting');
    out.restored_to_nothing_waiting_ms = pushedAt ? pushedAt.t_ms : null;
    out.progress_shown = [...new Set(out.indicator.map((s) => s.progress).filter(Boolean).map((p) => p.replace(/[\d,]+/g, 'N')))];
    out.progress_samples = out.indicator.filter((s) => s.progress).length;
    // The push's count as the window showed it, and the longest the indicator stood still.
    out.push_counts_shown = [...new Set(out.indicator.map((s) => /^Sending changes: (\d+)/.exec(s.progress ?? '')?.[1]).filter(Boolean))].map(Number);
    const syncing = out.indicator.filter((s) => s.at <= syncedAt);
    out.longest_unchanged_ms = Math.max(0, ...syncing.slice(1).map((s, i) => s.at - syncing[i].at));

    // (a) again with no sync running: online, after the sync.
    await sleep(500);
    out.idle_online_ms = await idleSearches(wd, IDLE_SEARCHES);
    out.after = await wd.exec(`return window.__bench.indicator.at(-1)`);
  } finally {
    await wd.quit().catch(() => {});
    stopGroup(driver.p);
    await link.close();
    await server.stop();
    await sleep(500);
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}

const rounds = [];
for (let r = 0; r < ROUNDS; r++) {
  const o = await round(r);
  rounds.push(o);
  console.log(
    `round ${r} (load ${o.load.join(' ')}): synced ${o.restored_to_synced_ms} ms after the link returned (${o.first_connection_to_synced_ms} ms after its first connection; "Nothing waiting" at ${o.restored_to_nothing_waiting_ms} ms); ` +
      `search during the sync ${JSON.stringify(stats(o.during_sync_ms))}, offline ${JSON.stringify(stats(o.idle_offline_ms))}, online idle ${JSON.stringify(stats(o.idle_online_ms))}; ` +
      `indicator: ${o.indicator.length} changes, progress shown ${o.progress_samples} times: ${JSON.stringify(o.progress_shown)}; push counts shown ${JSON.stringify(o.push_counts_shown)}; longest unchanged ${o.longest_unchanged_ms} ms`,
  );
}

const all = (k) => rounds.flatMap((o) => o[k]);
const during = stats(all('during_sync_ms'));
const offline = stats(all('idle_offline_ms'));
const online = stats(all('idle_online_ms'));
const durations = rounds.map((o) => o.restored_to_synced_ms).sort((a, b) => a - b);
const fromConnection = rounds.map((o) => o.first_connection_to_synced_ms).sort((a, b) => a - b);
const medianOf = (xs) => xs[Math.floor(xs.length / 2)];
const progressShown = [...new Set(rounds.flatMap((o) => o.progress_shown))];
const record = { prepared, rounds: ROUNDS, gap_ms: GAP_MS, queries: QUERIES, summary: { during, offline, online, durations, fromConnection, progressShown }, runs: rounds };
writeFileSync(join(dir, 'reconnect-desktop.json'), JSON.stringify(record, null, 2));

// A sample of what the indicator said (first round): at most 12 changes, spread out.
const shown = rounds[0].indicator;
const step = Math.max(1, Math.ceil(shown.length / 12));
console.log('the sync indicator during the sync (round 0), ms after the link returned:');
for (let i = 0; i < shown.length; i += step) {
  const s = shown[i];
  console.log(`  +${s.t_ms} ms  ${s.connection} | ${s.progress ?? '(no progress bar)'} | ${s.pending}${s.failed ? ' | ' + s.failed : ''}${s.conflicts ? ' | ' + s.conflicts : ''}`);
}
const last = shown.at(-1);
console.log(`  +${last.t_ms} ms  ${last.connection} | ${last.progress ?? '(no progress bar)'} | ${last.pending}`);

const orders = prepared.orders;
const f = (s) => `p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms (${s.n} searches)`;
const command = quick ? 'scripts/bench-desktop-reconnect.sh --quick' : 'scripts/bench-desktop-reconnect.sh';
const group = 'Desktop reconnect (issue 24 item 4)';
const result = (figure) => console.log(`bench-result: ${JSON.stringify({ group, command, quick, ...figure })}`);
result({
  id: 'desktop-reconnect-search',
  figure: `Order-list search, keystroke to rendered result, in the desktop app WHILE it syncs the reconnect of ${orders} orders completed offline (${ROUNDS} round(s))`,
  outpost: `during the sync: **${f(during)}**; no sync running: offline ${f(offline)}, online ${f(online)}`,
  target: 'under 50 ms',
  met: during.p99 !== null && during.p99 < 50,
});
result({
  id: 'desktop-reconnect-indicator',
  figure: `What the sync indicator showed during that sync`,
  outpost: progressShown.length
    ? `progress shown: ${progressShown.map((p) => `"${p}"`).join(', ')}; the push's count shown at ${rounds.map((o) => o.push_counts_shown.length).join(', ')} different values per round; the indicator stood still for at most ${rounds.map((o) => o.longest_unchanged_ms).join(', ')} ms per round`
    : 'no progress shown (only the connection state and the count of changes waiting)',
  target: "shows the push's progress",
  met: rounds.every((o) => o.push_counts_shown.length >= (quick ? 1 : 3)),
});
result({
  id: 'desktop-reconnect-duration',
  figure: `The sync's duration in the desktop app: link restored → indicator "Online, Nothing waiting" (${orders} orders)`,
  outpost: `**${medianOf(durations)} ms** median of ${durations.length} (range ${durations[0]}–${durations.at(-1)}); from the first connection through the restored link: ${medianOf(fromConnection)} ms`,
});
