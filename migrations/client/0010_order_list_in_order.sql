-- Outpost local store, schema 10: the order list's index in the list's order.
--
-- The list shows the soonest orders first (unscheduled last), ties by number, then id.
-- Schema 4's index led with the status, so every keystroke read all its entries and
-- sorted every match before taking a page: fine for a technician's thousand orders, a
-- tenth of a second on a dispatcher's device with 100,000. Led by the list's order, a
-- page is the first matches of a walk of the index, and the walk stops once it has
-- counted the matches the list says it has (crates/store/src/list.rs). It still holds
-- every column a list query reads (covering), and it replaces the old index, so a
-- write maintains one list index as before.
DROP INDEX work_orders_list;
CREATE INDEX work_orders_list
    ON work_orders ((scheduled_start IS NULL), scheduled_start, number, id,
                    status, priority, assignee, search_text);
