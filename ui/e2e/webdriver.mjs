// A minimal W3C WebDriver client over fetch (Node 20), enough for tauri-driver:
// sessions, finding elements by CSS, clicking, typing, running scripts, screenshots.
// Kept tiny on purpose: no webdriverio, no browser download.

import { spawn } from 'node:child_process';

const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

/**
 * Start tauri-driver on `port` in its own process group, so that ending the group also
 * ends WebKitWebDriver and the app. Its output is kept for failure messages.
 */
export function startDriver(driverBin, port, env) {
  // WebKitWebDriver on its own port (E2E_NATIVE_PORT, else the port after tauri-driver's),
  // so that runs on other ports do not share its session.
  const native = process.env.E2E_NATIVE_PORT || String(port + 1);
  const p = spawn(driverBin, ['--port', String(port), '--native-port', native], {
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  p.stdout.on('data', (d) => (log += d));
  p.stderr.on('data', (d) => (log += d));
  return { p, log: () => log };
}

/** End a process group started by `startDriver`. */
export function stopGroup(p) {
  try {
    process.kill(-p.pid, 'SIGTERM');
  } catch {
    /* already gone */
  }
}

export class WebDriver {
  constructor(base) {
    this.base = base;
    this.session = null;
  }

  async cmd(method, path, body) {
    const res = await fetch(`${this.base}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) {
      const v = json.value ?? {};
      throw new Error(`${method} ${path}: ${res.status} ${v.error ?? ''} ${v.message ?? ''}`);
    }
    return json.value;
  }

  s(path) {
    return `/session/${this.session}${path}`;
  }

  async start(application, timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await fetch(`${this.base}/status`, { signal: AbortSignal.timeout(2_000) });
        break;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`tauri-driver did not answer: ${e}`);
        await sleep(200);
      }
    }
    const v = await this.cmd('POST', '/session', {
      capabilities: {
        alwaysMatch: { browserName: 'wry', 'tauri:options': { application } },
      },
    });
    this.session = v.sessionId;
    return v;
  }

  async quit() {
    if (!this.session) return;
    try {
      await this.cmd('DELETE', this.s(''));
    } finally {
      this.session = null;
    }
  }

  async find(css) {
    const v = await this.cmd('POST', this.s('/element'), { using: 'css selector', value: css });
    return v[ELEMENT];
  }

  async findAll(css) {
    const v = await this.cmd('POST', this.s('/elements'), { using: 'css selector', value: css });
    return v.map((e) => e[ELEMENT]);
  }

  /** Wait until `css` matches an element; returns it. */
  async waitFor(css, timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = await this.findAll(css);
      if (found.length > 0) return found[0];
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${css}`);
      await sleep(100);
    }
  }

  /** Wait until the script returns a truthy value; returns it. */
  async waitUntil(script, args = [], timeoutMs = 20_000, what = script) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await this.exec(script, args);
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
      await sleep(100);
    }
  }

  exec(script, args = []) {
    return this.cmd('POST', this.s('/execute/sync'), { script, args });
  }

  /** Scroll the element to the middle of the view (clear of sticky bars), then click. */
  async click(el) {
    await this.exec("arguments[0].scrollIntoView({ block: 'center' })", [{ [ELEMENT]: el }]);
    return this.cmd('POST', this.s(`/element/${el}/click`), {});
  }

  type(el, text) {
    return this.cmd('POST', this.s(`/element/${el}/value`), { text });
  }

  text(el) {
    return this.cmd('GET', this.s(`/element/${el}/text`));
  }

  /**
   * A screenshot of the window. WebKitGTK's snapshot waits for the page's next paint;
   * when the app paints on the CPU without compositing (no GPU, as under Xvfb: see
   * src-tauri/src/rendering.rs) a page where nothing changes never paints again, and
   * the capture would wait forever. So while it is taken, a 1-pixel mark in the
   * bottom-right corner changes its colour by one step every 50 ms (invisible in the
   * picture) and is removed afterwards.
   */
  async screenshot() {
    await this.exec(
      `const m = document.createElement('div');
       m.id = '__e2e-paint-nudge';
       m.style.cssText = 'position:fixed;right:0;bottom:0;width:1px;height:1px;pointer-events:none;z-index:2147483647';
       document.body.appendChild(m);
       let on = false;
       m.dataset.timer = String(setInterval(() => {
         on = !on;
         m.style.background = on ? 'rgba(0,0,0,0.01)' : 'rgba(0,0,0,0.02)';
       }, 50));
       return true;`,
    );
    try {
      return Buffer.from(await this.cmd('GET', this.s('/screenshot')), 'base64');
    } finally {
      await this.exec(
        `const m = document.getElementById('__e2e-paint-nudge');
         if (m) { clearInterval(Number(m.dataset.timer)); m.remove(); }
         return true;`,
      ).catch(() => {});
    }
  }

  /** A screenshot once the DOM's latest state is painted (a capture can show an older frame). */
  async settledScreenshot() {
    await this.exec('return new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))');
    await sleep(250);
    return this.screenshot();
  }
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
