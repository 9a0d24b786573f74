// Sign-in, the sync indicator, failed syncs, conflicts and sign-out, over a mocked
// `invoke` (the same approach as components.test.ts).
import { describe, expect, it, vi, beforeEach } from 'vitest';
import { render, screen, fireEvent, within } from '@testing-library/svelte';

const invoke = vi.fn();
vi.mock('@tauri-apps/api/core', () => ({ invoke: (...a: unknown[]) => invoke(...a) }));
vi.mock('@tauri-apps/api/event', () => ({ listen: vi.fn(async () => () => {}) }));

import SignInForm from './SignInForm.svelte';
import SyncIndicator from './SyncIndicator.svelte';
import UserMenu from './UserMenu.svelte';
import FailedSyncs from '../screens/FailedSyncs.svelte';
import Conflicts from '../screens/Conflicts.svelte';
import { conflict, detail, engineStatus, failedSync, session } from '../lib/fixtures';
import type { EngineStatusView } from '../generated/EngineStatusView';

beforeEach(() => {
  invoke.mockReset();
});

const calls = (cmd: string) => invoke.mock.calls.filter((c) => c[0] === cmd);

describe('SignInForm', () => {
  async function fill() {
    await fireEvent.input(screen.getByTestId('signin-server'), { target: { value: 'https://outpost.example.com' } });
    await fireEvent.input(screen.getByTestId('signin-user'), { target: { value: 'tech1' } });
    await fireEvent.input(screen.getByTestId('signin-password'), { target: { value: 'secret' } });
  }

  it('starts from the default server and sends the form when submitted (Enter)', async () => {
    const s = session();
    invoke.mockResolvedValueOnce(s);
    const onSignedIn = vi.fn();
    render(SignInForm, { defaultServer: 'https://default.example', onSignedIn });
    expect((screen.getByTestId('signin-server') as HTMLInputElement).value).toBe('https://default.example');
    await fill();
    await fireEvent.submit(screen.getByTestId('signin-form'));
    await vi.waitFor(() => expect(onSignedIn).toHaveBeenCalledWith(s));
    expect(invoke).toHaveBeenCalledWith('sign_in', {
      input: { server_url: 'https://outpost.example.com', username: 'tech1', password: 'secret', passphrase: null },
    });
  });

  it('places field errors beside their fields', async () => {
    invoke.mockRejectedValueOnce({
      code: 'invalid',
      message: 'the input is not valid',
      field_errors: [
        { field: 'server_url', code: 'scheme', message: 'the address starts with https://' },
        { field: 'password', code: 'required', message: 'type your password' },
      ],
    });
    render(SignInForm, { onSignedIn: () => {} });
    await fireEvent.click(screen.getByTestId('signin-submit'));
    await vi.waitFor(() => expect(document.getElementById('signin-server-error')).toBeTruthy());
    expect(document.getElementById('signin-server-error')!.textContent).toContain('starts with https://');
    expect(document.getElementById('signin-password-error')!.textContent).toContain('type your password');
    expect(document.getElementById('signin-user-error')).toBeNull();
    expect(screen.getByTestId('signin-server').getAttribute('aria-invalid')).toBe('true');
    expect(screen.getByTestId('signin-server').getAttribute('aria-describedby')).toContain('signin-server-error');
    expect(screen.getByTestId('signin-user').getAttribute('aria-invalid')).toBe('false');
    expect(screen.getByTestId('signin-error').getAttribute('role')).toBe('alert');
  });

  it('says why in words when the password is wrong, marking the password', async () => {
    invoke.mockRejectedValueOnce({ code: 'invalid_credentials', message: 'the user name or password is wrong', field_errors: [] });
    render(SignInForm, { onSignedIn: () => {} });
    await fill();
    await fireEvent.click(screen.getByTestId('signin-submit'));
    await vi.waitFor(() => expect(screen.getByTestId('signin-error').textContent).toContain('password is wrong'));
    expect(screen.getByTestId('signin-password').getAttribute('aria-invalid')).toBe('true');
  });

  it('asks for a passphrase, with a warning, when there is no credential store, then sends it', async () => {
    invoke.mockRejectedValueOnce({ code: 'no_credential_store', message: 'no store', field_errors: [] });
    render(SignInForm, { onSignedIn: () => {} });
    expect(screen.queryByTestId('signin-passphrase')).toBeNull();
    await fill();
    await fireEvent.click(screen.getByTestId('signin-submit'));
    await vi.waitFor(() => expect(screen.getByTestId('signin-passphrase')).toBeTruthy());
    expect(screen.getByText(/Nobody can recover it/)).toBeTruthy();
    expect(screen.getByTestId('signin-error').textContent).toContain('no credential store');

    // Two different passphrases: refused here, nothing sent.
    await fireEvent.input(screen.getByTestId('signin-passphrase'), { target: { value: 'long enough pass' } });
    await fireEvent.input(screen.getByTestId('signin-passphrase2'), { target: { value: 'other' } });
    await fireEvent.click(screen.getByTestId('signin-submit'));
    expect(document.getElementById('signin-pass2-error')!.textContent).toContain('differ');
    expect(calls('sign_in')).toHaveLength(1);

    invoke.mockResolvedValueOnce(session());
    await fireEvent.input(screen.getByTestId('signin-passphrase2'), { target: { value: 'long enough pass' } });
    await fireEvent.click(screen.getByTestId('signin-submit'));
    await vi.waitFor(() => expect(calls('sign_in')).toHaveLength(2));
    expect(calls('sign_in')[1][1]).toMatchObject({ input: { passphrase: 'long enough pass', username: 'tech1' } });
  });
});

