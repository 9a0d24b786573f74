// Pure logic of the sync screens: the indicator's words, the "fix and resubmit" form's
// corrections, and the conflict form's decision, kept out of the components so that
// they are tested on their own.
import type { EngineStatusView } from '../generated/EngineStatusView';
import type { FieldErrorView } from '../generated/FieldErrorView';
import type { FixInput } from '../generated/FixInput';
import type { ConflictFieldView } from '../generated/ConflictFieldView';
import type { ResolveInput } from '../generated/ResolveInput';

/** The indicator's state in words (never colour alone) and the dot's class. */
export function connectivityWords(s: EngineStatusView): { text: string; dot: string } {
  switch (s.connectivity) {
    case 'online':
      return { text: 'Online', dot: 'online' };
    case 'syncing':
      return { text: 'Syncing…', dot: 'syncing' };
    case 'error':
      return { text: `Sync error: ${s.reason ?? 'unknown'}`, dot: 'error' };
    case 'sign_in_required':
      return { text: 'Sign in again', dot: 'error' };
    case 'local':
      return { text: 'Local demo, no server', dot: 'offline' };
    case 'offline':
      return { text: 'Offline', dot: 'offline' };
    default: {
      // Every state the shell names is handled above (the type check fails here when
      // one is added); a state this UI does not know is said as it is, not guessed.
      s.connectivity satisfies never;
      return { text: `Sync state unknown: ${String(s.connectivity)}`, dot: 'error' };
    }
  }
}

export function pendingWords(n: number): string {
  return n === 0 ? 'Nothing waiting' : `${n} change${n === 1 ? '' : 's'} saved on this device`;
}

/** "Last sync: 10:42" (today) or with the date when older; "never". */
export function lastSyncWords(iso: string | null, now = new Date()): string {
  if (!iso) return 'Last sync: never';
  const d = new Date(iso);
  const time = d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  const sameDay =
    d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() && d.getDate() === now.getDate();
  return sameDay ? `Last sync: ${time}` : `Last sync: ${d.toLocaleDateString()} ${time}`;
}

/** A checklist step's field (`checklist.meter`): corrected with a "Done" checkbox. */
export const isChecklistField = (field: string) => field.startsWith('checklist.');

/** Words for a field key: `checklist.meter` → "Checklist step: meter". */
export function fieldLabel(field: string): string {
  if (isChecklistField(field)) return `Checklist step: ${field.slice('checklist.'.length)}`;
  const words = field.replace(/[._]/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/**
 * The corrections of the "fix and resubmit" form: one per field error the person
 * fixed (a ticked checkbox gives "true"; a typed text, trimmed, non-empty). Untouched
 * fields are left out: the server keeps judging them.
 */
export function buildFixes(errors: FieldErrorView[], values: Record<string, string | boolean>): FixInput[] {
  const out: FixInput[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    if (seen.has(e.field)) continue;
    seen.add(e.field);
    const v = values[e.field];
    if (isChecklistField(e.field)) {
      if (v === true) out.push({ field: e.field, value: 'true' });
    } else if (typeof v === 'string' && v.trim() !== '') {
      out.push({ field: e.field, value: v.trim() });
    }
  }
  return out;
}

export type Choice = 'mine' | 'theirs' | 'merged';

/**
 * The conflict form's decision as the shell takes it, or the field errors that keep it
 * from being sent (a merged choice with no text).
 */
export function buildResolve(
  fields: ConflictFieldView[],
  choices: Record<string, Choice>,
  merged: Record<string, string>,
): { input: ResolveInput; errors: FieldErrorView[] } {
  const errors: FieldErrorView[] = [];
  const input: ResolveInput = { choices: [], accept_whole_change: false };
  for (const f of fields) {
    const choice = choices[f.field] ?? 'mine';
    if (choice === 'merged') {
      const text = merged[f.field] ?? '';
      if (!f.text) {
        errors.push({ field: f.field, code: 'not_text', message: 'only text can be merged: choose mine or theirs' });
      } else if (text.trim() === '') {
        errors.push({ field: f.field, code: 'required', message: 'type the merged text, or choose mine or theirs' });
      }
      input.choices.push({ field: f.field, choice, merged: text });
    } else {
      input.choices.push({ field: f.field, choice, merged: null });
    }
  }
  return { input, errors };
}

/** A whole-change conflict's decision: accept the device's change, or keep the order. */
export function wholeChange(accept: boolean): ResolveInput {
  return { choices: [], accept_whole_change: accept };
}
