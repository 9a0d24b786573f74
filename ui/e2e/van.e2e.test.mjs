// Real-window end-to-end test of van stock in the technician's view (issue 23 item 3):
// the release outpost-desktop signed in as tech1 against a real outpost-server on
// loopback, seeded with the demo day (`seed --demo`, 500 items). What tech1's van
// holds is read independently, by the `outpost` CLI signed in as tech1 (the pulled
// items' stock per location). The window's part picker must list those items first
// with "in your van: N"; the Inventory screen's "My van" view must list exactly them
// with their quantities and "Warehouse" the warehouse's; a part used from the picker
// comes out of the van on the server and the picker shows the new quantity after the
// next sync. Screenshots go to target/e2e-screenshots/ (50–53).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebDriver, sleep, startDriver } from './webdriver.mjs';
import { ELEMENT, appEnv, cleanUpAfter, cliBin, cliDevice, desktopBin as bin, driverBin, driverPort as port, serverBin, shots, signIn, startServer } from './rig.mjs';

test("the part picker lists the technician's van first with its quantity; Inventory has 'My van' and 'Warehouse' (real window, real server)", { timeout: 600_000 }, async (t) => {
  for (const b of [bin, serverBin, cliBin]) assert.ok(existsSync(b), `build it first: ${b} is missing`);
  assert.ok(process.env.DISPLAY, 'DISPLAY is not set: run under Xvfb (scripts/test-desktop.sh)');
  mkdirSync(shots, { recursive: true });
  const home = mkdtempSync(join(tmpdir(), 'outpost-e2e-van-'));
  const server = await startServer(home, ['--items', '500']);
  const serverUrl = server.url;

  // --- what tech1's van holds, read by a CLI device of tech1 -----------------------------
  const { run: cli, json: cliJson } = cliDevice(join(home, 'cli-tech1'), serverUrl, 'tech1');
  const vanOf = () => {
    cli(['sync']);
    const items = cliJson(['inventory', 'search', '', '--limit', '1000']);
    assert.equal(items.length, 500, 'the CLI device pulled the 500 items');
    const at = (i, loc) => i.stock.find((s) => s.location === loc)?.quantity ?? null;
    return {
      items,
      van: items.filter((i) => at(i, 'van-tech1') !== null).map((i) => ({ sku: i.sku, name: i.name, qty: at(i, 'van-tech1') })),
      main: (sku) => at(items.find((i) => i.sku === sku), 'main'),
    };
  };
  const before = vanOf();
  assert.ok(before.van.length >= 3 && before.van.length < 100, `tech1's van holds a share of the parts: ${before.van.length}`);
  const orderOf = (o) => o.order ?? o;
  const openIds = cliJson(['orders', 'list'])
    .map(orderOf)
    .filter((o) => o.assignee === 'tech1' && ['scheduled', 'en_route', 'in_progress'].includes(o.status))
    .map((o) => o.id);
  assert.ok(openIds.length >= 1, 'tech1 has an open order');

  // --- tech1's window --------------------------------------------------------------------
  const env = appEnv(home, serverUrl, 'tech1');
  const driver = startDriver(driverBin, port, env);
  const wd = new WebDriver(`http://127.0.0.1:${port}`);
  cleanUpAfter(t, { wd, driver, server, home });
  const shot = async (name) => writeFileSync(join(shots, `${name}.png`), await wd.settledScreenshot());
  const setValue = (el, value) =>
    wd.exec(
      `arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input', { bubbles: true })); return true;`,
      [{ [ELEMENT]: el }, value],
    );

  await wd.start(bin);
  await signIn(wd, 'tech1');
  // The whole inventory has arrived once the last item is known (pulled after the orders).
  const lastSku = before.items[before.items.length - 1].sku;

  // --- Inventory: "My van" (the first view for a technician), then "Warehouse" -------------
  await wd.click(await wd.find('[data-testid="nav-inventory"]'));
  const rowsOf = () =>
    wd.exec(
      `return [...document.querySelectorAll('[data-testid="inventory-row"]')].map((r) => ({
         sku: r.dataset.sku, here: r.querySelector('[data-testid="inventory-here"]').textContent.trim() }))`,
    );
  const qtyText = (q, sku) => `${q} ${before.items.find((i) => i.sku === sku).unit}`;
  const wantVan = before.van.map((v) => ({ sku: v.sku, here: qtyText(v.qty, v.sku) }));
  await wd.waitUntil(
    `return document.querySelectorAll('[data-testid="inventory-row"]').length === arguments[0]`,
    [wantVan.length],
    60_000,
    `"My van" lists the ${wantVan.length} items of tech1's van`,
  );
  assert.equal(await wd.exec(`return document.querySelector('[data-testid="inventory-view-my-van"]').checked`), true);
  assert.deepEqual(await rowsOf(), wantVan, 'my van: the van items, by name, with the quantity in the van');
  assert.match(await wd.text(await wd.find('[data-testid="inventory-van"]')), /van-tech1/);
  await shot('50-demo-day-inventory-my-van');

  // The switch is a labelled radio group, reached and changed from the keyboard.
  const myVan = await wd.find('[data-testid="inventory-view-my-van"]');
  await wd.exec(`arguments[0].focus(); return true;`, [{ [ELEMENT]: myVan }]);
  assert.equal(
    await wd.exec(`return document.activeElement.closest('fieldset').querySelector('legend').textContent.trim()`),
    'Show',
  );
  await wd.type(myVan, '\uE015'); // ArrowDown: the next radio, "Warehouse"
  await wd.waitUntil(`return document.querySelector('[data-testid="inventory-view-warehouse"]').checked`, [], 10_000, 'the arrow key picks "Warehouse"');
  await wd.waitUntil(
    `return document.querySelector('thead th:nth-child(3)').textContent === 'In the warehouse'
        && document.querySelectorAll('[data-testid="inventory-row"]').length === 100`,
    [],
    20_000,
    'the warehouse view shows its first page',
  );
  const warehouse = await rowsOf();
  for (const r of warehouse.slice(0, 20)) assert.equal(r.here, qtyText(before.main(r.sku), r.sku), `warehouse quantity of ${r.sku}`);
  assert.ok(await wd.exec(`return document.querySelector('[data-testid="inventory-more"]') !== null`), 'more than a page: "Show more"');
  await shot('51-inventory-warehouse');
  await setValue(await wd.find('[data-testid="inventory-search"]'), lastSku);
  await wd.waitUntil(
    `const r = document.querySelectorAll('[data-testid="inventory-row"]'); return r.length === 1 && r[0].dataset.sku === arguments[0]`,
    [lastSku],
    30_000,
    'the warehouse search finds the last item (the whole inventory arrived)',
  );

  // --- the part picker of an open order -------------------------------------------------
  await wd.click(await wd.find('[data-testid="nav-orders"]'));
  let orderId = null;
  for (let i = 0; i < 40 && !orderId; i++) {
    for (const tab of ['today', 'upcoming']) {
      orderId = await wd.exec(
        `document.getElementById('tab-' + arguments[0])?.click();
         const ids = arguments[1];
         return new Promise((r) => setTimeout(() => r(
           [...document.querySelectorAll('[data-testid="order-row"]')].map((e) => e.dataset.orderId).find((id) => ids.includes(id)) ?? null), 300));`,
        [tab, openIds],
      );
      if (orderId) break;
    }
    if (!orderId) await sleep(500);
  }
  assert.ok(orderId, 'an open order of tech1 is in the list');
  await wd.click(await wd.find(`[data-testid="order-row"][data-order-id="${orderId}"]`));
  const search = await wd.waitFor('[data-testid="part-search"]', 20_000);
  await wd.click(search);
  const optionsOf = () =>
    wd.exec(
      `return [...document.querySelectorAll('[data-testid="part-option"]')].map((o) => ({
         sku: o.dataset.sku, van: o.querySelector('[data-testid="part-in-van"]')?.textContent.trim() ?? null }))`,
    );
  await wd.waitFor('[data-testid="part-option"]', 20_000);
  const options = await optionsOf();
  const shown = Math.min(before.van.length, options.length);
  assert.deepEqual(
    options.slice(0, shown),
    before.van.slice(0, shown).map((v) => ({ sku: v.sku, van: `in your van: ${v.qty}` })),
    'the van items come first, each with "in your van: N"',
  );
  assert.ok(options.slice(shown).every((o) => o.van === null), 'then items not in the van, without a van quantity');
  assert.equal(
    await wd.exec(`return document.querySelector('[data-testid="part-list"]').getAttribute('aria-label')`),
    'Matching parts, in your van first',
  );
  await shot('52-part-picker-van-first');

  // A van item used on the order comes out of the van on the server; after the next
  // sync the picker shows the new quantity.
  const used = before.van[0];
  await wd.click(await wd.find(`[data-testid="part-option"][data-sku="${used.sku}"]`));
  await setValue(await wd.find('#part-qty'), '2');
  await wd.click(await wd.find('form:has(#part-search) button[type="submit"]'));
  await wd.waitUntil(
    `return /^Part: saved on this device/.test(document.querySelector('[data-testid="saved-note"]')?.textContent ?? '')`,
    [],
    10_000,
    'the part is saved on this device',
  );
  await wd.waitUntil(`return document.querySelector('.order-head [data-sync-state="synced"]') !== null`, [], 60_000, 'the part reached the server');
  for (let i = 0; ; i++) {
    const now = vanOf().van.find((v) => v.sku === used.sku).qty;
    if (now === used.qty - 2) break;
    if (i > 20) assert.equal(now, used.qty - 2, 'the server took the two parts from the van');
    await sleep(500);
  }
  const picked = async () => {
    const el = await wd.find('[data-testid="part-search"]');
    await setValue(el, used.sku);
    await sleep(300);
    return (await optionsOf()).find((o) => o.sku === used.sku)?.van ?? null;
  };
  for (let i = 0; ; i++) {
    if ((await picked()) === `in your van: ${used.qty - 2}`) break;
    if (i > 60) throw new Error(`the picker still shows ${await picked()} for ${used.sku}`);
    await sleep(500);
  }
  await shot('53-part-picker-after-use');
});
