// The PouchDB baseline of Outpost's sync benchmarks (issue 24): PouchDB 9 replicating
// from express-pouchdb on loopback, on the workloads Outpost's benchmarks time, each
// client action its own process timed from spawn to exit, bytes counted by a proxy.
//
//   node baseline.mjs [--quick] [--items N] [--orders N] [--samples N] [--out FILE]
//
// Workloads: priming ITEMS inventory items and 100 orders on a new device; a 1% delta
// (ITEMS/100 items changed on the server); the reconnect after ORDERS orders created
// and completed offline (create, note and part, completion with a signature), one-shot
// push and pull. Prints a readable summary and writes the figures as JSON to FILE.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import PouchDB from 'pouchdb';
import { item } from './docs.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const quick = flag('--quick');
const items = Number(opt('--items', quick ? 2000 : 100000));
const orders = Number(opt('--orders', quick ? 20 : 1000));
const samples = Number(opt('--samples', quick ? 1 : 3));
const out = opt('--out', null);

/** A TCP proxy in front of the server that counts the bytes each way. */
function countingProxy(port) {
  const counts = { up: 0, down: 0, connections: 0 };
  const server = net.createServer((client) => {
    counts.connections += 1;
    const upstream = net.connect(port, '127.0.0.1');
    client.on('data', (b) => {
      counts.up += b.length;
    });
    upstream.on('data', (b) => {
      counts.down += b.length;
    });
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, counts, port: server.address().port }));
  });
}

/** Run `node client.mjs ARGS` to exit: wall time, and its JSON report. */
function client(args) {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(process.execPath, [path.join(here, 'client.mjs'), ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (b) => {
      stdout += b;
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (code !== 0) reject(new Error(`client.mjs ${args[0]} exited with ${code}`));
      else resolve({ ms, ...JSON.parse(stdout.trim().split('\n').pop()) });
    });
  });
}

function startServer(dir) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(here, 'server.mjs'), dir, String(items), '100'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`server.mjs exited with ${code} before listening`)));
    child.stdout.once('data', (b) => resolve({ child, port: JSON.parse(String(b)).port }));
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mb = (n) => (n / 1e6).toFixed(2);

const work = mkdtempSync(path.join(os.tmpdir(), 'outpost-pouchdb-'));
const results = { tool: 'PouchDB 9.0.0 replicating from express-pouchdb 4.2.0 (LevelDB on both sides)', items, orders };
let server;
let proxy;
try {
  const seedStart = Date.now();
  server = await startServer(path.join(work, 'server'));
  console.log(`pouchdb baseline: server seeded with ${items} items and 100 orders in ${Date.now() - seedStart} ms`);
  proxy = await countingProxy(server.port);
  const url = `http://127.0.0.1:${proxy.port}`;
  const device = path.join(work, 'device');
  const reset = () => Object.assign(proxy.counts, { up: 0, down: 0, connections: 0 });

  reset();
  const prime = await client(['prime', url, device]);
  results.priming = { ...prime, bytes_up: proxy.counts.up, bytes_down: proxy.counts.down };
  console.log(`  priming ${items + 100} docs: ${prime.ms.toFixed(0)} ms, peak RSS ${(prime.peak_rss_kb / 1024).toFixed(0)} MB, ${mb(proxy.counts.down)} MB down, ${mb(proxy.counts.up)} MB up`);

  // A 1% delta: the stock of every hundredth item changes on the server.
  const remote = new PouchDB(`http://127.0.0.1:${server.port}/fleet`);
  const keys = [];
  for (let i = 0; i < items; i += 100) keys.push(item(i)._id);
  const rows = (await remote.allDocs({ keys, include_docs: true })).rows;
  await remote.bulkDocs(rows.map((r) => ({ ...r.doc, stock: r.doc.stock.map((s) => ({ ...s, quantity: s.quantity - 1000 })) })));
  reset();
  const delta = await client(['pull', url, device]);
  results.delta = { ...delta, changed: keys.length, bytes_up: proxy.counts.up, bytes_down: proxy.counts.down };
  console.log(`  1% delta (${keys.length} items): ${delta.ms.toFixed(0)} ms, ${mb(proxy.counts.down)} MB down`);

  // The reconnect: the device synced once both ways (so both checkpoints exist), then
  // ORDERS orders created and completed offline, then one-shot sync, per sample.
  await client(['sync', url, device]);
  const times = [];
  for (let s = 0; s < samples; s++) {
    await client(['offline', device, String(orders), `s${s}`]);
    reset();
    const r = await client(['sync', url, device]);
    times.push(r.ms);
    results.reconnect_samples = [...(results.reconnect_samples ?? []), { ...r, bytes_up: proxy.counts.up, bytes_down: proxy.counts.down, connections: proxy.counts.connections }];
    console.log(`  reconnect sample ${s}: ${r.ms.toFixed(0)} ms, ${r.push_docs_written} docs pushed, ${mb(proxy.counts.up)} MB up, ${mb(proxy.counts.down)} MB down`);
  }
  results.reconnect = { median_ms: median(times), min_ms: Math.min(...times), max_ms: Math.max(...times), samples: times.length };
  console.log(`  reconnect: median ${median(times).toFixed(0)} ms over ${times.length} sample(s)`);
  await remote.close();
  // The baseline column of docs/benchmarks.md's "Latest run" (`make bench` collects
  // these lines; `cargo xtask bench-report` pairs them with Outpost's figures by id).
  const line = (id, text) => console.log(`bench-result: ${JSON.stringify({ baseline_for: id, text: `PouchDB: ${text}` })}`);
  const p = results.priming;
  line('priming', `${(p.ms / 1000).toFixed(2)} s, peak RSS ${(p.peak_rss_kb / 1024).toFixed(0)} MB, ${mb(p.bytes_down)} MB down + ${mb(p.bytes_up)} MB up`);
  line('delta', `${results.delta.ms.toFixed(0)} ms, ${(results.delta.bytes_down / 1e3).toFixed(1)} KB down`);
  const last = results.reconnect_samples.at(-1);
  line('reconnect', `${results.reconnect.median_ms.toFixed(0)} ms median of ${times.length} (range ${results.reconnect.min_ms.toFixed(0)}–${results.reconnect.max_ms.toFixed(0)}); ${last.connections} connections, ${mb(last.bytes_up)} MB up, ${mb(last.bytes_down)} MB down`);
  if (out) writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
} finally {
  proxy?.server.close();
  if (server) {
    server.child.removeAllListeners('exit');
    server.child.kill();
  }
  rmSync(work, { recursive: true, force: true });
}
