// The frame's screen choice and role-dependent navigation, and the dispatcher's actions,
// over a mocked `invoke`.
import { describe, expect, it, vi, beforeEach } from 'vitest';
import { render, screen, fireEvent } from '@testing-library/svelte';

const invoke = vi.fn();
vi.mock('@tauri-apps/api/core', () => ({ invoke: (...a: unknown[]) => invoke(...a) }));
vi.mock('@tauri-apps/api/event', () => ({ listen: vi.fn(async () => () => {}) }));

import App from './App.svelte';
import Dispatch from './screens/Dispatch.svelte';
import { detail, engineStatus, fakePage, session, summary } from './lib/fixtures';
import type { OrderQueryInput } from './generated/OrderQueryInput';
import type { SessionInfo } from './generated/SessionInfo';

beforeEach(() => {
  invoke.mockReset();
});

const calls = (cmd: string) => invoke.mock.calls.filter((c) => c[0] === cmd);

function shell(s: SessionInfo, over: Record<string, (args: Record<string, unknown>) => unknown> = {}) {
  invoke.mockImplementation(async (cmd: string, args: Record<string, unknown>) => {
    if (over[cmd]) return over[cmd](args);
    switch (cmd) {
      case 'session_info':
        return s;
      case 'list_orders':
        return fakePage([summary(1, { reassigned_to: 'tech4', sync_state: 'saved' } as never)], args.query as OrderQueryInput);
      case 'sync_status':
        return engineStatus({ connectivity: s.signed_in ? 'online' : 'local' });
      case 'ui_ready':
        return null;
      default:
        throw new Error(`unexpected ${cmd}`);
    }
  });
}

describe('App', () => {
  it('shows the sign-in form when the data is open but nobody ever signed in', async () => {
    shell(session({ signed_in: false, username: null, role: null }));
    render(App);
    await vi.waitFor(() => expect(screen.getByTestId('signin-submit')).toBeTruthy());
    expect(screen.queryByRole('navigation')).toBeNull();
  });

  it('hides Dispatch from a technician', async () => {
    shell(session({ role: 'technician' }));
    render(App);
    await vi.waitFor(() => expect(screen.getByTestId('order-row')).toBeTruthy());
    expect(screen.queryByTestId('nav-dispatch')).toBeNull();
    expect(screen.getByTestId('sign-out')).toBeTruthy();
    expect(screen.getByTestId('sync-connection').textContent).toBe('Online');
  });

  it('shows Dispatch to a dispatcher', async () => {
    shell(session({ role: 'dispatcher', username: 'disp1' }));
    render(App);
    await vi.waitFor(() => expect(screen.getByTestId('nav-dispatch')).toBeTruthy());
  });

  it('lists a visit in the site\'s time zone, as the order shows it, naming the zone where it differs', async () => {
    // 08:00 UTC is 09:00 in Oslo in December. The tests run with TZ=UTC (vite.config).
    const visit = summary(2, { scheduled_start: '2026-12-07T08:00:00Z', time_zone: 'Europe/Oslo' } as never);
    const local = summary(3, { scheduled_start: '2026-12-07T08:00:00Z', time_zone: 'UTC' } as never);
    shell(session(), { list_orders: (a) => fakePage([visit, local], a.query as OrderQueryInput) });
    render(App);
    await vi.waitFor(() => expect(screen.getAllByTestId('order-row').length).toBe(2));
    const [oslo, here] = screen.getAllByTestId('order-row').map((r) => r.querySelector('.when')?.textContent ?? '');
    expect(oslo).toMatch(/09:00/);
    expect(oslo).toMatch(/GMT\+1|CET/);
    expect(here).toMatch(/08:00/);
    expect(here).not.toMatch(/GMT|UTC/);
  });

  it('opens on the dispatcher\'s queue for a dispatcher, and on My orders for a technician', async () => {
    shell(session({ role: 'dispatcher', username: 'dispatcher' }));
    const { unmount } = render(App);
    await vi.waitFor(() => expect(screen.getByTestId('nav-dispatch').getAttribute('aria-current')).toBe('page'));
    unmount();
    shell(session({ role: 'technician' }));
    render(App);
    await vi.waitFor(() => expect(screen.getByTestId('order-row')).toBeTruthy());
    expect(screen.queryByTestId('nav-dispatch')).toBeNull();
  });

  it('keeps an order reassigned away visible, saying to whom', async () => {
    shell(session());
    render(App);
    const row = await vi.waitFor(() => screen.getByTestId('order-row'));
    expect(row.textContent).toContain('Reassigned to tech4');
    expect(row.querySelector('[data-sync-state="saved"]')).toBeTruthy();
  });

  it('says there is no server when Sync now is pressed in the local demo', async () => {
    shell(session({ signed_in: false, role: null, server_url: null, username: 'Kari' }), {
      sync_now: () => {
        throw { code: 'not_signed_in', message: 'sign in to a server to sync', field_errors: [] };
      },
    });
    render(App);
    await fireEvent.click(await vi.waitFor(() => screen.getByTestId('sync-now')));
    await vi.waitFor(() => expect(screen.getByText(/no server to sync with/)).toBeTruthy());
    expect(screen.getByTestId('sync-connection').textContent).toBe('Local demo, no server');
    expect(screen.getByTestId('open-sign-in')).toBeTruthy();
  });
});

