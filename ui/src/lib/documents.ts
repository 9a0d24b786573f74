// The document viewer's rules that need no window: which viewer a document gets, the
// zoom steps, page numbers kept in range, text search over the pages' text, sizes in
// words. The PDF engine itself is behind lib/pdf.ts.

/** How a document is shown: PDF pages, a zoomable image, plain text, or not at all. */
export type ViewerKind = 'pdf' | 'image' | 'text' | 'unsupported';

const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/bmp']);

/**
 * The viewer for a media type. SVG is not shown as an image: it is a document format
 * that can carry scripts and links, and a manual is untrusted input.
 */
export function viewerKind(mediaType: string): ViewerKind {
  const t = mediaType.split(';')[0].trim().toLowerCase();
  if (t === 'application/pdf') return 'pdf';
  if (IMAGE_TYPES.has(t)) return 'image';
  if (t === 'text/plain' || t === 'text/markdown' || t === 'text/csv') return 'text';
  return 'unsupported';
}

/** Zoom levels the viewer steps through (1 = 100 %). */
export const ZOOM_STEPS = [0.5, 0.75, 1, 1.25, 1.5, 2, 3, 4];
export const ZOOM_MIN = ZOOM_STEPS[0];
export const ZOOM_MAX = ZOOM_STEPS[ZOOM_STEPS.length - 1];

/** The next zoom step up (`dir` 1) or down (-1) from `zoom`, which may lie between steps (fit to width). */
export function stepZoom(zoom: number, dir: 1 | -1): number {
  if (dir > 0) return ZOOM_STEPS.find((z) => z > zoom + 1e-6) ?? ZOOM_MAX;
  return [...ZOOM_STEPS].reverse().find((z) => z < zoom - 1e-6) ?? ZOOM_MIN;
}

/** The zoom that makes a page `pageWidth` wide (at 100 %) fill `available` pixels, within the steps' range. */
export function fitWidth(pageWidth: number, available: number): number {
  if (!(pageWidth > 0) || !(available > 0)) return 1;
  return Math.min(ZOOM_MAX, Math.max(ZOOM_MIN, available / pageWidth));
}

/** `page` kept within 1..count (1 when the count is unknown or the input is not a number). */
export function clampPage(page: number, count: number): number {
  if (!Number.isFinite(page) || count < 1) return 1;
  return Math.min(count, Math.max(1, Math.round(page)));
}

/** One place a search matched: its page (1-based) and offset in that page's text. */
export interface SearchMatch {
  page: number;
  offset: number;
}

/** Fold case and runs of white space, so a search for "torque  spec" finds "Torque spec". */
export function normalise(s: string): string {
  return s.toLocaleLowerCase().replace(/\s+/g, ' ');
}

/**
 * Every match of `query` in the pages' texts, in reading order. Case and runs of white
 * space are ignored; an empty or blank query matches nothing.
 */
export function findMatches(pageTexts: readonly string[], query: string): SearchMatch[] {
  const q = normalise(query).trim();
  if (!q) return [];
  const out: SearchMatch[] = [];
  pageTexts.forEach((text, i) => {
    const t = normalise(text);
    for (let at = t.indexOf(q); at !== -1; at = t.indexOf(q, at + q.length)) {
      out.push({ page: i + 1, offset: at });
    }
  });
  return out;
}

/** The index of the first match on or after `page` (wrapping to the first), or -1. */
export function firstMatchFrom(matches: readonly SearchMatch[], page: number): number {
  if (matches.length === 0) return -1;
  const i = matches.findIndex((m) => m.page >= page);
  return i === -1 ? 0 : i;
}

/** `3 of 12 matches`, `No matches`. */
export function matchWords(index: number, count: number): string {
  if (count === 0) return 'No matches';
  return `${index + 1} of ${count} match${count === 1 ? '' : 'es'}`;
}

/** `840 bytes`, `12.4 kB`, `153 MB` (decimal units, as file managers show). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} byte${n === 1 ? '' : 's'}`;
  const units = ['kB', 'MB', 'GB'];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u += 1;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** Plain text from a document's bytes (invalid UTF-8 shown as U+FFFD, never an error). */
export function decodeText(bytes: Uint8Array): string {
  return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
}
