"""Translations for both screens: a Python catalog, Simplified Chinese by default, English selectable.

Why a catalog module and not Qt ``.ts``/``.qm`` files: PySide6-Essentials ships
no ``lupdate``/``lrelease``, so ``.qm`` files could not be regenerated on the
device or in CI without the full Qt tool chain.  A dictionary keyed by a stable
message id is checked by the tests (every id has both languages, the same
``{placeholders}`` in both), is diffable and needs no build step.

Use ``tr("pump.title", n=3)``.  The language is process-wide (one cashier, one
device); ``set_language`` switches it and the windows re-read their texts in
``retranslate()``.  An unknown id returns the id itself, so a missing text is
visible on screen rather than crashing the UI.

Error codes from the local API (``{"error": {"code": ...}}``) map to
``err.<code>``; ``error_text`` falls back to the agent's own (English) message
when no translation exists, so every refusal still says something clear.
"""

from __future__ import annotations

import string
from typing import Any

__all__ = ["CATALOG", "LANGUAGES", "error_text", "language", "placeholders", "set_language", "tr"]

LANGUAGES = ("zh_CN", "en")

#: message id -> (Simplified Chinese, English)
CATALOG: dict[str, tuple[str, str]] = {
    # --- window chrome
    "app.cashier_title": ("Forecourt 收银台", "Forecourt cashier"),
    "app.customer_title": ("Forecourt 客显", "Forecourt customer display"),
    "link.online": ("在线", "Online"),
    "link.offline": ("离线", "Offline"),
    "link.agent_down": ("后台服务未连接，正在重连…", "Agent not reachable, reconnecting…"),
    "link.outbox": ("待同步 {n}", "Queued {n}"),
    "link.connecting": ("正在连接…", "Connecting…"),
    "btn.estop_all": ("紧急停止全部", "EMERGENCY STOP ALL"),
    "btn.language": ("English", "中文"),
    "btn.prices": ("调价", "Prices"),
    "btn.reports": ("报表", "Reports"),
    "btn.shift": ("班结", "Close shift"),
    "btn.login": ("登录", "Log in"),
    "btn.logout": ("退出", "Log out"),
    "btn.reprint": ("补打小票", "Reprint"),
    "btn.refund": ("退款", "Refund"),
    "cashier.none": ("未登录", "Not logged in"),
    "cashier.name": ("收银员 {name}", "Cashier {name}"),
    # --- pump tiles
    "pump.title": ("{n}号油机", "Pump {n}"),
    "pump.nozzle": ("{n}号枪", "Nozzle {n}"),
    "pump.idle": ("空闲", "Idle"),
    "pump.calling": ("提枪请求", "Calling"),
    "pump.authorized": ("已授权", "Authorized"),
    "pump.fuelling": ("加油中", "Fuelling"),
    "pump.suspended": ("暂停", "Suspended"),
    "pump.finishing": ("加油结束", "Finishing"),
    "pump.stopped": ("已停止", "Stopped"),
    "pump.offline": ("离线", "Offline"),
    "pump.closed": ("未开通", "Closed"),
    "pump.error": ("故障", "Error"),
    "pump.locked": ("已锁定", "Locked"),
    "pump.unpaid": ("挂单 {n}", "Unpaid {n}"),
    "pump.unpaid_status": ("待结算", "To be paid"),
    "pump.act.authorize": ("授权", "Authorize"),
    "pump.act.stop": ("停止", "Stop"),
    "pump.act.add": ("结算挂单", "Add to order"),
    "pump.prices_bad": ("价格未确认", "Price not verified"),
    # --- order panel
    "order.title": ("当前订单", "Current order"),
    "order.empty": ("点击油机的挂单或输入商品条码", "Tap a pump's unpaid sale or scan an item"),
    "order.search": ("条码 / PLU / 名称", "Barcode / PLU / name"),
    "order.add_item": ("添加", "Add"),
    "order.amount_line": ("按金额", "By amount"),
    "order.member": ("会员", "Member"),
    "order.member_hint": ("手机号 / 卡号 / 车牌", "Phone / card / plate"),
    "order.member_none": ("散客", "Walk-in"),
    "order.remove": ("删除行", "Remove line"),
    "order.clear": ("清空", "Clear"),
    "order.pay": ("收款", "Pay"),
    "order.prepay": ("预付加油", "Prepay"),
    "order.subtotal": ("合计", "Subtotal"),
    "order.discount": ("优惠", "Discount"),
    "order.payable": ("应付", "To pay"),
    "order.fuel_detail": ("{litres} 升 × ¥{price}/升", "{litres} L × ¥{price}/L"),
    "order.item_detail": ("{qty} × ¥{price}", "{qty} × ¥{price}"),
    "order.amount_name": ("买单金额", "Amount"),
    "order.pump_line": ("{n}号油机 {grade}", "Pump {n} {grade}"),
    "order.created": ("订单 {receipt} 已创建", "Order {receipt} created"),
    "order.cancelled": ("订单已取消", "Order cancelled"),
    # --- payment
    "pay.title": ("收款", "Payment"),
    "pay.cash": ("现金", "Cash"),
    "pay.qr_scan": ("扫顾客付款码", "Scan customer code"),
    "pay.qr_show": ("展示收款码", "Show merchant QR"),
    "pay.stored_value": ("储值卡", "Stored value"),
    "pay.coupon": ("优惠券", "Coupon"),
    "pay.coupon_hint": ("先在输入框输入券号，再按优惠券", "Type the coupon number first, then press Coupon"),
    "pay.given": ("实收", "Tendered"),
    "pay.change": ("找零", "Change"),
    "pay.remaining": ("待付", "Remaining"),
    "pay.paid_legs": ("已付", "Paid"),
    "pay.confirm": ("确认收款", "Confirm payment"),
    "pay.back": ("返回", "Back"),
    "pay.exact": ("足额", "Exact"),
    "pay.add_leg": ("加入组合支付", "Add tender"),
    "pay.scan_hint": ("请扫描顾客付款码", "Scan the customer's payment code"),
    "pay.short": ("现金不足：还差 ¥{amount}", "Not enough cash: ¥{amount} short"),
    "pay.success": ("支付成功", "Payment successful"),
    "pay.failed": ("支付失败：{reason}", "Payment failed: {reason}"),
    "pay.pending": ("等待支付结果…", "Waiting for the payment result…"),
    "pay.not_ready": ("收款接口尚未启用（结算服务未上线）", "Checkout is not available on this agent yet"),
    # --- refunds
    "refund.title": ("退款（需主管授权）", "Refund (supervisor approval)"),
    "refund.order": ("订单号", "Order id"),
    "refund.amount": ("退款金额 (元，空=全额)", "Amount (yuan, empty = all)"),
    "refund.reason": ("原因", "Reason"),
    "refund.supervisor": ("主管工号", "Supervisor id"),
    "refund.pin": ("主管密码", "Supervisor PIN"),
    "refund.done": ("已退款 ¥{amount}，原路退回", "Refunded ¥{amount} to the original tender"),
    # --- prepay
    "prepay.title": ("预付加油", "Prepay"),
    "prepay.pump": ("油机", "Pump"),
    "prepay.amount": ("预付金额 (元)", "Prepaid amount (yuan)"),
    "prepay.done": ("{pump}号油机预付 ¥{amount} 已收款，油机已授权", "Pump {pump}: ¥{amount} prepaid, pump authorized"),
    "prepay.underrun": ("{pump}号油机少加，已退 ¥{amount}", "Pump {pump}: underrun, ¥{amount} refunded"),
    # --- price dialog
    "prices.title": ("调价", "Change prices"),
    "prices.grade": ("油品", "Grade"),
    "prices.current": ("现价 (元/升)", "Current (yuan/L)"),
    "prices.new": ("新价 (元/升)", "New (yuan/L)"),
    "prices.confirm": ("确认调价？空闲油机立即生效，忙碌油机在空闲后生效。",
                       "Apply the new prices? Idle pumps change now, busy ones when idle."),
    "prices.done": ("价格已更新为第 {version} 版", "Prices updated to version {version}"),
    "prices.bad": ("请输入正确的价格，例如 7.89", "Enter a valid price such as 7.89"),
    "prices.nochange": ("价格没有变化", "No price changed"),
    # --- dialogs
    "dlg.ok": ("确定", "OK"),
    "dlg.cancel": ("取消", "Cancel"),
    "dlg.close": ("关闭", "Close"),
    # --- invoice (开发票: online only, issued by the trade center)
    "btn.invoice": ("开发票", "Invoice"),
    "invoice.title": ("开发票 · 小票 {receipt}", "Invoice · receipt {receipt}"),
    "invoice.buyer": ("发票抬头", "Buyer (title)"),
    "invoice.buyer_hint": ("单位全称，或“个人”", "Company name, or 个人 for a person"),
    "invoice.tax_id": ("税号（选填）", "Tax id (optional)"),
    "invoice.tax_id_hint": ("统一社会信用代码，15–20 位", "Taxpayer id, 15–20 characters"),
    "invoice.email": ("接收邮箱（选填）", "E-mail (optional)"),
    "invoice.submit": ("申请开票", "Request invoice"),
    "invoice.busy": ("正在向总部申请开票…", "Asking the trade center for the invoice…"),
    "invoice.issued": ("发票已开具：发票号 {no}，金额 ¥{amount}", "Invoice issued: no. {no}, ¥{amount}"),
    "invoice.issued_detail": ("抬头：{title}", "Buyer: {title}"),
    "invoice.pending": ("上次申请总部未答复，请再次提交（不会重复开票）",
                        "The center did not answer last time: send again (it is never issued twice)"),
    "invoice.need_title": ("请填写发票抬头", "Enter the buyer's name for the invoice"),
    "invoice.bad_tax_id": ("税号为 15–20 位字母或数字", "The tax id has 15–20 letters or digits"),
    "invoice.bad_email": ("邮箱地址格式不对", "Not a valid e-mail address"),
    "invoice.offline": ("当前离线，不能开发票：开票需要连接总部，请网络恢复后再开",
                        "Offline: an invoice needs the trade center; try again when back online"),
    # --- member registration (会员注册: online only)
    "member.register": ("注册会员", "New member"),
    "member.reg_title": ("会员注册", "Register a member"),
    "member.phone": ("手机号", "Phone"),
    "member.name": ("姓名", "Name"),
    "member.plate": ("车牌（选填）", "Plate (optional)"),
    "member.reg_submit": ("注册", "Register"),
    "member.busy": ("正在向总部注册…", "Registering with the trade center…"),
    "member.registered": ("会员 {name}（{phone}）已注册", "Member {name} ({phone}) registered"),
    "member.bad_phone": ("手机号为 1 开头的 11 位数字", "The phone has 11 digits starting with 1"),
    "member.need_name": ("请填写姓名（1–30 字）", "Enter the name (1–30 characters)"),
    "member.offline": ("当前离线，不能注册会员：注册需要连接总部，请网络恢复后再试",
                       "Offline: registering a member needs the trade center; try again when back online"),
    # --- customer display
    "cust.welcome": ("欢迎光临", "Welcome"),
    "cust.ad1": ("会员加油每升立减 ¥0.30", "Members save ¥0.30 per litre"),
    "cust.ad2": ("便利店饮料第二件半价", "Shop drinks: second one half price"),
    "cust.ad3": ("扫码加油，无需排队", "Pay at the pump with your phone"),
    "cust.your_order": ("您的订单", "Your order"),
    "cust.scan_to_pay": ("请扫码支付 ¥{amount}", "Scan to pay ¥{amount}"),
    "cust.paid": ("支付成功", "Paid"),
    "cust.thanks": ("谢谢惠顾，一路平安！", "Thank you, drive safely!"),
    "cust.failed": ("支付未完成，请联系收银员", "Payment not completed, please ask the cashier"),
    "cust.change": ("找零 ¥{amount}", "Change ¥{amount}"),
    "cust.prepaid": ("{pump}号油机 预付成功", "Pump {pump} prepaid"),
    "cust.prepay_hint": ("请提枪加油，少加部分自动原路退回", "Lift the nozzle; any unused amount is refunded"),
    "cust.underrun": ("{pump}号油机 少加退款", "Pump {pump}: unused amount refunded"),
    "cust.underrun_hint": ("已原路退回，谢谢惠顾！", "Refunded to your payment. Thank you!"),
    # --- login / session
    "login.title": ("收银员登录", "Cashier login"),
    "login.id": ("工号", "Cashier id"),
    "login.pin": ("密码", "PIN"),
    "login.hint": ("输入工号，用键盘输入密码后按登录", "Enter your id, type the PIN on the keypad, then Log in"),
    "login.busy": ("正在登录…", "Logging in…"),
    "login.need_id": ("请输入工号", "Enter your cashier id"),
    "login.need_pin": ("密码为 4–12 位数字", "The PIN has 4–12 digits"),
    "login.welcome": ("{name}（{role}）已登录", "{name} ({role}) logged in"),
    "login.logged_out": ("已退出登录", "Logged out"),
    "login.expired": ("登录已失效，请重新登录", "Your session ended: log in again"),
    "session.label": ("{name}（工号 {id}）· {role}", "{name} · {id} · {role}"),
    "role.cashier": ("收银员", "Cashier"),
    "role.supervisor": ("主管", "Supervisor"),
    "role.manager": ("站长", "Manager"),
    "role.terminal": ("终端", "Terminal"),
    "role.station": ("站点", "Station"),
    "btn.orders": ("重印 / 发票", "Reprint / invoice"),
    "btn.back": ("返回收银", "Back to till"),
    # --- receipts / printer
    "reprint.title": ("最近订单 · 重印小票 / 开发票", "Recent orders · reprint / invoice"),
    "reprint.load": ("刷新", "Refresh"),
    "reprint.row": ("{receipt}  {time}  {amount}  收银员 {cashier}", "{receipt}  {time}  {amount}  {cashier}"),
    "reprint.none": ("没有已支付的订单", "No paid orders"),
    "reprint.pick": ("请先选择一个订单", "Pick an order first"),
    "reprint.done": ("小票 {receipt} 已加入打印队列（重印）", "Receipt {receipt} queued (DUPLICATE)"),
    "printer.error": ("⚠ 打印机故障：{message}", "⚠ Printer problem: {message}"),
    "printer.ok": ("打印机已恢复", "Printer OK again"),
    # --- shift close
    "shift.title": ("班结", "Shift close"),
    "shift.none": ("当前没有开班", "No shift is open"),
    "shift.open": ("开班", "Open shift"),
    "shift.float": ("备用金 (元)", "Float (yuan)"),
    "shift.opened": ("开班 {id} · {cashier} · {time} · 备用金 {float}",
                     "Shift {id} · {cashier} · since {time} · float {float}"),
    "shift.precheck": ("班结检查", "Pre-check"),
    "shift.ready": ("✔ 可以班结", "✔ Ready to close"),
    "shift.blocked": ("有 {n} 项需要先处理：", "{n} item(s) to settle first:"),
    "shift.todo": ("处理：{action}", "To do: {action}"),
    "shift.declared": ("实点现金 (元)", "Counted cash (yuan)"),
    "shift.close": ("班结", "Close shift"),
    "shift.handover_to": ("交接给 (工号)", "Hand over to (id)"),
    "shift.handover": ("交接班", "Hand over"),
    "shift.print": ("打印报表", "Print report"),
    "shift.pdf": ("导出 PDF", "Export PDF"),
    "shift.closed": ("班结完成，报表如下", "Shift closed: the report follows"),
    "shift.handed_over": ("已交接给 {to}，新班次已开", "Handed over to {to}; the next shift is open"),
    "shift.printed": ("报表已发送到打印机", "Report sent to the printer"),
    "shift.saved": ("已保存 {path}", "Saved {path}"),
    "shift.pdf_title": ("保存班结报表 PDF", "Save the shift report as PDF"),
    "shift.report": ("班结报表", "Shift report"),
    "shift.report_sub": ("{station} · 收银员 {cashier} · {start} — {end}", "{station} · {cashier} · {start} — {end}"),
    "shift.bad_cash": ("请输入实点现金金额", "Enter the counted cash"),
    "shift.need_to": ("请输入接班人工号", "Enter the incoming cashier's id"),
    "shift.meters": ("泵码读数（班结时记录）", "Meter readings (recorded at the close)"),
    "shift.read_meters": ("读取泵码", "Read meters"),
    "shift.meters_hint": ("油机读不到时，请抄录油机上的累计数（升）填入", "Where a pump cannot be read, type the "
                          "dispenser's totalizer (litres)"),
    "shift.meter_reading": ("累计读数 (升)", "Totalizer (L)"),
    "shift.meter_source": ("来源", "Source"),
    "meter.src.pump": ("油机读取", "from the pump"),
    "meter.src.last_fill": ("上次加油记录", "last fill's reading"),
    "meter.src.manual": ("手工录入", "typed in"),
    "meter.src.none": ("请手工录入", "type it in"),
    "shift.bad_meter": ("泵码读数格式不对：{gun}号枪", "Meter reading not valid: nozzle {gun}"),
    "shift.force": ("强制班结", "Force close"),
    "shift.force_title": ("强制班结（站长）", "Force close (manager)"),
    "shift.force_text": ("以下事项尚未处理，强制班结后仍会记录在报表和审计日志中：",
                         "These items are still open; they stay on the report and in the audit log:"),
    "shift.force_reason": ("原因（必填）", "Reason (required)"),
    "shift.force_need_reason": ("请填写强制班结的原因", "Give the reason for the forced close"),
    "shift.force_confirm": ("确认强制班结", "Force close now"),
    "shift.forced_done": ("已强制班结，报表如下", "Shift force-closed: the report follows"),
    "blocker.unpaid_fill": ("{pump}号油机 {nozzle}号枪有未付挂单 {amount}",
                            "Pump {pump} nozzle {nozzle}: unpaid sale {amount}"),
    "blocker.unpaid_fill.do": ("把挂单加入订单并收款（或取消其订单）",
                               "Add it to an order and take payment (or cancel the order)"),
    "blocker.fill_in_progress": ("{pump}号油机正在加油", "Pump {pump} is fuelling"),
    "blocker.fill_in_progress.do": ("等待加油结束，或停止油机", "Wait for the fill to end, or stop the pump"),
    "blocker.payment_pending": ("订单 {order} 支付结果未知", "Order {order}: payment result not known yet"),
    "blocker.payment_pending.do": ("等待顾客支付结果，或联系总部关闭交易",
                                   "Wait for the result, or close it with the center"),
    "blocker.open_prepay": ("{pump}号油机的预付还没有加油", "The prepay on pump {pump} is not fuelled yet"),
    "blocker.open_prepay.do": ("让顾客加完油，或退还预付款", "Let the customer fuel, or refund the prepay"),
    "blocker.cashier_shift_open": ("收银员班次 {shift} 未结", "Cashier shift {shift} is still open"),
    "blocker.cashier_shift_open.do": ("先结束或交接该收银员的班次", "Close or hand over that shift first"),
    # --- reports
    "rep.title": ("报表", "Reports"),
    "rep.day": ("日报", "Day"),
    "rep.month": ("月报", "Month"),
    "rep.load": ("查询", "Show"),
    "rep.period": ("统计期 {label}（{kind}）", "{label} ({kind})"),
    "rep.summary": ("概要", "Summary"),
    "rep.item": ("项目", "Item"),
    "rep.value": ("数值", "Value"),
    "rep.orders": ("订单数", "Orders"),
    "rep.gross": ("销售额", "Gross sales"),
    "rep.discount": ("优惠", "Discounts"),
    "rep.fuel_volume": ("油品升数", "Fuel volume"),
    "rep.refunds": ("退款", "Refunds"),
    "rep.net": ("净收入", "Net"),
    "rep.by_grade": ("按油品", "By grade"),
    "rep.grade": ("油品", "Grade"),
    "rep.fills": ("笔数", "Fills"),
    "rep.volume": ("升数", "Volume"),
    "rep.amount": ("金额", "Amount"),
    "rep.by_tender": ("按支付方式", "By tender"),
    "rep.tender": ("支付方式", "Tender"),
    "rep.legs": ("笔数", "Count"),
    "rep.paid": ("收款", "Paid"),
    "rep.refunded": ("退款", "Refunded"),
    "rep.by_cashier": ("按收银员", "By cashier"),
    "rep.cashier": ("收银员", "Cashier"),
    "rep.cash": ("现金对账", "Cash"),
    "rep.float": ("备用金", "Float"),
    "rep.expected": ("应有现金", "Expected cash"),
    "rep.declared": ("实点现金", "Counted cash"),
    "rep.over_short": ("长短款", "Over / short"),
    "rep.meter": ("泵码对账（按油枪）", "Meter reconciliation (per nozzle)"),
    "rep.nozzle": ("油枪", "Nozzle"),
    "rep.pump": ("油机", "Pump"),
    "rep.meter_ml": ("泵码升数", "Meter"),
    "rep.sold_ml": ("销售升数", "Sold"),
    "rep.test_ml": ("自检", "Tests"),
    "rep.variance": ("差异", "Variance"),
    "rep.invoices": ("已开发票（{n} 张）", "Invoices issued ({n})"),
    "rep.forced": ("强制班结", "Forced close"),
    "rep.forced_by": ("操作人", "By"),
    "rep.forced_reason": ("原因", "Reason"),
    "rep.forced_open": ("未处理事项", "Items left open"),
    "rep.manual_mark": ("{ml}（手工）", "{ml} (typed)"),
    "rep.bad_day": ("日期格式：2026-11-23（月报：2026-11）", "Date: 2026-11-23 (month: 2026-11)"),
    "chart.by_hour": ("分时销售额 (元)", "Sales by hour (yuan)"),
    "chart.by_grade": ("各油品销售额 (元)", "Sales by grade (yuan)"),
    "chart.variance": ("泵码差异 (升)", "Meter variance (L)"),
    "chart.empty": ("暂无数据", "No data"),
    # --- item search, coupons, points, prepay by volume
    "search.title": ("找到 {n} 个商品，请选择", "{n} items found: pick one"),
    "search.none": ("没有名称包含“{q}”的商品", "No item named like “{q}”"),
    "coupon.none": ("不用优惠券", "No coupon"),
    "coupon.cash": ("{id} 减 ¥{value}（满 ¥{min}）", "{id} ¥{value} off (min ¥{min})"),
    "coupon.rate": ("{id} {pct}折（满 ¥{min}）", "{id} pay {pct}% (min ¥{min})"),
    "coupon.pick": ("会员优惠券", "Member coupons"),
    "points.label": ("积分抵扣", "Redeem points"),
    "points.available": ("可用积分 {n}", "{n} points available"),
    "points.apply": ("使用积分", "Use points"),
    "points.bad": ("积分数量不正确", "Invalid number of points"),
    "prepay.by_amount": ("按金额", "By amount"),
    "prepay.by_volume": ("按升数", "By volume"),
    "prepay.volume": ("预付升数 (升)", "Prepaid volume (L)"),
    "prepay.nozzle": ("油枪", "Nozzle"),
    "prepay.volume_price": ("{litres} 升 × ¥{price}/升 = ¥{amount}", "{litres} L × ¥{price}/L = ¥{amount}"),
    "pay.plate_pay": ("车牌付", "Plate pay"),
    "err.role_needed": ("权限不足：此操作需要{needed}权限（当前为{have}）",
                        "Not allowed: this needs the {needed} role (you are {have})"),
    "err.shift_close_blocked": ("还有未处理事项，不能班结", "The shift cannot close yet: settle the items listed"),
    "err.force_reason_needed": ("强制班结需要填写原因", "A forced close needs a reason"),
    "err.shift_already_open": ("已经有一个开着的班次", "A shift is already open"),
    "err.no_printer": ("没有配置小票打印机", "No receipt printer is configured"),
    "err.no_printer_queue": ("打印服务未运行", "The print queue is not running"),
    "err.save_failed": ("保存失败：{message}", "Could not save: {message}"),
    "err.bad_month": ("月份格式：2026-11", "Month format: 2026-11"),
    "err.bad_day": ("日期格式：2026-11-23", "Date format: 2026-11-23"),
    "err.no_member_coupon": ("该会员没有可用的优惠券", "The member has no coupon to use"),
    # --- errors (codes of the local API)
    "err.generic": ("操作失败：{message}", "Failed: {message}"),
    "err.agent_down": ("无法连接后台服务，请稍后重试", "The agent is not reachable; try again shortly"),
    "err.pump_locked": ("{pump}号油机已锁定，不能授权", "Pump {pump} is locked and cannot be authorized"),
    "err.pump_offline": ("{pump}号油机离线", "Pump {pump} is offline"),
    "refund.invoice": ("已退款；该单已开发票 {invoice}，中心将按退款后金额冲红重开",
                       "Refunded; invoice {invoice} was issued for this order: the center reissues it "
                       "for the new amount"),
    "alert.authorization_expired": ("{pump}号油机授权后{after}秒无人加油，授权已取消",
                                    "Pump {pump}: nobody fuelled within {after} s; the authorization was cancelled"),
    "alert.authorization_not_taken": ("{pump}号油机未执行授权，已按泵码结算（未加油）",
                                      "Pump {pump} did not take the authorization; settled from its meters (no fuel)"),
    "alert.fill_not_reported": ("{pump}号油机停止后未报告本次加油，已按泵码结算",
                                "Pump {pump} went idle without reporting the sale; settled from its meters"),
    "alert.no_meter_baseline": ("{pump}号油机未报告加油且无可比对的泵码，请核对油机表数",
                                "Pump {pump} reported no sale and there is no earlier meter reading: check the meter"),
    "alert.authorize_failed": ("{pump}号油机授权未成功：{reason}", "Pump {pump}: the authorization failed: {reason}"),
    "alert.totalizer": ("{pump}号油机泵码回退（更换主板？），请核对油机表数",
                        "Pump {pump}: the totalizer went back (board replaced?): check the meter"),
    "err.pump_busy": ("{pump}号油机正忙，只有空闲或提枪时可以授权",
                      "Pump {pump} is busy; authorize when idle or calling"),
    "err.fill_in_progress": ("{pump}号油机已有进行中的加油", "Pump {pump} already has a fill in progress"),
    "err.pay_previous_sale": ("{pump}号油机有未付挂单，请先结算", "Pump {pump} has an unpaid sale: settle it first"),
    "err.pump_unavailable": ("{pump}号油机通讯故障", "Pump {pump}: communication fault"),
    "err.unknown_pump": ("没有这台油机", "No such pump"),
    "err.unknown_nozzle": ("油枪号不正确", "Wrong nozzle number"),
    "err.no_pumps": ("油机控制未运行", "The pump controller is not running"),
    "err.offline": ("当前离线，此操作需要连接总部", "Offline: this operation needs the trade center"),
    "err.confirm_required": ("调价需要二次确认", "A price change needs a second confirmation"),
    "err.unauthorized": ("接口令牌错误，请检查配置", "Wrong API token; check the configuration"),
    "err.invalid_request": ("输入不正确：{message}", "Invalid input: {message}"),
    "err.not_found": ("未找到：{message}", "Not found: {message}"),
    "err.bad_pin": ("工号或密码错误", "Wrong id or PIN"),
    "err.supervisor_required": ("需要主管工号和密码", "A supervisor's id and PIN are needed"),
    "err.no_unpaid": ("{pump}号油机没有挂单", "Pump {pump} has no unpaid sale"),
    "err.empty_order": ("订单为空", "The order is empty"),
    "err.amount_needs_new_order": ("按金额收款只能单独开单", "An amount line needs an order of its own"),
    "err.no_member": ("储值支付需要先识别会员", "Stored value needs a member on the order"),
    "err.fill_not_available": ("这笔挂单已被其他订单占用或已结算", "This sale is taken by another order or paid"),
    "err.unknown_item": ("没有这个商品（条码/PLU：{sku}）", "No item with barcode/PLU {sku}"),
    "err.no_member_key": ("请输入手机号、卡号或车牌", "Enter a phone, card number or plate"),
    "err.no_checkout": ("结算服务未运行", "Checkout is not running"),
    "err.tender_mismatch": ("支付金额与应付不符", "Tenders do not add up to the amount due"),
    "err.bad_auth_code": ("付款码无效，请重新扫码", "Invalid payment code: scan again"),
    "err.quote_expired": ("报价已过期，请重新收款", "The quote expired: start the payment again"),
    "err.quote_not_frozen": ("订单已变更，请重新收款", "The order changed: start the payment again"),
    "err.payment_in_progress": ("支付处理中，请等待结果", "A payment is in progress: wait for its result"),
    "err.order_not_open": ("订单已结束，不能修改", "The order is closed and cannot change"),
    "err.coupon_refused": ("优惠券不可用", "The coupon cannot be used"),
    "err.role": ("权限不足", "Not allowed for your role"),
    "err.bad_tender": ("支付方式或金额不正确：{message}", "Invalid tender: {message}"),
    "err.last_line": ("最后一行不能删除，请取消订单", "The last line cannot be removed: cancel the order"),
    "err.bad_amount": ("金额不正确", "Invalid amount"),
    "err.order_not_paid": ("订单未支付，不能办理", "The order is not paid"),
    "err.invoice_exists": ("该订单已开过发票（发票号 {invoice_no}），每单只能开一张",
                           "This order already has its invoice (no. {invoice_no}): one per order"),
    "err.nothing_to_invoice": ("该订单已全额退款，没有可开票的金额", "Refunded in full: nothing to invoice"),
    "err.invoice_refused": ("总部拒绝开票：{message}", "The trade center refused the invoice: {message}"),
    "err.no_invoice": ("该订单还没有开发票", "This order has no invoice yet"),
    "err.center_no_answer": ("总部未答复，请稍后再提交一次（不会重复办理）",
                             "The trade center did not answer: send again (it is never done twice)"),
    "err.member_exists": ("该手机号已是会员，请直接查询会员", "This phone already belongs to a member: look it up"),
    "err.member_refused": ("总部拒绝注册：{message}", "The trade center refused the registration: {message}"),
    "err.bad_phone": ("手机号为 1 开头的 11 位数字", "The phone has 11 digits starting with 1"),
    "err.bad_name": ("姓名为 1–30 个字", "The name has 1–30 characters"),
    "err.bad_title": ("请填写发票抬头（最多 100 字）", "The buyer's name has 1–100 characters"),
    "err.bad_tax_id": ("税号为 15–20 位字母或数字", "The tax id has 15–20 letters or digits"),
    "err.bad_email": ("邮箱地址格式不对", "Not a valid e-mail address"),
    "err.bad_plate": ("车牌为 5–10 位，例如 粤B12345", "The plate has 5–10 characters, e.g. 粤B12345"),
}

_lang = "zh_CN"


def set_language(lang: str) -> None:
    """Switch the process-wide language (``zh_CN`` or ``en``)."""
    global _lang
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(LANGUAGES)}")
    _lang = lang


def language() -> str:
    return _lang


def tr(key: str, **kw: Any) -> str:
    """The text for ``key`` in the current language, formatted with ``kw``."""
    pair = CATALOG.get(key)
    if pair is None:
        return key
    text = pair[0] if _lang == "zh_CN" else pair[1]
    if not kw:
        return text
    try:
        return text.format(**kw)
    except (KeyError, IndexError, ValueError):
        return text


def placeholders(text: str) -> set[str]:
    """Names of the ``{placeholders}`` in a catalog text (used by the catalog test)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def error_text(code: str | None, message: str = "", **details: Any) -> str:
    """A clear, translated sentence for an API refusal; falls back to the agent's message."""
    if code == "role" and details.get("needed"):
        return tr("err.role_needed", needed=tr(f"role.{details['needed']}"), have=tr(f"role.{details.get('have')}"))
    if code and f"err.{code}" in CATALOG:
        text = tr(f"err.{code}", message=message, **details)
        if "{" not in text:
            return text
    return tr("err.generic", message=message or code or "?")