describe('SyncIndicator', () => {
  const cases: [string, Partial<Parameters<typeof engineStatus>[0]>, string][] = [
    ['offline', { connectivity: 'offline' }, 'Offline'],
    ['online', { connectivity: 'online' }, 'Online'],
    ['syncing', { connectivity: 'syncing' }, 'Syncing…'],
    ['error', { connectivity: 'error', reason: 'the server answered 500' }, 'Sync error: the server answered 500'],
    ['sign_in_required', { connectivity: 'sign_in_required', reason: 'session expired' }, 'Sign in again'],
    ['local', { connectivity: 'local' }, 'Local demo, no server'],
  ];
  for (const [name, over, words] of cases) {
    it(`says "${words}" when ${name}`, () => {
      render(SyncIndicator, { status: engineStatus(over), onSyncNow: () => {} });
      expect(screen.getByTestId('sync-connection').textContent).toBe(words);
    });
  }

  it('does not call a state it does not know "Offline"', () => {
    const status = engineStatus({ connectivity: 'paused' as EngineStatusView['connectivity'] });
    render(SyncIndicator, { status, onSyncNow: () => {} });
    expect(screen.getByTestId('sync-connection').textContent).toBe('Sync state unknown: paused');
  });

  it('shows a progress bar with its label and done/total', () => {
    render(SyncIndicator, {
      status: engineStatus({ connectivity: 'syncing', progress: { label: 'Downloading your orders', done: 40, total: 200 } }),
      onSyncNow: () => {},
    });
    const bar = screen.getByTestId('sync-progress') as HTMLProgressElement;
    expect(bar.getAttribute('max')).toBe('200');
    expect(bar.getAttribute('value')).toBe('40');
    expect(screen.getByLabelText('Downloading your orders: 40 of 200')).toBe(bar);
  });

  it('shows an indeterminate bar when the total is unknown', () => {
    render(SyncIndicator, {
      status: engineStatus({ connectivity: 'syncing', progress: { label: 'Receiving changes', done: 12, total: 0 } }),
      onSyncNow: () => {},
    });
    expect(screen.getByTestId('sync-progress').hasAttribute('value')).toBe(false);
    expect(screen.getByLabelText('Receiving changes: 12 so far')).toBe(screen.getByTestId('sync-progress'));
  });

  it('counts pending, failed and conflicts; the counts open their screens; Sync now syncs', async () => {
    const onOpenFailed = vi.fn();
    const onOpenConflicts = vi.fn();
    const onSyncNow = vi.fn();
    render(SyncIndicator, {
      status: engineStatus({ pending: 1, failed: 2, conflicts: 1, last_sync: '2024-05-01T10:42:00Z' }),
      onSyncNow, onOpenFailed, onOpenConflicts,
    });
    expect(screen.getByTestId('sync-pending').textContent).toBe('1 change saved on this device');
    expect(screen.getByTestId('sync-failed-count').textContent).toContain('2 failed syncs');
    expect(screen.getByTestId('sync-conflict-count').textContent).toContain('1 conflict');
    expect(screen.getByTestId('sync-last').textContent).toMatch(/^Last sync: .+/);
    expect(screen.getByTestId('sync-last').textContent).not.toContain('never');
    await fireEvent.click(screen.getByTestId('sync-failed-count'));
    await fireEvent.click(screen.getByTestId('sync-conflict-count'));
    await fireEvent.click(screen.getByTestId('sync-now'));
    expect(onOpenFailed).toHaveBeenCalledOnce();
    expect(onOpenConflicts).toHaveBeenCalledOnce();
    expect(onSyncNow).toHaveBeenCalledOnce();
  });

  it('says nothing waits and never synced, with no count buttons, when all is clear', () => {
    render(SyncIndicator, { status: engineStatus(), onSyncNow: () => {} });
    expect(screen.getByTestId('sync-pending').textContent).toBe('Nothing waiting');
    expect(screen.getByTestId('sync-last').textContent).toBe('Last sync: never');
    expect(screen.queryByTestId('sync-failed-count')).toBeNull();
    expect(screen.queryByTestId('sync-conflict-count')).toBeNull();
    expect(screen.queryByTestId('sync-progress')).toBeNull();
  });
});

