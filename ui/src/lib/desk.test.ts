import { describe, expect, it } from 'vitest';
import { ACTIONS, ageWords } from './desk';

describe('the desk', () => {
  it('says an age in words', () => {
    expect(ageWords(5)).toBe('just now');
    expect(ageWords(125)).toBe('2 min');
    expect(ageWords(7200)).toBe('2 h');
    expect(ageWords(86400)).toBe('1 day');
    expect(ageWords(3 * 86400)).toBe('3 days');
  });
  it('offers every decision of the issue', () => {
    expect(ACTIONS.map((a) => a.value)).toEqual(['accept', 'keep', 'per_field', 'reopen', 'discard']);
  });
});
