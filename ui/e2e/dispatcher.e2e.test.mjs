// Real-window end-to-end test of the dispatcher's window (issue 21): the release
// binaries, a real outpost-server on loopback, Xvfb, tauri-driver + WebKitWebDriver.
//
// Scenario: two technicians on the `outpost` CLI — tech2's laptop synced "two days
// ago", tech1's has a completion the server refused (a failed sync) — and a dispatcher
// in the window at 1200 × 800: the first screen is the dispatcher's queue, the
// navigation is on one line, the Fleet screen lists tech2's laptop first with "Not seen
// for 2 days" and tech1's with its failed sync, and a long e-mail address in an order's
// Job card wraps inside the card. Screenshots go to target/e2e-screenshots/.
//
// "Two days ago": the release server has no test clock, so once tech2 has synced the
// server is stopped and that device's times in its database are moved back by 48 hours
// with the sqlite3 shell (the same columns the server writes; nothing else changes).
// The long e-mail address is written into one order's stored body the same way, before
// the server first starts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { WebDriver, sleep, startDriver, stopGroup } from './webdriver.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = resolve(process.env.OUTPOST_DESKTOP_BIN ?? join(root, 'target/release/outpost-desktop'));
const serverBin = join(dirname(bin), 'outpost-server');
const cliBin = join(dirname(bin), 'outpost');
const shots = join(root, 'target/e2e-screenshots');
const driverBin = process.env.TAURI_DRIVER ?? 'tauri-driver';
const port = Number(process.env.E2E_DRIVER_PORT ?? 4444);
const LONG_EMAIL = 'facilities.management.department.north-region-maintenance-contracts@very-long-customer-domain.example.com';
const TWO_DAYS_US = 2 * 24 * 3600 * 1_000_000;

// A 1×1 PNG: the customer's signature for tech1's completion.
const PNG_1X1 = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415478' +
    '9c63f8cfc00000030101' +
    '00c9fe92ef0000000049454e44ae426082',
  'hex',
);

function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
    s.on('error', rej);
  });
}

function sqlite(dbFile, statement) {
  const r = spawnSync('sqlite3', [dbFile, statement], { encoding: 'utf8' });
  assert.equal(r.status, 0, `sqlite3: ${r.stderr}`);
  return r.stdout.trim();
}

