//! The inventory from the company's business system (ERP) and back (issue 23):
//! `outpost-server inventory import FILE` and `inventory export --since TIME`, and the
//! stock-move ledger both stand on.
//!
//! **The ledger** (`stock_moves`, server schema 7): every change of an item's stock at
//! one location with the server's time of it: a parts line pushed by a device (or
//! decided in a resolution), kind [`MoveKind::Part`], written by the push path's
//! `adjust_stock` in the push's transaction; and the corrections an import made, kind
//! [`MoveKind::Import`], kept for the audit.
//!
//! **The rule an import applies** (docs/server.md, "Inventory from the business
//! system"): an export's quantity of a SKU at a location is the truth as of the time the
//! export was taken, `T`. The parts used since are not in it, so the server sets the
//! location to the export's quantity plus every part move of that SKU and location
//! recorded on the server at or after `T` (used parts are negative, returned ones
//! positive). Moves recorded before `T` are taken to be in the export: the ERP learns
//! them from [`parts_used`] (`inventory export`), whose window `[since, until)` is in the
//! same server time, so an ERP that sets `T` to the `until` of the last parts export it
//! booked gets exactly the right quantities. The sum is read inside
//! the chunk's write transaction, so a push that lands between two chunks is counted
//! exactly once, whichever chunk its SKU is in. An export older than one already
//! imported is refused: it would undo what the newer one said.
//!
//! **Only rows that differ are written**: an item whose name, unit, price, description
//! and stock come out equal to what the server has gets no write and no change-log row,
//! so a re-import changes nothing and a device's next pull carries exactly the changed
//! rows. Locations the export does not name are kept as they are (a van the ERP does not
//! track keeps its stock), and so is a description the export does not carry.
//!
//! **Bounded chunks**: the file is read whole (a 100,000-row export is a few MB), then
//! applied [`ImportOptions::chunk_size`] items per write transaction, so pushes wait at
//! most one chunk, never the whole import.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use outpost_protocol::{Clock, InventoryItem, Quantity, StockLevel};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::{Db, Sql};
use crate::error::Error;
use crate::repo::{self, Audience, ChangeLog, NewChange};

/// What moved stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveKind {
    /// A parts line of an order (negative: used; positive: given back).
    Part,
    /// The correction an ERP import made.
    Import,
}

impl MoveKind {
    fn as_str(self) -> &'static str {
        match self {
            MoveKind::Part => "part",
            MoveKind::Import => "import",
        }
    }
}

/// One stock move to record in the ledger.
#[derive(Debug)]
pub struct NewMove<'a> {
    pub sku: &'a str,
    pub location: &'a str,
    pub delta_milli: i64,
    pub kind: MoveKind,
    pub order_id: Option<Uuid>,
    /// The order's assignee (whose van the stock rule takes parts from).
    pub technician: Option<&'a str>,
    pub mutation_id: Option<Uuid>,
    /// The device's time of the change.
    pub device_us: Option<i64>,
}

/// Record a stock move at the server's time `now_us`, in the caller's write transaction.
pub fn record_move(sql: &mut dyn Sql, m: &NewMove<'_>, now_us: i64) -> Result<(), Error> {
    sql.exec(
        "INSERT INTO stock_moves (id, sku, location, delta_milli, kind, order_id, technician, mutation_id, device_us, recorded_us) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        &[
            Uuid::new_v4().into(),
            m.sku.into(),
            m.location.into(),
            m.delta_milli.into(),
            m.kind.as_str().into(),
            m.order_id.map(|u| u.to_string()).into(),
            m.technician.into(),
            m.mutation_id.map(|u| u.to_string()).into(),
            m.device_us.into(),
            now_us.into(),
        ],
    )?;
    Ok(())
}

/// The sum of the part moves of `sku` at `location` recorded at or after `after_us`.
fn parts_after(sql: &mut dyn Sql, sku: &str, location: &str, after_us: i64) -> Result<i64, Error> {
    let rows = sql.query(
        "SELECT CAST(COALESCE(SUM(delta_milli), 0) AS BIGINT) FROM stock_moves \
         WHERE sku = ?1 AND location = ?2 AND kind = 'part' AND recorded_us >= ?3",
        &[sku.into(), location.into(), after_us.into()],
    )?;
    rows.first().map_or(Ok(0), |r| r.i64(0))
}

