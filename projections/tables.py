"""A view as sheets: the one place that says which columns and rows a read's answer shows to people.

Each read model's answer (`ledger.projections.results`, and the ledger's `HistoryPage`) becomes a
`ViewSheets`: a main `Sheet` of typed columns with English and Chinese headers (`HEADERS_ZH`, in the
terms of docs/glossary.md) and titles in both languages, the further sheets shown with it (the open recalls
beside the recall candidates), and the stem a file of it is named by (`rankings-unit-U001-2025Q3`). The
CLI prints these sheets as tables, CSV or XLSX (`ledger rankings -f xlsx -o FILE`); the API serves the same
sheets as downloads (`GET /v1/exports/rankings?format=xlsx`), so a file downloaded from the console and one
written by the CLI hold the same cells.

How a sheet is written — kinds, neutralised text, titles, typed XLSX cells — is `ledger.sheets`; this
module only chooses what goes in, and imports neither the CLI nor the web.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from ledger.projections.results import (
    BoardsView,
    EligibilityView,
    EscalationsView,
    RankingsView,
    RecallsView,
    ShortlistView,
    UnitEscalationsView,
    UnitRankingsView,
    UnitView,
)
from ledger.results import HistoryPage
from ledger.sheets import Column, Kind, Lang, Sheet, csv_bytes, xlsx_bytes

__all__ = [
    "BOARD_COLUMNS",
    "CHECK_COLUMNS",
    "ESCALATION_COLUMNS",
    "HEADERS_ZH",
    "HISTORY_COLUMNS",
    "OPEN_RECALL_COLUMNS",
    "RANKING_COLUMNS",
    "RECALL_COLUMNS",
    "SHORTLIST_COLUMNS",
    "UNIT_ESCALATION_COLUMNS",
    "UNIT_PERIOD_COLUMNS",
    "UNIT_RANKING_COLUMNS",
    "ViewSheets",
    "boards_sheets",
    "column",
    "eligibility_sheets",
    "escalations_sheets",
    "history_sheets",
    "movement_text",
    "rankings_sheets",
    "recalls_sheets",
    "shortlist_sheets",
    "unit_escalations_sheets",
    "unit_rankings_sheets",
    "unit_sheets",
]

# The Chinese headers of the reads' columns, in the terms of docs/glossary.md. A column whose name means
# something else in one read (a unit's `name`) gives its own.
HEADERS_ZH: Final[dict[str, str]] = {
    "action": "措施",
    "adjustment": "计分调整",
    "appraisal": "年度考核",
    "board": "红黑榜",
    "bottom": "末位",
    "cadre_id": "干部编号",
    "check": "检查项",
    "consequence": "拟处理",
    "counted": "计入分值",
    "deductions": "问责扣分",
    "detail": "说明",
    "dissatisfied": "不满意数",
    "effective_from": "施行日期",
    "effective_on": "生效日期",
    "evaluation": "测评",
    "event": "事件",
    "event_id": "事件编号",
    "grade": "职级",
    "label": "措施名称",
    "leader": "主职",
    "link": "撤销关联",
    "merit": "实绩加分",
    "movement": "名次变化",
    "name": "姓名",
    "of": "参评单位数",
    "ordered_on": "回炉决定日期",
    "passed": "是否通过",
    "period": "考核周期",
    "points": "分值",
    "pool_size": "参评人数",
    "position": "日志序号",
    "posted": "已记录",
    "posted_by": "记录人",
    "previous_rank": "上期名次",
    "published_on": "发布日期",
    "rank": "名次",
    "ratings": "评分数",
    "reason": "原因",
    "recall": "回炉",
    "replayed": "重复提交",
    "running_total": "累计积分",
    "score": "得分",
    "source": "来源系统/幂等键",
    "step": "梯次",
    "streak": "连续期数",
    "tenure": "基础分",
    "total": "积分",
    "type": "事件类型",
    "unit_id": "单位",
    "version": "版本",
}
# The scope of every unit, each ranked on its own: `*` has no place in a file name.
EACH_UNIT: Final = "unit:*"


def column(
    name: str, kind: Kind = Kind.text, *, zh: str | None = None, essential: bool = True, wrap: bool = False
) -> Column:
    """A column of a read, its Chinese header from `HEADERS_ZH` unless given."""
    return Column(name, kind, HEADERS_ZH.get(name, "") if zh is None else zh, essential, wrap)


@dataclass(frozen=True)
class ViewSheets:
    """A view as sheets: `sheet` holds its rows; `before` are further sheets shown whole (tables above the
    main one, worksheets after it; CSV has room for the main one only); `stem` names a file of it."""

    sheet: Sheet
    before: tuple[Sheet, ...] = ()
    stem: str = "sheet"

    def only(self, indices: Sequence[int]) -> ViewSheets:
        """The view with the main sheet's columns at `indices`, in that order (`before` stays whole)."""
        return replace(self, sheet=self.sheet.only(indices))

    def csv(self, lang: Lang, *, excel: bool) -> bytes:
        """The main sheet as CSV (`excel`: with a byte order mark and CRLF, as Excel opens UTF-8)."""
        return csv_bytes(self.sheet, lang, excel=excel)

    def xlsx(self, lang: Lang) -> bytes:
        """A workbook: the main sheet first, then the others."""
        return xlsx_bytes([self.sheet, *self.before], lang)


