import { describe, expect, it, vi, beforeEach } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';

const invoke = vi.fn();
vi.mock('@tauri-apps/api/core', () => ({ invoke: (...a: unknown[]) => invoke(...a) }));
vi.mock('@tauri-apps/api/event', () => ({ listen: vi.fn(async () => () => {}) }));

import OrderDocuments from './OrderDocuments.svelte';
import type { DocumentView } from '../generated/DocumentView';

const doc = (over: Partial<DocumentView>): DocumentView => ({
  id: 'd1',
  name: 'hx-200-manual.pdf',
  media_type: 'application/pdf',
  size: 2_400_000,
  version: 1,
  available_offline: false,
  received: 0,
  over_budget: false,
  ...over,
});

beforeEach(() => invoke.mockReset());

describe('OrderDocuments', () => {
  it('says for each document whether it opens offline, is downloading, waits, or is over the budget', async () => {
    invoke.mockImplementation(async (cmd: string) =>
      cmd === 'order_documents'
        ? [
            doc({ id: 'a', name: 'a.pdf', available_offline: true }),
            doc({ id: 'b', name: 'b.pdf', received: 1_200_000 }),
            doc({ id: 'c', name: 'c.pdf' }),
            doc({ id: 'd', name: 'd.pdf', over_budget: true }),
          ]
        : null,
    );
    render(OrderDocuments, { orderId: 'o1' });
    await waitFor(() => expect(screen.getAllByTestId('document-row')).toHaveLength(4));
    const states = screen.getAllByTestId('document-state').map((e) => e.textContent);
    expect(states).toEqual([
      'Available offline',
      'Downloading: 1.2 MB of 2.4 MB',
      'Not downloaded yet: it comes with the next sync',
      'Not kept on this device: the documents budget is full',
    ]);
    const open = screen.getAllByTestId('document-open') as HTMLButtonElement[];
    expect(open.map((b) => b.disabled)).toEqual([false, true, true, true]);
    expect(invoke).toHaveBeenCalledWith('order_documents', { id: 'o1' });
  });

  it('says when the equipment has no documents', async () => {
    invoke.mockResolvedValue([]);
    render(OrderDocuments, { orderId: 'o1' });
    await waitFor(() => expect(screen.getByText('No documents for this equipment.')).toBeTruthy());
  });

  it('opens a cached document in the viewer from the bytes the shell returns, and closes back', async () => {
    const text = 'Torque spec: 40 Nm';
    invoke.mockImplementation(async (cmd: string) => {
      if (cmd === 'order_documents') return [doc({ id: 't', name: 'notes.txt', media_type: 'text/plain', available_offline: true })];
      if (cmd === 'document_content')
        return { id: 't', name: 'notes.txt', media_type: 'text/plain', size: text.length, data_base64: btoa(text) };
      return null;
    });
    render(OrderDocuments, { orderId: 'o1' });
    await waitFor(() => expect(screen.getByTestId('document-open')).toBeTruthy());
    await fireEvent.click(screen.getByTestId('document-open'));
    await waitFor(() => expect(screen.getByTestId('doc-text').textContent).toBe(text));
    expect(invoke).toHaveBeenCalledWith('document_content', { id: 't' });
    await fireEvent.click(screen.getByTestId('doc-close'));
    await waitFor(() => expect(screen.queryByTestId('document-viewer')).toBeNull());
  });
});