// ---- the export file ----------------------------------------------------------------

/// A file the business system exported, read.
#[derive(Debug, Clone, PartialEq)]
pub struct ErpExport {
    /// When the export was taken: its quantities are the truth as of then.
    pub taken_at: DateTime<Utc>,
    pub items: Vec<ErpItem>,
}

/// One SKU of an export.
#[derive(Debug, Clone, PartialEq)]
pub struct ErpItem {
    pub sku: String,
    pub name: String,
    pub unit: String,
    pub price_cents: i64,
    /// `None` when the export has no description: the server's is kept.
    pub description: Option<String>,
    pub stock: Vec<StockLevel>,
}

/// An export file that cannot be imported; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ExportFileError {
    #[error("line {line}: {message}")]
    Line { line: u64, message: String },
    #[error("{0}")]
    File(String),
}

fn line_err(line: u64, message: impl Into<String>) -> ExportFileError {
    ExportFileError::Line {
        line,
        message: message.into(),
    }
}

/// The file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    Csv,
    Json,
}

impl FileFormat {
    /// The format a file's name or first character says (`.json` or `{`: JSON).
    pub fn guess(name: &str, text: &str) -> FileFormat {
        if name.to_ascii_lowercase().ends_with(".json") || text.trim_start().starts_with('{') {
            FileFormat::Json
        } else {
            FileFormat::Csv
        }
    }
}

/// A price in currency units with at most two decimals ("12.50") as cents.
fn parse_price(s: &str) -> Result<i64, String> {
    let q: Quantity = s
        .trim()
        .parse()
        .map_err(|_| format!("price {s:?} is not a price such as 12.50"))?;
    if q.0 < 0 || q.0 % 10 != 0 {
        return Err(format!(
            "price {s:?} is not a price such as 12.50 (not negative, two decimals at most)"
        ));
    }
    Ok(q.0 / 10)
}

fn parse_quantity(s: &str) -> Result<Quantity, String> {
    s.trim()
        .parse::<Quantity>()
        .map_err(|e| format!("quantity: {e}"))
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!("{s:?} is not a time: use RFC 3339 with a zone, e.g. 2026-12-07T06:00:00Z")
        })
}

/// Adds rows to items, one SKU once, in the order first seen.
#[derive(Default)]
struct Collect {
    items: Vec<ErpItem>,
    index: HashMap<String, (usize, u64)>,
}

impl Collect {
    fn add(
        &mut self,
        line: u64,
        item: ErpItem,
        level: Option<StockLevel>,
    ) -> Result<(), ExportFileError> {
        for (what, v) in [
            ("sku", &item.sku),
            ("name", &item.name),
            ("unit", &item.unit),
        ] {
            if v.trim().is_empty() {
                return Err(line_err(line, format!("{what} is empty")));
            }
        }
        let at = match self.index.get(&item.sku) {
            Some(&(i, first)) => {
                let known = &self.items[i];
                if (
                    &known.name,
                    &known.unit,
                    known.price_cents,
                    &known.description,
                ) != (&item.name, &item.unit, item.price_cents, &item.description)
                {
                    return Err(line_err(
                        line,
                        format!(
                            "SKU {} has another name, unit, price or description than on line {first}",
                            item.sku
                        ),
                    ));
                }
                i
            }
            None => {
                self.index
                    .insert(item.sku.clone(), (self.items.len(), line));
                self.items.push(ErpItem {
                    stock: Vec::new(),
                    ..item
                });
                self.items.len() - 1
            }
        };
        if let Some(level) = level {
            let stock = &mut self.items[at].stock;
            if level.location.trim().is_empty() {
                return Err(line_err(line, "location is empty"));
            }
            if stock.iter().any(|l| l.location == level.location) {
                return Err(line_err(
                    line,
                    format!(
                        "SKU {} has location {} twice",
                        self.items[at].sku, level.location
                    ),
                ));
            }
            stock.push(level);
        }
        Ok(())
    }
}