def movement_text(movement: int | None) -> str:
    """A movement for people: `+1`, `-2`, `=`, or `new` without a previous rank."""
    if movement is None:
        return "new"
    return f"+{movement}" if movement > 0 else str(movement) if movement < 0 else "="


def _stem(*words: str) -> str:
    """A file's stem from its words (`rankings`, a scope, a period or a date), joined by `-`."""
    return "-".join(("each-unit" if word == EACH_UNIT else word.replace(":", "-")) for word in words if word)


HISTORY_COLUMNS: Final = (
    column("effective_on", Kind.date),
    column("position", Kind.int),
    column("event", essential=False),
    column("type"),
    column("points", Kind.points),
    column("counted", Kind.points),
    column("running_total", Kind.points),
    column("posted_by", essential=False),
    column("source", essential=False, wrap=True),
    column("link", wrap=True),
    column("adjustment", essential=False, wrap=True),
)


def history_sheets(page: HistoryPage) -> ViewSheets:
    """A cadre's entries with running totals."""
    positions = {entry.event_id: entry.position for entry in page.entries}
    # `counted` earns its table space only where it differs from `points` (a reversal, an expired gate).
    adjusted = any(entry.counted_points != entry.points for entry in page.entries)
    sheet = Sheet(
        f"history {page.cadre_id}",
        f"{page.cadre_id}: total {page.total} as of {page.as_of}, known at position {page.position}",
        tuple(replace(c, essential=adjusted) if c.name == "counted" else c for c in HISTORY_COLUMNS),
        [
            [
                entry.effective_on,
                entry.position,
                _short_id(entry.event_id),
                entry.type,
                entry.points,
                entry.counted_points,
                entry.running_total,
                entry.posted_by,
                f"{entry.source.system}/{entry.source.key}",
                _link(entry.reverses, entry.reversed_by, positions),
                entry.adjustment or "",
            ]
            for entry in page.entries
        ],
        f"{page.cadre_id}：截至 {page.as_of} 积分 {page.total}，以日志序号 {page.position} 时所知",
    )
    return ViewSheets(sheet, stem=_stem("history", page.cadre_id, page.as_of.isoformat()))


def _short_id(event_id: object) -> str:
    """The last 8 hex digits of an event id: a UUIDv7 starts with its millisecond time stamp, so the first
    8 are the same for every event of a batch; the end is random."""
    return str(event_id).replace("-", "")[-8:]


