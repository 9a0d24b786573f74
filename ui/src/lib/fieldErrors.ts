// Field errors from an AppError, looked up per form field ("signature" matches
// "signature" and "signature.signer" only when asked for exactly; a prefix ending in
// "." matches every sub-field, e.g. "parts_used.").
import type { FieldErrorView } from '../generated/FieldErrorView';

export function errorsFor(all: FieldErrorView[], field: string): FieldErrorView[] {
  return all.filter((e) => (field.endsWith('.') ? e.field.startsWith(field) : e.field === field));
}

/** Errors whose field no form control shows: listed at the top of the form. */
export function unplaced(all: FieldErrorView[], shown: string[]): FieldErrorView[] {
  return all.filter(
    (e) => !shown.some((f) => (f.endsWith('.') ? e.field.startsWith(f) : e.field === f)),
  );
}
