import { describe, expect, it, vi, beforeEach } from 'vitest';
import { render, screen, fireEvent } from '@testing-library/svelte';
import { tick } from 'svelte';

const invoke = vi.fn();
vi.mock('@tauri-apps/api/core', () => ({ invoke: (...a: unknown[]) => invoke(...a) }));
vi.mock('@tauri-apps/api/event', () => ({ listen: vi.fn(async () => () => {}) }));

import SyncBadge from './SyncBadge.svelte';
import SyncIndicator from './SyncIndicator.svelte';
import OrderList from '../screens/OrderList.svelte';
import FirstRun from '../screens/FirstRun.svelte';
import OrderDetail from '../screens/OrderDetail.svelte';
import PassphraseSettings from './PassphraseSettings.svelte';
import { detail, engineStatus, fakePage, summary } from '../lib/fixtures';
import type { OrderSummary } from '../generated/OrderSummary';
import type { OrderQueryInput } from '../generated/OrderQueryInput';

beforeEach(() => {
  invoke.mockReset();
});

describe('SyncBadge', () => {
  it('says "Saved on this device" in words for a local change', () => {
    render(SyncBadge, { state: 'saved' });
    expect(screen.getByText('Saved on this device')).toBeTruthy();
  });
});

describe('SyncIndicator', () => {
  it('counts the changes waiting on this device', () => {
    render(SyncIndicator, { status: engineStatus({ pending: 2 }), onSyncNow: () => {} });
    expect(screen.getByTestId('sync-pending').textContent).toContain('2 changes saved on this device');
    expect(screen.getByRole('button', { name: 'Sync now' })).toBeTruthy();
  });
});

describe('OrderList', () => {
  const listing = (orders: OrderSummary[]) =>
    invoke.mockImplementation(async (cmd: string, args: { query: OrderQueryInput }) => {
      if (cmd !== 'list_orders') throw new Error(`unexpected ${cmd}`);
      return fakePage(orders, args.query);
    });

  it('shows each row with its sync state and asks the device again as one types', async () => {
    listing([
      summary(1, { title: 'Pump seal leaking', sync_state: 'saved' }),
      summary(2, { title: 'Replace HVAC filter' }),
    ]);
    const onLoaded = vi.fn();
    render(OrderList, { onOpen: () => {}, onLoaded });
    const rows = await vi.waitFor(() => {
      const r = screen.getAllByTestId('order-row');
      expect(r).toHaveLength(2);
      return r;
    });
    expect(onLoaded).toHaveBeenCalled();
    expect(rows[0].querySelector('[data-sync-state]')?.textContent).toBe('Saved on this device');
    const search = screen.getByLabelText('Search orders');
    await fireEvent.input(search, { target: { value: 'hvac' } });
    await vi.waitFor(() => expect(screen.getAllByTestId('order-row')).toHaveLength(1));
    expect(screen.getByTestId('result-count').textContent).toContain('1 order');
    expect(screen.getByTestId('result-count').dataset.query).toBe('hvac');
    const last = invoke.mock.calls.at(-1)?.[1] as { query: OrderQueryInput };
    expect(last.query).toMatchObject({ text: 'hvac', bucket: 'today', limit: 20 });
  });

  it('shows only the latest answer when an earlier one arrives late', async () => {
    const slow: ((v: unknown) => void)[] = [];
    const orders = [summary(1, { title: 'Pump' }), summary(2, { title: 'Valve' })];
    invoke.mockImplementation(
      (_cmd: string, args: { query: OrderQueryInput }) =>
        new Promise((resolve) => {
          if (args.query.text === 'p') slow.push(() => resolve(fakePage(orders, args.query)));
          else resolve(fakePage(orders, args.query));
        }),
    );
    render(OrderList, { onOpen: () => {} });
    const search = screen.getByLabelText('Search orders');
    await fireEvent.input(search, { target: { value: 'p' } });
    await fireEvent.input(search, { target: { value: 'valve' } });
    await vi.waitFor(() => expect(screen.getByTestId('result-count').dataset.query).toBe('valve'));
    slow.forEach((f) => f(null));
    await tick();
    await tick();
    expect(screen.getByTestId('result-count').dataset.query).toBe('valve');
    expect(screen.getAllByTestId('order-row').map((r) => r.textContent)).toEqual([expect.stringContaining('Valve')]);
  });

  it('says more orders match than are shown, shows more on request, and starts over for a new search', async () => {
    listing(Array.from({ length: 45 }, (_, i) => summary(i)));
    render(OrderList, { onOpen: () => {} });
    await vi.waitFor(() => expect(screen.getAllByTestId('order-row')).toHaveLength(20));
    expect(screen.getByTestId('result-count').textContent).toContain('45 orders, showing the first 20');
    expect(screen.getByRole('tab', { name: /Today/ }).textContent).toContain('45');
    await fireEvent.click(screen.getByTestId('show-more'));
    await vi.waitFor(() => expect(screen.getAllByTestId('order-row')).toHaveLength(40));
    expect(screen.getByTestId('show-more').textContent).toContain('Show 5 more');
    await fireEvent.click(screen.getByTestId('show-more'));
    await vi.waitFor(() => expect(screen.getAllByTestId('order-row')).toHaveLength(45));
    expect(screen.queryByTestId('show-more')).toBeNull();
    await fireEvent.input(screen.getByLabelText('Search orders'), { target: { value: 'boiler' } });
    await vi.waitFor(() => expect(screen.getAllByTestId('order-row')).toHaveLength(20));
  });

  it('moves between tabs with the arrow keys', async () => {
    listing([summary(1, { status: 'completed' })]);
    render(OrderList, { onOpen: () => {} });
    const today = screen.getByRole('tab', { name: /Today/ });
    await fireEvent.keyDown(today, { key: 'ArrowLeft' });
    expect(screen.getByRole('tab', { name: /Completed/ }).getAttribute('aria-selected')).toBe('true');
    await vi.waitFor(() => expect(screen.getAllByTestId('order-row')).toHaveLength(1));
  });
});

