import { describe, expect, it } from 'vitest';
import {
  clampPage,
  decodeText,
  findMatches,
  firstMatchFrom,
  fitWidth,
  formatBytes,
  matchWords,
  stepZoom,
  viewerKind,
  ZOOM_MAX,
  ZOOM_MIN,
} from './documents';

describe('viewerKind', () => {
  it('shows PDFs as pages, raster images as images, plain text as text', () => {
    expect(viewerKind('application/pdf')).toBe('pdf');
    expect(viewerKind('image/jpeg')).toBe('image');
    expect(viewerKind('IMAGE/PNG')).toBe('image');
    expect(viewerKind('text/plain; charset=utf-8')).toBe('text');
  });
  it('does not show SVG or HTML, which can carry scripts and links', () => {
    expect(viewerKind('image/svg+xml')).toBe('unsupported');
    expect(viewerKind('text/html')).toBe('unsupported');
    expect(viewerKind('application/octet-stream')).toBe('unsupported');
  });
});

describe('zoom', () => {
  it('steps up and down through the levels and stops at the ends', () => {
    expect(stepZoom(1, 1)).toBe(1.25);
    expect(stepZoom(1, -1)).toBe(0.75);
    expect(stepZoom(ZOOM_MAX, 1)).toBe(ZOOM_MAX);
    expect(stepZoom(ZOOM_MIN, -1)).toBe(ZOOM_MIN);
  });
  it('steps from a fitted zoom between levels to the neighbouring level', () => {
    expect(stepZoom(1.1, 1)).toBe(1.25);
    expect(stepZoom(1.1, -1)).toBe(1);
  });
  it('fits a page to the width available, within the range', () => {
    expect(fitWidth(600, 900)).toBeCloseTo(1.5);
    expect(fitWidth(600, 100)).toBe(ZOOM_MIN);
    expect(fitWidth(10, 10_000)).toBe(ZOOM_MAX);
    expect(fitWidth(0, 900)).toBe(1);
  });
});

describe('clampPage', () => {
  it('keeps a page number within the document', () => {
    expect(clampPage(0, 5)).toBe(1);
    expect(clampPage(9, 5)).toBe(5);
    expect(clampPage(2.6, 5)).toBe(3);
    expect(clampPage(Number.NaN, 5)).toBe(1);
    expect(clampPage(3, 0)).toBe(1);
  });
});

describe('findMatches', () => {
  const pages = ['HX-200 Service manual\nTorque  spec: 40 Nm', 'Seal replacement.\nTorque spec again', 'nothing here'];
  it('finds every match in reading order, ignoring case and runs of white space', () => {
    expect(findMatches(pages, 'torque spec')).toEqual([
      { page: 1, offset: 22 },
      { page: 2, offset: 18 },
    ]);
  });
  it('finds repeated matches on one page and none for a blank query', () => {
    expect(findMatches(['aa aa aa'], 'aa').map((m) => m.offset)).toEqual([0, 3, 6]);
    expect(findMatches(pages, '   ')).toEqual([]);
    expect(findMatches(pages, 'gasket')).toEqual([]);
  });
  it('starts from the first match on or after the page shown, wrapping round', () => {
    const m = findMatches(pages, 'torque spec');
    expect(firstMatchFrom(m, 2)).toBe(1);
    expect(firstMatchFrom(m, 3)).toBe(0);
    expect(firstMatchFrom([], 1)).toBe(-1);
  });
  it('says where the reader is among the matches', () => {
    expect(matchWords(0, 1)).toBe('1 of 1 match');
    expect(matchWords(1, 12)).toBe('2 of 12 matches');
    expect(matchWords(-1, 0)).toBe('No matches');
  });
});

describe('formatBytes and decodeText', () => {
  it('gives sizes in words', () => {
    expect(formatBytes(1)).toBe('1 byte');
    expect(formatBytes(840)).toBe('840 bytes');
    expect(formatBytes(12_400)).toBe('12 kB');
    expect(formatBytes(1_500)).toBe('1.5 kB');
    expect(formatBytes(153_000_000)).toBe('153 MB');
  });
  it('decodes text and shows invalid UTF-8 as replacement characters', () => {
    expect(decodeText(new TextEncoder().encode('Drücken'))).toBe('Drücken');
    expect(decodeText(new Uint8Array([0x41, 0xff, 0x42]))).toBe('A\uFFFDB');
  });
});
