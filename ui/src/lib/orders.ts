// The order list's vocabulary: tabs, filters, the query for a tab (the search itself
// runs on the device's database, see crates/store/src/list.rs), labels and times.
import type { OrderSummary } from '../generated/OrderSummary';
import type { OrderDetail } from '../generated/OrderDetail';
import type { OrderSyncState } from '../generated/OrderSyncState';
import type { OrderPriority } from '../generated/OrderPriority';
import type { OrderStatus } from '../generated/OrderStatus';
import type { OrderQueryInput } from '../generated/OrderQueryInput';

export type Bucket = 'today' | 'upcoming' | 'completed';

export const BUCKETS: { id: Bucket; label: string }[] = [
  { id: 'today', label: 'Today' },
  { id: 'upcoming', label: 'Upcoming' },
  { id: 'completed', label: 'Completed' },
];

/** The start of the viewer's next local day: open orders before it are on "Today". */
export function tomorrowOf(now: Date): Date {
  return new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1);
}

export interface Filters {
  query: string;
  priority: OrderPriority | 'any';
  sync: OrderSyncState | 'any';
}

export const noFilters: Filters = { query: '', priority: 'any', sync: 'any' };

/** The query for one tab of the technician's list (searched on the device's database). */
export function tabQuery(bucket: Bucket, f: Filters, now: Date, limit: number): OrderQueryInput {
  return {
    text: f.query,
    bucket,
    tomorrow: tomorrowOf(now).toISOString(),
    status: null,
    priority: f.priority === 'any' ? null : f.priority,
    sync: f.sync === 'any' ? null : f.sync,
    assignee: null,
    offset: 0,
    limit,
  };
}

/**
 * The list's count in words: "3 orders", "60 orders, showing the first 25", and when the
 * device stopped counting (a dispatcher's list of 100,000 orders counts the first
 * 1,000 matches), "More than 1,000 orders, showing the first 25".
 */
export function countWords(total: number, capped: boolean, shown: number): string {
  const n = total.toLocaleString('en');
  const head = capped ? `More than ${n} orders` : `${n} order${total === 1 ? '' : 's'}`;
  return capped || total > shown ? `${head}, showing the first ${shown}` : head;
}

export function orderLabel(o: OrderSummary): string {
  return o.number === null ? 'New' : `#${o.number}`;
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

const WHEN_OPTIONS: Intl.DateTimeFormatOptions = {
  weekday: 'short',
  day: 'numeric',
  month: 'short',
  hour: '2-digit',
  minute: '2-digit',
};
// One formatter per zone, made once: `toLocaleString` with options builds a new one on
// every call, which a list of rows pays for on every keystroke.
const formatters = new Map<string, Intl.DateTimeFormat | null>();
function formatterFor(timeZone: string | null): Intl.DateTimeFormat | null {
  const key = timeZone ?? '';
  if (!formatters.has(key)) {
    try {
      formatters.set(
        key,
        new Intl.DateTimeFormat(undefined, timeZone ? { ...WHEN_OPTIONS, timeZone, timeZoneName: 'short' } : WHEN_OPTIONS),
      );
    } catch {
      formatters.set(key, null); // an unknown zone: the viewer's is used instead
    }
  }
  return formatters.get(key) ?? null;
}

/** A time for people; in `timeZone` (the site's IANA zone) when given and known. */
export function formatWhen(iso: string | null, timeZone?: string | null): string {
  if (!iso) return 'Not scheduled';
  const d = new Date(iso);
  const f = (timeZone ? formatterFor(timeZone) : null) ?? formatterFor(null);
  return f ? f.format(d) : d.toLocaleString();
}

// The same, without the zone's name: to tell whether the site's clock reads as this
// computer's does.
const plainFormatters = new Map<string, Intl.DateTimeFormat | null>();
function plainFormatterFor(timeZone: string): Intl.DateTimeFormat | null {
  if (!plainFormatters.has(timeZone)) {
    try {
      plainFormatters.set(timeZone, new Intl.DateTimeFormat(undefined, { ...WHEN_OPTIONS, timeZone }));
    } catch {
      plainFormatters.set(timeZone, null);
    }
  }
  return plainFormatters.get(timeZone) ?? null;
}

/**
 * A visit's time in the site's zone, as the order shows it; the zone is named only
 * where the site's clock reads differently from this computer's (the list says 09:00
 * GMT+1 for a site in Oslo seen from London, and plain 09:00 seen from Oslo).
 */
export function formatSiteWhen(iso: string | null, timeZone?: string | null): string {
  if (!iso || !timeZone) return formatWhen(iso);
  const d = new Date(iso);
  const site = plainFormatterFor(timeZone);
  const local = formatterFor(null);
  if (site && local && site.format(d) === local.format(d)) return local.format(d);
  return formatWhen(iso, timeZone);
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