describe('FirstRun', () => {
  const session = {
    data_dir: '/tmp/x', initialized: false, open: false, username: null, key_source: null, passphrase: false,
    open_error: null, tray: false, default_server_url: null, signed_in: false, role: null, server_url: null,
  };
  it('asks for a passphrase, with a warning, when there is no credential store', async () => {
    invoke.mockRejectedValueOnce({ code: 'no_credential_store', message: 'no store', field_errors: [] });
    render(FirstRun, { session, onOpened: () => {} });
    await fireEvent.input(screen.getByLabelText(/Your name/), { target: { value: 'Kari' } });
    await fireEvent.click(screen.getByTestId('start-demo'));
    await vi.waitFor(() => expect(screen.getByLabelText(/Passphrase \(at least/)).toBeTruthy());
    expect(screen.getByText(/Nobody can recover it/)).toBeTruthy();
    expect(invoke).toHaveBeenCalledWith('start_local_demo', { username: 'Kari', passphrase: null });
  });
});

describe('OrderDetail', () => {
  it('shows completion errors beside their fields', async () => {
    invoke.mockImplementation(async (cmd: string) => {
      if (cmd === 'get_order') return detail();
      if (cmd === 'search_inventory') return [];
      if (cmd === 'complete_order')
        throw {
          code: 'invalid',
          message: 'the input is not valid, so nothing was saved',
          field_errors: [
            { field: 'signature', code: 'required', message: 'the customer must sign on the pad' },
            { field: 'signature.signer', code: 'required', message: 'type the name of who signs' },
          ],
        };
      throw new Error(`unexpected ${JSON.stringify(cmd)}`);
    });
    render(OrderDetail, { id: 'x', onBack: () => {} });
    await vi.waitFor(() => expect(screen.getByTestId('complete')).toBeTruthy());
    await fireEvent.click(screen.getByTestId('complete'));
    await vi.waitFor(() => expect(document.getElementById('signer-error')).toBeTruthy());
    await tick();
    expect(document.getElementById('signer-error')!.textContent).toContain('type the name of who signs');
    expect(document.getElementById('signature-error')!.textContent).toContain('must sign on the pad');
    expect(screen.getByLabelText('Signed by').getAttribute('aria-invalid')).toBe('true');
  });
  it('saves a note and says it is saved on this device', async () => {
    invoke.mockImplementation(async (cmd: string, args: Record<string, unknown>) => {
      if (cmd === 'get_order') return detail();
      if (cmd === 'search_inventory') return [];
      if (cmd === 'edit_order') {
        const d = detail();
        d.summary.sync_state = 'saved';
        d.notes = [{ id: 'n1', author: 'Kari', text: (args.edit as { notes: string[] }).notes[0], at: new Date().toISOString() }];
        return d;
      }
      throw new Error(`unexpected ${JSON.stringify(cmd)}`);
    });
    render(OrderDetail, { id: 'x', onBack: () => {} });
    await vi.waitFor(() => expect(screen.getByTestId('note-input')).toBeTruthy());
    await fireEvent.input(screen.getByTestId('note-input'), { target: { value: 'Replaced the gasket' } });
    await fireEvent.click(screen.getByTestId('add-note'));
    await vi.waitFor(() => expect(screen.getByText('Replaced the gasket')).toBeTruthy());
    expect(screen.getByText('Saved on this device')).toBeTruthy();
    const call = invoke.mock.calls.find((c) => c[0] === 'edit_order')!;
    expect(call[1]).toMatchObject({ id: 'x', edit: { notes: ['Replaced the gasket'], status: null, parts: [] } });
  });
});

describe('PassphraseSettings', () => {
  async function fill(current: string, next: string, again: string) {
    await fireEvent.input(screen.getByTestId('passphrase-current'), { target: { value: current } });
    await fireEvent.input(screen.getByTestId('passphrase-new'), { target: { value: next } });
    await fireEvent.input(screen.getByTestId('passphrase-again'), { target: { value: again } });
    await fireEvent.click(screen.getByTestId('passphrase-change'));
  }

  it('asks for the new passphrase twice and sends nothing when they differ', async () => {
    render(PassphraseSettings);
    await fill('old passphrase', 'new passphrase one', 'new passphrase two');
    expect(screen.getByTestId('passphrase-error').textContent).toContain('differ');
    expect(invoke).not.toHaveBeenCalled();
  });

  it('sends the current and the new passphrase and shows the refusal in words', async () => {
    invoke.mockRejectedValueOnce({ code: 'wrong_key', message: 'the current passphrase is wrong; nothing was changed', field_errors: [] });
    render(PassphraseSettings);
    await fill('not it', 'a new passphrase', 'a new passphrase');
    await vi.waitFor(() => expect(screen.getByTestId('passphrase-error').textContent).toContain('current passphrase is wrong'));
    expect(invoke).toHaveBeenCalledWith('change_passphrase', { current: 'not it', replacement: 'a new passphrase' });
    invoke.mockResolvedValueOnce(null);
    await fill('old passphrase', 'a new passphrase', 'a new passphrase');
    await vi.waitFor(() => expect(screen.getByTestId('passphrase-changed')).toBeTruthy());
  });
});
