// Van stock in the technician's view (issue 23 item 3), over a mocked `invoke`: the
// part picker lists the van's items first with "in your van: N", and the Inventory
// screen's "My van" / "Warehouse" switch asks the shell for that view's page.
import { describe, expect, it, vi, beforeEach } from 'vitest';
import { render, screen, fireEvent } from '@testing-library/svelte';

const invoke = vi.fn();
vi.mock('@tauri-apps/api/core', () => ({ invoke: (...a: unknown[]) => invoke(...a) }));
vi.mock('@tauri-apps/api/event', () => ({ listen: vi.fn(async () => () => {}) }));

import Inventory from './Inventory.svelte';
import OrderDetail from './OrderDetail.svelte';
import { detail } from '../lib/fixtures';
import type { InventoryView } from '../generated/InventoryView';
import type { StockPageView } from '../generated/StockPageView';
import type { InventoryPageInput } from '../generated/InventoryPageInput';

function item(sku: string, name: string, stock: [string, number][]): InventoryView {
  return {
    sku,
    name,
    description: '',
    unit: 'each',
    price_cents: 1250,
    stock: stock.map(([location, quantity]) => ({ location, quantity })),
    total_stock: stock.reduce((n, [, q]) => n + q, 0),
  };
}

const sealKit = item('SKU-00050', 'Seal kit 50', [['main', 20], ['van-tech1', 3]]);
const filter = item('SKU-00000', 'Filter 0', [['main', 20], ['van-tech1', 5]]);
const bearing = item('SKU-00011', 'Bearing 11', [['main', 31]]);

function page(over: Partial<StockPageView>): StockPageView {
  return { location: 'van-tech1', van_owner: 'tech1', yours: true, items: [], more: false, ...over };
}

beforeEach(() => {
  invoke.mockReset();
});

describe('Inventory', () => {
  beforeEach(() => {
    invoke.mockImplementation(async (cmd: string, args: { input: InventoryPageInput }) => {
      if (cmd !== 'inventory_page') throw new Error(`unexpected ${cmd}`);
      if (args.input.place === 'my_van')
        return page({ items: [{ item: filter, here: 5 }, { item: sealKit, here: 3 }] });
      const first = args.input.offset === 0;
      return page({
        location: null,
        van_owner: null,
        yours: false,
        items: first ? [{ item: bearing, here: 31 }, { item: filter, here: 20 }] : [{ item: sealKit, here: 20 }],
        more: first,
      });
    });
  });

  it('opens on my van with the quantity in it, and switches to the warehouse with the keyboard', async () => {
    render(Inventory);
    await vi.waitFor(() => expect(screen.getAllByTestId('inventory-row')).toHaveLength(2));
    const here = () => screen.getAllByTestId('inventory-here').map((c) => c.textContent);
    expect(here()).toEqual(['5 each', '3 each']);
    expect(screen.getByRole('columnheader', { name: 'In my van' })).toBeTruthy();
    expect(screen.getByTestId('inventory-van').textContent).toContain('van-tech1');
    expect(invoke).toHaveBeenCalledWith('inventory_page', {
      input: { place: 'my_van', query: '', offset: 0, limit: 100 },
    });

    // The switch is a labelled radio group: reachable and operable from the keyboard.
    const myVan = screen.getByRole('radio', { name: 'My van' }) as HTMLInputElement;
    const warehouse = screen.getByRole('radio', { name: 'Warehouse' }) as HTMLInputElement;
    expect(myVan.checked).toBe(true);
    expect(screen.getByRole('group', { name: 'Show' })).toBeTruthy();
    warehouse.focus();
    await fireEvent.click(warehouse);
    await vi.waitFor(() => expect(here()).toEqual(['31 each', '20 each']));
    expect(screen.getByRole('columnheader', { name: 'In the warehouse' })).toBeTruthy();

    // The warehouse has more than a page: "Show more" asks for the next one.
    await fireEvent.click(screen.getByTestId('inventory-more'));
    await vi.waitFor(() => expect(here()).toEqual(['31 each', '20 each', '20 each']));
    expect(invoke).toHaveBeenCalledWith('inventory_page', {
      input: { place: 'warehouse', query: '', offset: 2, limit: 100 },
    });
    expect(screen.queryByTestId('inventory-more')).toBeNull();
  });

  it('says so when nobody is signed in to have a van', async () => {
    invoke.mockImplementation(async () => page({ location: null, van_owner: null, yours: false }));
    render(Inventory);
    await vi.waitFor(() => expect(screen.getByText('Sign in to see the stock in your van.')).toBeTruthy());
  });
});

describe('the part picker', () => {
  it('lists the van first with "in your van: N" and adds the picked part', async () => {
    invoke.mockImplementation(async (cmd: string) => {
      if (cmd === 'get_order') return detail();
      if (cmd === 'decision_notices') return [];
      if (cmd === 'search_inventory') return [];
      if (cmd === 'part_picker')
        return page({ items: [{ item: filter, here: 5 }, { item: sealKit, here: 3 }, { item: bearing, here: null }] });
      if (cmd === 'edit_order') return detail();
      throw new Error(`unexpected ${cmd}`);
    });
    render(OrderDetail, { id: 'x', onBack: () => {} });
    await vi.waitFor(() => expect(screen.getByTestId('part-search')).toBeTruthy());
    await fireEvent.focus(screen.getByTestId('part-search'));
    await vi.waitFor(() => expect(screen.getAllByTestId('part-option')).toHaveLength(3));
    expect(invoke).toHaveBeenCalledWith('part_picker', { id: 'x', query: '', limit: 20 });
    const options = screen.getAllByTestId('part-option');
    expect(options.map((o) => o.dataset.sku)).toEqual(['SKU-00000', 'SKU-00050', 'SKU-00011']);
    expect(screen.getAllByTestId('part-in-van').map((b) => b.textContent)).toEqual(['in your van: 5', 'in your van: 3']);
    expect(options[2].textContent).not.toContain('van');
    expect(screen.getByRole('list', { name: 'Matching parts, in your van first' })).toBeTruthy();

    await fireEvent.click(options[1]);
    await fireEvent.click(screen.getByRole('button', { name: 'Add Seal kit 50' }));
    await vi.waitFor(() => expect(invoke).toHaveBeenCalledWith('edit_order', expect.anything()));
    const call = invoke.mock.calls.find((c) => c[0] === 'edit_order')!;
    expect(call[1]).toMatchObject({ id: 'x', edit: { parts: [{ sku: 'SKU-00050', quantity: '1' }] } });
  });

  it("names another technician's van when the order is theirs", async () => {
    invoke.mockImplementation(async (cmd: string) => {
      if (cmd === 'get_order') return detail();
      if (cmd === 'part_picker')
        return page({ van_owner: 'tech2', location: 'van-tech2', yours: false, items: [{ item: filter, here: 1 }] });
      return [];
    });
    render(OrderDetail, { id: 'x', onBack: () => {} });
    await vi.waitFor(() => expect(screen.getByTestId('part-search')).toBeTruthy());
    await fireEvent.input(screen.getByTestId('part-search'), { target: { value: 'filter' } });
    await vi.waitFor(() => expect(screen.getByTestId('part-in-van').textContent).toBe("in tech2's van: 1"));
  });
});
