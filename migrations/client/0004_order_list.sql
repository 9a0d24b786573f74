-- Outpost local store, schema 4: the order list is searched and paged in SQL, so the
-- app no longer reads every order to show sixty of them.

-- What a search matches: number, title, customer, address, asset tag, status and
-- assignee, lower-cased (Unicode) by the program. The migration's hook fills it for
-- existing rows (SQLite's lower() only knows ASCII).
ALTER TABLE work_orders ADD COLUMN search_text TEXT NOT NULL DEFAULT '';

-- One index covers everything a list query reads (tabs, filters, search, order), so a
-- search scans this small index and never the order bodies. It replaces the schedule
-- index (its first two columns), so a write that changes none of these columns still
-- touches no index page.
DROP INDEX work_orders_by_schedule;
CREATE INDEX work_orders_list
    ON work_orders (status, scheduled_start, priority, assignee, number, search_text, id);