describe('FailedSyncs', () => {
  function mock(list = [failedSync()]) {
    invoke.mockImplementation(async (cmd: string) => {
      if (cmd === 'failed_syncs') return list;
      if (cmd === 'resubmit_failed') return detail();
      if (cmd === 'discard_failed') return null;
      throw new Error(`unexpected ${cmd}`);
    });
  }

  it('shows the reason, the field errors and the payload', async () => {
    mock();
    render(FailedSyncs, {});
    const row = await vi.waitFor(() => screen.getByTestId('failed-row'));
    expect(row.textContent).toContain('a required step is not done');
    expect(row.textContent).toContain('read the meter before completing');
    expect(row.querySelector('details pre')!.textContent).toContain('"kind": "complete"');
  });

  it('retries as it is with no fixes', async () => {
    mock();
    render(FailedSyncs, {});
    await fireEvent.click(await vi.waitFor(() => screen.getByTestId('failed-retry')));
    await vi.waitFor(() => expect(calls('resubmit_failed')).toHaveLength(1));
    expect(calls('resubmit_failed')[0][1]).toEqual({ id: 'f1', fixes: [] });
  });

  it('builds one FixInput per corrected field: "true" for a checklist step, the text otherwise', async () => {
    mock();
    const onChanged = vi.fn();
    render(FailedSyncs, { onChanged });
    await fireEvent.click(await vi.waitFor(() => screen.getByTestId('failed-fix')));
    const box = screen.getByTestId('fix-field-checklist.meter') as HTMLInputElement;
    expect(box.type).toBe('checkbox');
    await fireEvent.click(box);
    await fireEvent.input(screen.getByTestId('fix-field-title'), { target: { value: '  Boiler service  ' } });
    await fireEvent.click(screen.getByTestId('fix-submit'));
    await vi.waitFor(() => expect(calls('resubmit_failed')).toHaveLength(1));
    expect(calls('resubmit_failed')[0][1]).toEqual({
      id: 'f1',
      fixes: [
        { field: 'checklist.meter', value: 'true' },
        { field: 'title', value: 'Boiler service' },
      ],
    });
    await vi.waitFor(() => expect(onChanged).toHaveBeenCalled());
  });

  it('sends nothing when no field was corrected', async () => {
    mock();
    render(FailedSyncs, {});
    await fireEvent.click(await vi.waitFor(() => screen.getByTestId('failed-fix')));
    await fireEvent.click(screen.getByTestId('fix-submit'));
    expect(screen.getByTestId('fix-error').textContent).toContain('Correct at least one field');
    expect(calls('resubmit_failed')).toHaveLength(0);
  });

  it('discards only after the person confirms', async () => {
    mock();
    render(FailedSyncs, {});
    await fireEvent.click(await vi.waitFor(() => screen.getByTestId('failed-discard')));
    expect(calls('discard_failed')).toHaveLength(0);
    const dialog = screen.getByRole('alertdialog');
    // "Keep it" closes the dialog and discards nothing.
    await fireEvent.click(within(dialog).getByRole('button', { name: 'Keep it' }));
    expect(screen.queryByRole('alertdialog')).toBeNull();
    expect(calls('discard_failed')).toHaveLength(0);

    await fireEvent.click(screen.getByTestId('failed-discard'));
    await fireEvent.click(screen.getByTestId('confirm-discard'));
    await vi.waitFor(() => expect(calls('discard_failed')).toHaveLength(1));
    expect(calls('discard_failed')[0][1]).toEqual({ id: 'f1' });
  });

  it('shows the fleet section to a dispatcher only', async () => {
    invoke.mockImplementation(async (cmd: string) => {
      if (cmd === 'failed_syncs') return [];
      if (cmd === 'fleet_failed_syncs')
        return [{
          id: 'x1', order_id: 'o-123456', username: 'tech3', code: 'validation', message: 'a part that no longer exists',
          field_errors: [], received_at: new Date().toISOString(), status: 'open', payload: '{}',
        }];
      if (cmd === 'dismiss_fleet_failed') return null;
      throw new Error(`unexpected ${cmd}`);
    });
    render(FailedSyncs, { role: 'dispatcher' });
    const row = await vi.waitFor(() => screen.getByTestId('fleet-failed-row'));
    expect(row.textContent).toContain('tech3');
    await fireEvent.click(screen.getByTestId('fleet-dismiss'));
    expect(calls('dismiss_fleet_failed')).toHaveLength(0);
    await fireEvent.click(screen.getByTestId('confirm-dismiss'));
    await vi.waitFor(() => expect(calls('dismiss_fleet_failed')[0][1]).toEqual({ id: 'x1' }));
  });

  it('has no fleet section for a technician', async () => {
    mock([]);
    render(FailedSyncs, { role: 'technician' });
    await vi.waitFor(() => expect(screen.getByText(/No failed syncs/)).toBeTruthy());
    expect(screen.queryByText('Fleet')).toBeNull();
    expect(calls('fleet_failed_syncs')).toHaveLength(0);
  });
});

