// The desk's words that are not data: the decisions it offers and an age in words.
// Everything else (what a field shows, the stock effect) comes from outpost-core.

export type Action = 'accept' | 'keep' | 'per_field' | 'reopen' | 'discard';

export const ACTIONS: { value: Action; label: string }[] = [
  { value: 'accept', label: "Accept the technician's work (all of it)" },
  { value: 'keep', label: 'Keep the order as it is' },
  { value: 'per_field', label: 'Choose per field' },
  { value: 'reopen', label: 'Reopen and reassign' },
  { value: 'discard', label: 'Discard (set the change aside)' },
];

/** `3 min`, `2 h`, `4 days`. */
export function ageWords(secs: number): string {
  if (secs < 60) return 'just now';
  if (secs < 3600) return `${Math.floor(secs / 60)} min`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h`;
  const d = Math.floor(secs / 86400);
  return `${d} day${d === 1 ? '' : 's'}`;
}