/// Read a CSV export: a header row naming `sku`, `name`, `unit`, `price`, `location`,
/// `quantity` (any order, any case), optionally `description` and `taken_at`; one row
/// per SKU and location (a SKU stocked nowhere: one row with location and quantity
/// empty). `taken_at` (the flag) is used when the file has no `taken_at` column.
pub fn parse_csv(
    text: &str,
    taken_at: Option<DateTime<Utc>>,
) -> Result<ErpExport, ExportFileError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| ExportFileError::File(format!("the header row: {e}")))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let need = |name: &str| {
        col(name).ok_or_else(|| {
            ExportFileError::File(format!(
                "the header row has no {name} column (it needs sku, name, unit, price, location, quantity)"
            ))
        })
    };
    let (sku, name, unit, price, location, quantity) = (
        need("sku")?,
        need("name")?,
        need("unit")?,
        need("price")?,
        need("location")?,
        need("quantity")?,
    );
    let (description, taken_col) = (col("description"), col("taken_at"));
    let mut file_time: Option<DateTime<Utc>> = None;
    let mut out = Collect::default();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            line_err(line, e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or("").to_owned();
        if let Some(c) = taken_col {
            let t = parse_time(&field(c)).map_err(|e| line_err(line, format!("taken_at: {e}")))?;
            match file_time {
                Some(f) if f != t => {
                    return Err(line_err(line, "taken_at differs from the rows above"))
                }
                _ => file_time = Some(t),
            }
        }
        let item = ErpItem {
            sku: field(sku),
            name: field(name),
            unit: field(unit),
            price_cents: parse_price(&field(price)).map_err(|e| line_err(line, e))?,
            description: description.map(field),
            stock: Vec::new(),
        };
        let (loc, qty) = (field(location), field(quantity));
        let level = if loc.is_empty() && qty.is_empty() {
            None
        } else {
            Some(StockLevel {
                location: loc,
                quantity: parse_quantity(&qty).map_err(|e| line_err(line, e))?,
            })
        };
        out.add(line, item, level)?;
    }
    let taken_at = taken_at.or(file_time).ok_or_else(|| {
        ExportFileError::File(
            "say when the export was taken: --taken-at TIME, or a taken_at column".into(),
        )
    })?;
    Ok(ErpExport {
        taken_at,
        items: out.items,
    })
}

/// A number written as a JSON number or a string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Decimal {
    Number(serde_json::Number),
    Text(String),
}

impl Decimal {
    fn text(&self) -> String {
        match self {
            Decimal::Number(n) => n.to_string(),
            Decimal::Text(s) => s.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct JsonExport {
    taken_at: Option<String>,
    items: Vec<JsonItem>,
}

#[derive(Debug, Deserialize)]
struct JsonItem {
    sku: String,
    name: String,
    unit: String,
    price: Decimal,
    description: Option<String>,
    #[serde(default)]
    stock: Vec<JsonLevel>,
}

#[derive(Debug, Deserialize)]
struct JsonLevel {
    location: String,
    quantity: Decimal,
}

/// Read a JSON export: `{"taken_at": TIME, "items": [{"sku", "name", "unit", "price",
/// "description"?, "stock": [{"location", "quantity"}]}]}` (numbers as numbers or
/// strings). Errors name the item's place in `items` (from 1) as its line.
pub fn parse_json(
    text: &str,
    taken_at: Option<DateTime<Utc>>,
) -> Result<ErpExport, ExportFileError> {
    let file: JsonExport = serde_json::from_str(text)
        .map_err(|e| ExportFileError::File(format!("not an export in JSON: {e}")))?;
    let taken_at = match (taken_at, &file.taken_at) {
        (Some(t), _) => t,
        (None, Some(t)) => parse_time(t).map_err(ExportFileError::File)?,
        (None, None) => {
            return Err(ExportFileError::File(
                "say when the export was taken: --taken-at TIME, or taken_at in the file".into(),
            ))
        }
    };
    let mut out = Collect::default();
    for (n, it) in file.items.into_iter().enumerate() {
        let line = n as u64 + 1;
        let item = ErpItem {
            sku: it.sku,
            name: it.name,
            unit: it.unit,
            price_cents: parse_price(&it.price.text()).map_err(|e| line_err(line, e))?,
            description: it.description,
            stock: Vec::new(),
        };
        if it.stock.is_empty() {
            out.add(line, item.clone(), None)?;
        }
        for l in it.stock {
            let level = StockLevel {
                location: l.location,
                quantity: parse_quantity(&l.quantity.text()).map_err(|e| line_err(line, e))?,
            };
            out.add(line, item.clone(), Some(level))?;
        }
    }
    Ok(ErpExport {
        taken_at,
        items: out.items,
    })
}

// ---- import -------------------------------------------------------------------------

/// How an import runs.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// Items per write transaction.
    pub chunk_size: usize,
    /// Discontinue the items the export does not list (a full export).
    pub discontinue_missing: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            chunk_size: 500,
            discontinue_missing: false,
        }
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub added: usize,
    pub changed: usize,
    pub unchanged: usize,
    pub discontinued: usize,
    /// Write transactions the items were applied in.
    pub chunks: usize,
}

/// The `meta` key holding the time (µs) of the newest export imported.
const META_EXPORT_TAKEN: &str = "inventory_export_taken_us";

/// An import that was refused before anything was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("this export was taken at {taken}, before the export already imported (taken at {newest}): an older export would undo what the newer one said; import a newer one")]
    Older { taken: String, newest: String },
    #[error("the export lists no item: with --discontinue-missing it would discontinue the whole catalogue; refused")]
    EmptyFullExport,
    #[error(transparent)]
    Store(#[from] Error),
}

fn rfc3339_us(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us).map_or_else(
        || us.to_string(),
        |t| t.to_rfc3339_opts(SecondsFormat::Micros, true),
    )
}