test('the dispatcher at 1200 × 800: the queue first, one line of navigation, the fleet worst first (real window)', { timeout: 420_000 }, async (t) => {
  for (const b of [bin, serverBin, cliBin]) assert.ok(existsSync(b), `build it first: ${b} is missing`);
  assert.ok(process.env.DISPLAY, 'DISPLAY is not set: run under Xvfb (scripts/test-desktop.sh)');
  assert.equal(spawnSync('sqlite3', ['-version']).status, 0, 'the sqlite3 shell is needed (apt-get install sqlite3)');
  mkdirSync(shots, { recursive: true });
  const home = mkdtempSync(join(tmpdir(), 'outpost-e2e-dispatcher-'));
  const dbFile = join(home, 'server.db');
  const serverDb = `sqlite:${dbFile}`;
  const serverPort = await freePort();
  const serverUrl = `http://127.0.0.1:${serverPort}`;

  // --- the server, with one customer's long e-mail address --------------------------
  const seed = spawnSync(serverBin, ['seed', '--demo', '--items', '200', '--db', serverDb], { encoding: 'utf8' });
  assert.equal(seed.status, 0, seed.stderr);
  const longOrder = sqlite(dbFile, "SELECT id FROM orders WHERE assignee = 'tech3' ORDER BY number LIMIT 1");
  const longNumber = sqlite(dbFile, `SELECT number FROM orders WHERE id = '${longOrder}'`);
  sqlite(dbFile, `UPDATE orders SET body = json_set(body, '$.customer.email', '${LONG_EMAIL}') WHERE id = '${longOrder}'`);
  let server = null;
  const startServer = async () => {
    server = spawn(serverBin, ['serve', '--listen', `127.0.0.1:${serverPort}`, '--db', serverDb], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    server.stderr.on('data', (d) => (err += d));
    for (let i = 0; i < 100; i++) {
      try {
        const r = await fetch(`${serverUrl}/health`, { signal: AbortSignal.timeout(1_000) });
        if (r.ok) return;
      } catch {
        /* not yet */
      }
      await sleep(100);
    }
    throw new Error(`outpost-server did not start: ${err}`);
  };
  const stopServer = async () => {
    if (!server) return;
    const s = server;
    server = null;
    s.kill('SIGTERM');
    await new Promise((r) => (s.exitCode !== null ? r() : s.on('exit', r)));
  };
  await startServer();

  // --- technicians on the CLI -----------------------------------------------------
  const device = (name) => {
    const env = { ...process.env, OUTPOST_DB_KEY: randomBytes(32).toString('hex'), DBUS_SESSION_BUS_ADDRESS: '' };
    const dir = join(home, name);
    const run = (args, input) => spawnSync(cliBin, ['--data-dir', dir, ...args], { env, encoding: 'utf8', input });
    const ok = (args, input) => {
      const r = run(args, input);
      assert.equal(r.status, 0, `${name}: outpost ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    return { run, ok, json: (args) => JSON.parse(ok(['--json', ...args])) };
  };
  const tech2 = device('tech2');
  tech2.ok(['login', '--server', serverUrl, '--username', 'tech2', '--password-stdin'], 'outpost-demo\n');
  tech2.ok(['sync']);
  const tech1 = device('tech1');
  tech1.ok(['login', '--server', serverUrl, '--username', 'tech1', '--password-stdin'], 'outpost-demo\n');
  tech1.ok(['sync']);
  const office = device('office');
  office.ok(['login', '--server', serverUrl, '--username', 'dispatcher', '--password-stdin'], 'outpost-demo\n');
  office.ok(['sync']);

  // tech1 completes an order offline; meanwhile the office adds a required step: the
  // completion is refused when it arrives (a failed sync, kept for a person).
  const order = tech1.json(['orders', 'list']).find((o) => o.status === 'scheduled' && o.assignee === 'tech1');
  assert.ok(order, 'tech1 has a scheduled order');
  office.ok(['orders', 'edit', order.id, '--add-step', 'signoff=Office sign-off']);
  office.ok(['sync']);
  const required = order.checklist.filter((c) => c.required && !c.done).map((c) => c.id);
  if (required.length) tech1.ok(['orders', 'edit', order.id, ...required.flatMap((id) => ['--check', id])]);
  const sig = join(home, 'signature.png');
  writeFileSync(sig, PNG_1X1);
  tech1.ok(['orders', 'complete', order.id, '--signature', sig, '--signer', 'Kari Nordmann']);
  tech1.run(['sync']);
  assert.equal(tech1.json(['failed', 'list']).length, 1, 'tech1 has a failed sync');

  // tech2's laptop: last heard of two days ago.
  await stopServer();
  sqlite(
    dbFile,
    `UPDATE devices SET last_seen_us = last_seen_us - ${TWO_DAYS_US}, first_seen_us = first_seen_us - ${TWO_DAYS_US},
       last_push_us = last_push_us - ${TWO_DAYS_US}, last_pull_us = last_pull_us - ${TWO_DAYS_US},
       unsent_reported_us = unsent_reported_us - ${TWO_DAYS_US} WHERE username = 'tech2'`,
  );
  await startServer();

  // --- the dispatcher's window ------------------------------------------------------
  const env = {
    ...process.env,
    HOME: home,
    XDG_DATA_HOME: join(home, 'xdg-data'),
    XDG_CONFIG_HOME: join(home, 'xdg-config'),
    XDG_CACHE_HOME: join(home, 'xdg-cache'),
    OUTPOST_DATA_DIR: join(home, 'dispatcher'),
    OUTPOST_DB_KEY: randomBytes(32).toString('hex'),
    OUTPOST_SERVER_URL: serverUrl,
    OUTPOST_SYNC_PERIOD_MS: '2000',
    DBUS_SESSION_BUS_ADDRESS: '',
  };
  const driver = startDriver(driverBin, port, env);
  const wd = new WebDriver(`http://127.0.0.1:${port}`);
  t.after(async () => {
    await wd.quit().catch(() => {});
    stopGroup(driver.p);
    await stopServer();
    await sleep(300);
    if (!process.env.E2E_KEEP) rmSync(home, { recursive: true, force: true });
  });
  const shot = async (name) => writeFileSync(join(shots, `${name}.png`), await wd.settledScreenshot());

  await wd.start(bin);
  await wd.cmd('POST', wd.s('/window/rect'), { width: 1200, height: 800 });
  // First run: sign in as the dispatcher.
  const user = await wd.waitFor('[data-testid="signin-user"]', 30_000);
  await wd.type(user, 'dispatcher');
  await wd.type(await wd.find('[data-testid="signin-password"]'), 'outpost-demo');
  await wd.click(await wd.find('[data-testid="signin-submit"]'));

  // The dispatcher's first screen is the dispatcher's queue.
  await wd.waitUntil(
    `return document.querySelector('[data-testid="nav-dispatch"]')?.getAttribute('aria-current') === 'page'`,
    [],
    60_000,
    "the window opens on the dispatcher's queue",
  );
  const size = await wd.exec('return [window.innerWidth, window.innerHeight]');
  assert.ok(Math.abs(size[0] - 1200) <= 16, `the window is 1200 px wide (inner ${size})`);
  // Every tab of the navigation on one line, none cut off.
  const nav = await wd.exec(`
    const buttons = [...document.querySelectorAll('header.topbar nav button')];
    const nav = document.querySelector('header.topbar nav');
    return {
      tops: buttons.map((b) => Math.round(b.getBoundingClientRect().top)),
      labels: buttons.map((b) => b.textContent.trim()),
      scrolls: nav.scrollWidth > nav.clientWidth + 1,
      navWidths: [nav.scrollWidth, nav.clientWidth],
      bar: [...document.querySelector('header.topbar').children].map((c) => [c.className || c.tagName, Math.round(c.getBoundingClientRect().width)]),
    };`);
  assert.ok(nav.labels.includes('Fleet') && nav.labels.includes('Dispatch'), JSON.stringify(nav));
  assert.equal(new Set(nav.tops).size, 1, `the navigation is on one line: ${JSON.stringify(nav)}`);
  assert.equal(nav.scrolls, false, `no tab is cut off at 1200 px: ${JSON.stringify(nav)}`);
  await wd.waitFor('[data-testid="dispatch-row"]', 60_000);
  await shot('21-dispatcher-first-screen-1200x800');

  // The fleet, worst first.
  await wd.click(await wd.find('[data-testid="nav-fleet"]'));
  await wd.waitFor('[data-testid="fleet-row"]', 30_000);
  const rows = await wd.exec(`
    return [...document.querySelectorAll('[data-testid="fleet-row"]')].map((r) => ({
      user: r.dataset.user,
      stale: r.querySelector('[data-testid="fleet-stale"]')?.textContent ?? '',
      failed: r.querySelector('[data-testid="fleet-failed"]').textContent.trim(),
    }));`);
  assert.equal(rows[0].user, 'tech2', `the laptop unseen for two days first: ${JSON.stringify(rows)}`);
  assert.match(rows[0].stale, /Not seen for 2 days/);
  const t1 = rows.find((r) => r.user === 'tech1');
  assert.ok(t1 && t1.failed === '1', `tech1's device shows its failed sync: ${JSON.stringify(rows)}`);
  assert.equal(rows[1].user, 'tech1', `then the device with a failed sync: ${JSON.stringify(rows)}`);
  await shot('22-fleet-health');

  // A long e-mail address in the Job card wraps inside the card.
  await wd.click(await wd.find('[data-testid="nav-dispatch"]'));
  const search = await wd.waitFor('[data-testid="dispatch-search"]', 20_000);
  await wd.type(search, `#${longNumber}`);
  await wd.waitUntil(
    `return [...document.querySelectorAll('[data-testid="dispatch-row"]')].some((r) => r.dataset.orderId === '${longOrder}')`,
    [],
    20_000,
    `order #${longNumber} is listed`,
  );
  await wd.exec(
    `const row = document.querySelector('[data-testid="dispatch-row"][data-order-id="${longOrder}"]');
     [...row.querySelectorAll('button')].find((b) => b.textContent.startsWith('Open')).click();`,
  );
  await wd.waitUntil(
    `return [...document.querySelectorAll('dd')].some((d) => d.textContent.includes(arguments[0]))`,
    [LONG_EMAIL],
    20_000,
    'the order is open, its Job card with the e-mail address',
  );
  const fit = await wd.exec(`
    const dd = [...document.querySelectorAll('dd')].find((d) => d.textContent.includes(arguments[0]));
    if (!dd) return null;
    const card = dd.closest('.card, section') ?? dd.parentElement;
    return { dd: dd.getBoundingClientRect().right, card: card.getBoundingClientRect().right,
             scroll: document.documentElement.scrollWidth, width: window.innerWidth, height: dd.getBoundingClientRect().height };`,
    [LONG_EMAIL],
  );
  assert.ok(fit, 'the Job card shows the e-mail address');
  assert.ok(fit.dd <= fit.card + 1, `the address stays inside its card: ${JSON.stringify(fit)}`);
  assert.ok(fit.scroll <= fit.width, `nothing runs off the window: ${JSON.stringify(fit)}`);
  await shot('23-long-email-wraps');
});
