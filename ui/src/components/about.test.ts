import { describe, expect, it, vi } from 'vitest';
import { render, screen, fireEvent } from '@testing-library/svelte';
import { tick } from 'svelte';

import About from './About.svelte';

describe('About', () => {
  it('shows the version, the licence and where the data is kept', () => {
    render(About, { version: '0.1.0', dataDir: '/home/ana/.local/share/outpost' });
    expect(screen.getByRole('heading', { name: 'About Outpost' })).toBeTruthy();
    expect(screen.getByTestId('about-version').textContent).toBe('0.1.0');
    expect(screen.getByTestId('about-licence').textContent).toBe('Apache-2.0');
    expect(screen.getByTestId('about-data-dir').textContent).toBe('/home/ana/.local/share/outpost');
    // Optional parts stay out when not given.
    expect(screen.queryByTestId('about-log-file')).toBeNull();
    expect(screen.queryByTestId('about-channel')).toBeNull();
    expect(screen.queryByTestId('about-components')).toBeNull();
    expect(screen.queryByTestId('about-close')).toBeNull();
  });

  it('lists the shipped components with their licences, the log file and the update channel', () => {
    render(About, {
      version: '0.2.0',
      dataDir: 'C:\\Users\\ana\\AppData\\Roaming\\Outpost\\data',
      logFile: 'C:\\Users\\ana\\AppData\\Roaming\\org.outpost.desktop\\logs\\outpost-desktop.log',
      updateChannel: 'beta',
      components: [
        { name: 'Tauri', licence: 'Apache-2.0 OR MIT' },
        { name: 'SQLCipher', licence: 'BSD-3-Clause' },
      ],
    });
    expect(screen.getByTestId('about-channel').textContent).toBe('beta');
    expect(screen.getByTestId('about-log-file').textContent).toContain('outpost-desktop.log');
    const items = Array.from(screen.getByTestId('about-components').querySelectorAll('li')).map((li) => li.textContent);
    expect(items).toEqual(['Tauri — Apache-2.0 OR MIT', 'SQLCipher — BSD-3-Clause']);
  });

  it('copies the details for support and closes', async () => {
    const writeText = vi.fn(async () => {});
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    const onClose = vi.fn();
    render(About, { version: '0.1.0', dataDir: '/data', logFile: '/data/log', onClose });
    await fireEvent.click(screen.getByTestId('about-copy'));
    await tick();
    expect(writeText).toHaveBeenCalledWith('Outpost 0.1.0\nData: /data\nLog: /data/log');
    expect(screen.getByRole('status').textContent).toBe('Copied.');
    await fireEvent.click(screen.getByTestId('about-close'));
    expect(onClose).toHaveBeenCalledOnce();
  });
});