def _link(reverses: object, reversed_by: object, positions: dict[Any, int]) -> str:
    """A reversal link in a few characters: the other event's position (`#12`, as the position column
    shows it) when this page lists it, else the end of its id."""
    for words, other in (("reverses", reverses), ("reversed by", reversed_by)):
        if other is not None:
            position = positions.get(other)
            return f"{words} #{position}" if position is not None else f"{words} {_short_id(other)}"
    return ""


RANKING_COLUMNS: Final = (
    column("rank", Kind.int),
    column("cadre_id"),
    column("name", wrap=True),
    column("unit_id"),
    column("grade", wrap=True),
    column("total", Kind.points),
    column("tenure", Kind.points, essential=False),
    column("merit", Kind.points, essential=False),
    column("deductions", Kind.points, essential=False),
    column("appraisal", Kind.points, essential=False),
    column("evaluation", Kind.points, essential=False),
    column("recall", Kind.points, essential=False),
    column("previous_rank", Kind.int, essential=False),
    column("movement"),  # text: `+1`, `-2`, `=`, `new`, never a number or a formula in a spreadsheet
)


def rankings_sheets(view: RankingsView, *, period: str | None = None) -> ViewSheets:
    """A ranking with its components and movement; `period`, when the read named one, names the file."""
    gained = f"points since {view.since}" if view.since else "total"
    gained_zh = f"{view.since} 以来的积分" if view.since else "总积分"
    sheet = Sheet(
        f"rankings {view.as_of}",
        f"{view.scope} as of {view.as_of} (previous {view.previous_as_of}), known at {view.position}, "
        f"by {gained}",
        RANKING_COLUMNS,
        [
            [
                e.rank,
                e.cadre_id,
                e.name,
                e.unit_id,
                e.grade,
                e.total,
                e.components.tenure,
                e.components.merit,
                e.components.deductions,
                e.components.appraisal,
                e.components.evaluation,
                e.components.recall,
                e.previous_rank,
                movement_text(e.movement),
            ]
            for e in view.entries
        ],
        f"{view.scope} 排名：截至 {view.as_of}（上期 {view.previous_as_of}），"
        f"以日志序号 {view.position} 时所知，按{gained_zh}",
    )
    return ViewSheets(sheet, stem=_stem("rankings", view.scope, period or view.as_of.isoformat()))


SHORTLIST_COLUMNS: Final = (
    column("rank", Kind.int),
    column("cadre_id"),
    column("name", wrap=True),
    column("unit_id"),
    column("grade", wrap=True),
    column("total", Kind.points),
)


def shortlist_sheets(view: ShortlistView) -> ViewSheets:
    """The promotion shortlist of a scope."""
    sheet = Sheet(
        f"shortlist {view.as_of}",
        f"shortlist of {view.scope} as of {view.as_of}, known at position {view.position}: "
        f"{len(view.entries)} eligible",
        SHORTLIST_COLUMNS,
        [[e.rank, e.cadre_id, e.name, e.unit_id, e.grade, e.total] for e in view.entries],
        f"{view.scope} 提拔人选名单：截至 {view.as_of}，以日志序号 {view.position} 时所知，"
        f"符合条件 {len(view.entries)} 人",
    )
    return ViewSheets(sheet, stem=_stem("shortlist", view.scope, view.as_of.isoformat()))


CHECK_COLUMNS: Final = (column("check"), column("passed"), column("detail", wrap=True))


def eligibility_sheets(view: EligibilityView) -> ViewSheets:
    """A cadre's promotion verdict, a row per check."""
    verdict = "eligible" if view.eligible else "not eligible"
    verdict_zh = "符合提拔条件" if view.eligible else "不符合提拔条件"
    sheet = Sheet(
        f"eligibility {view.cadre_id}",
        f"{view.cadre_id}: {verdict} as of {view.as_of}, known at position {view.position}",
        CHECK_COLUMNS,
        [[check.check, "yes" if check.passed else "NO", check.detail] for check in view.checks],
        f"{view.cadre_id}：截至 {view.as_of} {verdict_zh}，以日志序号 {view.position} 时所知",
    )
    return ViewSheets(sheet, stem=_stem("eligibility", view.cadre_id, view.as_of.isoformat()))


