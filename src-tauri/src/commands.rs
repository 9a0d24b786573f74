//! The IPC commands, declared here and nowhere else: each `#[tauri::command]` fn takes
//! the shell's state, calls one `outpost-core` method and turns its error into the one
//! error shape the UI receives (`AppError`: a code, a message, errors per field), so
//! that no command invents its own. Argument and result types are declared in
//! `outpost_core` and exported to `ui/src/generated/` by ts-rs.
//!
//! Everything else about a command follows from its fn: `build.rs` reads the fn names
//! for the `allow-<command>` permissions, and `cargo xtask codegen` writes from the
//! names, arguments and `Res<T>` answers the window's capability
//! (`capabilities/main.json`) and the UI's typed functions
//! (`ui/src/generated/ipc/commands.ts`; the `///` comments become theirs). The
//! `generate_handler!` list below must name every command fn, in order; `cargo test -p
//! outpost-xtask` fails when it or a generated file is out of step.
//!
//! Commands are `async` so that Tauri runs them off the main (GTK) thread: a list of
//! 10,000 orders must not freeze the window while it is read.

use outpost_core::app::{
    ConflictDetailView, EngineStatusView, FailedSyncView, FixInput, FleetFailedSyncView,
    PendingChangeView, ResolveInput, SignInInput,
};
use outpost_core::desk::{
    DecisionInput, DecisionPreview, DecisionReceipt, DeskFilter, DeskPage, NoticeView,
};
use outpost_core::documents::{DocumentContent, DocumentView};
use outpost_core::fleet::FleetView;
use outpost_core::updates::{AppInfoView, UpdateChannel, UpdateView};
use outpost_core::views::{
    AppError, CompletionInput, InventoryPageInput, InventoryView, NewOrderInput, OrderDetail,
    OrderEditInput, OrderPageView, OrderQueryInput, SessionInfo, StockPageView, SyncSummary,
};
use outpost_core::{Completion, OrderEdit, Outpost};
use tauri::{AppHandle, Manager, State};

use crate::events::ORDERS_CHANGED;
use crate::shell::Shell;

/// What every command answers; the generator reads `T` as the UI's result type.
type Res<T> = Result<T, AppError>;

/// Every command fn below, in order, for `invoke_handler`.
pub fn handler() -> impl Fn(tauri::ipc::Invoke<tauri::Wry>) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        session_info,
        start_local_demo,
        unlock,
        ui_ready,
        list_orders,
        get_order,
        photo,
        order_documents,
        document_content,
        create_order,
        edit_order,
        complete_order,
        start_time_entry,
        stop_time_entry,
        search_inventory,
        part_picker,
        inventory_page,
        sync_summary,
        quit_app,
        sign_in,
        sign_out,
        pending_changes,
        sync_status,
        sync_now,
        failed_syncs,
        resubmit_failed,
        discard_failed,
        conflicts,
        resolve_conflict,
        fleet_failed_syncs,
        fleet_health,
        dismiss_fleet_failed,
        assign_order,
        cancel_order,
        desk,
        preview_decision,
        decide,
        undo_decision,
        fetch_desk_evidence,
        desk_evidence,
        decision_notices,
        mark_notices_read,
        app_info,
        set_update_channel,
        check_for_update,
        install_update,
        change_passphrase,
    ]
}

/// Tell the UI (every window) that an order changed and the engine that there is
/// something to send; a missed event only delays a refresh, so failure is logged.
fn changed(app: &AppHandle, d: Res<OrderDetail>) -> Res<OrderDetail> {
    if let Ok(detail) = &d {
        app.state::<Shell>().local_write(app);
        if let Err(e) = ORDERS_CHANGED.emit(app, &detail.summary.id) {
            tracing::warn!("cannot emit {ORDERS_CHANGED}: {e}");
        }
    }
    d
}

#[tauri::command]
async fn session_info(shell: State<'_, Shell>) -> Res<SessionInfo> {
    Ok(shell.session_info())
}

