// Test data: orders, sessions, sync status, failed syncs and conflicts shaped like the
// shell's answers.
import type { OrderSummary } from '../generated/OrderSummary';
import type { OrderDetail } from '../generated/OrderDetail';
import type { EngineStatusView } from '../generated/EngineStatusView';
import type { FailedSyncView } from '../generated/FailedSyncView';
import type { ConflictDetailView } from '../generated/ConflictDetailView';
import type { SessionInfo } from '../generated/SessionInfo';
import type { OrderQueryInput } from '../generated/OrderQueryInput';
import type { OrderPageView } from '../generated/OrderPageView';

export function summary(i: number, over: Partial<OrderSummary> = {}): OrderSummary {
  return {
    id: `00000000-0000-7000-8000-${String(i).padStart(12, '0')}`,
    number: 1000 + i,
    title: `Boiler service ${i}`,
    status: 'scheduled',
    priority: 'normal',
    customer: `Customer ${i}`,
    address: `Street ${i}, Tromsø`,
    asset_tag: `BLR-${i}`,
    scheduled_start: new Date().toISOString(),
    scheduled_end: null,
    time_zone: null,
    assignee: 'tech1',
    completed_at: null,
    sync_state: 'synced',
    reassigned_to: null,
    ...over,
  };
}

export function detail(over: Partial<OrderDetail> = {}): OrderDetail {
  return {
    summary: summary(1),
    description: 'Annual service.',
    customer_phone: '+47 900 00 000',
    customer_email: '',
    equipment_model: 'Model X',
    equipment_serial: 'SN-1',
    time_zone: 'Europe/Oslo',
    checklist: [
      { id: 'safety', label: 'Isolate power and water', required: true, done: false },
      { id: 'clean', label: 'Clean the work area', required: false, done: false },
    ],
    notes: [],
    time_entries: [],
    parts_used: [],
    photos: [],
    signature: null,
    version: 1,
    ...over,
  };
}

export function engineStatus(over: Partial<EngineStatusView> = {}): EngineStatusView {
  return {
    connectivity: 'online',
    reason: null,
    pending: 0,
    failed: 0,
    conflicts: 0,
    skipped: 0,
    last_sync: null,
    progress: null,
    notices: 0,
    documents_note: null,
    ...over,
  };
}

export function session(over: Partial<SessionInfo> = {}): SessionInfo {
  return {
    data_dir: '/tmp/x',
    initialized: true,
    open: true,
    username: 'tech1',
    signed_in: true,
    role: 'technician',
    server_url: 'https://outpost.example.com',
    key_source: 'the OS credential store',
    passphrase: false,
    open_error: null,
    tray: false,
    default_server_url: null,
    ...over,
  };
}

export function failedSync(over: Partial<FailedSyncView> = {}): FailedSyncView {
  return {
    id: 'f1',
    order_id: summary(1).id,
    order_title: 'Boiler service 1',
    kind: 'complete',
    code: 'validation',
    message: 'The order cannot be completed: a required step is not done and the title is empty.',
    field_errors: [
      { field: 'checklist.meter', code: 'required', message: 'read the meter before completing' },
      { field: 'title', code: 'required', message: 'the title cannot be empty' },
    ],
    created_at: new Date().toISOString(),
    payload: '{\n  "kind": "complete"\n}',
    ...over,
  };
}

export function conflict(over: Partial<ConflictDetailView> = {}): ConflictDetailView {
  return {
    id: 'c1',
    order_id: summary(1).id,
    order_number: 1001,
    status: 'open',
    summary: 'tech1 and someone else changed the same fields from the same version: choose what stands.',
    username: 'tech1',
    created_at: new Date().toISOString(),
    fields: [
      { field: 'title', base: 'Boiler', theirs: 'Boiler (urgent)', mine: 'Boiler service', text: true },
      { field: 'priority', base: 'normal', theirs: 'high', mine: 'low', text: false },
    ],
    whole_change: false,
    resolving: false,
    resolution: null,
    details_pending: false,
    payload: '{}',
    ...over,
  };
}

/**
 * A stand-in for the shell's `list_orders` over `orders` (unit tests only; the real
 * search is the store's, tested in Rust): words, tab, filters and the page.
 */
export function fakePage(orders: OrderSummary[], q: OrderQueryInput): OrderPageView {
  const tomorrow = q.tomorrow ? Date.parse(q.tomorrow) : Date.now() + 86_400_000;
  const closed = (o: OrderSummary) => o.status === 'completed' || o.status === 'cancelled';
  const bucketOf = (o: OrderSummary) =>
    closed(o)
      ? 'completed'
      : !o.scheduled_start || Date.parse(o.scheduled_start) < tomorrow
        ? 'today'
        : 'upcoming';
  const terms = q.text.toLowerCase().split(/\s+/).filter(Boolean).map((t) => t.replace(/^#+/, ''));
  const hits = orders.filter((o) => {
    const hay = [o.number ?? '', o.title, o.customer, o.address, o.asset_tag, o.status.replace('_', ' '), o.assignee ?? '']
      .join('\n')
      .toLowerCase();
    return (
      (!q.bucket || bucketOf(o) === q.bucket) &&
      (!q.status || o.status === q.status) &&
      (!q.priority || o.priority === q.priority) &&
      (!q.sync || o.sync_state === q.sync) &&
      (q.assignee === null || (q.assignee === '' ? !o.assignee : o.assignee === q.assignee)) &&
      terms.every((t) => hay.includes(t))
    );
  });
  const count = (b: string) => orders.filter((o) => bucketOf(o) === b).length;
  return {
    rows: hits.slice(q.offset, q.offset + q.limit),
    total: hits.length,
    total_capped: false,
    counts: { today: count('today'), upcoming: count('upcoming'), completed: count('completed') },
    assignees: [...new Set(orders.map((o) => o.assignee).filter((a): a is string => !!a))].sort(),
  };
}
