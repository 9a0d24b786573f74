// Real-window end-to-end test of the dispatcher's desk (issue 20): the release
// outpost-desktop signed in as the dispatcher against a real outpost-server on
// loopback; technician tech1 and a second office device are the `outpost` CLI on
// data directories of their own.
//
// Staged cases: a completion after a cancellation (checklist, a part, a note, the
// customer's signature), an update after a reassignment, a rejected completion, and
// 20 failed syncs decided in bulk. The dispatcher works each through the desk; the
// test asserts on the page (the values per field, the stock effect, the signature
// image loaded), then opens the technician's data directory in the window and asserts
// the outcome there. Screenshots of each screen go to target/e2e-screenshots/.
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

// A 24×12 PNG (a black stroke on white): the customer's signature.
const SIGNATURE_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAABgAAAAMCAIAAAD3UuoiAAAARElEQVR4nK3TywoAIAhE0fv/P117oXmELuUwSRbAcRWZ1DlDcaY0hM4aQmfN7H5nsVbV/MK8L6/Mkhttstwzi7OW/gdc7OrTSWWXKJUAAAAASUVORK5CYII=',
  'base64',
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

test("the dispatcher's desk: each case side by side, decided with a reason, the technician hears it (real window, real server)", { timeout: 600_000 }, async (t) => {
  for (const b of [bin, serverBin, cliBin]) assert.ok(existsSync(b), `build it first: ${b} is missing`);
  assert.ok(process.env.DISPLAY, 'DISPLAY is not set: run under Xvfb (scripts/test-desktop.sh)');
  mkdirSync(shots, { recursive: true });
  const home = mkdtempSync(join(tmpdir(), 'outpost-e2e-desk-'));
  const serverDb = `sqlite:${join(home, 'server.db')}`;
  const serverPort = await freePort();
  const serverUrl = `http://127.0.0.1:${serverPort}`;
  const sigFile = join(home, 'signature.png');
  writeFileSync(sigFile, SIGNATURE_PNG);

  // --- the server -------------------------------------------------------------------
  const seed = spawnSync(serverBin, ['seed', '--demo', '--items', '500', '--db', serverDb], { encoding: 'utf8' });
  assert.equal(seed.status, 0, seed.stderr);
  const server = spawn(serverBin, ['serve', '--listen', `127.0.0.1:${serverPort}`, '--db', serverDb], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let serverErr = '';
  server.stderr.on('data', (d) => (serverErr += d));
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${serverUrl}/health`, { signal: AbortSignal.timeout(1_000) })).ok) break;
    } catch {
      /* not yet */
    }
    if (i > 100) throw new Error(`outpost-server did not start: ${serverErr}`);
    await sleep(100);
  }

  // --- CLI devices: the technician and a second office device -------------------------
  const device = (name, user) => {
    const dir = join(home, name);
    const env = { ...process.env, OUTPOST_DB_KEY: randomBytes(32).toString('hex'), DBUS_SESSION_BUS_ADDRESS: '' };
    const run = (args, input) => {
      const r = spawnSync(cliBin, ['--data-dir', dir, ...args], { env, encoding: 'utf8', input });
      assert.equal(r.status, 0, `${name}: outpost ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    run(['login', '--server', serverUrl, '--username', user, '--password-stdin'], 'outpost-demo\n');
    run(['sync']);
    return { dir, env, run, json: (args) => JSON.parse(run(['--json', ...args])) };
  };
  const tech = device('tech1', 'tech1');
  const office = device('office', 'dispatcher');
  const orderOf = (o) => o.order ?? o;
  const open = office
    .json(['orders', 'list'])
    .map(orderOf)
    .filter((o) => o.assignee === 'tech1' && ['scheduled', 'en_route', 'in_progress'].includes(o.status));
  assert.ok(open.length >= 23, `tech1 has 23 open orders: ${open.length}`);
  const [a, b, c, ...rest] = open.map((o) => o.id);
  const bulkIds = rest.slice(0, 20);
  const numberOf = (id) => open.find((o) => o.id === id).number;
  const tickAll = (id) => {
    const steps = orderOf(tech.json(['orders', 'show', id])).checklist.map((s) => ['--check', s.id]).flat();
    if (steps.length) tech.run(['orders', 'edit', id, ...steps]);
  };

  // A. A completion after a cancellation.
  office.run(['orders', 'cancel', a, '--reason', 'customer cancelled by phone']);
  office.run(['sync']);
  tickAll(a);
  tech.run(['orders', 'edit', a, '--note', 'Replaced the seal, tested for 10 minutes', '--part', 'SKU-00000=2']);
  tech.run(['orders', 'complete', a, '--signature', sigFile, '--signer', 'Site manager']);
  // B. An update after a reassignment.
  office.run(['orders', 'assign', b, '--to', 'tech2']);
  office.run(['sync']);
  tech.run(['orders', 'edit', b, '--description', 'Impeller worn: needs a new one', '--note', 'Ordered the impeller']);
  // C and the bulk: completions refused because the office added a required step.
  for (const id of [c, ...bulkIds]) {
    tickAll(id);
    tech.run(['orders', 'complete', id, '--signature', sigFile, '--signer', 'Site manager']);
    office.run(['orders', 'edit', id, '--add-step', 'price=Apply the new price list']);
  }
  office.run(['sync']);
  tech.run(['sync']);

  // --- the dispatcher's window -----------------------------------------------------------
  const windowEnv = (dataDir, key) => ({
    ...process.env,
    HOME: home,
    XDG_DATA_HOME: join(home, 'xdg-data'),
    XDG_CONFIG_HOME: join(home, 'xdg-config'),
    XDG_CACHE_HOME: join(home, 'xdg-cache'),
    OUTPOST_DATA_DIR: dataDir,
    OUTPOST_DB_KEY: key,
    OUTPOST_SERVER_URL: serverUrl,
    OUTPOST_PROBE_MAX_MS: '1000',
    OUTPOST_SYNC_PERIOD_MS: '2000',
    DBUS_SESSION_BUS_ADDRESS: '',
  });
  let driver = startDriver(driverBin, port, windowEnv(join(home, 'desk'), randomBytes(32).toString('hex')));
  let wd = new WebDriver(`http://127.0.0.1:${port}`);
  t.after(async () => {
    await wd.quit().catch(() => {});
    stopGroup(driver.p);
    server.kill('SIGTERM');
    await sleep(300);
    if (!process.env.E2E_KEEP) rmSync(home, { recursive: true, force: true });
  });
  const shot = async (name, css) => {
    if (css) await wd.exec(`document.querySelector(arguments[0])?.scrollIntoView({ block: 'start' }); return true;`, [css]);
    writeFileSync(join(shots, `${name}.png`), await wd.settledScreenshot());
  };
  const textOf = async (css) => wd.exec(`return document.querySelector(arguments[0])?.textContent ?? ''`, [css]);
  const openItem = async (id) => {
    await wd.waitFor(`[data-testid="desk-item"][data-order-id="${id}"]`, 30_000);
    await wd.click(await wd.find(`[data-testid="desk-item"][data-order-id="${id}"] button`));
    await wd.waitUntil(
      `return document.querySelector('#desk-detail-title')?.textContent.includes('#' + arguments[0])`,
      [numberOf(id)],
      10_000,
      `item #${numberOf(id)} is shown`,
    );
  };
  const decide = async (action, reason) => {
    await wd.click(await wd.find(`[data-testid="action-${action}"]`));
    const why = await wd.find('[data-testid="decision-reason"]');
    await wd.exec(`arguments[0].value = ''; arguments[0].dispatchEvent(new Event('input', { bubbles: true }))`, [{ 'element-6066-11e4-a52e-4f735466cecf': why }]);
    await wd.type(why, reason);
    await wd.click(await wd.find('[data-testid="decision-preview"]'));
    await wd.waitFor('[data-testid="decision-confirm"]', 10_000);
  };
  const confirmAndSend = async (id) => {
    await wd.click(await wd.find('[data-testid="decision-confirm-button"]'));
    await wd.waitFor('[data-testid="desk-undo"]', 10_000);
    // Held for the undo window, then the engine sends it: the item leaves the desk.
    await wd.waitUntil(
      `return !document.querySelector('[data-testid="desk-item"][data-order-id="' + arguments[0] + '"]')`,
      [id],
      10_000,
      'the decided item leaves the desk',
    );
  };

  await wd.start(bin);
  await wd.waitFor('[data-testid="signin-user"]', 30_000);
  await wd.type(await wd.find('[data-testid="signin-user"]'), 'dispatcher');
  await wd.type(await wd.find('[data-testid="signin-password"]'), 'outpost-demo');
  await wd.click(await wd.find('[data-testid="signin-submit"]'));
  await wd.waitUntil(
    `const n = document.querySelector('[data-testid="nav-desk-count"]'); return n && Number(n.textContent) >= 23`,
    [],
    120_000,
    'the desk counts the 23 staged orders in the navigation',
  );
  await wd.click(await wd.find('[data-testid="nav-desk"]'));
  await wd.waitFor('[data-testid="desk-item"]', 20_000);
  const items = await wd.exec(`return [...document.querySelectorAll('[data-testid="desk-item"]')].map((e) => e.dataset.orderId)`);
  assert.equal(new Set(items).size, items.length, 'one item per order');
  for (const id of [a, b, c]) assert.ok(items.includes(id), `order ${id} is on the desk`);
  // What is on screen (a closed "Technical details" disclosure is not).
  const visible = await wd.exec(`return document.querySelector('[data-testid="desk"]').innerText`);
  assert.ok(!/"mutation_id"|\{"/.test(visible), `no raw JSON on the main view: ${visible.slice(0, 400)}`);
  await shot('30-desk-list');

  // A. Completion after cancellation: side by side in words, the stock effect, the signature.
  await openItem(a);
  const field = (name, col) => textOf(`[data-testid="desk-field"][data-field="${name}"] [data-testid="field-${col}"]`);
  assert.match(await field('status', 'technician'), /^Completed/);
  assert.match(await field('status', 'current'), /^Cancelled · dispatcher/);
  assert.match(await textOf('[data-testid="desk-cancellation"]'), /customer cancelled by phone/);
  assert.match(await textOf('[data-testid="desk-checklist"]'), /☑/);
  assert.match(await textOf('[data-testid="desk-detail"]'), /Replaced the seal, tested for 10 minutes/);
  assert.match(
    await textOf('[data-testid="desk-part"][data-sku="SKU-00000"] [data-testid="part-effect"]'),
    /takes 2 each from van-tech1: \d+ each → \d+ each/,
  );
  assert.match(await textOf('[data-testid="desk-evidence"][data-kind="signature"]'), /Not downloaded yet/);
  await shot('31-desk-completion-after-cancellation', '[data-testid="desk-detail"]');
  await wd.click(await wd.find('[data-testid="evidence-fetch"]'));
  await wd.waitUntil(
    `const i = document.querySelector('[data-testid="desk-evidence"][data-kind="signature"] img'); return i && i.complete && i.naturalWidth === 24`,
    [],
    30_000,
    'the signature image is downloaded and loaded',
  );
  await shot('32-desk-signature-loaded', '[data-testid="desk-evidence"]');
  await decide('accept', 'customer confirmed the visit by phone');
  assert.match(await textOf('[data-testid="preview-summary"]'), /will be completed.*van-tech1/);
  await shot('33-desk-preview', '[data-testid="decision-confirm"]');
  await confirmAndSend(a);
  await shot('34-desk-after-decision');

  // B. Update after reassignment.
  await openItem(b);
  assert.match(await field('description', 'technician'), /Impeller worn: needs a new one/);
  assert.match(await textOf('[data-testid="desk-summary"]'), /reassigned/);
  await shot('35-desk-update-after-reassignment', '[data-testid="desk-detail"]');
  await decide('keep', 'reassigned to tech2: they carry the impeller');
  await confirmAndSend(b);

  // C. A rejected completion, set aside.
  await openItem(c);
  assert.match(await textOf('[data-testid="desk-summary"]'), /refused/);
  await shot('36-desk-rejected-completion', '[data-testid="desk-detail"]');
  await decide('discard', 'redo it with the new price list');
  await confirmAndSend(c);

  // D. Bulk: the 20 other failed syncs with one reason, after a count and a confirmation.
  await wd.exec(`const s = document.querySelector('[data-testid="desk-filter-reason"]'); s.value = 'validation_failed'; s.dispatchEvent(new Event('change', { bubbles: true }));`);
  await wd.waitUntil(`return document.querySelectorAll('[data-testid="desk-item"]').length === 20`, [], 15_000, 'the 20 failed syncs are listed');
  await wd.exec(`document.querySelectorAll('[data-testid="desk-check"]').forEach((c) => c.click()); return true;`);
  await wd.waitFor('[data-testid="desk-bulk"]', 10_000);
  await wd.exec(`const s = document.querySelector('[data-testid="bulk-action"]'); s.value = 'discard'; s.dispatchEvent(new Event('change', { bubbles: true }));`);
  await wd.type(await wd.find('[data-testid="bulk-reason"]'), 'price list changed: redo with the new prices');
  await wd.click(await wd.find('[data-testid="bulk-preview"]'));
  await wd.waitFor('[data-testid="bulk-confirm"]', 10_000);
  assert.equal(await textOf('[data-testid="bulk-count"]'), '20');
  await shot('37-desk-bulk-confirm', '[data-testid="desk-bulk"]');
  await wd.click(await wd.find('[data-testid="bulk-confirm-button"]'));
  await wd.waitUntil(`return document.querySelectorAll('[data-testid="desk-item"]').length === 0`, [], 15_000, 'all 20 decided');
  await wd.waitUntil(
    `return !document.querySelector('[data-testid="nav-desk-count"]')`,
    [],
    30_000,
    'the navigation counts nothing open',
  );
  await shot('38-desk-empty');

  // The server has the decisions: A completed with the technician's work.
  await sleep(7_000); // the undo window of the last decision, then the engine's push
  office.run(['sync']);
  assert.equal(orderOf(office.json(['orders', 'show', a])).status, 'completed');

  // --- the technician's device in the window: the outcome on the order and as a notice ---
  tech.run(['sync']);
  await wd.quit().catch(() => {});
  stopGroup(driver.p);
  await sleep(500);
  driver = startDriver(driverBin, port, windowEnv(tech.dir, tech.env.OUTPOST_DB_KEY));
  wd = new WebDriver(`http://127.0.0.1:${port}`);
  await wd.start(bin);
  // Newest first: the bulk's 20, C's, then A's; the frame shows three and counts the rest.
  await wd.waitFor('[data-testid="decision-notice"]', 60_000);
  const notices = await wd.exec(`return [...document.querySelectorAll('[data-testid="decision-notice"]')].map((n) => n.textContent)`);
  assert.equal(notices.length, 3, notices.join('\n'));
  assert.ok(notices.every((n) => /^Your completion of #\d+ was set aside: price list changed: redo with the new prices/.test(n.trim())), notices.join('\n'));
  assert.match(await textOf('[data-testid="decision-notice-more"]'), /And 20 more decisions on your work/);
  await shot('39-technician-notices');
  // On the order: the outcome of each decision, with the dispatcher's reason.
  const orderShows = async (id, re) => {
    await wd.exec(`document.querySelector('nav button').click(); return true;`);
    for (const tab of ['today', 'upcoming', 'completed']) {
      await wd.exec(`document.getElementById('tab-' + arguments[0])?.click(); return true;`, [tab]);
      await sleep(700);
      const row = await wd.exec(`return !!document.querySelector('[data-testid="order-row"][data-order-id="' + arguments[0] + '"]')`, [id]);
      if (row) break;
    }
    await wd.click(await wd.waitFor(`[data-testid="order-row"][data-order-id="${id}"]`, 20_000));
    await wd.waitUntil(
      `return [...document.querySelectorAll('[data-testid="order-decision"]')].some((n) => arguments[0].test ? false : new RegExp(arguments[0]).test(n.textContent))`,
      [re],
      20_000,
      `order ${id} shows ${re}`,
    );
  };
  await orderShows(a, `Your completion of #${numberOf(a)} was accepted: customer confirmed the visit by phone`);
  await shot('40-technician-order-accepted', '[data-testid="order-decision"]');
  await orderShows(c, `Your completion of #${numberOf(c)} was set aside: redo it with the new price list`);
  await shot('41-technician-order-set-aside', '[data-testid="order-decision"]');
});
