"""The lease ledger's (台账) sheets and columns: names, bilingual headers with their notes,
the lists a cell chooses from, and the bounds of a ledger file. Read by
:mod:`cloud.leases.ledger_sheets`, written by :mod:`cloud.leases.ledger_write`."""

from __future__ import annotations

from decimal import Decimal

from cloud.apportion.workbook_cells import Column
from cloud.leases.models import PROPERTY_TYPES, LeaseStatus
from cloud.wording import LANGUAGES

#: Largest ledger file read [bytes].
MAX_LEDGER_BYTES = 4 * 1024 * 1024
#: Most data rows read from one sheet (or the CSV).
MAX_LEDGER_ROWS = 20_000

TENANTS_SHEET = "租户 Tenants"
UNITS_SHEET = "单元 Units"
LEASES_SHEET = "租约 Leases"
STEPS_SHEET = "租金阶梯 Rent steps"
NOTES_SHEET = "说明 Notes"
CHANNELS = ("email", "sms", "wecom", "dingtalk")
KINDS = ("standard", "trial", "internal")
ANCHORS = ("start", "signing", "handover")
CYCLES = ("1", "2", "3", "6", "12")
#: how a monthly rent rises: not (fixed, or a blank cell), by a percentage, with the CPI
ESCALATIONS = ("fixed", "percent", "cpi")
#: bounds of a rise, floor or cap [percent] (the terms' −0.5 to 1)
RISE_PERCENT = (Decimal(-50), Decimal(100))
STATUSES = tuple(s.value for s in LeaseStatus)
#: the states an imported lease is brought to
IMPORT_STATUSES = ("draft", "signed", "active")
YES, NO = "是", "否"


def _c(
    key: str,
    zh: str,
    en: str,
    kind: str,
    width: float,
    note_zh: str,
    note_en: str,
    optional: bool = False,
) -> Column:
    return Column(key, zh, en, kind, width, note_zh, note_en, optional)


