import { describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import DocumentViewer from './DocumentViewer.svelte';
import type { PdfDoc } from '../lib/pdf';

/** A PDF engine standing in for pdf.js (unit test): three pages of known text. */
function fakePdf(texts: string[]) {
  const drawn: { page: number; scale: number }[] = [];
  const doc: PdfDoc = {
    pageCount: texts.length,
    pageSize: async () => ({ width: 600, height: 800 }),
    render: async (page, _canvas, layer, scale) => {
      drawn.push({ page, scale });
      layer.replaceChildren(
        ...texts[page - 1].split('\n').map((line) => {
          const s = document.createElement('span');
          s.textContent = line;
          return s;
        }),
      );
    },
    pageText: async (page) => texts[page - 1],
    destroy: vi.fn(async () => {}),
  };
  return { doc, drawn, open: vi.fn(async () => doc) };
}

const PAGES = ['HX-200 Service manual\nContents', 'Seal replacement\nTorque spec: 40 Nm', 'Torque spec table\nIndex'];
const bytes = async () => new TextEncoder().encode('%PDF-1.4 fake');

describe('DocumentViewer', () => {
  it('opens a PDF on its first page and turns pages by button and by key', async () => {
    const pdf = fakePdf(PAGES);
    render(DocumentViewer, { title: 'HX-200 manual', mediaType: 'application/pdf', load: bytes, onClose: () => {}, open: pdf.open });
    await waitFor(() => expect(screen.getByTestId('doc-page-count').textContent).toBe('of 3'));
    await waitFor(() => expect(screen.getByTestId('doc-text-layer').textContent).toContain('HX-200 Service manual'));
    expect(pdf.open).toHaveBeenCalledOnce();

    await fireEvent.click(screen.getByTestId('doc-next'));
    await waitFor(() => expect(screen.getByTestId('doc-text-layer').textContent).toContain('Seal replacement'));
    await fireEvent.keyDown(screen.getByTestId('document-viewer'), { key: 'PageDown' });
    await waitFor(() => expect(screen.getByTestId('doc-page-view').dataset.page).toBe('3'));
    expect((screen.getByTestId('doc-next') as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.keyDown(screen.getByTestId('document-viewer'), { key: 'Home' });
    await waitFor(() => expect(screen.getByTestId('doc-page-view').dataset.page).toBe('1'));
  });

  it('zooms in and out by step and redraws at the new scale', async () => {
    const pdf = fakePdf(PAGES);
    render(DocumentViewer, { title: 'm', mediaType: 'application/pdf', load: bytes, onClose: () => {}, open: pdf.open });
    await waitFor(() => expect(pdf.drawn.length).toBeGreaterThan(0));
    // jsdom has no layout: fitting the width falls back to 100 %.
    expect(screen.getByTestId('doc-zoom').textContent).toBe('100 %');
    await fireEvent.click(screen.getByTestId('doc-zoom-in'));
    expect(screen.getByTestId('doc-zoom').textContent).toBe('125 %');
    await waitFor(() => expect(pdf.drawn.at(-1)?.scale).toBe(1.25));
    await fireEvent.keyDown(screen.getByTestId('document-viewer'), { key: '-' });
    await fireEvent.keyDown(screen.getByTestId('document-viewer'), { key: '-' });
    expect(screen.getByTestId('doc-zoom').textContent).toBe('75 %');
  });

  it('searches the text of every page, goes to the first match and marks it', async () => {
    const pdf = fakePdf(PAGES);
    render(DocumentViewer, { title: 'm', mediaType: 'application/pdf', load: bytes, onClose: () => {}, open: pdf.open });
    await waitFor(() => expect(pdf.drawn.length).toBeGreaterThan(0));
    const input = screen.getByTestId('doc-search') as HTMLInputElement;
    await fireEvent.input(input, { target: { value: 'torque SPEC' } });
    await fireEvent.keyDown(input, { key: 'Enter' });
    await waitFor(() => expect(screen.getByTestId('doc-matches').textContent?.trim()).toBe('1 of 2 matches'));
    await waitFor(() => expect(screen.getByTestId('doc-page-view').dataset.page).toBe('2'));
    await waitFor(() => expect(screen.getByTestId('doc-text-layer').querySelector('span.match')?.textContent).toBe('Torque spec: 40 Nm'));
    await fireEvent.keyDown(input, { key: 'Enter' });
    await waitFor(() => expect(screen.getByTestId('doc-page-view').dataset.page).toBe('3'));
    expect(screen.getByTestId('doc-matches').textContent?.trim()).toBe('2 of 2 matches');
  });

  it('says when nothing matches', async () => {
    const pdf = fakePdf(PAGES);
    render(DocumentViewer, { title: 'm', mediaType: 'application/pdf', load: bytes, onClose: () => {}, open: pdf.open });
    await waitFor(() => expect(pdf.drawn.length).toBeGreaterThan(0));
    await fireEvent.input(screen.getByTestId('doc-search'), { target: { value: 'gasket' } });
    await fireEvent.click(screen.getByTestId('doc-search-go'));
    await waitFor(() => expect(screen.getByTestId('doc-matches').textContent?.trim()).toBe('No matches'));
  });

  it('says so when the text cannot be searched, instead of searching for ever', async () => {
    const pdf = fakePdf(PAGES);
    pdf.doc.pageText = async () => {
      throw new Error('stream failed');
    };
    render(DocumentViewer, { title: 'm', mediaType: 'application/pdf', load: bytes, onClose: () => {}, open: pdf.open });
    await waitFor(() => expect(pdf.drawn.length).toBeGreaterThan(0));
    await fireEvent.input(screen.getByTestId('doc-search'), { target: { value: 'torque' } });
    await fireEvent.click(screen.getByTestId('doc-search-go'));
    await waitFor(() => expect(screen.getByRole('alert').textContent).toBe("The document's text could not be searched: stream failed"));
    expect(screen.getByTestId('doc-matches').textContent).not.toContain('Searching');
  });

  it('closes with Escape and releases the document', async () => {
    const pdf = fakePdf(PAGES);
    const onClose = vi.fn();
    const { unmount } = render(DocumentViewer, { title: 'm', mediaType: 'application/pdf', load: bytes, onClose, open: pdf.open });
    await waitFor(() => expect(pdf.drawn.length).toBeGreaterThan(0));
    await fireEvent.keyDown(screen.getByTestId('document-viewer'), { key: 'Escape' });
    expect(onClose).toHaveBeenCalledOnce();
    unmount();
    expect(pdf.doc.destroy).toHaveBeenCalled();
  });

  it('shows plain text as text, escaped, and an unsupported type as a clear message', async () => {
    render(DocumentViewer, {
      title: 'notes.txt',
      mediaType: 'text/plain',
      load: async () => new TextEncoder().encode('<script>alert(1)</script> torque'),
      onClose: () => {},
    });
    await waitFor(() => expect(screen.getByTestId('doc-text').textContent).toBe('<script>alert(1)</script> torque'));
    expect(document.querySelector('.doc-text script')).toBeNull();
  });

  it('refuses SVG with a message saying what to do instead', async () => {
    render(DocumentViewer, { title: 'diagram.svg', mediaType: 'image/svg+xml', load: bytes, onClose: () => {} });
    await waitFor(() => expect(screen.getByTestId('doc-error').textContent).toContain('cannot be shown in Outpost. Export it'));
  });

  it('says so when the document cannot be read', async () => {
    render(DocumentViewer, {
      title: 'm',
      mediaType: 'application/pdf',
      load: async () => {
        throw new Error('not downloaded yet');
      },
      onClose: () => {},
    });
    await waitFor(() => expect(screen.getByTestId('doc-error').textContent).toBe('The document could not be opened: not downloaded yet'));
  });
});