OPEN_RECALL_COLUMNS: Final = (
    column("cadre_id"),
    column("ordered_on", Kind.date),
    column("period"),
    column("reason", wrap=True),
)
RECALL_COLUMNS: Final = (
    column("cadre_id"),
    column("name", wrap=True),
    column("unit_id"),
    column("rank", Kind.int),
    column("pool_size", Kind.int),
    column("total", Kind.points),
)


def recalls_sheets(view: RecallsView) -> ViewSheets:
    """The recall candidates; the open recalls, if any, as a sheet of their own."""
    open_recalls = Sheet(
        "open recalls",
        f"open recalls as of {view.as_of}",
        OPEN_RECALL_COLUMNS,
        [[r.cadre_id, r.ordered_on, r.period, r.reason] for r in view.open_recalls],
        f"截至 {view.as_of} 尚未结业的回炉",
    )
    sheet = Sheet(
        f"recalls {view.period}",
        f"recall candidates for {view.period} as of {view.as_of} ({view.scope}, basis {view.basis}), "
        f"known at position {view.position}",
        RECALL_COLUMNS,
        [[c.cadre_id, c.name, c.unit_id, c.rank, c.pool_size, c.total] for c in view.candidates],
        f"{view.period} 回炉人选：截至 {view.as_of}（{view.scope}，{view.basis}），"
        f"以日志序号 {view.position} 时所知",
    )
    return ViewSheets(
        sheet,
        (open_recalls,) if view.open_recalls else (),
        stem=_stem("recalls", view.scope, view.period),
    )


BOARD_COLUMNS: Final = (
    column("board"),
    column("rank", Kind.int),
    column("cadre_id"),
    column("name", wrap=True),
    column("unit_id"),
    column("total", Kind.points),
)


def boards_sheets(view: BoardsView) -> ViewSheets:
    """红黑榜: the red board's rows, then the black board's."""
    rows = [["red", e.rank, e.cadre_id, e.name, e.unit_id, e.total] for e in view.red] + [
        ["black", e.rank, e.cadre_id, e.name, e.unit_id, e.total] for e in view.black
    ]
    sheet = Sheet(
        f"boards {view.period}",
        f"boards of {view.period} as of {view.as_of} ({view.scope}, basis {view.basis}), "
        f"known at position {view.position}",
        BOARD_COLUMNS,
        rows,
        f"{view.period} 红黑榜：截至 {view.as_of}（{view.scope}，{view.basis}），"
        f"以日志序号 {view.position} 时所知",
    )
    return ViewSheets(sheet, stem=_stem("boards", view.scope, view.period))


ESCALATION_COLUMNS: Final = (
    column("cadre_id"),
    column("name", wrap=True),
    column("unit_id"),
    column("streak", Kind.int),
    column("step", Kind.int),
    column("action", essential=False),
    column("label", wrap=True),
)


def escalations_sheets(view: EscalationsView) -> ViewSheets:
    """Cadres in the bottom for consecutive periods, with the ladder step and its action."""
    sheet = Sheet(
        f"escalations {view.period}",
        f"escalations at {view.period} as of {view.as_of} ({view.scope}, basis {view.basis}), "
        f"known at position {view.position}",
        ESCALATION_COLUMNS,
        [[e.cadre_id, e.name, e.unit_id, e.streak, e.step, e.action, e.label] for e in view.escalations],
        f"{view.period} 连续末位处理：截至 {view.as_of}（{view.scope}，{view.basis}），"
        f"以日志序号 {view.position} 时所知",
    )
    return ViewSheets(sheet, stem=_stem("escalations", view.scope, view.period))


# Units rated by enterprises (市场主体评部门).

UNIT_RANKING_COLUMNS: Final = (
    column("rank", Kind.int),
    column("unit_id", zh="单位编号"),
    column("name", zh="单位名称", wrap=True),
    column("score", Kind.points),
    column("ratings", Kind.int),
    column("dissatisfied", Kind.int),
    column("previous_rank", Kind.int, essential=False),
    column("movement"),  # text: `+1`, `-2`, `=`, `new`
    column("bottom"),
)