describe('Dispatch', () => {
  const orders = [summary(1, { assignee: 'tech1' }), summary(2, { assignee: 'tech2', status: 'completed' })];
  /** The shell: list_orders over `orders`, other commands answered by `over`. */
  const dispatchShell = (over: Record<string, (args: Record<string, unknown>) => unknown> = {}) =>
    invoke.mockImplementation(async (cmd: string, args: Record<string, unknown>) => {
      if (over[cmd]) return over[cmd](args);
      if (cmd === 'list_orders') return fakePage(orders, args.query as OrderQueryInput);
      throw new Error(`unexpected ${cmd}`);
    });
  const rows = () => screen.queryAllByTestId('dispatch-row');

  it('filters by technician and status on the device', async () => {
    dispatchShell();
    render(Dispatch, { onOpen: () => {} });
    await vi.waitFor(() => expect(rows()).toHaveLength(2));
    await fireEvent.change(screen.getByTestId('dispatch-assignee'), { target: { value: 'tech2' } });
    await vi.waitFor(() => expect(rows()).toHaveLength(1));
    await fireEvent.change(screen.getByTestId('dispatch-status'), { target: { value: 'scheduled' } });
    await vi.waitFor(() => expect(rows()).toHaveLength(0));
    const last = calls('list_orders').at(-1)?.[1] as { query: OrderQueryInput };
    expect(last.query).toMatchObject({ bucket: null, assignee: 'tech2', status: 'scheduled' });
  });

  it('assigns an order to a typed user name', async () => {
    dispatchShell({ assign_order: () => detail({ summary: summary(1, { assignee: 'tech9' }) }) });
    const onChanged = vi.fn();
    render(Dispatch, { onOpen: () => {}, onChanged });
    await fireEvent.click(await vi.waitFor(() => screen.getAllByTestId('dispatch-manage')[0]));
    await fireEvent.input(screen.getByTestId('assign-input'), { target: { value: 'tech9' } });
    await fireEvent.click(screen.getByTestId('assign-submit'));
    await vi.waitFor(() => expect(onChanged).toHaveBeenCalled());
    expect(invoke).toHaveBeenCalledWith('assign_order', { id: orders[0].id, assignee: 'tech9' });
    expect(screen.getByTestId('dispatch-done').textContent).toContain('assigned to tech9');
  });

  it('cancels only with a reason and after confirming', async () => {
    dispatchShell({ cancel_order: () => detail({ summary: summary(1, { status: 'cancelled' }) }) });
    render(Dispatch, { onOpen: () => {} });
    await fireEvent.click(await vi.waitFor(() => screen.getAllByTestId('dispatch-manage')[0]));
    await fireEvent.click(screen.getByTestId('cancel-submit'));
    expect(screen.getByText(/say why the order is cancelled/)).toBeTruthy();
    expect(screen.queryByRole('alertdialog')).toBeNull();
    await fireEvent.input(screen.getByTestId('cancel-reason'), { target: { value: 'Customer moved' } });
    await fireEvent.click(screen.getByTestId('cancel-submit'));
    expect(calls('cancel_order')).toHaveLength(0);
    await fireEvent.click(screen.getByTestId('confirm-cancel'));
    await vi.waitFor(() => expect(calls('cancel_order')).toHaveLength(1));
    expect(calls('cancel_order')[0][1]).toEqual({ id: orders[0].id, reason: 'Customer moved' });
  });
});

describe('Fleet', () => {
  it('puts the warning for a laptop unseen for two days in words, and counts failed syncs', async () => {
    const { default: Fleet } = await import('./screens/Fleet.svelte');
    const device = (username: string, lastSeen: string, over: Record<string, unknown> = {}) => ({
      username,
      device_id: `0190000${username.length}-0000-7000-8000-000000000001`,
      last_seen: lastSeen,
      last_push: lastSeen,
      last_pull: lastSeen,
      unsent: 0,
      unsent_set_aside: 0,
      oldest_unsent: null,
      open_failed_syncs: 0,
      open_conflicts: 0,
      app_version: '0.1.0',
      stale: false,
      ...over,
    });
    invoke.mockImplementation(async (cmd: string) => {
      if (cmd !== 'fleet_health') throw new Error(`unexpected ${cmd}`);
      return {
        as_of: '2026-12-07T12:00:00Z',
        stale_after_secs: 86_400,
        devices: [
          device('tech2', '2026-12-05T11:00:00Z', { stale: true }),
          device('tech1', '2026-12-07T11:58:00Z', { open_failed_syncs: 2, unsent: 3, oldest_unsent: '2026-12-07T07:00:00Z' }),
        ],
      };
    });
    render(Fleet);
    const rows = await vi.waitFor(() => {
      const r = screen.getAllByTestId('fleet-row');
      expect(r.length).toBe(2);
      return r;
    });
    expect(rows[0].textContent).toContain('tech2');
    expect(rows[0].querySelector('[data-testid="fleet-stale"]')?.textContent).toContain('Not seen for 2 days');
    expect(rows[1].querySelector('[data-testid="fleet-failed"]')?.textContent).toBe('2');
    expect(rows[1].querySelector('[data-testid="fleet-unsent"]')?.textContent).toContain('oldest 5 hours ago');
    expect(screen.getByTestId('fleet-limit').textContent).toContain('1 day');
  });
});
