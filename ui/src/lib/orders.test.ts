import { describe, expect, it } from 'vitest';
import { noFilters, tabQuery, tomorrowOf } from './orders';

describe('tabQuery', () => {
  const now = new Date(2026, 10, 2, 23, 30, 0);

  it('draws the line between Today and Upcoming at the viewer\'s next local midnight', () => {
    const t = tomorrowOf(now);
    expect([t.getFullYear(), t.getMonth(), t.getDate(), t.getHours(), t.getMinutes()]).toEqual([2026, 10, 3, 0, 0]);
    // The last day of a month rolls over.
    expect(tomorrowOf(new Date(2026, 10, 30, 8)).getDate()).toBe(1);
  });

  it('asks for one tab with its words and filters, "any" meaning no filter', () => {
    const q = tabQuery('upcoming', { query: 'pump #12', priority: 'urgent', sync: 'any' }, now, 60);
    expect(q).toEqual({
      text: 'pump #12',
      bucket: 'upcoming',
      tomorrow: tomorrowOf(now).toISOString(),
      status: null,
      priority: 'urgent',
      sync: null,
      assignee: null,
      offset: 0,
      limit: 60,
    });
    expect(tabQuery('today', { ...noFilters, sync: 'failed' }, now, 10).sync).toBe('failed');
  });
});
