import { describe, expect, it } from 'vitest';
import { bucketOf, filterOrders, indexOrders, noFilters } from './orders';
import { summary } from './fixtures';

const now = new Date(2026, 10, 2, 9, 0, 0);
const at = (days: number, hour = 10) => new Date(2026, 10, 2 + days, hour).toISOString();

describe('bucketOf', () => {
  it('puts open orders of today and overdue ones on Today, later ones on Upcoming', () => {
    expect(bucketOf(summary(1, { scheduled_start: at(0, 23) }), now)).toBe('today');
    expect(bucketOf(summary(1, { scheduled_start: at(-3) }), now)).toBe('today');
    expect(bucketOf(summary(1, { scheduled_start: at(1, 0) }), now)).toBe('upcoming');
    expect(bucketOf(summary(1, { scheduled_start: null }), now)).toBe('today');
  });
  it('puts completed and cancelled orders on Completed whatever their date', () => {
    expect(bucketOf(summary(1, { status: 'completed', scheduled_start: at(5) }), now)).toBe('completed');
    expect(bucketOf(summary(1, { status: 'cancelled' }), now)).toBe('completed');
  });
});

describe('filterOrders', () => {
  const orders = [
    summary(1, { title: 'Pump seal leaking', customer: 'Fjord Fish AS', scheduled_start: at(0, 14) }),
    summary(2, { title: 'Replace HVAC filter', priority: 'urgent', scheduled_start: at(0, 8) }),
    summary(3, { title: 'Pump check', sync_state: 'saved', scheduled_start: at(0, 11) }),
    summary(4, { title: 'Pump overhaul', scheduled_start: at(2) }),
  ];
  const index = indexOrders(orders, now);

  it('matches every word of the query anywhere, case-insensitively, soonest first', () => {
    const r = filterOrders(index, 'today', { ...noFilters, query: 'PUMP' });
    expect(r.map((x) => x.order.number)).toEqual([1003, 1001]);
    expect(filterOrders(index, 'today', { ...noFilters, query: 'fjord seal' })).toHaveLength(1);
    expect(filterOrders(index, 'today', { ...noFilters, query: '1002' })[0].order.title).toMatch(/HVAC/);
  });
  it('filters by priority and by sync state', () => {
    expect(filterOrders(index, 'today', { ...noFilters, priority: 'urgent' })).toHaveLength(1);
    expect(filterOrders(index, 'today', { ...noFilters, sync: 'saved' })[0].order.number).toBe(1003);
  });
  it('searches 10,000 orders well within a keystroke (< 50 ms)', () => {
    const many = Array.from({ length: 10_000 }, (_, i) =>
      summary(i, { scheduled_start: at(i % 3 === 0 ? 0 : 1 + (i % 30)) }),
    );
    const big = indexOrders(many, now);
    const t0 = performance.now();
    const r = filterOrders(big, 'today', { ...noFilters, query: 'customer 99' });
    const ms = performance.now() - t0;
    expect(r.length).toBeGreaterThan(0);
    expect(ms, `search took ${ms.toFixed(1)} ms`).toBeLessThan(50);
  });
});