TENANT_COLUMNS = (
    _c("id", "租户编号", "Tenant id", "text", 14, "租户编号（唯一）", "the tenant's id (unique)"),
    _c("name", "名称", "Name", "text", 24, "个人姓名或公司名称", "person's or company's name"),
    _c("channel", "通知渠道", "Channel", "channel", 12, "email/sms/wecom/dingtalk", "notices go"),
    _c("address", "通知地址", "Address", "text", 24, "邮箱或号码", "e-mail or number"),
    _c("id_number", "证件号码", "ID number", "text", 22, "留空则保持原值", "blank: kept as is"),
    _c(
        "language",
        "通知语言",
        "Notice language",
        "language",
        12,
        "zh-CN 中文 / en 英文；留空：新租户中文，已有租户保持原值",
        "zh-CN / en; blank: Chinese if new, else kept",
        optional=True,
    ),
)
UNIT_COLUMNS = (
    _c("unit", "单元编号", "Unit id", "text", 14, "站点导入的单元", "a unit of the site import"),
    _c("unit_type", "单元类型", "Unit type", "text", 14, "如 2室1厅、办公A", "e.g. 2BR, office-A"),
    _c(
        "property_type",
        "物业类型",
        "Property type",
        "property",
        14,
        "residential 住宅 / office 办公 / retail 商铺 / parking 车位",
        "residential / office / retail / parking",
    ),
    _c("rentable", "可出租", "Rentable", "yesno", 10, "是 / 否", "是 yes / 否 no"),
    _c("asking", "挂牌租金（元/月）", "Asking rent (CNY/month)", "money", 16, "元", "yuan"),
)
LEASE_COLUMNS = (
    _c("id", "租约编号", "Lease id", "text", 14, "租约编号（唯一）", "the lease's id (unique)"),
    _c("tenant", "租户编号", "Tenant id", "text", 14, "租户表或已登记", "on Tenants or registered"),
    _c("unit", "单元编号", "Unit id", "text", 12, "已导入的单元", "a unit of the site"),
    _c("manager", "管家编号", "Manager id", "text", 12, "已登记的员工", "registered staff"),
    _c("kind", "租约类型", "Kind", "kind", 12, "standard 标准 / trial 试住 / internal 内部", ""),
    _c("start_on", "开始日期", "Start", "date", 12, "YYYY-MM-DD", "YYYY-MM-DD"),
    _c("end_on", "结束日期", "End", "date", 12, "不含当日（次日起不再出租）", "exclusive"),
    _c(
        "rent",
        "月租金（元）",
        "Monthly rent (CNY)",
        "money",
        14,
        "固定租金或涨租前的起始租金；阶梯租金留空",
        "fixed rent, or the rent before any rise; blank when stepped",
    ),
    _c(
        "escalation",
        "涨租方式",
        "Rent rise",
        "escalation",
        12,
        "留空或 fixed 不涨；percent 按涨幅定期上涨；cpi 随 CPI 调整（不可与租金阶梯同用）",
        "blank or fixed: no rise; percent: by the rise every period; cpi: with the CPI "
        "(not with rent steps)",
        optional=True,
    ),
    _c(
        "rise",
        "涨幅（%）",
        "Rise (%)",
        "percent",
        10,
        "percent：每次涨幅；cpi：涨幅上限；5 或 5% 即 5%（-50 至 100）",
        "percent: each rise; cpi: the cap; 5 or 5% is 5 % (-50 to 100)",
        optional=True,
    ),
    _c(
        "floor",
        "CPI 下限（%）",
        "CPI floor (%)",
        "percent",
        10,
        "仅 cpi：涨幅下限，不高于上限；留空为 0",
        "cpi only: the lowest rise, at most the cap; blank: 0",
        optional=True,
    ),
    _c(
        "every_months",
        "调整周期（月）",
        "Rise every (months)",
        "int",
        12,
        "percent/cpi：自开始日期起每几个月调整，1–60；留空为 12",
        "percent/cpi: months between rises from the start, 1–60; blank: 12",
        optional=True,
    ),
    _c(
        "lag_months",
        "CPI 滞后（月）",
        "CPI lag (months)",
        "int",
        10,
        "仅 cpi：取调整月前几个月的 CPI，0–12；留空为 1",
        "cpi only: the CPI of this many months before the rise, 0–12; blank: 1",
        optional=True,
    ),
    _c("free_months", "免租月数", "Free months", "int", 10, "0–24", "0–24"),
    _c("free_days", "免租天数", "Free days", "int", 10, "0–366", "0–366"),
    _c("free_anchor", "免租起算", "Free rent from", "anchor", 12, "start/signing/handover", ""),
    _c("deposit_months", "押金月数", "Deposit months", "number", 10, "与押金金额二选一", ""),
    _c("deposit", "押金金额（元）", "Deposit (CNY)", "money", 14, "与押金月数二选一", ""),
    _c("cycle", "付款周期（月）", "Cycle (months)", "cycle", 12, "1/2/3/6/12", "1/2/3/6/12"),
    _c("due_days", "付款期限（天）", "Due days", "int", 12, "账单出具后几天到期", "0–60"),
    _c("parent", "上级租约", "Parent lease", "text", 14, "子合同的主合同编号", "child contracts"),
    _c("signed_on", "签约日期", "Signed on", "date", 12, "已签约/生效时必填", "signed, active"),
    _c("handover_on", "交房日期", "Handed over", "date", 12, "生效时；空则为开始日期", ""),
    _c("status", "状态", "Status", "status", 12, "draft 草稿 / signed 已签约 / active 生效", ""),
)
STEP_COLUMNS = (
    _c("lease", "租约编号", "Lease id", "text", 14, "阶梯租金的租约", "a lease with stepped rent"),
    _c("from", "起始日期", "From", "date", 12, "第一阶 = 开始日期", "first step = start"),
    _c("rent", "月租金（元）", "Monthly rent (CNY)", "money", 14, "元/月", "CNY per month"),
)
CSV_TENANT_COLUMNS = (
    _c("tenant_name", "租户名称", "Tenant name", "text", 0, "", ""),
    _c("tenant_channel", "租户通知渠道", "Tenant channel", "channel", 0, "", ""),
    _c("tenant_address", "租户通知地址", "Tenant address", "text", 0, "", ""),
    _c("tenant_id_number", "租户证件号码", "Tenant ID number", "text", 0, "", ""),
    _c("tenant_language", "租户通知语言", "Tenant notice language", "language", 0, "", ""),
    _c("steps", "租金阶梯", "Rent steps", "text", 0, "YYYY-MM-DD=元; …", ""),
)
CSV_COLUMNS = LEASE_COLUMNS + CSV_TENANT_COLUMNS
CHOICES = {
    "channel": CHANNELS,
    "language": LANGUAGES,
    "property": PROPERTY_TYPES,
    "yesno": (YES, NO),
    "kind": KINDS,
    "anchor": ANCHORS,
    "cycle": CYCLES,
    "status": STATUSES,
    "escalation": ESCALATIONS,
}
SHEETS = (
    (TENANTS_SHEET, TENANT_COLUMNS),
    (UNITS_SHEET, UNIT_COLUMNS),
    (LEASES_SHEET, LEASE_COLUMNS),
    (STEPS_SHEET, STEP_COLUMNS),
)
#: a column's label in an issue, by sheet and key: "中文/key"
LABELS = {
    sheet: {c.key: f"{c.zh}/{c.key}" for c in columns}
    for sheet, columns in (*SHEETS, (LEASES_SHEET, CSV_COLUMNS))
}
