import { describe, expect, it } from 'vitest';
import { countWords, noFilters, tabQuery, tomorrowOf } from './orders';

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

describe('countWords', () => {
  it('says how many match, how many are shown, and "more than" when counting stopped', () => {
    expect(countWords(1, false, 1)).toBe('1 order');
    expect(countWords(3, false, 3)).toBe('3 orders');
    expect(countWords(0, false, 0)).toBe('0 orders');
    expect(countWords(60, false, 25)).toBe('60 orders, showing the first 25');
    expect(countWords(1000, true, 25)).toBe('More than 1,000 orders, showing the first 25');
  });
});
