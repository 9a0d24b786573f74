// The one wrapper over Tauri's `invoke` and `listen`. The commands and events
// themselves, with their names, argument keys and types, are generated from Rust
// (src/generated/ipc/, by `cargo xtask codegen` from src-tauri/src/commands.rs and
// events.rs; the types they use by ts-rs into src/generated/). What is added here: a
// failed command rejects with an AppError ({code, message, field_errors}), and two
// conveniences (an edit of only the fields that change, a default search limit).
import { invoke } from '@tauri-apps/api/core';
import { listen } from '@tauri-apps/api/event';
import type { AppError } from '../generated/AppError';
import type { OrderEditInput } from '../generated/OrderEditInput';
import { bindCommands, type CommandName } from '../generated/ipc/commands';
import { bindEvents, type EventName } from '../generated/ipc/events';

export function isAppError(e: unknown): e is AppError {
  return typeof e === 'object' && e !== null && 'code' in e && 'message' in e;
}

/** Any rejection as an AppError (a string from Tauri itself becomes code "ipc"). */
export function toAppError(e: unknown): AppError {
  if (isAppError(e)) return { ...e, field_errors: e.field_errors ?? [] };
  return { code: 'ipc', message: String(e), field_errors: [] };
}

async function call<T>(cmd: CommandName, args?: Record<string, unknown>): Promise<T> {
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

const commands = bindCommands(call);

/** Every command the UI calls (see src/generated/ipc/commands.ts). */
export const ipc = {
  ...commands,
  /** Only the fields that change; the rest stay as they are. */
  editOrder: (id: string, edit: Partial<OrderEditInput>) =>
    commands.editOrder(id, { ...emptyEdit, ...edit }),
  searchInventory: (query: string, limit = 50) => commands.searchInventory(query, limit),
};

export type Ipc = typeof ipc;

/** Events the shell sends (see src/generated/ipc/events.ts). */
export const events = bindEvents(<P>(name: EventName, handler: (payload: P) => void) =>
  listen<P>(name, (e) => handler(e.payload)),
);
