// What the real-window tests share to stand up a world: the release binaries' paths, a
// free port, a seeded `outpost-server` on loopback, a CLI device, the window's
// environment and sign-in. Each test keeps its own story; this is the set-up.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { join, resolve, dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { rmSync } from 'node:fs';
import { sleep, stopGroup } from './webdriver.mjs';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const desktopBin = resolve(process.env.OUTPOST_DESKTOP_BIN ?? join(root, 'target/release/outpost-desktop'));
export const serverBin = join(dirname(desktopBin), 'outpost-server');
export const cliBin = join(dirname(desktopBin), 'outpost');
export const shots = join(root, 'target/e2e-screenshots');
export const driverBin = process.env.TAURI_DRIVER ?? 'tauri-driver';
export const driverPort = Number(process.env.E2E_DRIVER_PORT ?? 4444);
export const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

/** A TCP port nobody listens on now. */
export function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
    s.on('error', rej);
  });
}

/**
 * `outpost-server seed --demo` (with `seedArgs`) into `home/server.db`, then `serve` on a
 * free loopback port; resolves once /health answers. `admin(args)` runs another
 * `outpost-server` command on the same database; `stop()` ends the server.
 */
export async function startServer(home, seedArgs = []) {
  const db = `sqlite:${join(home, 'server.db')}`;
  const seed = spawnSync(serverBin, ['seed', '--demo', ...seedArgs, '--db', db], { encoding: 'utf8' });
  assert.equal(seed.status, 0, seed.stderr);
  return serve(db);
}

/** `outpost-server serve` on database `db` (`sqlite:PATH`), as `startServer` without the seeding. */
export async function serve(db) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(serverBin, ['serve', '--listen', `127.0.0.1:${port}`, '--db', db], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) })).ok) break;
    } catch {
      /* not yet */
    }
    if (i > 100) throw new Error(`outpost-server did not start: ${err}`);
    await sleep(100);
  }
  const admin = (args) => {
    const r = spawnSync(serverBin, [...args, '--db', db], { encoding: 'utf8' });
    assert.equal(r.status, 0, `outpost-server ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const stop = async () => {
    if (proc.exitCode === null) {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    }
  };
  return { url, port, db, admin, stop, log: () => err };
}

/**
 * A TCP relay to `upstreamPort` on loopback that a test can cut (every connection
 * closed, new ones refused) and restore; it listens on `listenPort` (0: any free port).
 * `onConnect()` is called for each connection it lets through.
 */
export async function relay(upstreamPort, { listenPort = 0, cut: startCut = false, onConnect = () => {} } = {}) {
  const sockets = new Set();
  let cut = startCut;
  const server = net.createServer((client) => {
    if (cut) return client.destroy();
    onConnect();
    const up = net.connect(upstreamPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(up);
    client.pipe(up);
    up.pipe(client);
    const end = () => {
      client.destroy();
      up.destroy();
      sockets.delete(client);
      sockets.delete(up);
    };
    client.on('error', end);
    up.on('error', end);
    client.on('close', end);
    up.on('close', end);
  });
  await new Promise((r, j) => {
    server.once('error', j);
    server.listen(listenPort, '127.0.0.1', r);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      cut = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    restore() {
      cut = false;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      sockets.clear();
      return new Promise((r) => server.close(r));
    },
  };
}

/** A CLI device in `dir` signed in as `user` (demo password): `run(args)`, `json(args)`. */
export function cliDevice(dir, serverUrl, user) {
  const env = { ...process.env, OUTPOST_DB_KEY: randomBytes(32).toString('hex'), DBUS_SESSION_BUS_ADDRESS: '' };
  const run = (args, input) => {
    const r = spawnSync(cliBin, ['--data-dir', dir, ...args], { env, encoding: 'utf8', input });
    assert.equal(r.status, 0, `outpost ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  run(['login', '--server', serverUrl, '--username', user, '--password-stdin'], 'outpost-demo\n');
  return { run, json: (args) => JSON.parse(run(['--json', ...args])) };
}

/** The window's environment: its own home, data directory and key, the server, quick probes. */
export function appEnv(home, serverUrl, dataName = 'app') {
  return {
    ...process.env,
    HOME: home,
    XDG_DATA_HOME: join(home, 'xdg-data'),
    XDG_CONFIG_HOME: join(home, 'xdg-config'),
    XDG_CACHE_HOME: join(home, 'xdg-cache'),
    OUTPOST_DATA_DIR: join(home, dataName),
    OUTPOST_DB_KEY: randomBytes(32).toString('hex'),
    OUTPOST_SERVER_URL: serverUrl,
    OUTPOST_PROBE_MAX_MS: '1000',
    OUTPOST_SYNC_PERIOD_MS: '2000',
    DBUS_SESSION_BUS_ADDRESS: '',
  };
}

/** Sign in on the window's first screen and wait for the first orders. */
export async function signIn(wd, user, password = 'outpost-demo') {
  await wd.waitFor('[data-testid="signin-user"]', 30_000);
  await wd.type(await wd.find('[data-testid="signin-user"]'), user);
  await wd.type(await wd.find('[data-testid="signin-password"]'), password);
  await wd.click(await wd.find('[data-testid="signin-submit"]'));
  await wd.waitUntil(`return document.querySelectorAll('[data-testid="order-row"]').length >= 1`, [], 60_000, 'the assigned orders arrive');
}

/** After the test: end the window, the driver and the server; keep `home` when E2E_KEEP is set. */
export function cleanUpAfter(t, { wd, driver, server, home }) {
  t.after(async () => {
    await wd.quit().catch(() => {});
    stopGroup(driver.p);
    await server.stop();
    await sleep(300);
    if (!process.env.E2E_KEEP) rmSync(home, { recursive: true, force: true });
  });
}
