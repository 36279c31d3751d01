"""The one catalogue of zh-CN / en labels: stages, groups, decisions, triggers, event kinds, signals,
outcomes, escalation targets, grades and built-in actors.

Every renderer (reports, PDF, console tables, notifications) asks here, so a hospital reading a
Chinese report never meets an engine key such as `activate` or `reposts`, and a rename happens once.
Unknown keys come back unchanged: a label is presentation, never a reason to fail.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

Lang = Literal["zh-CN", "en"]
LANGS: tuple[Lang, ...] = ("zh-CN", "en")

Pair = tuple[str, str]  # (zh-CN, en)

STAGES: dict[str, Pair] = {
    "monitoring": ("事件监测", "Monitoring"),
    "reported": ("已报告", "Reported"),
    "assessing": ("评估与指令", "Assessment & instructions"),
    "responding": ("应急响应与信息发布", "Response & information release"),
    "media_liaison": ("媒体沟通与公众互动", "Media liaison & public interaction"),
    "onsite": ("现场处置", "On-site handling"),
    "follow_up": ("后续跟进", "Follow-up"),
    "closed": ("已结案", "Closed"),
    "watch": ("持续关注", "Watch"),
    "dismissed": ("不予启动", "Dismissed"),
}

GROUPS: dict[str, Pair] = {
    "leadership": ("领导小组", "Leadership"),
    "monitoring": ("监测与分析组", "Monitoring & analysis"),
    "response": ("应急响应与处置组", "Emergency response & handling"),
    "logistics": ("后勤保障组", "Logistics"),
}

DECISIONS: dict[str, Pair] = {
    "activate": ("启动", "activate"),
    "watch": ("观察", "watch"),
    "dismiss": ("排除", "dismiss"),
}

TRIGGERS: dict[str, Pair] = {
    "report": ("报告领导小组", "report to leadership"),
    "assess": ("研判", "assess"),
    "respond": ("启动应急响应", "start the response"),
    "media": ("转入媒体沟通", "move to media liaison"),
    "onsite": ("转入现场处置", "move to on-site handling"),
    "skip_onsite": ("无需现场处置", "skip on-site handling"),
    "follow_up": ("转入后续跟进", "move to follow-up"),
    "close": ("结案", "close"),
    "reopen": ("重新启动", "reopen"),
    "regrade": ("调整等级", "regrade"),
    # drill actions that are not triggers
    "complete": ("完成任务", "complete a task"),
    "ack": ("确认升级提醒", "acknowledge an escalation"),
    "statement": ("发布声明", "release a statement"),
    "signals": ("更新舆情数据", "update signals"),
    "applicable": ("标记任务适用", "mark a task applicable"),
}

EVENTS: dict[str, Pair] = {
    "incident_opened": ("事件登记", "incident opened"),
    "stage_changed": ("阶段变更", "stage changed"),
    "severity_changed": ("等级调整", "grade changed"),
    "override": ("越级推进", "override"),
    "signals_updated": ("舆情数据更新", "signals updated"),
    "task_assigned": ("任务分派", "task assigned"),
    "task_done": ("任务完成", "task done"),
    "task_waived": ("任务豁免", "task waived"),
    "task_cancelled": ("任务取消", "task cancelled"),
    "task_regraded": ("任务时限调整", "task deadline changed"),
    "task_applicable": ("任务标记为适用", "task marked applicable"),
    "task_carried": ("任务延续至下一阶段", "task carried to the next stage"),
    "escalation_fired": ("超时升级", "escalation"),
    "escalation_acknowledged": ("升级已确认", "escalation acknowledged"),
    "escalation_failed": ("升级提醒发送失败", "escalation failed"),
    "statement_drafted": ("声明起草", "statement drafted"),
    "statement_reviewed": ("声明审核", "statement reviewed"),
    "statement_released": ("声明发布", "statement released"),
    "statement_release_override": ("领导批准发布含个人信息的声明", "personal data released by leadership"),
    "inject": ("演练注入", "drill inject"),
    "drill_action_rejected": ("操作被拒", "action refused"),
    "note": ("备注", "note"),
}

SIGNALS: dict[str, Pair] = {
    "reposts": ("转发量", "reposts"),
    "comments": ("评论量", "comments"),
    "views": ("阅读量", "views"),
    "likes": ("点赞量", "likes"),
    "mentions": ("提及量", "mentions"),
    "posts": ("发帖量", "posts"),
    "media_reports": ("媒体报道数", "media reports"),
    "hot_rank": ("热搜排名", "trending rank"),
    "negative_ratio": ("负面占比", "negative share"),
    "complaints": ("投诉量", "complaints"),
}

OUTCOMES: dict[str, Pair] = {
    "on_time": ("按时", "on time"),
    "late": ("超时", "late"),
    "open": ("进行中", "open"),
    "missed": ("未完成", "not done"),
    "skipped": ("未执行（非必做）", "skipped (optional)"),
}

TARGETS: dict[str, Pair] = {
    "assignee": ("责任人", "assignee"),
    "group_head": ("组长", "group head"),
    "leadership_head": ("领导小组组长", "head of leadership"),
    "leadership": ("领导小组", "leadership"),
    "on_call": ("值班管理员", "on-call administrator"),
}

ACTORS: dict[str, Pair] = {
    "system": ("系统", "system"),
    "drill": ("演练导调组", "drill control"),
}

REVIEW: dict[str, Pair] = {
    "approve": ("通过", "approved"),
    "reject": ("退回", "rejected"),
}

CLOCK_STATUS: dict[str, Pair] = {
    "met": ("达标", "met"),
    "missed": ("未达标", "missed"),
    "pending": ("待定", "pending"),
}

EXPECTATION_STATUS: dict[str, Pair] = {
    "SUCCESS": ("达成", "success"),
    "PARTIAL": ("部分达成", "partial"),
    "FAILED": ("未达成", "failed"),
    "PENDING": ("待定", "pending"),
}

TASK_STATUS: dict[str, Pair] = {
    "open": ("进行中", "open"),
    "done": ("已完成", "done"),
    "waived": ("已豁免", "waived"),
    "cancelled": ("已取消", "cancelled"),
}

STATEMENT_STATUS: dict[str, Pair] = {
    "draft": ("草稿", "draft"),
    "in_review": ("审核中", "in review"),
    "approved": ("已审核通过", "approved"),
    "rejected": ("已退回", "rejected"),
    "released": ("已发布", "released"),
}

CHANNELS: dict[str, Pair] = {
    "file": ("文件", "file"),
    "email": ("邮件", "email"),
    "wecom": ("企业微信", "WeCom"),
    "dingtalk": ("钉钉", "DingTalk"),
    "feishu": ("飞书", "Feishu"),
    "webhook": ("Webhook", "webhook"),
    "sms": ("短信", "SMS"),
    "drill": ("演练", "drill"),
}

SEVERITY: dict[str, tuple[str, str, str, str]] = {  # zh label, en label, zh colour, en colour
    "I": ("特别重大", "extremely serious", "红色", "red"),
    "II": ("重大", "serious", "橙色", "orange"),
    "III": ("较大", "relatively serious", "黄色", "yellow"),
    "IV": ("一般", "general", "蓝色", "blue"),
}

PERSONAL_DATA: dict[str, Pair] = {
    "id_card": ("身份证号", "ID card number"),
    "mobile": ("手机号", "mobile phone number"),
}

# The writing rules' findings (crisis.statements.Finding): code → sentence with the finding's facts.
FINDINGS: dict[str, Pair] = {
    "title_length": ("标题 {n} 字（一般不超过 {limit} 字）", "title has {n} characters (normally at most {limit})"),
    "personal_data": ("含个人信息：{kinds}（发布前请删除或打码）",
                      "personal data: {kinds} (remove or mask before release)"),
    "slang": ("网络用语：{words}", "internet slang: {words}"),
    "no_next_update": ("未说明下次通报时间", "does not say when the next update will come"),
}

# The policy's rules (crisis.engine.policy, whose RULES are the English here): what a refusal names.
RULES: dict[str, Pair] = {
    "team": ("应急工作小组成员均可", "any member of the emergency team"),
    "complete": ("任务负责人、任务所属小组成员、领导小组或值班员可以完成任务",
                 "the assignee, a member of the task's group, leadership, or the duty officer"),
    "assess": ("研判由领导小组决定", "assessment is leadership's decision"),
    "override": ("只有领导小组可以在必做任务未完成时推进阶段",
                 "only leadership may leave a stage with required tasks open"),
    "regrade": ("只有领导小组可以调整事件等级", "only leadership may change an incident's grade"),
    "close": ("由领导小组或值班员结案", "leadership or the duty officer closes an incident"),
    "reopen": ("舆情反弹时由监测与分析组、值班员或领导小组重新启动",
               "the monitoring group, the duty officer or leadership reopens on a flare-up"),
    "ack": ("被提醒的人员、领导小组或值班管理员可以确认",
            "someone paged for the task, leadership, or an on-call administrator"),
    "review.1": ("一级审核：信息员（监测与分析组）", "level 1: information staff (the monitoring group)"),
    "review.2": ("二级审核：宣传部门负责人，或其以外的领导小组成员",
                 "level 2: the information department head, or leadership other than its head"),
    "review.3": ("三级审核：领导小组", "level 3: leadership"),
    "review.once": ("每一级审核须由不同的人完成", "each review level needs another person"),
    "review.four_eyes": ("起草人不得审核自己的声明（任何一级）",
                         "the drafter may not review their own statement at any level"),
    "release": ("由起草人、监测与分析组或领导小组发布", "the drafter, the monitoring group or leadership"),
    "release.personal_data": ("含个人信息的声明只能由领导小组填写理由后发布",
                              "a statement with personal data is released only by leadership, with a reason"),
    "applicable": ("由任务所属小组负责人或领导小组决定可选任务是否适用",
                   "the task's group head or leadership decides whether an optional task applies"),
    "state": ("当前状态不允许此操作", "the current state allows it"),
    "on_call": ("由领导小组、值班员或值班表上的人员安排值班",
                "leadership, the duty officer or someone on the on-call rota arranges on-call cover"),
    "drills": ("演练结果由领导小组、各组负责人或值班员查看",
               "leadership, a group head or the duty officer reviews drill results"),
}

# What a form's refused input is (crisis.errors.InputError.kind, with its facts), and the fields forms send.
INPUT_ERRORS: dict[str, Pair] = {
    "empty": ("不能为空", "must not be empty"),
    "too_long": ("共 {n} 字，最多 {max} 字", "is {n} characters long; at most {max} are allowed"),
    "reason_required": ("须填写理由", "needs a reason"),
}
FIELDS: dict[str, Pair] = {
    "title": ("标题", "title"), "body": ("正文", "text"), "text": ("备注", "note"), "note": ("备注", "note"),
    "reason": ("理由", "reason"), "comment": ("审核意见", "comment"), "next_update": ("下次通报时间", "next update"),
}

# A record that does not exist (crisis.errors.NotFound.what, with its number or path as `ref`).
NOT_FOUND: dict[str, Pair] = {
    "incident": ("事件 #{ref} 不存在", "Incident #{ref} does not exist"),
    "task": ("任务 #{ref} 不存在", "Task #{ref} does not exist"),
    "escalation": ("升级提醒 #{ref} 不存在", "Escalation #{ref} does not exist"),
    "statement": ("声明 #{ref} 不存在", "Statement #{ref} does not exist"),
    "drill_report": ("演练报告 {ref} 不存在", "Drill report {ref} does not exist"),
}

CATALOGUE: dict[str, dict[str, Pair]] = {
    "stage": STAGES, "group": GROUPS, "decision": DECISIONS, "trigger": TRIGGERS, "event": EVENTS,
    "signal": SIGNALS, "outcome": OUTCOMES, "target": TARGETS, "actor": ACTORS, "review": REVIEW,
    "clock": CLOCK_STATUS, "expectation": EXPECTATION_STATUS, "task_status": TASK_STATUS,
    "statement_status": STATEMENT_STATUS, "channel": CHANNELS, "personal_data": PERSONAL_DATA,
}


def label(kind: str, key: str | None, lang: Lang | str) -> str:
    """The label of `key` in catalogue `kind` ('stage', 'group', 'decision', 'signal', …); '-' for nothing."""
    if key is None or key == "":
        return "-"
    pair = CATALOGUE[kind].get(key)
    if pair is None:
        return key
    return pair[0] if lang == "zh-CN" else pair[1]


def severity(value: str | None, lang: Lang | str) -> str:
    """'II级（重大，橙色）' / 'grade II (serious, orange)'."""
    if not value or value not in SEVERITY:
        return value or "-"
    zh, en, colour_zh, colour_en = SEVERITY[value]
    return f"{value}级（{zh}，{colour_zh}）" if lang == "zh-CN" else f"grade {value} ({en}, {colour_en})"


def category(key: str | None, lang: Lang | str, names: Mapping[str, Pair] | None = None) -> str:
    """A category by its playbook's name (`names`: category → (zh, en), from the playbooks, since a hospital
    adds a category by adding a playbook); the key itself only when no playbook names it."""
    if not key:
        return "-"
    pair = (names or {}).get(key)
    if pair is None:
        return key
    return pair[0] if lang == "zh-CN" else pair[1]


def finding(code: str, facts: Mapping[str, object], lang: Lang | str) -> str:
    """A writing-rule finding as a sentence in `lang`; personal-data kinds by their label, lists joined the
    language's way. An unknown code comes back as the code."""
    pair = FINDINGS.get(code)
    if pair is None:
        return code
    sep = "、" if lang == "zh-CN" else ", "
    values = {k: sep.join(label("personal_data", str(x), lang) if k == "kinds" else str(x) for x in v)
              if isinstance(v, list | tuple) else v for k, v in facts.items()}
    return (pair[0] if lang == "zh-CN" else pair[1]).format(**values)


