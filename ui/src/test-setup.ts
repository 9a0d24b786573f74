// Vitest set-up: jsdom lacks a few browser APIs the components touch.
if (!('requestAnimationFrame' in globalThis)) {
  (globalThis as Record<string, unknown>).requestAnimationFrame = (f: () => void) => setTimeout(f, 0);
}
// Unmount components after each test.
import '@testing-library/svelte/vitest';
