// The wrapper over the generated bindings: names and argument keys as Tauri expects
// them (snake_case command, camelCase keys), the two conveniences, rejections as
// AppError, and listeners on the events' names.
import { describe, expect, it, vi, beforeEach } from 'vitest';

const invoke = vi.fn();
const listen = vi.fn();
vi.mock('@tauri-apps/api/core', () => ({ invoke: (...a: unknown[]) => invoke(...a) }));
vi.mock('@tauri-apps/api/event', () => ({ listen: (...a: unknown[]) => listen(...a) }));

import { emptyEdit, events, ipc } from './ipc';

beforeEach(() => {
  invoke.mockReset();
  listen.mockReset();
});

describe('ipc', () => {
  it('calls a command by its Rust name with camelCase argument keys', async () => {
    invoke.mockResolvedValueOnce({ id: 'o1' });
    await expect(ipc.stopTimeEntry('o1', 't1')).resolves.toEqual({ id: 'o1' });
    expect(invoke).toHaveBeenCalledWith('stop_time_entry', { id: 'o1', entryId: 't1' });
  });

  it('sends no arguments to a command that takes none', async () => {
    invoke.mockResolvedValueOnce(null);
    await ipc.syncNow();
    expect(invoke).toHaveBeenCalledWith('sync_now', undefined);
  });

  it('fills an edit with what does not change, and searches 50 by default', async () => {
    invoke.mockResolvedValue({});
    await ipc.editOrder('o1', { title: 'New' });
    expect(invoke).toHaveBeenCalledWith('edit_order', { id: 'o1', edit: { ...emptyEdit, title: 'New' } });
    await ipc.searchInventory('filter');
    expect(invoke).toHaveBeenLastCalledWith('search_inventory', { query: 'filter', limit: 50 });
  });

  it('rejects with an AppError, also when Tauri itself refuses with a string', async () => {
    invoke.mockRejectedValueOnce('command not allowed');
    await expect(ipc.appInfo()).rejects.toEqual({ code: 'ipc', message: 'command not allowed', field_errors: [] });
    invoke.mockRejectedValueOnce({ code: 'not_signed_in', message: 'sign in' });
    await expect(ipc.syncNow()).rejects.toEqual({ code: 'not_signed_in', message: 'sign in', field_errors: [] });
  });
});

describe('events', () => {
  it('listens on the event name and hands over the payload', async () => {
    const unlisten = () => {};
    listen.mockResolvedValueOnce(unlisten);
    const seen: unknown[] = [];
    await expect(events.updateProgress((p) => seen.push(p))).resolves.toBe(unlisten);
    expect(listen).toHaveBeenCalledWith('update-progress', expect.any(Function));
    const deliver = listen.mock.calls[0][1] as (e: { payload: unknown }) => void;
    deliver({ payload: { downloaded: 10, total: 100 } });
    expect(seen).toEqual([{ downloaded: 10, total: 100 }]);
  });
});
