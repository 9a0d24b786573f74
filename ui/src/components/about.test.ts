import { beforeEach, describe, expect, it, vi } from 'vitest';
import { render, screen, fireEvent } from '@testing-library/svelte';
import { tick } from 'svelte';

const invoke = vi.fn();
vi.mock('@tauri-apps/api/core', () => ({ invoke: (...a: unknown[]) => invoke(...a) }));
vi.mock('@tauri-apps/api/event', () => ({ listen: vi.fn(async () => () => {}) }));

import About from './About.svelte';
import AboutScreen from '../screens/AboutScreen.svelte';
import type { AppInfoView } from '../generated/AppInfoView';
import type { UpdateView } from '../generated/UpdateView';

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
    expect(writeText).toHaveBeenCalledWith('Outpost 0.1.0\nData: /data\nLog folder: /data/log');
    expect(screen.getByRole('status').textContent).toBe('Copied.');
    await fireEvent.click(screen.getByTestId('about-close'));
    expect(onClose).toHaveBeenCalledOnce();
  });
});

const info = (over: Partial<AppInfoView> = {}): AppInfoView => ({
  version: '0.1.0',
  data_dir: '/home/ana/.local/share/outpost',
  log_file: null,
  update_channel: 'stable',
  channels: ['stable', 'beta'],
  ...over,
});

const update: UpdateView = { version: '0.2.0', current_version: '0.1.0', notes: 'Faster search.', date: null };

describe('AboutScreen', () => {
  let channel = 'stable';
  let check: () => unknown;
  let installed: () => unknown;
  beforeEach(() => {
    channel = 'stable';
    check = () => null;
    installed = () => null;
    invoke.mockReset();
    invoke.mockImplementation(async (cmd: string, args: Record<string, unknown>) => {
      switch (cmd) {
        case 'app_info':
          return info({ update_channel: channel as AppInfoView['update_channel'] });
        case 'set_update_channel':
          channel = String(args.channel);
          return info({ update_channel: channel as AppInfoView['update_channel'] });
        case 'check_for_update':
          return check();
        case 'install_update':
          return installed();
        default:
          throw new Error(`unexpected ${cmd}`);
      }
    });
  });

  it('shows the version from the shell and keeps the chosen channel', async () => {
    render(AboutScreen, {});
    await vi.waitFor(() => expect(screen.getByTestId('about-version').textContent).toBe('0.1.0'));
    expect(screen.getByTestId('about-channel').textContent).toBe('stable');
    await fireEvent.change(screen.getByTestId('update-channel'), { target: { value: 'beta' } });
    await vi.waitFor(() => expect(screen.getByTestId('about-channel').textContent).toBe('beta'));
    expect(invoke).toHaveBeenCalledWith('set_update_channel', { channel: 'beta' });
  });

  it('says when Outpost is up to date, and why a check failed', async () => {
    render(AboutScreen, {});
    await vi.waitFor(() => screen.getByTestId('check-update'));
    await fireEvent.click(screen.getByTestId('check-update'));
    await vi.waitFor(() => expect(screen.getByTestId('up-to-date')).toBeTruthy());
    check = () => {
      throw { code: 'update_offline', message: 'cannot reach the update server; try again when online', field_errors: [] };
    };
    await fireEvent.click(screen.getByTestId('check-update'));
    await vi.waitFor(() => expect(screen.getByTestId('update-error').textContent).toContain('try again when online'));
  });

  it('offers an update found, installs it on request and shows a refused signature', async () => {
    check = () => update;
    installed = () => {
      throw { code: 'update_signature', message: 'the signature does not match: it was not installed', field_errors: [] };
    };
    render(AboutScreen, {});
    await vi.waitFor(() => screen.getByTestId('check-update'));
    await fireEvent.click(screen.getByTestId('check-update'));
    await vi.waitFor(() => expect(screen.getByTestId('update-found').textContent).toContain('Outpost 0.2.0'));
    expect(screen.getByTestId('update-found').textContent).toContain('Faster search.');
    await fireEvent.click(screen.getByTestId('install-update'));
    await vi.waitFor(() => expect(screen.getByTestId('update-error').textContent).toContain('not installed'));
    expect(calls('install_update')).toHaveLength(1);
    // Nothing installed: the button is offered again.
    expect((screen.getByTestId('install-update') as HTMLButtonElement).disabled).toBe(false);
  });

  it('starts from an update the start-up check found', async () => {
    render(AboutScreen, { found: update });
    await vi.waitFor(() => expect(screen.getByTestId('update-found')).toBeTruthy());
    expect(calls('check_for_update')).toHaveLength(0);
  });
});

const calls = (cmd: string) => invoke.mock.calls.filter((c) => c[0] === cmd);