/// Apply `export` (the rule in the module's header), in chunks of
/// [`ImportOptions::chunk_size`] items, each its own write transaction.
pub async fn import(
    db: &Db,
    clock: &dyn Clock,
    export: ErpExport,
    opts: ImportOptions,
) -> Result<ImportReport, ImportError> {
    if opts.discontinue_missing && export.items.is_empty() {
        return Err(ImportError::EmptyFullExport);
    }
    let taken_us = export.taken_at.timestamp_micros();
    let newest = db
        .write(move |sql| {
            let newest =
                repo::meta_get(sql, META_EXPORT_TAKEN)?.and_then(|v| v.parse::<i64>().ok());
            if newest.is_none_or(|n| n <= taken_us) {
                repo::meta_set(sql, META_EXPORT_TAKEN, &taken_us.to_string())?;
            }
            Ok(newest)
        })
        .await?;
    if let Some(n) = newest.filter(|&n| n > taken_us) {
        return Err(ImportError::Older {
            taken: rfc3339_us(taken_us),
            newest: rfc3339_us(n),
        });
    }
    let chunk_size = opts.chunk_size.max(1);
    let listed: BTreeSet<String> = export.items.iter().map(|i| i.sku.clone()).collect();
    let mut report = ImportReport::default();
    let mut items = export.items.into_iter().peekable();
    while items.peek().is_some() {
        let chunk: Vec<ErpItem> = items.by_ref().take(chunk_size).collect();
        let now_us = clock.now().timestamp_micros();
        let part = db
            .write(move |sql| {
                repo::with_change_log(sql, |sql, log| {
                    let mut r = ImportReport::default();
                    for item in &chunk {
                        match apply_item(sql, log, item, taken_us, now_us)? {
                            Applied::Added => r.added += 1,
                            Applied::Changed => r.changed += 1,
                            Applied::Unchanged => r.unchanged += 1,
                        }
                    }
                    Ok(r)
                })
            })
            .await?;
        report.added += part.added;
        report.changed += part.changed;
        report.unchanged += part.unchanged;
        report.chunks += 1;
    }
    if opts.discontinue_missing {
        let all: Vec<String> = db
            .read(|sql| {
                sql.query("SELECT sku FROM inventory ORDER BY sku", &[])?
                    .iter()
                    .map(|r| r.text(0))
                    .collect()
            })
            .await?;
        let missing: Vec<String> = all.into_iter().filter(|s| !listed.contains(s)).collect();
        for chunk in missing.chunks(chunk_size) {
            let chunk = chunk.to_vec();
            let now_us = clock.now().timestamp_micros();
            report.discontinued += db
                .write(move |sql| {
                    repo::with_change_log(sql, |sql, log| {
                        let mut n = 0;
                        for sku in &chunk {
                            if repo::discontinue_item_in(sql, log, sku, now_us)? {
                                n += 1;
                            }
                        }
                        Ok(n)
                    })
                })
                .await?;
        }
    }
    Ok(report)
}

enum Applied {
    Added,
    Changed,
    Unchanged,
}