#[tauri::command]
async fn start_local_demo(
    shell: State<'_, Shell>,
    username: String,
    passphrase: Option<String>,
) -> Res<SessionInfo> {
    let n = shell.demo_orders();
    shell.open_with(|opts| Outpost::start_local_demo(opts, passphrase.as_deref(), &username, n))
}

#[tauri::command]
async fn unlock(shell: State<'_, Shell>, passphrase: String) -> Res<SessionInfo> {
    shell.open_with(|opts| Outpost::open(opts.with_passphrase(&passphrase)))
}

#[tauri::command]
async fn ui_ready(shell: State<'_, Shell>, screen: String) -> Res<()> {
    shell.ui_ready(&screen);
    Ok(())
}

/// One page of the order list, searched and filtered on the device.
#[tauri::command]
async fn list_orders(shell: State<'_, Shell>, query: OrderQueryInput) -> Res<OrderPageView> {
    shell.with(|o| o.order_page(&query))
}

#[tauri::command]
async fn get_order(shell: State<'_, Shell>, id: String) -> Res<OrderDetail> {
    shell.with(|o| Ok(OrderDetail::from(&o.order(&id)?)))
}

/// A stored photo as a `data:` URL, to be shown as it was stored (upright).
#[tauri::command]
async fn photo(shell: State<'_, Shell>, hash: String) -> Res<String> {
    shell.with(|o| o.photo_data_url(&hash))
}

/// An order's technical documents, each available offline or not yet (issue 22).
#[tauri::command]
async fn order_documents(shell: State<'_, Shell>, id: String) -> Res<Vec<DocumentView>> {
    shell.with(|o| o.order_documents(&id))
}

/// A document kept on this device, its bytes as base64, for the viewer (no network).
#[tauri::command]
async fn document_content(shell: State<'_, Shell>, id: String) -> Res<DocumentContent> {
    shell.with(|o| o.document_content(&id))
}

#[tauri::command]
async fn create_order(
    app: AppHandle,
    shell: State<'_, Shell>,
    order: NewOrderInput,
) -> Res<OrderDetail> {
    changed(
        &app,
        shell.with(|o| Ok(OrderDetail::from(&o.create_order(order.into())?))),
    )
}

#[tauri::command]
async fn edit_order(
    app: AppHandle,
    shell: State<'_, Shell>,
    id: String,
    edit: OrderEditInput,
) -> Res<OrderDetail> {
    changed(
        &app,
        shell.with(|o| {
            Ok(OrderDetail::from(
                &o.edit_order(&id, OrderEdit::try_from(edit)?)?,
            ))
        }),
    )
}

#[tauri::command]
async fn complete_order(
    app: AppHandle,
    shell: State<'_, Shell>,
    id: String,
    completion: CompletionInput,
) -> Res<OrderDetail> {
    changed(
        &app,
        shell.with(|o| {
            Ok(OrderDetail::from(
                &o.complete_order(&id, Completion::try_from(completion)?)?,
            ))
        }),
    )
}

#[tauri::command]
async fn start_time_entry(app: AppHandle, shell: State<'_, Shell>, id: String) -> Res<OrderDetail> {
    changed(
        &app,
        shell.with(|o| Ok(OrderDetail::from(&o.start_time_entry(&id)?))),
    )
}

#[tauri::command]
async fn stop_time_entry(
    app: AppHandle,
    shell: State<'_, Shell>,
    id: String,
    entry_id: String,
) -> Res<OrderDetail> {
    changed(
        &app,
        shell.with(|o| Ok(OrderDetail::from(&o.stop_time_entry(&id, &entry_id)?))),
    )
}

#[tauri::command]
async fn search_inventory(
    shell: State<'_, Shell>,
    query: String,
    limit: u32,
) -> Res<Vec<InventoryView>> {
    shell.with(|o| {
        Ok(o.search_inventory(&query, limit as usize)?
            .iter()
            .map(InventoryView::from)
            .collect())
    })
}

/// The part picker of an order: the items in the van its parts come out of first,
/// with the quantity there, then the rest.
#[tauri::command]
async fn part_picker(
    shell: State<'_, Shell>,
    id: String,
    query: String,
    limit: u32,
) -> Res<StockPageView> {
    shell.with(|o| o.part_picker(&id, &query, limit as usize))
}

