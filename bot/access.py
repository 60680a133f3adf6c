"""Who may see whose progress, answers and reflections, for every front end.

Instructors (`TUTORBOT_INSTRUCTORS`) see everything. A group's admins see their group's
members: their progress in the group's live study sessions (chat "tg:<group>") and the
lessons assigned in the group (done in each member's private chat), from the moment the
member joined the assignment on: what they did in private before it stays theirs. A
learner sees their own data only. What a reader may see is a `reports.Scope`; the
question "is this user an admin of that group?" is asked by the caller (the bot asks
Telegram).
"""

from __future__ import annotations

from bot.reports import EVERYTHING, Scope
from bot.store import Store

NOTHING = Scope()
REFUSAL = "There is nothing here that you may see. Reports are for instructors and for the admins of a study group."


def groups_of_interest(store: Store) -> list[int]:
    """The groups where study happened (a live session, or an assigned lesson)."""
    rows = store.db.execute(
        "SELECT chat_id FROM study_sessions UNION "
        "SELECT CAST(substr(chat, 4) AS INTEGER) FROM assignments WHERE chat LIKE 'tg:-%'"
    ).fetchall()
    return [chat_id for (chat_id,) in rows if isinstance(chat_id, int) and chat_id < 0]


def group_scope(store: Store, groups: list[int]) -> Scope:
    """What the admins of `groups` may see: those groups' members' study there, and the
    lessons assigned there as each member does them in private, from when they first
    joined one of those assignments (a lesson assigned twice: the earlier join)."""
    allowed: list[tuple[str | None, str | None, str | None, str | None]] = []
    for group in groups:
        allowed.append((f"tg:{group}", None, None, None))
        rows = store.db.execute(
            "SELECT a.lesson, m.learner, MIN(m.joined_at) FROM assignments a JOIN assignment_members m ON m.assignment = a.id "
            "WHERE a.chat = ? GROUP BY a.lesson, m.learner",
            [f"tg:{group}"],
        ).fetchall()
        # (their private chat's id is theirs; `join` always records the time)
        allowed += [(learner, lesson, learner, joined) for lesson, learner, joined in rows if joined is not None]
    return Scope(allowed=tuple(allowed))


def scope_for(instructor: bool, store: Store, led_groups: list[int]) -> Scope:
    """What a reader may see: everything for an instructor, else the groups they lead."""
    if instructor:
        return EVERYTHING
    return group_scope(store, led_groups) if led_groups else NOTHING


def own_scope(learner: str) -> Scope:
    """A learner's own data, in every chat."""
    return Scope(allowed=((None, None, learner, None),))