def unit_rankings_sheets(view: UnitRankingsView) -> ViewSheets:
    """A period's ranking of units."""
    panel = f"panel of {view.panel.size} ({view.panel.method})" if view.panel else "no panel"
    panel_zh = f"评议企业 {view.panel.size} 家（{view.panel.method}）" if view.panel else "未抽签"
    sheet = Sheet(
        f"units {view.period}",
        f"units of {view.period} as of {view.as_of}, known at {view.position} — {panel}, "
        f"{view.aggregation}, bottom {view.bottom_count}",
        UNIT_RANKING_COLUMNS,
        [
            [
                e.rank,
                e.unit_id,
                e.name,
                e.score,
                e.ratings,
                e.dissatisfied,
                e.previous_rank,
                movement_text(e.movement) if e.rank is not None else "",
                "yes" if e.in_bottom else "",
            ]
            for e in view.entries
        ],
        f"{view.period} 市场主体评部门排名：截至 {view.as_of}，以日志序号 {view.position} 时所知 — "
        f"{panel_zh}，{view.aggregation}，末位 {view.bottom_count} 名",
    )
    return ViewSheets(sheet, stem=_stem("unit-rankings", view.period))


UNIT_ESCALATION_COLUMNS: Final = (
    column("unit_id", zh="单位编号"),
    column("name", zh="单位名称", wrap=True),
    column("rank", Kind.int),
    column("score", Kind.points, essential=False),
    column("streak", Kind.int),
    column("step", Kind.int),
    column("label", wrap=True),
    column("leader", wrap=True),
    column("consequence", essential=False),
    column("posted"),
)


def unit_escalations_sheets(view: UnitEscalationsView) -> ViewSheets:
    """Units in the bottom for consecutive periods: step, action, the leader named, what was posted."""
    sheet = Sheet(
        f"unit escalations {view.period}",
        f"unit escalations at {view.period} as of {view.as_of}, known at {view.position}",
        UNIT_ESCALATION_COLUMNS,
        [
            [
                e.unit_id,
                e.name,
                e.rank,
                e.score,
                e.streak,
                e.step,
                e.label,
                f"{e.leader.cadre_id} {e.leader.name}" if e.leader else "",
                e.consequence,
                "" if e.consequence_posted is None else "yes" if e.consequence_posted else "no",
            ]
            for e in view.escalations
        ],
        f"{view.period} 单位连续末位处理：截至 {view.as_of}，以日志序号 {view.position} 时所知",
    )
    return ViewSheets(sheet, stem=_stem("unit-escalations", view.period))


UNIT_PERIOD_COLUMNS: Final = (
    column("period"),
    column("rank", Kind.int),
    column("of", Kind.int),
    column("score", Kind.points),
    column("ratings", Kind.int),
    column("dissatisfied", Kind.int),
    column("bottom"),
    column("streak", Kind.int),
    column("step", Kind.int),
    column("action"),
)


def unit_sheets(view: UnitView) -> ViewSheets:
    """A unit's standing in every period it was rated in."""
    sheet = Sheet(
        f"unit {view.unit_id}",
        f"{view.unit_id} {view.name or ''} ({view.kind or 'unit'}) as of {view.as_of}, "
        f"known at {view.position}",
        UNIT_PERIOD_COLUMNS,
        [
            [
                p.period,
                p.rank,
                p.of,
                p.score,
                p.ratings,
                p.dissatisfied,
                "yes" if p.in_bottom else "",
                p.streak or None,  # no streak is an empty cell, not a 0
                p.step,
                p.action,
            ]
            for p in view.periods
        ],
        f"{view.unit_id} {view.name or ''}（{view.kind or '单位'}）：截至 {view.as_of}，"
        f"以日志序号 {view.position} 时所知",
    )
    return ViewSheets(sheet, stem=_stem("unit", view.unit_id, view.as_of.isoformat()))
