// Real-window end-to-end test of technical manuals offline (issue 22): a PDF the
// administrator links to one of tech1's orders (`outpost-server documents add --order`)
// is cached by tech1's window on its own, the network is cut (the server stopped), and
// the manual opens inside the window from the device's cache: pdf.js draws the page
// (pixels on the canvas) and its text layer holds the page's text; search goes to the
// page that holds the words; zoom redraws. The document's text is nowhere on the disk in
// the clear. Screenshots: target/e2e-screenshots/60–62.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebDriver, startDriver } from './webdriver.mjs';
import { appEnv, cleanUpAfter, desktopBin, driverBin, driverPort, serverBin, shots, signIn, startServer } from './rig.mjs';
import { makePdf } from './pdf-fixture.mjs';

const MARKER = 'Outpost test manual page one';

/** Every file under `dir`. */
function files(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

test('a manual linked to an order is cached by the window and read inside it with the network cut (real window, real server)', { timeout: 600_000 }, async (t) => {
  for (const b of [desktopBin, serverBin]) assert.ok(existsSync(b), `build it first: ${b} is missing`);
  assert.ok(process.env.DISPLAY, 'DISPLAY is not set: run under Xvfb (scripts/test-desktop.sh)');
  mkdirSync(shots, { recursive: true });
  const home = mkdtempSync(join(tmpdir(), 'outpost-e2e-docs-'));
  const server = await startServer(home, ['--items', '200']);
  const env = appEnv(home, server.url, 'tech1');
  const driver = startDriver(driverBin, driverPort, env);
  const wd = new WebDriver(`http://127.0.0.1:${driverPort}`);
  cleanUpAfter(t, { wd, driver, server, home });
  const shot = async (name) => writeFileSync(join(shots, `${name}.png`), await wd.settledScreenshot());

  await wd.start(desktopBin);
  await signIn(wd, 'tech1');
  const orderId = await wd.exec(`return document.querySelector('[data-testid="order-row"]').dataset.orderId`);
  assert.ok(orderId, 'an order of tech1 in the list');

  // --- the administrator links a manual to that order ----------------------------------
  const pdf = join(home, 'hx-200-service-manual.pdf');
  writeFileSync(
    pdf,
    makePdf([
      ['HX-200 Service manual', MARKER],
      ['Seal replacement', 'Torque spec: 40 Nm'],
      ['Index'],
    ]),
  );
  server.admin(['documents', 'add', '--order', orderId, pdf]);

  await wd.click(await wd.find(`[data-testid="order-row"][data-order-id="${orderId}"]`));
  await wd.waitFor('[data-testid="order-documents"]', 20_000);
  await wd.waitUntil(
    `const r = document.querySelector('[data-testid="document-row"][data-name="hx-200-service-manual.pdf"]');
     return r !== null && r.querySelector('[data-testid="document-state"]').textContent === 'Available offline'`,
    [],
    90_000,
    'the window caches the manual on its own (the engine\'s next passes)',
  );

  // --- the network goes: the server stops -------------------------------------------------
  await server.stop();
  const onDisk = files(env.OUTPOST_DATA_DIR).some((f) => readFileSync(f).includes(Buffer.from(MARKER, 'latin1')));
  assert.equal(onDisk, false, "the manual's text is nowhere in the data directory in the clear");

  await wd.click(await wd.find('[data-testid="document-row"][data-name="hx-200-service-manual.pdf"] [data-testid="document-open"]'));
  await wd.waitFor('[data-testid="document-viewer"]', 10_000);
  await wd.waitUntil(
    `return (document.querySelector('[data-testid="doc-text-layer"]')?.textContent ?? '').includes(arguments[0])`,
    [MARKER],
    60_000,
    "pdf.js draws page 1 and its text layer holds the page's text",
  );
  assert.equal(await wd.exec(`return document.querySelector('[data-testid="doc-page-count"]').textContent`), 'of 3');
  const ink = await wd.exec(
    `const c = document.querySelector('[data-testid="doc-page-view"] canvas');
     const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
     let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 128 && d[i + 3] > 0) n++;
     return n;`,
  );
  assert.ok(ink > 200, `the page is drawn on the canvas (${ink} dark pixels)`);
  await shot('60-document-viewer-page-1');

  // --- search goes to the page that holds the words --------------------------------------
  const search = await wd.find('[data-testid="doc-search"]');
  await wd.type(search, 'torque spec');
  await wd.type(search, '\uE007'); // Enter
  const viewerState = () =>
    wd.exec(`return JSON.stringify({
      query: document.querySelector('[data-testid="doc-search"]').value,
      matches: document.querySelector('[data-testid="doc-matches"]').textContent.trim(),
      page: document.querySelector('[data-testid="doc-page-view"]').dataset.page,
      error: document.querySelector('[data-testid="document-viewer"] [role="alert"]')?.textContent ?? null,
      spans: [...document.querySelectorAll('[data-testid="doc-text-layer"] span')].map((s) => s.className + ':' + s.textContent),
    })`);
  await wd
    .waitUntil(
      `return document.querySelector('[data-testid="doc-page-view"]').dataset.page === '2'
          && document.querySelector('[data-testid="doc-text-layer"] span.match') !== null`,
      [],
      30_000,
      'the search goes to page 2 and marks the match',
    )
    .catch(async (e) => {
      throw new Error(`${e.message}: ${await viewerState()}`);
    });
  assert.equal((await wd.exec(`return document.querySelector('[data-testid="doc-matches"]').textContent`)).trim(), '1 of 1 match');
  assert.match(await wd.exec(`return document.querySelector('[data-testid="doc-text-layer"] span.match').textContent`), /Torque spec/);
  await shot('61-document-viewer-search');

  // --- zoom ---------------------------------------------------------------------------------
  const before = await wd.exec(`return document.querySelector('[data-testid="doc-page-view"] canvas').width`);
  const rendered = await wd.exec(`return Number(document.querySelector('[data-testid="doc-page-view"]').dataset.rendered)`);
  await wd.click(await wd.find('[data-testid="doc-zoom-in"]'));
  await wd.waitUntil(
    `return Number(document.querySelector('[data-testid="doc-page-view"]').dataset.rendered) > arguments[0]`,
    [rendered],
    20_000,
    'the page is drawn again at the new zoom',
  );
  const after = await wd.exec(`return document.querySelector('[data-testid="doc-page-view"] canvas').width`);
  assert.ok(after > before, `zooming in makes the page wider (${before} → ${after} pixels)`);
  await shot('62-document-viewer-zoomed');

  await wd.type(await wd.find('[data-testid="doc-search"]'), '\uE00C'); // Escape
  await wd.waitUntil(`return document.querySelector('[data-testid="document-viewer"]') === null`, [], 10_000, 'Escape closes the viewer');
});