/// One item of an export, inside a chunk's transaction.
fn apply_item(
    sql: &mut dyn Sql,
    log: &mut ChangeLog,
    erp: &ErpItem,
    taken_us: i64,
    now_us: i64,
) -> Result<Applied, Error> {
    let current = repo::get_item(sql, &erp.sku)?;
    let mut stock = current
        .as_ref()
        .map(|(i, _)| i.stock.clone())
        .unwrap_or_default();
    let mut moves = Vec::new();
    for level in &erp.stock {
        let since = parts_after(sql, &erp.sku, &level.location, taken_us)?;
        let target = Quantity(level.quantity.0.saturating_add(since));
        match stock.iter_mut().find(|l| l.location == level.location) {
            Some(l) => {
                if l.quantity != target {
                    moves.push((l.location.clone(), target.0 - l.quantity.0, target.0));
                    l.quantity = target;
                }
            }
            None => {
                moves.push((level.location.clone(), target.0, target.0));
                stock.push(StockLevel {
                    location: level.location.clone(),
                    quantity: target,
                });
            }
        }
    }
    let item = InventoryItem {
        sku: erp.sku.clone(),
        name: erp.name.clone(),
        description: erp.description.clone().unwrap_or_else(|| {
            current
                .as_ref()
                .map(|(i, _)| i.description.clone())
                .unwrap_or_default()
        }),
        unit: erp.unit.clone(),
        price_cents: erp.price_cents,
        stock,
    };
    let (version, applied) = match &current {
        Some((same, _)) if *same == item => return Ok(Applied::Unchanged),
        Some((_, v)) => (v + 1, Applied::Changed),
        None => (1, Applied::Added),
    };
    for (location, delta_milli, quantity) in &moves {
        record_move(
            sql,
            &NewMove {
                sku: &item.sku,
                location,
                delta_milli: *delta_milli,
                kind: MoveKind::Import,
                order_id: None,
                technician: None,
                mutation_id: None,
                device_us: None,
            },
            now_us,
        )?;
        repo::set_stock_alert(sql, &item.sku, location, &item.name, *quantity)?;
    }
    let body = repo::put_item(sql, &item, version)?;
    log.append(
        sql,
        NewChange {
            entity: "inventory_item",
            entity_id: &item.sku,
            version,
            body: repo::change_body("inventory_item", &body),
            mutation_ids: &[],
            audience: Audience::All,
            scope_user: None,
            scope_user2: None,
            device_us: None,
        },
        now_us,
    )?;
    Ok(applied)
}

// ---- export -------------------------------------------------------------------------

/// One part used, for the ERP. `quantity` is positive for parts used and negative for
/// parts given back (a parts line removed or lowered), written as a decimal string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartUsedRow {
    /// When the server recorded it (the time `--since`/`--until` select by).
    pub recorded_at: String,
    /// When the device says it was used (its clock).
    pub used_at: Option<String>,
    pub order_id: Option<String>,
    pub order_number: Option<u64>,
    /// The order's assignee at the time (whose van the stock rule took it from).
    pub technician: Option<String>,
    pub sku: String,
    pub quantity: String,
    pub location: String,
}

/// The parts used recorded in `[since_us, until_us)`, oldest first.
pub fn parts_used(
    sql: &mut dyn Sql,
    since_us: i64,
    until_us: i64,
) -> Result<Vec<PartUsedRow>, Error> {
    let rows = sql.query(
        "SELECT m.recorded_us, m.device_us, m.order_id, o.number, m.technician, m.sku, m.delta_milli, m.location \
         FROM stock_moves m LEFT JOIN orders o ON o.id = m.order_id \
         WHERE m.kind = 'part' AND m.recorded_us >= ?1 AND m.recorded_us < ?2 \
         ORDER BY m.recorded_us, m.id",
        &[since_us.into(), until_us.into()],
    )?;
    rows.iter()
        .map(|r| {
            Ok(PartUsedRow {
                recorded_at: rfc3339_us(r.i64(0)?),
                used_at: r.opt_i64(1)?.map(rfc3339_us),
                order_id: r.opt_text(2)?,
                order_number: r.opt_i64(3)?.and_then(|n| u64::try_from(n).ok()),
                technician: r.opt_text(4)?,
                sku: r.text(5)?,
                quantity: Quantity(r.i64(6)?.saturating_neg()).to_string(),
                location: r.text(7)?,
            })
        })
        .collect()
}