def input_error(kind: str, field: str | None, facts: Mapping[str, object], lang: Lang | str) -> str | None:
    """A form's refused input as a sentence in `lang` ("标题：不能为空"); None for a kind not worded here."""
    pair = INPUT_ERRORS.get(kind)
    if pair is None:
        return None
    text = (pair[0] if lang == "zh-CN" else pair[1]).format(**facts)
    if not field:
        return text
    name = FIELDS.get(field)
    shown = field if name is None else name[0] if lang == "zh-CN" else name[1]
    return f"{shown}：{text}" if lang == "zh-CN" else f"{shown}: {text}"


def not_found(what: str | None, ref: object, lang: Lang | str) -> str | None:
    """A missing record as a sentence in `lang` ("事件 #999 不存在"); None for a kind not worded here."""
    pair = NOT_FOUND.get(what or "")
    return None if pair is None else (pair[0] if lang == "zh-CN" else pair[1]).format(ref=ref)


def rule(code: str, lang: Lang | str) -> str:
    """What a policy rule allows, in `lang` (a refusal names its rule); an unknown code comes back as is."""
    pair = RULES.get(code)
    return code if pair is None else pair[0] if lang == "zh-CN" else pair[1]


def target(value: str | None, lang: Lang | str) -> str:
    """An escalation target: the catalogue's words, or 'role:X' / 'person:X' as they are."""
    return label("target", value, lang)


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def pick(text: object, lang: Lang | str) -> str:
    """One language out of bilingual free text.

    Scenarios and rosters write bilingual text either as a mapping {zh: …, en: …} or as one line
    "中文 / English"; a Chinese report shows the Chinese half, an English one the English half.
    Text in one language only is shown as written.
    """
    if text is None:
        return ""
    if isinstance(text, dict):
        zh, en = text.get("zh") or text.get("zh-CN"), text.get("en")
        return str((zh or en) if lang == "zh-CN" else (en or zh) or "")
    value = str(text)
    parts = [p.strip() for p in value.split(" / ")]
    if len(parts) == 2 and has_cjk(parts[0]) and not has_cjk(parts[1]):
        return parts[0] if lang == "zh-CN" else parts[1]
    return value
