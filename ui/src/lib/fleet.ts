// How long ago, in words, for the Fleet screen: counted from the server's time (the
// table's `as_of`), so a wrong clock on this computer does not make a device look late.

function seconds(asOf: string, t: string): number {
  return Math.max(0, (Date.parse(asOf) - Date.parse(t)) / 1000);
}

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** `just now`, `12 minutes`, `5 hours`, `2 days` (no "ago": the caller's sentence says it). */
export function span(secs: number): string {
  if (secs < 60) return 'under a minute';
  if (secs < 3600) return plural(Math.floor(secs / 60), 'minute');
  if (secs < 86_400) return plural(Math.floor(secs / 3600), 'hour');
  return plural(Math.floor(secs / 86_400), 'day');
}

/** `5 hours ago`, from the table's time. */
export function ago(asOf: string, t: string): string {
  const s = seconds(asOf, t);
  return s < 60 ? 'just now' : `${span(s)} ago`;
}

/** `Not seen for 2 days`: the warning of a device past the fleet's limit. */
export function unseenFor(asOf: string, lastSeen: string): string {
  return `Not seen for ${span(seconds(asOf, lastSeen))}`;
}
