// Pure logic of the order list: which tab an order is on, and instant search with
// filters over thousands of orders (a prepared lower-case haystack per order, so a
// keystroke is one substring scan per order: ~10,000 in a few milliseconds).
import type { OrderSummary } from '../generated/OrderSummary';
import type { OrderDetail } from '../generated/OrderDetail';
import type { OrderSyncState } from '../generated/OrderSyncState';
import type { OrderPriority } from '../generated/OrderPriority';
import type { OrderStatus } from '../generated/OrderStatus';

export type Bucket = 'today' | 'upcoming' | 'completed';

export const BUCKETS: { id: Bucket; label: string }[] = [
  { id: 'today', label: 'Today' },
  { id: 'upcoming', label: 'Upcoming' },
  { id: 'completed', label: 'Completed' },
];

function localDay(d: Date): number {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
}

/**
 * The tab of an order, in the viewer's local time: completed and cancelled orders are
 * "completed"; open orders scheduled today, earlier (overdue) or not at all are "today";
 * the rest "upcoming".
 */
export function bucketOf(o: OrderSummary, now: Date): Bucket {
  if (o.status === 'completed' || o.status === 'cancelled') return 'completed';
  if (!o.scheduled_start) return 'today';
  return localDay(new Date(o.scheduled_start)) <= localDay(now) ? 'today' : 'upcoming';
}

export interface Filters {
  query: string;
  priority: OrderPriority | 'any';
  sync: OrderSyncState | 'any';
}

export const noFilters: Filters = { query: '', priority: 'any', sync: 'any' };

export interface Indexed {
  order: OrderSummary;
  bucket: Bucket;
  haystack: string;
  sortKey: number;
}

export function orderLabel(o: OrderSummary): string {
  return o.number === null ? 'New' : `#${o.number}`;
}

/** Prepare the list once per load (not per keystroke). */
export function indexOrders(orders: OrderSummary[], now: Date): Indexed[] {
  return orders.map((order) => ({
    order,
    bucket: bucketOf(order, now),
    haystack: [
      order.number ?? '',
      order.title,
      order.customer,
      order.address,
      order.asset_tag,
      order.status.replace('_', ' '),
    ]
      .join(' \u0000 ')
      .toLowerCase(),
    sortKey: order.scheduled_start ? Date.parse(order.scheduled_start) : 0,
  }));
}

/** The orders of `bucket` matching `filters`, soonest first (latest first for completed). */
export function filterOrders(index: Indexed[], bucket: Bucket, f: Filters): Indexed[] {
  const terms = f.query.toLowerCase().split(/\s+/).filter(Boolean);
  const out = index.filter(
    (x) =>
      x.bucket === bucket &&
      (f.priority === 'any' || x.order.priority === f.priority) &&
      (f.sync === 'any' || x.order.sync_state === f.sync) &&
      terms.every((t) => x.haystack.includes(t)),
  );
  out.sort((a, b) => (bucket === 'completed' ? b.sortKey - a.sortKey : a.sortKey - b.sortKey));
  return out;
}

export function countByBucket(index: Indexed[]): Record<Bucket, number> {
  const c: Record<Bucket, number> = { today: 0, upcoming: 0, completed: 0 };
  for (const x of index) c[x.bucket]++;
  return c;
}

export const SYNC_LABELS: Record<OrderSyncState, string> = {
  saved: 'Saved on this device',
  syncing: 'Syncing',
  synced: 'Synced',
  failed: 'Failed',
  conflict: 'Conflict',
};

export const STATUS_LABELS: Record<OrderStatus, string> = {
  scheduled: 'Scheduled',
  en_route: 'En route',
  in_progress: 'In progress',
  on_hold: 'On hold',
  completed: 'Completed',
  cancelled: 'Cancelled',
};

export const PRIORITY_LABELS: Record<OrderPriority, string> = {
  low: 'Low',
  normal: 'Normal',
  high: 'High',
  urgent: 'Urgent',
};

/** Statuses a technician may set by editing (completed and cancelled have their own actions). */
export const EDITABLE_STATUSES: OrderStatus[] = ['scheduled', 'en_route', 'in_progress', 'on_hold'];

/** A time for people; in `timeZone` (the site's IANA zone) when given and known. */
export function formatWhen(iso: string | null, timeZone?: string | null): string {
  if (!iso) return 'Not scheduled';
  const d = new Date(iso);
  const opts: Intl.DateTimeFormatOptions = {
    weekday: 'short',
    day: 'numeric',
    month: 'short',
    hour: '2-digit',
    minute: '2-digit',
  };
  if (timeZone) {
    try {
      return d.toLocaleString(undefined, { ...opts, timeZone, timeZoneName: 'short' });
    } catch {
      /* unknown zone: fall back to the viewer's */
    }
  }
  return d.toLocaleString(undefined, opts);
}

/**
 * Who holds an order now when it was reassigned away from this device while it had
 * local work (`reassigned_to`): it stays visible, marked, until a person decides.
 */
export function reassignedTo(o: OrderSummary | OrderDetail): string | null {
  type Marked = { reassigned_to?: string | null };
  const summary = 'summary' in o ? o.summary : o;
  return (o as Marked).reassigned_to ?? (summary as Marked).reassigned_to ?? null;
}