/// One page of the Inventory screen: the signed-in technician's van or the warehouse.
#[tauri::command]
async fn inventory_page(shell: State<'_, Shell>, input: InventoryPageInput) -> Res<StockPageView> {
    shell.with(|o| o.inventory_page(&input))
}

#[tauri::command]
async fn sync_summary(shell: State<'_, Shell>) -> Res<SyncSummary> {
    shell.with(|o| Ok(SyncSummary::of(&o.outbox()?)))
}

#[tauri::command]
async fn quit_app(app: AppHandle) -> Res<()> {
    tracing::info!("quit asked from the window");
    app.exit(0);
    Ok(())
}

#[tauri::command]
async fn sign_in(shell: State<'_, Shell>, input: SignInInput) -> Res<SessionInfo> {
    shell.sign_in(input).await
}

/// Refused with code `unsynced_work` while changes wait: then list `pending_changes`.
#[tauri::command]
async fn sign_out(shell: State<'_, Shell>) -> Res<SessionInfo> {
    shell.sign_out().await
}

#[tauri::command]
async fn pending_changes(shell: State<'_, Shell>) -> Res<Vec<PendingChangeView>> {
    shell.with(|o| o.pending_changes())
}

#[tauri::command]
async fn sync_status(shell: State<'_, Shell>) -> Res<EngineStatusView> {
    shell.sync_status()
}

/// Refused with `not_signed_in` in the local demo.
#[tauri::command]
async fn sync_now(shell: State<'_, Shell>) -> Res<()> {
    shell.sync_now()
}

#[tauri::command]
async fn failed_syncs(shell: State<'_, Shell>) -> Res<Vec<FailedSyncView>> {
    shell.with(|o| o.failed_sync_views())
}

/// `fixes: []` retries the change as it is.
#[tauri::command]
async fn resubmit_failed(
    app: AppHandle,
    shell: State<'_, Shell>,
    id: String,
    fixes: Vec<FixInput>,
) -> Res<OrderDetail> {
    changed(
        &app,
        shell.with(|o| Ok(OrderDetail::from(&o.resubmit_failed(&id, &fixes)?))),
    )
}

#[tauri::command]
async fn discard_failed(app: AppHandle, shell: State<'_, Shell>, id: String) -> Res<()> {
    shell.with(|o| o.discard_failed(&id))?;
    notify_changed(&app, &id);
    Ok(())
}

#[tauri::command]
async fn conflicts(shell: State<'_, Shell>) -> Res<Vec<ConflictDetailView>> {
    shell.with(|o| o.conflict_views())
}

#[tauri::command]
async fn resolve_conflict(
    app: AppHandle,
    shell: State<'_, Shell>,
    id: String,
    input: ResolveInput,
) -> Res<ConflictDetailView> {
    let v = shell.with(|o| o.resolve_conflict_with(&id, input))?;
    notify_changed(&app, &id);
    Ok(v)
}

#[tauri::command]
async fn fleet_failed_syncs(shell: State<'_, Shell>) -> Res<Vec<FleetFailedSyncView>> {
    shell.with(|o| o.fleet_failed_views())
}

#[tauri::command]
async fn fleet_health(shell: State<'_, Shell>) -> Res<FleetView> {
    shell.fleet().await
}

#[tauri::command]
async fn dismiss_fleet_failed(app: AppHandle, shell: State<'_, Shell>, id: String) -> Res<()> {
    shell.with(|o| o.dismiss_fleet_failed(&id))?;
    notify_changed(&app, &id);
    Ok(())
}

#[tauri::command]
async fn assign_order(
    app: AppHandle,
    shell: State<'_, Shell>,
    id: String,
    assignee: String,
) -> Res<OrderDetail> {
    changed(
        &app,
        shell.with(|o| Ok(OrderDetail::from(&o.assign_order(&id, &assignee)?))),
    )
}

