// Test data: order summaries and details shaped like the shell's answers.
import type { OrderSummary } from '../generated/OrderSummary';
import type { OrderDetail } from '../generated/OrderDetail';

export function summary(i: number, over: Partial<OrderSummary> = {}): OrderSummary {
  return {
    id: `00000000-0000-7000-8000-${String(i).padStart(12, '0')}`,
    number: 1000 + i,
    title: `Boiler service ${i}`,
    status: 'scheduled',
    priority: 'normal',
    customer: `Customer ${i}`,
    address: `Street ${i}, Tromsø`,
    asset_tag: `BLR-${i}`,
    scheduled_start: new Date().toISOString(),
    scheduled_end: null,
    assignee: 'tech1',
    completed_at: null,
    sync_state: 'synced',
    ...over,
  };
}

export function detail(over: Partial<OrderDetail> = {}): OrderDetail {
  return {
    summary: summary(1),
    description: 'Annual service.',
    customer_phone: '+47 900 00 000',
    customer_email: '',
    equipment_model: 'Model X',
    equipment_serial: 'SN-1',
    time_zone: 'Europe/Oslo',
    checklist: [
      { id: 'safety', label: 'Isolate power and water', required: true, done: false },
      { id: 'clean', label: 'Clean the work area', required: false, done: false },
    ],
    notes: [],
    time_entries: [],
    parts_used: [],
    photos: [],
    signature: null,
    version: 1,
    ...over,
  };
}