describe('Conflicts', () => {
  function mock(list = [conflict()]) {
    invoke.mockImplementation(async (cmd: string, args: { id: string }) => {
      if (cmd === 'conflicts') return list;
      if (cmd === 'resolve_conflict') return { ...list.find((c) => c.id === args.id)!, resolving: true };
      throw new Error(`unexpected ${cmd}`);
    });
  }

  it('shows base, theirs and mine field by field, merged only for text', async () => {
    mock();
    render(Conflicts, {});
    const row = await vi.waitFor(() => screen.getByTestId('conflict-row'));
    expect(row.textContent).toContain('Boiler (urgent)');
    expect(screen.getByTestId('choice-title-merged')).toBeTruthy();
    expect(screen.queryByTestId('choice-priority-merged')).toBeNull();
    expect((screen.getByTestId('choice-title-mine') as HTMLInputElement).checked).toBe(true);
  });

  it('turns the choices into a ResolveInput, merged text prefilled with mine', async () => {
    mock();
    const onChanged = vi.fn();
    render(Conflicts, { onChanged });
    await fireEvent.click(await vi.waitFor(() => screen.getByTestId('choice-title-merged')));
    const merged = screen.getByTestId('merged-title') as HTMLTextAreaElement;
    expect(merged.value).toBe('Boiler service');
    await fireEvent.input(merged, { target: { value: 'Boiler service (urgent)' } });
    await fireEvent.click(screen.getByTestId('choice-priority-theirs'));
    await fireEvent.click(screen.getByTestId('conflict-resolve'));
    await vi.waitFor(() => expect(calls('resolve_conflict')).toHaveLength(1));
    expect(calls('resolve_conflict')[0][1]).toEqual({
      id: 'c1',
      input: {
        choices: [
          { field: 'title', choice: 'merged', merged: 'Boiler service (urgent)' },
          { field: 'priority', choice: 'theirs', merged: null },
        ],
        accept_whole_change: false,
      },
    });
    await vi.waitFor(() => expect(screen.getByTestId('conflict-resolving').textContent).toBe('Decision sent with the next sync'));
    expect(onChanged).toHaveBeenCalled();
  });

  it('refuses a merged choice without text, beside the field', async () => {
    mock();
    render(Conflicts, {});
    await fireEvent.click(await vi.waitFor(() => screen.getByTestId('choice-title-merged')));
    await fireEvent.input(screen.getByTestId('merged-title'), { target: { value: '   ' } });
    await fireEvent.click(screen.getByTestId('conflict-resolve'));
    await vi.waitFor(() => expect(screen.getByTestId('merged-title').getAttribute('aria-invalid')).toBe('true'));
    expect(screen.getByText(/type the merged text/)).toBeTruthy();
    expect(calls('resolve_conflict')).toHaveLength(0);
  });

  it('offers accept or keep for a whole change', async () => {
    mock([conflict({ whole_change: true, fields: [] })]);
    render(Conflicts, {});
    await vi.waitFor(() => screen.getByTestId('conflict-accept'));
    expect(screen.queryByTestId('conflict-resolve')).toBeNull();
    await fireEvent.click(screen.getByTestId('conflict-keep'));
    await vi.waitFor(() => expect(calls('resolve_conflict')).toHaveLength(1));
    expect(calls('resolve_conflict')[0][1]).toEqual({ id: 'c1', input: { choices: [], accept_whole_change: false } });
  });

  it('shows how a settled conflict was resolved', async () => {
    mock([conflict({ status: 'resolved', resolution: 'merged by disp1' })]);
    render(Conflicts, {});
    await vi.waitFor(() => expect(screen.getByTestId('conflict-resolution').textContent).toContain('merged by disp1'));
    expect(screen.queryByTestId('conflict-resolve')).toBeNull();
  });
});

