// The one wrapper over Tauri's `invoke`: every command the UI calls, with the argument
// and result types generated from Rust (src/generated, see crates/core/src/views.rs).
// A failed command rejects with an AppError ({code, message, field_errors}).
import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import type { AppError } from '../generated/AppError';
import type { CompletionInput } from '../generated/CompletionInput';
import type { InventoryView } from '../generated/InventoryView';
import type { NewOrderInput } from '../generated/NewOrderInput';
import type { OrderDetail } from '../generated/OrderDetail';
import type { OrderEditInput } from '../generated/OrderEditInput';
import type { OrderQueryInput } from '../generated/OrderQueryInput';
import type { OrderPageView } from '../generated/OrderPageView';
import type { SessionInfo } from '../generated/SessionInfo';
import type { SyncSummary } from '../generated/SyncSummary';
import type { SignInInput } from '../generated/SignInInput';
import type { PendingChangeView } from '../generated/PendingChangeView';
import type { EngineStatusView } from '../generated/EngineStatusView';
import type { FailedSyncView } from '../generated/FailedSyncView';
import type { FleetFailedSyncView } from '../generated/FleetFailedSyncView';
import type { FixInput } from '../generated/FixInput';
import type { ConflictDetailView } from '../generated/ConflictDetailView';
import type { ResolveInput } from '../generated/ResolveInput';
import type { AppInfoView } from '../generated/AppInfoView';
import type { UpdateView } from '../generated/UpdateView';

export function isAppError(e: unknown): e is AppError {
  return typeof e === 'object' && e !== null && 'code' in e && 'message' in e;
}

/** Any rejection as an AppError (a string from Tauri itself becomes code "ipc"). */
export function toAppError(e: unknown): AppError {
  if (isAppError(e)) return { ...e, field_errors: e.field_errors ?? [] };
  return { code: 'ipc', message: String(e), field_errors: [] };
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw toAppError(e);
  }
}

/** An edit with nothing set; spread it and set what changes. */
export const emptyEdit: OrderEditInput = {
  title: null,
  description: null,
  notes: [],
  status: null,
  priority: null,
  check: [],
  uncheck: [],
  parts: [],
};

export const ipc = {
  sessionInfo: () => call<SessionInfo>('session_info'),
  startLocalDemo: (username: string, passphrase: string | null) =>
    call<SessionInfo>('start_local_demo', { username, passphrase }),
  unlock: (passphrase: string) => call<SessionInfo>('unlock', { passphrase }),
  uiReady: (screen: string) => call<void>('ui_ready', { screen }),
  /** One page of the order list, searched and filtered on the device. */
  listOrders: (query: OrderQueryInput) => call<OrderPageView>('list_orders', { query }),
  getOrder: (id: string) => call<OrderDetail>('get_order', { id }),
  createOrder: (order: NewOrderInput) => call<OrderDetail>('create_order', { order }),
  editOrder: (id: string, edit: Partial<OrderEditInput>) =>
    call<OrderDetail>('edit_order', { id, edit: { ...emptyEdit, ...edit } }),
  completeOrder: (id: string, completion: CompletionInput) =>
    call<OrderDetail>('complete_order', { id, completion }),
  startTimeEntry: (id: string) => call<OrderDetail>('start_time_entry', { id }),
  stopTimeEntry: (id: string, entryId: string) =>
    call<OrderDetail>('stop_time_entry', { id, entryId }),
  searchInventory: (query: string, limit = 50) =>
    call<InventoryView[]>('search_inventory', { query, limit }),
  syncSummary: () => call<SyncSummary>('sync_summary'),
  quitApp: () => call<void>('quit_app'),

  // Sign-in and the sync engine.
  signIn: (input: SignInInput) => call<SessionInfo>('sign_in', { input }),
  /** Refused with code `unsynced_work` while changes wait: then list `pendingChanges`. */
  signOut: () => call<SessionInfo>('sign_out'),
  pendingChanges: () => call<PendingChangeView[]>('pending_changes'),
  syncStatus: () => call<EngineStatusView>('sync_status'),
  /** Rejects with `not_signed_in` in the local demo. */
  syncNow: () => call<void>('sync_now'),

  // Failed syncs and conflicts.
  failedSyncs: () => call<FailedSyncView[]>('failed_syncs'),
  /** `fixes: []` retries the change as it is. */
  resubmitFailed: (id: string, fixes: FixInput[]) =>
    call<OrderDetail>('resubmit_failed', { id, fixes }),
  discardFailed: (id: string) => call<void>('discard_failed', { id }),
  conflicts: () => call<ConflictDetailView[]>('conflicts'),
  resolveConflict: (id: string, input: ResolveInput) =>
    call<ConflictDetailView>('resolve_conflict', { id, input }),

  // Dispatchers.
  fleetFailedSyncs: () => call<FleetFailedSyncView[]>('fleet_failed_syncs'),
  dismissFleetFailed: (id: string) => call<void>('dismiss_fleet_failed', { id }),
  assignOrder: (id: string, assignee: string) =>
    call<OrderDetail>('assign_order', { id, assignee }),
  cancelOrder: (id: string, reason: string) => call<OrderDetail>('cancel_order', { id, reason }),

  // About and updates.
  appInfo: () => call<AppInfoView>('app_info'),
  setUpdateChannel: (channel: string) => call<AppInfoView>('set_update_channel', { channel }),
  /** `null` when up to date; rejects with `update_offline` when the server is out of reach. */
  checkForUpdate: () => call<UpdateView | null>('check_for_update'),
  /** Downloads, verifies the signature, installs and restarts (does not resolve then). */
  installUpdate: () => call<void>('install_update'),
};

export type Ipc = typeof ipc;

/** Events the shell sends. */
export const events = {
  ordersChanged: (f: (id: string) => void): Promise<UnlistenFn> =>
    listen<string>('orders-changed', (e) => f(e.payload)),
  closeRequested: (f: () => void): Promise<UnlistenFn> => listen('close-requested', () => f()),
  syncNowRequested: (f: () => void): Promise<UnlistenFn> =>
    listen('sync-now-requested', () => f()),
  /** The engine's status, on every change. */
  syncStatus: (f: (s: EngineStatusView) => void): Promise<UnlistenFn> =>
    listen<EngineStatusView>('sync-status', (e) => f(e.payload)),
  /** The quiet check after start-up found an update. */
  updateAvailable: (f: (u: UpdateView) => void): Promise<UnlistenFn> =>
    listen<UpdateView>('update-available', (e) => f(e.payload)),
  updateProgress: (f: (p: { downloaded: number; total: number | null }) => void): Promise<UnlistenFn> =>
    listen<{ downloaded: number; total: number | null }>('update-progress', (e) => f(e.payload)),
};
