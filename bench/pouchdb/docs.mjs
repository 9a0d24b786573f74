// The documents of the PouchDB baseline, shaped like Outpost's own rows so that both
// sides move the same data: an inventory item like the server's demo item
// (`outpost-server seed --demo`), a work order like a demo order's JSON body.

const KINDS = [
  ['Filter', 'each'],
  ['Cable', 'm'],
  ['Seal kit', 'each'],
  ['Coolant', 'l'],
  ['Fuse', 'each'],
  ['Bearing', 'each'],
];

export function sku(i) {
  return `SKU-${String(i).padStart(5, '0')}`;
}

export function item(i) {
  const [kind, unit] = KINDS[i % KINDS.length];
  const stock = [{ location: 'main', quantity: (20 + (i % 50)) * 1000 }];
  if (i % 10 === 0) stock.push({ location: `van-tech${(Math.floor(i / 10) % 5) + 1}`, quantity: 5000 });
  return {
    _id: `item:${sku(i)}`,
    type: 'inventory_item',
    sku: sku(i),
    name: `${kind} ${i}`,
    description: `Demo ${kind} number ${i}`,
    unit,
    price_cents: 100 + (i % 997) * 7,
    stock,
  };
}

function uuid(n) {
  return `0de00000-0000-7000-8000-${String(n).padStart(12, '0')}`;
}

/** An assigned order, as the demo seeds it (about 1 KB of JSON, like the server's). */
export function order(i, assignee) {
  return {
    _id: `order:${uuid(i)}`,
    type: 'work_order',
    number: i + 1,
    title: 'Annual heat pump service',
    description: 'Yearly service under the maintenance agreement.',
    priority: 'normal',
    status: 'assigned',
    customer: { name: 'Frogner Tannklinikk', phone: '+47 22 100 100', email: 'frognertannklinikk@example.com' },
    site: { address: 'Bygdøy allé 23, 0262 Oslo', latitude: 59.9166, longitude: 10.7106 },
    equipment: { asset_tag: `AT-${String(i).padStart(5, '0')}`, model: 'Nibe F2120-12', serial: 'NB1000003' },
    scheduled: { start: '2026-12-07T06:30:00Z', end: '2026-12-07T08:00:00Z', time_zone: 'Europe/Oslo' },
    assignee,
    checklist: [
      { id: 'c1', label: 'Isolate power', required: true, done: false },
      { id: 'c2', label: 'Clean evaporator coil', required: true, done: false },
      { id: 'c3', label: 'Check refrigerant pressures', required: true, done: false },
      { id: 'c4', label: 'Test defrost cycle', required: false, done: false },
      { id: 'c5', label: 'Record COP reading', required: false, done: false },
    ],
    notes: [],
    time_entries: [],
    parts_used: [],
    photos: [],
    signature: null,
    completed_at: null,
  };
}

/** A tiny PNG-like signature, distinct per order (as the Outpost benchmark's). */
export function signature(marker) {
  return Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), Buffer.from(marker)]);
}
