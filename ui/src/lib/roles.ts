// What a signed-in role may see, decided in one place over every role the shell names
// (UserRole, generated from Rust): a role added there fails the type check here until
// it is decided.
import type { UserRole } from '../generated/UserRole';

/** Dispatchers and administrators get the dispatch screens and the fleet's failed syncs. */
export function canDispatch(role: UserRole | null | undefined): boolean {
  switch (role) {
    case 'dispatcher':
    case 'admin':
      return true;
    case 'technician':
    case null:
    case undefined:
      return false;
    default:
      // A role this UI does not know gets the least.
      role satisfies never;
      return false;
  }
}
