// A PouchDB device (LevelDB files under DIR), one action per process, so that the
// orchestrator times it from process start to exit as it times `outpost sync`.
//
//   node client.mjs prime URL DIR     a new device replicates the fleet database
//   node client.mjs pull URL DIR      the same device replicates what changed since
//   node client.mjs sync URL DIR      push and pull (PouchDB's sync), one-shot
//   node client.mjs offline DIR N TAG N orders created and completed offline
//
// Prints one JSON line: what the replication reported and the process's peak RSS.
import { mkdirSync } from 'node:fs';
import PouchDB from 'pouchdb';
import { signature, sku } from './docs.mjs';

const [mode, ...args] = process.argv.slice(2);
mkdirSync(mode === 'offline' ? args[0] : args[1], { recursive: true });

function report(extra) {
  const maxRssKb = process.resourceUsage().maxRSS;
  process.stdout.write(`${JSON.stringify({ ...extra, peak_rss_kb: maxRssKb })}\n`);
}

async function offline(dir, n, tag) {
  const local = new PouchDB(`${dir}/fleet`);
  for (let i = 0; i < n; i++) {
    const id = `order:local-${tag}-${i}`;
    // Created, then a note and a part, then completed with the customer's signature:
    // three local writes, as the Outpost device's create, edit and complete.
    const created = await local.put({
      _id: id,
      type: 'work_order',
      title: `Follow-up ${tag}-${i}: replace the seal`,
      customer: { name: 'Harbour Bakery' },
      status: 'in_progress',
      assignee: 'tech1',
      notes: [],
      parts_used: [],
    });
    const edited = await local.put({
      ...(await local.get(id)),
      _rev: created.rev,
      notes: [`Seal replaced, pump tested for 10 minutes (${i})`],
      parts_used: [{ sku: sku(0), quantity: 1000 }],
    });
    await local.put({
      ...(await local.get(id)),
      _rev: edited.rev,
      status: 'completed',
      signer: 'Site manager',
      completed_at: new Date().toISOString(),
      _attachments: {
        'signature.png': { content_type: 'image/png', data: signature(`signature ${tag}-${i}`) },
      },
    });
  }
  await local.close();
  report({ orders: n });
}

async function replicate(kind, url, dir) {
  const local = new PouchDB(`${dir}/fleet`);
  const remote = new PouchDB(`${url}/fleet`);
  let result;
  if (kind === 'sync') {
    const r = await local.sync(remote);
    result = {
      push_docs_written: r.push.docs_written,
      pull_docs_written: r.pull.docs_written,
      push_docs_read: r.push.docs_read,
      pull_docs_read: r.pull.docs_read,
      errors: r.push.errors.length + r.pull.errors.length,
    };
  } else {
    const r = await PouchDB.replicate(remote, local);
    result = { docs_read: r.docs_read, docs_written: r.docs_written, errors: r.errors.length };
  }
  await local.close();
  await remote.close();
  report(result);
}

if (mode === 'offline') {
  await offline(args[0], Number(args[1]), args[2]);
} else if (mode === 'prime' || mode === 'pull' || mode === 'sync') {
  await replicate(mode, args[0], args[1]);
} else {
  process.stderr.write(`client.mjs: unknown mode ${mode}\n`);
  process.exit(2);
}
