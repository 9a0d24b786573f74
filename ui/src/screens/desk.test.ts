// The desk's per-field decision over a mocked `invoke`: a typed value for a free-text
// field travels as an edit (issue 20 item 3, "edit a value").
import { describe, expect, it, vi, beforeEach } from 'vitest';
import { render, screen, fireEvent } from '@testing-library/svelte';
import { tick } from 'svelte';

const invoke = vi.fn();
vi.mock('@tauri-apps/api/core', () => ({ invoke: (...a: unknown[]) => invoke(...a) }));
vi.mock('@tauri-apps/api/event', () => ({ listen: vi.fn(async () => () => {}) }));

import Desk from './Desk.svelte';

const item = {
  order_id: 'o-122',
  order_number: 122,
  title: 'Boiler service',
  technicians: ['tech1'],
  reasons: ['conflict'],
  summary: 'tech1 changed the description while the office changed it too',
  oldest_at: '2026-12-07T08:00:00Z',
  age_secs: 600,
  records: [],
  fields: [
    {
      field: 'description',
      label: 'Description',
      base: 'Yearly service',
      technician: 'Replaced the pump seal',
      technician_at: '2026-12-07T07:50:00Z',
      current: 'Yearly service, bring a ladder',
      current_by: 'dispatcher',
      current_at: '2026-12-07T07:55:00Z',
      current_received_at: '2026-12-07T07:55:01Z',
      text: true,
    },
  ],
  checklist: [],
  notes: [],
  parts: [],
  time_entries: [],
  evidence: [],
  cancellation: null,
  choosable: ['description'],
  technical_details: '{}',
};

beforeEach(() => {
  invoke.mockReset();
  invoke.mockImplementation(async (cmd: string) => {
    if (cmd === 'desk') {
      return {
        items: [item],
        total: 1,
        counts: { open: 1, conflicts: 1, failed_syncs: 0 },
        technicians: ['tech1'],
        reasons: ['conflict'],
        decided_elsewhere: [],
        held: [],
      };
    }
    if (cmd === 'preview_decision') return [{ order_id: 'o-122', summary: 'Description becomes the edited text' }];
    return null;
  });
});

describe('Desk', () => {
  it('sends a value the dispatcher typed for a free-text field as an edit of that field', async () => {
    render(Desk, {});
    await vi.waitFor(() => expect(screen.getByTestId('action-per_field')).toBeTruthy());
    await fireEvent.click(screen.getByTestId('action-per_field'));
    await tick();
    const edit = screen.getByTestId('edit-description') as HTMLInputElement;
    await fireEvent.input(edit, { target: { value: 'Replaced the pump seal; ladder needed next time' } });
    await fireEvent.input(screen.getByTestId('decision-reason'), { target: { value: 'both were right' } });
    await fireEvent.click(screen.getByTestId('decision-preview'));
    await vi.waitFor(() => expect(invoke.mock.calls.some((c) => c[0] === 'preview_decision')).toBe(true));
    const [, args] = invoke.mock.calls.find((c) => c[0] === 'preview_decision')!;
    expect(args.input.action).toBe('per_field');
    expect(args.input.edits).toEqual([
      { field: 'description', value: 'Replaced the pump seal; ladder needed next time' },
    ]);
  });
});
