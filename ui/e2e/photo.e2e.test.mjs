// Real-window end-to-end test (issue 21 item 5): a portrait photo from a phone keeps
// its orientation. The release binary under Xvfb, driven through tauri-driver +
// WebKitWebDriver; the local demo, no server.
//
// The photo (fixtures/portrait-exif6.jpg) is stored 600 × 300 on its side with EXIF
// Orientation 6, as a phone writes a portrait picture. It is given to the completion
// form's file input, the order is completed, and the order's photo is then shown as
// stored on this device: it must be 300 × 600, upright. Screenshot in
// target/e2e-screenshots/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { WebDriver, sleep, startDriver, stopGroup } from './webdriver.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const bin = resolve(process.env.OUTPOST_DESKTOP_BIN ?? join(root, 'target/release/outpost-desktop'));
const shots = join(root, 'target/e2e-screenshots');
const driverBin = process.env.TAURI_DRIVER ?? 'tauri-driver';
const port = Number(process.env.E2E_DRIVER_PORT ?? 4444);

test('a portrait photo from a phone is shown upright on the completed order (real window)', { timeout: 240_000 }, async (t) => {
  assert.ok(existsSync(bin), `build the app first: ${bin} is missing`);
  assert.ok(process.env.DISPLAY, 'DISPLAY is not set: run under Xvfb (scripts/test-desktop.sh)');
  mkdirSync(shots, { recursive: true });
  const home = mkdtempSync(join(tmpdir(), 'outpost-e2e-photo-'));
  const env = {
    ...process.env,
    HOME: home,
    XDG_DATA_HOME: join(home, 'xdg-data'),
    XDG_CONFIG_HOME: join(home, 'xdg-config'),
    XDG_CACHE_HOME: join(home, 'xdg-cache'),
    OUTPOST_DATA_DIR: join(home, 'data'),
    OUTPOST_DB_KEY: randomBytes(32).toString('hex'),
    DBUS_SESSION_BUS_ADDRESS: '',
  };
  const driver = startDriver(driverBin, port, env);
  const wd = new WebDriver(`http://127.0.0.1:${port}`);
  t.after(async () => {
    await wd.quit().catch(() => {});
    stopGroup(driver.p);
    await sleep(300);
    if (!process.env.E2E_KEEP) rmSync(home, { recursive: true, force: true });
  });
  const shot = async (name) => writeFileSync(join(shots, `${name}.png`), await wd.settledScreenshot());

  await wd.start(bin);
  await wd.type(await wd.waitFor('[data-testid="demo-name"]', 30_000), 'Kari Nordmann');
  await wd.click(await wd.find('[data-testid="start-demo"]'));
  await wd.click(await wd.waitFor('[data-testid="order-row"]', 30_000));
  await wd.waitFor('[data-testid="note-input"]', 20_000);

  // Every step ticked, one at a time (each is saved before the boxes come back).
  for (let i = 0; i < 20; i++) {
    const left = await wd.exec(
      `const c = [...document.querySelectorAll('[data-testid^="check-"]')].find((c) => !c.checked);
       if (!c) return false; if (c.disabled) return true; c.scrollIntoView({ block: 'center' }); c.click(); return true;`,
    );
    if (!left) break;
    await wd.waitUntil(
      `return [...document.querySelectorAll('[data-testid^="check-"]')].every((c) => !c.disabled)`,
      [],
      15_000,
      'the tick is saved',
    );
  }

  // The phone's picture, given to the file input as a person's pick would.
  const photo = readFileSync(join(here, 'fixtures/portrait-exif6.jpg')).toString('base64');
  await wd.exec(
    `const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
     const input = document.getElementById('photos');
     const dt = new DataTransfer();
     dt.items.add(new File([bytes], 'portrait.jpg', { type: 'image/jpeg' }));
     input.files = dt.files;
     input.dispatchEvent(new Event('change', { bubbles: true }));`,
    [photo],
  );
  await wd.waitUntil(
    `return [...document.querySelectorAll('li')].some((l) => l.textContent.includes('portrait.jpg'))`,
    [],
    10_000,
    'the photo is picked',
  );
  await wd.exec(`
    const c = document.querySelector('[data-testid="signature-pad"]');
    c.scrollIntoView({ block: 'center' });
    const r = c.getBoundingClientRect();
    const ev = (type, x, y) => c.dispatchEvent(new PointerEvent(type, { bubbles: true, pointerId: 1, clientX: r.left + x, clientY: r.top + y, buttons: 1 }));
    ev('pointerdown', 20, 20);
    for (let i = 1; i < 20; i++) ev('pointermove', 20 + i * 10, 20 + (i % 5) * 12);
    ev('pointerup', 220, 60);`);
  await wd.type(await wd.find('[data-testid="signer"]'), 'Ola Customer');
  await wd.click(await wd.find('[data-testid="complete"]'));

  // The completed order shows its photo as stored: upright.
  await wd.waitUntil(
    `const img = document.querySelector('img[data-testid="photo"]');
     return !!img && img.complete && img.naturalWidth > 0`,
    [],
    30_000,
    'the photo is shown on the completed order',
  );
  const size = await wd.exec(
    `const img = document.querySelector('img[data-testid="photo"]');
     img.scrollIntoView({ block: 'center' });
     return [img.naturalWidth, img.naturalHeight];`,
  );
  assert.deepEqual(size, [300, 600], `a portrait photo stays upright (stored ${size[0]} × ${size[1]})`);
  await shot('24-portrait-photo-upright');
});
