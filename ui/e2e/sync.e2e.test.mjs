// Real-window end-to-end test of outpost-desktop against a real outpost-server on
// loopback: the release binaries, Xvfb, tauri-driver + WebKitWebDriver.
//
// The technician works in the window. The app reaches the server through a small TCP
// relay (rig.mjs), so the test can cut the technician's link while the dispatcher
// (the `outpost` CLI on its own data directory) still reaches the server directly.
//
// Scenarios: first-run sign-in; the server stopped, an order edited and completed and
// shown "Saved on this device"; the server started again and the order becoming
// "Synced" without a click, and on the server; a completion refused by the server
// (a required step added at the office meanwhile) shown under Failed syncs, fixed and
// resubmitted; a conflict on the status, resolved by the dispatcher, and the outcome
// in the technician's window. Screenshots go to target/e2e-screenshots/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, rmSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { WebDriver, sleep, startDriver, stopGroup } from './webdriver.mjs';
import { freePort, relay } from './rig.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = resolve(process.env.OUTPOST_DESKTOP_BIN ?? join(root, 'target/release/outpost-desktop'));
const serverBin = join(dirname(bin), 'outpost-server');
const cliBin = join(dirname(bin), 'outpost');
const shots = join(root, 'target/e2e-screenshots');
const driverBin = process.env.TAURI_DRIVER ?? 'tauri-driver';
const port = Number(process.env.E2E_DRIVER_PORT ?? 4444);