describe('Sign out', () => {
  it('is refused while changes wait, and lists them', async () => {
    invoke.mockImplementation(async (cmd: string) => {
      if (cmd === 'sign_out') throw { code: 'unsynced_work', message: '2 changes are not synced', field_errors: [] };
      if (cmd === 'pending_changes')
        return [
          { order_id: 'o1', order_title: 'Pump seal leaking', kind: 'update', state: 'pending', created_at: '' },
          { order_id: 'o2', order_title: null, kind: 'complete', state: 'failed', created_at: '' },
        ];
      throw new Error(`unexpected ${cmd}`);
    });
    const onSignedOut = vi.fn();
    render(UserMenu, { session: session(), onSignedOut });
    await fireEvent.click(screen.getByTestId('sign-out'));
    const list = await vi.waitFor(() => screen.getByTestId('pending-list'));
    const items = within(list).getAllByRole('listitem');
    expect(items).toHaveLength(2);
    expect(items[0].textContent).toContain('Pump seal leaking');
    expect(items[0].textContent).toContain('update');
    expect(items[0].textContent).toContain('not sent yet');
    expect(items[1].textContent).toContain('Refused by the server');
    expect(screen.getByRole('alertdialog').textContent).toContain('you are still signed in');
    expect(onSignedOut).not.toHaveBeenCalled();
  });

  it('signs out when nothing waits', async () => {
    const out = session({ signed_in: false, role: null });
    invoke.mockResolvedValueOnce(out);
    const onSignedOut = vi.fn();
    render(UserMenu, { session: session(), onSignedOut });
    await fireEvent.click(screen.getByTestId('sign-out'));
    await vi.waitFor(() => expect(onSignedOut).toHaveBeenCalledWith(out));
  });
});
