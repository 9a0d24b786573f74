// The desktop app's idle cost (issue 25 item 3): the release outpost-desktop signed in
// as tech1 against a real outpost-server on loopback, online, with nothing to do, for
// IDLE_MINUTES (default 10) with the engine's default timers. Measured from /proc: the
// CPU time of the app's processes (outpost-desktop and the WebKit processes it starts)
// as an average share of one core, their context switches per minute (each is a
// thread waking up, or being put off the CPU), and, from the server's request log, the
// engine's requests per hour and the shortest gap between two passes.
//
// IDLE_HIDDEN=1: the window closed into the tray before measuring. That needs a D-Bus
// session bus (the tray is installed only with one), an XEmbed tray host on the display
// (libayatana-appindicator falls back to an XEmbed icon when no StatusNotifier host
// answers) and a window manager to deliver the close (`wmctrl -c`):
// `IDLE_HIDDEN=1 make bench-idle` starts them (scripts/bench-idle.sh).
//
// Run: `make bench-idle` (or, after a release build, under Xvfb:
// `OUTPOST_DESKTOP_BIN=target/release/outpost-desktop node ui/e2e/idle.bench.mjs`).
// Not a test: it prints figures for docs/benchmarks.md.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebDriver, sleep, startDriver, stopGroup } from './webdriver.mjs';
import { appEnv, desktopBin, driverBin, driverPort, signIn, startServer } from './rig.mjs';

const minutes = Number(process.env.IDLE_MINUTES ?? 10);
const hidden = process.env.IDLE_HIDDEN === '1';

/** Ids of the app's windows that are mapped (shown), by title. */
function shownWindows() {
  const r = spawnSync('xdotool', ['search', '--onlyvisible', '--name', '^Outpost$'], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}
const TICKS = 100; // USER_HZ: /proc counts CPU time in 1/100 s on Linux

/** Every process id whose parent chain reaches `root`, `root` included. */
function tree(root) {
  const parent = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  const out = [];
  for (const pid of parent.keys()) {
    for (let p = pid; p > 1; p = parent.get(p) ?? 0) {
      if (p === root) {
        out.push(pid);
        break;
      }
    }
  }
  return out;
}

/** The app's processes: outpost-desktop and everything below it. */
function appPids() {
  const roots = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0')[0] === desktopBin) roots.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return roots.flatMap(tree);
}

/** CPU ticks and context switches (all threads) of `pids`, with their names and ticks by name. */
function sample(pids) {
  let ticks = 0;
  let switches = 0;
  const names = new Set();
  const byName = {};
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      names.add(name);
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const t = Number(f[11]) + Number(f[12]); // utime, stime
      ticks += t;
      byName[name] = (byName[name] ?? 0) + t;
      for (const t of readdirSync(`/proc/${pid}/task`)) {
        const s = readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
        for (const m of s.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)/gm)) switches += Number(m[1]);
      }
    } catch {
      /* gone */
    }
  }
  return { ticks, switches, names: [...names].sort(), byName };
}

const home = mkdtempSync(join(tmpdir(), 'outpost-idle-'));
const server = await startServer(home, ['--items', '200']);
const env = appEnv(home, server.url, 'tech1');
// The engine's own timers, as a technician's laptop runs them.
delete env.OUTPOST_SYNC_PERIOD_MS;
delete env.OUTPOST_PROBE_MAX_MS;
// The tray needs the session bus this script was started on.
if (hidden) env.DBUS_SESSION_BUS_ADDRESS = process.env.DBUS_SESSION_BUS_ADDRESS ?? '';
const driver = startDriver(driverBin, driverPort, env);
const wd = new WebDriver(`http://127.0.0.1:${driverPort}`);
try {
  await wd.start(desktopBin);
  await signIn(wd, 'tech1');
  // Let the first sync (the inventory after the orders) and the window settle.
  await sleep(30_000);
  if (hidden) {
    if (shownWindows().length === 0) throw new Error('the window is not shown before closing it');
    const r = spawnSync('wmctrl', ['-c', 'Outpost'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`wmctrl -c Outpost: ${r.stderr}`);
    await sleep(3_000);
    if (shownWindows().length !== 0) throw new Error('closing the window did not hide it (no tray?)');
  }
  const pids = appPids();
  if (pids.length === 0) throw new Error(`no ${desktopBin} process found`);
  const logStart = server.log().length;
  const a = sample(pids);
  const t0 = Date.now();
  await sleep(minutes * 60_000);
  const b = sample(pids);
  const secs = (Date.now() - t0) / 1000;
  const times = server
    .log()
    .slice(logStart)
    .split('\n')
    .map((l) => l.replace(/\x1b\[[0-9;]*m/g, ''))
    .filter((l) => l.includes('request method='))
    .map((l) => Date.parse(l.slice(0, l.indexOf(' '))));
  // A pass is a burst of requests; the gap between passes is what the interval bounds.
  const passes = times.filter((t, i) => i === 0 || t - times[i - 1] > 1_000);
  const gaps = passes.slice(1).map((t, i) => (t - passes[i]) / 1000);
  const cpu = ((b.ticks - a.ticks) / TICKS / secs) * 100;
  if (hidden && shownWindows().length !== 0) throw new Error('the window came back during the run');
  console.log(`idle, window ${hidden ? 'hidden in the tray' : 'shown'}, ${(secs / 60).toFixed(1)} min, processes: ${a.names.join(', ')}`);
  console.log(`  CPU: ${cpu.toFixed(3)} % of one core on average (${((b.ticks - a.ticks) / TICKS).toFixed(2)} s in ${secs.toFixed(0)} s; target < 0.5 %)`);
  console.log(
    `  by process: ${Object.keys(b.byName)
      .map((n) => `${n} ${((((b.byName[n] ?? 0) - (a.byName[n] ?? 0)) / TICKS / secs) * 100).toFixed(3)} %`)
      .join(', ')}`,
  );
  console.log(`  context switches: ${(((b.switches - a.switches) / secs) * 60).toFixed(0)} per minute (all threads)`);
  console.log(
    `  engine: ${times.length} requests, ${passes.length} passes, ${((times.length / secs) * 3600).toFixed(0)} requests per hour; shortest gap between passes ${gaps.length ? Math.min(...gaps).toFixed(1) : '—'} s (interval 30 s)`,
  );
} finally {
  await wd.quit().catch(() => {});
  stopGroup(driver.p);
  await server.stop();
  rmSync(home, { recursive: true, force: true });
}
