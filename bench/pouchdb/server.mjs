// express-pouchdb serving one database ("fleet") from LevelDB files under DIR, on
// loopback. Seeds ITEMS inventory items and ORDERS orders of tech1 first (untimed).
//
//   node server.mjs DIR ITEMS ORDERS     prints {"port": N} when listening
import { mkdirSync } from 'node:fs';
import express from 'express';
import expressPouchDB from 'express-pouchdb';
import PouchDB from 'pouchdb';
import { item, order } from './docs.mjs';

const [dir, items = '0', orders = '0'] = process.argv.slice(2);
mkdirSync(dir, { recursive: true });
const Db = PouchDB.defaults({ prefix: `${dir}/` });
const fleet = new Db('fleet');
const info = await fleet.info();
if (info.doc_count === 0) {
  const docs = [];
  for (let i = 0; i < Number(orders); i++) docs.push(order(i, 'tech1'));
  for (let i = 0; i < Number(items); i++) docs.push(item(i));
  for (let at = 0; at < docs.length; at += 5000) {
    await fleet.bulkDocs(docs.slice(at, at + 5000));
  }
}
const app = express();
app.use('/', expressPouchDB(Db, { mode: 'minimumForPouchDB', inMemoryConfig: true, logPath: `${dir}/log.txt` }));
const listener = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: listener.address().port })}\n`);
});
