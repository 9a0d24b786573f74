//! The IPC commands: each takes the shell's state, calls one `outpost-core` method and
//! maps its error (`../../shared/STYLE.md` §3). Argument and result types are declared
//! in `outpost_core::views` and exported to `ui/src/generated/`.
//!
//! Commands are `async` so that Tauri runs them off the main (GTK) thread: a list of
//! 10,000 orders must not freeze the window while it is read. The list in
//! `build.rs` (`COMMANDS`) generates their permissions; keep the two in step.

use outpost_core::views::{
    AppError, CompletionInput, InventoryView, NewOrderInput, OrderDetail, OrderEditInput,
    OrderSummary, SessionInfo, SyncSummary,
};
use outpost_core::{Completion, OrderEdit, Outpost};
use tauri::{AppHandle, Emitter, State};

use crate::shell::Shell;

type Res<T> = Result<T, AppError>;

/// The event the UI reloads its lists on; the payload is the changed order's id.
const ORDERS_CHANGED: &str = "orders-changed";

pub fn handler() -> impl Fn(tauri::ipc::Invoke<tauri::Wry>) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        session_info,
        start_local_demo,
        unlock,
        ui_ready,
        list_orders,
        get_order,
        create_order,
        edit_order,
        complete_order,
        start_time_entry,
        stop_time_entry,
        search_inventory,
        sync_summary,
        quit_app,
    ]
}

/// Tell the UI (every window) that an order changed; a missed event only delays a
/// refresh, so failure is logged, not returned.
fn changed(app: &AppHandle, d: Res<OrderDetail>) -> Res<OrderDetail> {
    if let Ok(detail) = &d {
        if let Err(e) = app.emit(ORDERS_CHANGED, &detail.summary.id) {
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

#[tauri::command]
async fn list_orders(shell: State<'_, Shell>) -> Res<Vec<OrderSummary>> {
    shell.with(|o| Ok(o.orders()?.iter().map(OrderSummary::from).collect()))
}

#[tauri::command]
async fn get_order(shell: State<'_, Shell>, id: String) -> Res<OrderDetail> {
    shell.with(|o| Ok(OrderDetail::from(&o.order(&id)?)))
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