#[tauri::command]
async fn cancel_order(
    app: AppHandle,
    shell: State<'_, Shell>,
    id: String,
    reason: String,
) -> Res<OrderDetail> {
    changed(
        &app,
        shell.with(|o| Ok(OrderDetail::from(&o.cancel_order(&id, &reason)?))),
    )
}

/// The dispatcher's desk: one item per order, oldest first.
#[tauri::command]
async fn desk(shell: State<'_, Shell>, filter: DeskFilter) -> Res<DeskPage> {
    shell.with(|o| o.desk(&filter))
}

/// The orders as the decision would leave them, before confirming.
#[tauri::command]
async fn preview_decision(
    shell: State<'_, Shell>,
    input: DecisionInput,
) -> Res<Vec<DecisionPreview>> {
    shell.with(|o| o.preview_decision(&input))
}

/// Decide one or more items; held for the undo window before the engine sends it.
#[tauri::command]
async fn decide(
    app: AppHandle,
    shell: State<'_, Shell>,
    input: DecisionInput,
) -> Res<DecisionReceipt> {
    let r = shell.with(|o| o.decide(input))?;
    notify_changed(&app, "");
    Ok(r)
}

/// Take back a decision still in its undo window; answers how many were taken back.
#[tauri::command]
async fn undo_decision(
    app: AppHandle,
    shell: State<'_, Shell>,
    mutation_ids: Vec<String>,
) -> Res<u32> {
    let n = shell.with(|o| o.undo_decision(&mutation_ids))?;
    notify_changed(&app, "");
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Download a desk item's signature and photos; answers how many were fetched.
#[tauri::command]
async fn fetch_desk_evidence(shell: State<'_, Shell>, order_id: String) -> Res<u32> {
    shell.fetch_desk_evidence(&order_id).await
}

/// A cached signature or photo as a `data:` URL (none while not downloaded).
#[tauri::command]
async fn desk_evidence(shell: State<'_, Shell>, hash: String) -> Res<Option<String>> {
    shell.with(|o| o.desk_evidence_url(&hash))
}

/// Decisions others made on this user's changes, newest first.
#[tauri::command]
async fn decision_notices(shell: State<'_, Shell>) -> Res<Vec<NoticeView>> {
    shell.with(|o| o.decision_notices())
}

#[tauri::command]
async fn mark_notices_read(shell: State<'_, Shell>, ids: Vec<String>) -> Res<()> {
    shell.with(|o| o.mark_notices_read(&ids))
}

/// A change that is not an order edit (a discard, a resolution): refresh and push.
fn notify_changed(app: &AppHandle, id: &str) {
    app.state::<Shell>().local_write(app);
    if let Err(e) = ORDERS_CHANGED.emit(app, id) {
        tracing::warn!("cannot emit {ORDERS_CHANGED}: {e}");
    }
}

#[tauri::command]
async fn app_info(shell: State<'_, Shell>) -> Res<AppInfoView> {
    Ok(shell.app_info())
}

#[tauri::command]
async fn set_update_channel(shell: State<'_, Shell>, channel: String) -> Res<AppInfoView> {
    let channel = UpdateChannel::parse(&channel)?;
    shell.with(|o| o.set_update_channel(channel))?;
    Ok(shell.app_info())
}

/// `null` when up to date; refused with `update_offline` when the server is out of reach.
#[tauri::command]
async fn check_for_update(app: AppHandle) -> Res<Option<UpdateView>> {
    crate::updates::check(&app).await
}

/// Downloads, verifies the signature, installs and restarts (does not answer then).
#[tauri::command]
async fn install_update(app: AppHandle) -> Res<()> {
    crate::updates::install(&app).await
}

/// Wraps the database key under the `replacement` passphrase after checking `current`;
/// the database is not rewritten. Refused with `wrong_key` when `current` is wrong,
/// `bad_input` when the replacement is too short or the database has no passphrase.
#[tauri::command]
async fn change_passphrase(
    shell: State<'_, Shell>,
    current: String,
    replacement: String,
) -> Res<()> {
    shell.with(|o| o.change_passphrase(Some(&current), &replacement))
}