test('sign in, work offline, sync without a click, failed sync fixed, conflict decided (real window, real server)', { timeout: 420_000 }, async (t) => {
  for (const b of [bin, serverBin, cliBin]) assert.ok(existsSync(b), `build it first: ${b} is missing`);
  assert.ok(process.env.DISPLAY, 'DISPLAY is not set: run under Xvfb (scripts/test-desktop.sh)');
  mkdirSync(shots, { recursive: true });
  const home = mkdtempSync(join(tmpdir(), 'outpost-e2e-sync-'));
  const serverDb = `sqlite:${join(home, 'server.db')}`;
  const serverPort = await freePort();
  const serverUrl = `http://127.0.0.1:${serverPort}`;

  // --- the server -----------------------------------------------------------------
  const seed = spawnSync(serverBin, ['seed', '--demo', '--items', '500', '--db', serverDb], { encoding: 'utf8' });
  assert.equal(seed.status, 0, seed.stderr);
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
  const link = await relay(serverPort);

  // --- the dispatcher: the CLI on its own data directory, straight to the server ---
  const dispEnv = { ...process.env, OUTPOST_DB_KEY: randomBytes(32).toString('hex'), DBUS_SESSION_BUS_ADDRESS: '' };
  const dispDir = join(home, 'dispatcher');
  const cli = (args, input) => {
    const r = spawnSync(cliBin, ['--data-dir', dispDir, ...args], { env: dispEnv, encoding: 'utf8', input });
    assert.equal(r.status, 0, `outpost ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const cliJson = (args) => JSON.parse(cli(['--json', ...args]));
  cli(['login', '--server', serverUrl, '--username', 'dispatcher', '--password-stdin'], 'outpost-demo\n');
  cli(['sync']);

  // --- the technician's window --------------------------------------------------
  const env = {
    ...process.env,
    HOME: home,
    XDG_DATA_HOME: join(home, 'xdg-data'),
    XDG_CONFIG_HOME: join(home, 'xdg-config'),
    XDG_CACHE_HOME: join(home, 'xdg-cache'),
    OUTPOST_DATA_DIR: join(home, 'tech1'),
    OUTPOST_DB_KEY: randomBytes(32).toString('hex'),
    OUTPOST_SERVER_URL: link.url,
    OUTPOST_PROBE_MAX_MS: '1000',
    OUTPOST_SYNC_PERIOD_MS: '2000',
    DBUS_SESSION_BUS_ADDRESS: '',
  };
  const driver = startDriver(driverBin, port, env);
  const wd = new WebDriver(`http://127.0.0.1:${port}`);
  t.after(async () => {
    await wd.quit().catch(() => {});
    stopGroup(driver.p);
    await stopServer();
    await link.close();
    await sleep(300);
    if (!process.env.E2E_KEEP) rmSync(home, { recursive: true, force: true });
  });
  const shot = async (name) => writeFileSync(join(shots, `${name}.png`), await wd.settledScreenshot());
  // The row of order `id`, whichever tab (today, upcoming, completed) holds it.
  const showRow = async (id) => {
    for (let i = 0; i < 40; i++) {
      for (const tab of ['today', 'upcoming', 'completed']) {
        const found = await wd.exec(
          // Until the list has answered for that tab, the previous tab's page is shown.
          `document.getElementById('tab-' + arguments[1])?.click();
           const count = document.querySelector('[data-testid="result-count"]');
           const [id, tab] = arguments;
           return new Promise((r) => {
             const check = () =>
               count.dataset.tab === tab
                 ? r(document.querySelector('[data-testid="order-row"][data-order-id="' + id + '"]') !== null)
                 : setTimeout(check, 20);
             check();
           });`,
          [id, tab],
        );
        if (found) return;
      }
      await sleep(500);
    }
    throw new Error(`order ${id} is in no tab of the list`);
  };
  const rowState = async (id) => {
    await showRow(id);
    return wd.exec(
      `const r = document.querySelector('[data-testid="order-row"][data-order-id="' + arguments[0] + '"] [data-sync-state]');
       return r ? r.getAttribute('data-sync-state') : null;`,
      [id],
    );
  };
  const waitRowState = async (id, want, what) => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const got = await rowState(id);
      if (got === want) return;
      if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what} (state ${got})`);
      await sleep(500);
    }
  };
  const goOrders = async () => {
    await wd.click(await wd.find('nav button:nth-child(1)'));
    await wd.waitFor('[data-testid="order-list"]', 20_000);
  };
  const openOrder = async (id) => {
    await goOrders();
    await showRow(id);
    await wd.click(await wd.find(`[data-testid="order-row"][data-order-id="${id}"]`));
    await wd.waitFor('[data-testid="note-input"]', 20_000);
  };
  const tickAll = async () => {
    // One at a time: each tick is saved before the boxes are enabled again.
    for (let i = 0; i < 20; i++) {
      const left = await wd.exec(
        `const c = [...document.querySelectorAll('[data-testid^="check-"]')].find((c) => !c.checked);
         if (!c) return false; if (c.disabled) return true; c.scrollIntoView({ block: 'center' }); c.click(); return true;`,
      );
      if (!left) return;
      await wd.waitUntil(
        `return [...document.querySelectorAll('[data-testid^="check-"]')].every((c) => !c.disabled)`,
        [],
        15_000,
        'the tick is saved',
      );
    }
    throw new Error('checklist steps could not all be ticked');
  };
  const signAndComplete = async () => {
    // Draw on the pad with pointer events, as a finger would.
    await wd.exec(`
      const c = document.querySelector('[data-testid="signature-pad"]');
      c.scrollIntoView({ block: 'center' });
      const r = c.getBoundingClientRect();
      const ev = (type, x, y) => c.dispatchEvent(new PointerEvent(type, { bubbles: true, pointerId: 1, clientX: r.left + x, clientY: r.top + y, buttons: 1 }));
      ev('pointerdown', 20, 20);
      for (let i = 1; i < 20; i++) ev('pointermove', 20 + i * 10, 20 + (i % 5) * 12);
      ev('pointerup', 220, 60);`);
    const signer = await wd.find('[data-testid="signer"]');
    await wd.type(signer, 'Ola Customer');
    await wd.click(await wd.find('[data-testid="complete"]'));
  };

  await wd.start(bin);

  // 1. First run: sign in.
  const user = await wd.waitFor('[data-testid="signin-user"]', 30_000);
  await shot('10-sign-in');
  const serverField = await wd.find('[data-testid="signin-server"]');
  assert.equal(await wd.exec('return arguments[0].value', [{ 'element-6066-11e4-a52e-4f735466cecf': serverField }]), link.url);
  await wd.type(user, 'tech1');
  await wd.type(await wd.find('[data-testid="signin-password"]'), 'outpost-demo');
  await wd.click(await wd.find('[data-testid="signin-submit"]'));
  // Counted over the tabs (today, upcoming, completed): how many fall on today depends
  // on the date the demo data is seeded against, not on the sync.
  await wd.waitUntil(
    `return [...document.querySelectorAll('[role="tab"] .count')].reduce((n, c) => n + (Number(c.textContent) || 0), 0) >= 5`,
    [],
    60_000,
    'the assigned orders arrive',
  );
  await wd.waitUntil(
    `return /online|synced|last sync/i.test(document.querySelector('[data-testid="sync-connection"]').textContent)`,
    [],
    30_000,
    'the indicator says online',
  );
  await shot('11-orders-synced');

  // Orders of tech1 that are open, from the dispatcher's view of the server.
  cli(['sync']);
  const all = cliJson(['orders', 'list']);
  const open = all.filter((o) => (o.order?.assignee ?? o.assignee) === 'tech1' && ['scheduled', 'en_route', 'in_progress'].includes(o.order?.status ?? o.status));
  assert.ok(open.length >= 3, `tech1 has open orders: ${open.length}`);
  const idOf = (o) => o.order?.id ?? o.id;
  const [a, b, c] = open.slice(0, 3).map(idOf);

  // 2. The server stops; the technician edits and completes an order.
  await stopServer();
  await openOrder(a);
  const note = await wd.find('[data-testid="note-input"]');
  await wd.type(note, 'Offline: replaced the filter.');
  await wd.click(await wd.find('[data-testid="add-note"]'));
  await wd.waitUntil(`return document.querySelector('.order-head [data-sync-state="saved"]') !== null`, [], 15_000, 'saved on this device');
  await tickAll();
  await signAndComplete();
  await wd.waitUntil(
    `return /completed/i.test(document.querySelector('.order-head').textContent) && document.querySelector('.order-head [data-sync-state="saved"]') !== null`,
    [],
    15_000,
    'completed, saved on this device',
  );
  await shot('12-offline-completed');
  await goOrders();
  assert.equal(await rowState(a), 'saved');
  await wd.waitUntil(
    `return /offline/i.test(document.querySelector('[data-testid="sync-connection"]').textContent)`,
    [],
    30_000,
    'the indicator says offline',
  );
  await shot('13-offline-list');

  // 3. The server is back: synced with no click; the server has it.
  await startServer();
  await waitRowState(a, 'synced', 'the order becomes synced without any click');
  await shot('14-back-online-synced');
  cli(['sync']);
  const onServer = cliJson(['orders', 'show', a]);
  const order = onServer.order ?? onServer;
  assert.equal(order.status, 'completed');
  assert.ok(order.notes.some((n) => n.text === 'Offline: replaced the filter.'), 'the note is on the server');

  // 4. A completion refused by the server: a required step added at the office while
  //    the technician was cut off. It shows under Failed syncs, is fixed, resubmitted.
  link.cut();
  await openOrder(b);
  await tickAll();
  await signAndComplete();
  await wd.waitFor('.order-head [data-sync-state="saved"]', 15_000);
  cli(['orders', 'edit', b, '--add-step', 'meter=Photograph the meter']);
  cli(['sync']);
  link.restore();
  await wd.waitUntil(
    `const n = document.querySelector('[data-testid="sync-failed-count"]'); return n && /1/.test(n.textContent)`,
    [],
    60_000,
    'one failed sync is counted',
  );
  await wd.click(await wd.find('[data-testid="sync-failed-count"]'));
  const failedRow = await wd.waitFor('[data-testid="failed-row"]', 15_000);
  assert.match(await wd.text(failedRow), /meter|step|checklist/i, 'the reason names the missing step');
  await shot('15-failed-sync');
  await wd.click(await wd.find('[data-testid="failed-fix"]'));
  await wd.click(await wd.waitFor('[data-testid="fix-field-checklist.meter"]', 10_000));
  await shot('16-failed-fix-form');
  await wd.click(await wd.find('[data-testid="fix-submit"]'));
  await wd.waitUntil(
    `const n = document.querySelector('[data-testid="sync-failed-count"]'); return !n || !/[1-9]/.test(n.textContent)`,
    [],
    60_000,
    'the failed sync is gone after the resubmission',
  );
  await goOrders();
  await waitRowState(b, 'synced', 'the resubmitted order is synced');
  cli(['sync']);
  assert.equal((cliJson(['orders', 'show', b]).order ?? {}).status ?? cliJson(['orders', 'show', b]).status, 'completed');

  // 5. A conflict on the status: the technician puts the order on hold while cut off,
  //    the office sets it en route; the dispatcher decides, the window shows it.
  link.cut();
  await openOrder(c);
  await wd.exec(`const s = document.querySelector('[data-testid="status-select"]'); s.value = 'on_hold'; s.dispatchEvent(new Event('change', { bubbles: true }));`);
  await wd.waitFor('.order-head [data-sync-state="saved"]', 15_000);
  cli(['orders', 'edit', c, '--status', 'en_route']);
  cli(['sync']);
  link.restore();
  await wd.waitUntil(
    `const n = document.querySelector('[data-testid="sync-conflict-count"]'); return n && /1/.test(n.textContent)`,
    [],
    60_000,
    'one conflict is counted',
  );
  await wd.click(await wd.find('[data-testid="sync-conflict-count"]'));
  await wd.waitFor('[data-testid="conflict-row"]', 15_000);
  await shot('17-conflict');
  cli(['sync']);
  // A dispatcher's list is the fleet's, one item per order with its conflicts.
  const perOrder = cliJson(['conflicts', 'list']);
  const item = perOrder.find((x) => x.order_id === c);
  const conflict = item?.conflicts?.[0];
  assert.ok(conflict?.id, `the dispatcher sees the conflict: ${JSON.stringify(perOrder).slice(0, 400)}`);
  cli(['conflicts', 'resolve', conflict.id, '--field', 'status=mine']);
  cli(['sync']);
  await wd.waitUntil(
    `const n = document.querySelector('[data-testid="sync-conflict-count"]'); return !n || !/[1-9]/.test(n.textContent)`,
    [],
    60_000,
    'the conflict is settled in the technician window',
  );
  await openOrder(c);
  await wd.waitUntil(
    `return document.querySelector('[data-testid="status-select"]').value === 'on_hold'`,
    [],
    30_000,
    "the dispatcher's decision (the technician's on hold) shows in the window",
  );
  await shot('18-conflict-decided');

  // The log rolls daily (outpost-desktop.YYYY-MM-DD.log): every file of the run.
  const logDir = join(env.XDG_DATA_HOME, 'org.outpost.desktop/logs');
  const log = readdirSync(logDir)
    .filter((n) => n.startsWith('outpost-desktop') && n.endsWith('.log'))
    .map((n) => readFileSync(join(logDir, n), 'utf8'))
    .join('\n');
  assert.match(log, /sync engine started/);
  assert.ok(!log.includes(env.OUTPOST_DB_KEY), 'the key is never logged');
  assert.ok(!log.includes('outpost-demo'), 'the password is never logged');
});