/// The parts-used export as JSON: the window and its rows.
#[derive(Debug, Serialize)]
struct PartsJson<'a> {
    since: String,
    until: String,
    parts: &'a [PartUsedRow],
}

/// Write `rows` (the window `[since, until)`) as CSV with a header row, or as JSON.
pub fn write_parts(
    out: &mut dyn std::io::Write,
    format: FileFormat,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    rows: &[PartUsedRow],
) -> Result<(), ExportFileError> {
    let io = |e: std::io::Error| ExportFileError::File(format!("writing the export: {e}"));
    match format {
        FileFormat::Csv => {
            let mut w = csv::WriterBuilder::new().has_headers(true).from_writer(out);
            if rows.is_empty() {
                w.write_record([
                    "recorded_at",
                    "used_at",
                    "order_id",
                    "order_number",
                    "technician",
                    "sku",
                    "quantity",
                    "location",
                ])
                .map_err(|e| ExportFileError::File(e.to_string()))?;
            }
            for r in rows {
                w.serialize(r)
                    .map_err(|e| ExportFileError::File(e.to_string()))?;
            }
            w.flush().map_err(io)?;
        }
        FileFormat::Json => {
            let doc = PartsJson {
                since: since.to_rfc3339_opts(SecondsFormat::Micros, true),
                until: until.to_rfc3339_opts(SecondsFormat::Micros, true),
                parts: rows,
            };
            serde_json::to_writer_pretty(&mut *out, &doc)
                .map_err(|e| ExportFileError::File(e.to_string()))?;
            writeln!(out).map_err(io)?;
        }
    }
    Ok(())
}

/// How long before now the parts export's window ends by default: a push reads the
/// time before it waits for the write lock, so one still being written may carry a
/// time a little in the past; it lands in the next window instead of between two.
pub const EXPORT_SETTLE: chrono::Duration = chrono::Duration::minutes(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_export_saved_by_a_spreadsheet_with_a_byte_order_mark_and_quoted_commas_reads() {
        let text = "\u{feff}SKU,Name,Unit,Price,Location,Quantity,Description\r\n\
                    FLT-1,\"Filter, 600x600\",each,24.90,main,40,\"Pleated, G4\"\r\n\
                    FLT-1,\"Filter, 600x600\",each,24.90,van-tech1,2.5,\"Pleated, G4\"\r\n\
                    GAUGE,Gauge,each,10,,,\r\n";
        let t: DateTime<Utc> = "2026-12-07T05:00:00Z".parse().expect("time");
        let export = parse_csv(text, Some(t)).expect("reads");
        assert_eq!(export.taken_at, t);
        assert_eq!(export.items.len(), 2);
        let f = &export.items[0];
        assert_eq!(
            (f.sku.as_str(), f.name.as_str(), f.price_cents),
            ("FLT-1", "Filter, 600x600", 2490)
        );
        assert_eq!(f.description.as_deref(), Some("Pleated, G4"));
        assert_eq!(
            f.stock,
            vec![
                StockLevel {
                    location: "main".into(),
                    quantity: Quantity::from_units(40)
                },
                StockLevel {
                    location: "van-tech1".into(),
                    quantity: Quantity(2500)
                },
            ]
        );
        assert!(export.items[1].stock.is_empty(), "a SKU stocked nowhere");
        assert_eq!(export.items[1].price_cents, 1000);
    }

    #[test]
    fn rows_of_one_sku_that_disagree_or_a_price_with_three_decimals_are_refused_with_the_line() {
        let t: DateTime<Utc> = "2026-12-07T05:00:00Z".parse().expect("time");
        let text = "sku,name,unit,price,location,quantity\nA,One,each,1.00,main,1\nA,Two,each,1.00,van-tech1,1\n";
        let err = parse_csv(text, Some(t)).expect_err("refused").to_string();
        assert!(
            err.starts_with("line 3:") && err.contains("line 2"),
            "{err}"
        );
        let text = "sku,name,unit,price,location,quantity\nA,One,each,1.005,main,1\n";
        let err = parse_csv(text, Some(t)).expect_err("refused").to_string();
        assert!(err.starts_with("line 2:") && err.contains("price"), "{err}");
        let err = parse_csv("sku,name,unit,price,location,quantity\n", None)
            .expect_err("no time")
            .to_string();
        assert!(err.contains("--taken-at"), "{err}");
    }
}
