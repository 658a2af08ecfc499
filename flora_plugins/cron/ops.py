"""``op_register_cron``, run in the worker when a script calls ``cron(name, expr, handler, options)``.

flora's checks and messages, in flora's order: the expression, the number of
jobs (``RUNTIME_MAX_CRON_JOBS`` per guild and load), the name (unique per
load), and that the schedule has a future occurrence. Names are counted per
*isolate build*: when a worker rebuilds a guild's isolate from the same load
(after a dispatch timeout or running out of memory) the script registers its
jobs again, which is not a duplicate. Builds are counted by this plugin's
``flora_isolate_built``, which the worker calls for every build before the script runs (so before the
first ``op_register_cron`` of that build).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flora_core.errors import INVALID_INPUT, OpError

from . import schedule, store
from .schedule import CronError

LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
ALREADY_EXISTS = "ALREADY_EXISTS"
RESOURCE_KEY = "flora_cron.registrations"


@dataclass
class Registrations:
    """Per worker process: isolate builds per guild, and the job names of each (guild, load)."""

    builds: dict[str, int] = field(default_factory=dict)
    names: dict[tuple[str, str], tuple[int, set[str]]] = field(default_factory=dict)


def registrations(services) -> Registrations:
    reg = services.resources.get(RESOURCE_KEY)
    if reg is None:
        reg = services.resources[RESOURCE_KEY] = Registrations()
    return reg


def note_build(services, guild_id: str) -> None:
    reg = registrations(services)
    reg.builds[guild_id] = reg.builds.get(guild_id, 0) + 1


def parse_args(args) -> tuple[str, str, bool, str]:
    if not isinstance(args, dict):
        raise OpError(INVALID_INPUT, "cron: expected {name, expr, skipIfRunning, catchUp}")
    name, expr = args.get("name"), args.get("expr")
    if not isinstance(name, str) or not name:
        raise OpError(INVALID_INPUT, "cron name must be a non-empty string")
    if not isinstance(expr, str) or not expr:
        raise OpError(INVALID_INPUT, "cron expression must be a non-empty string")
    catch_up = args.get("catchUp")
    # The SDK's prelude may send a boolean (true = 'latest'); the documented values are 'none' and 'latest'.
    if catch_up is None or catch_up is False:
        catch_up = "none"
    elif catch_up is True:
        catch_up = "latest"
    if catch_up not in schedule.CATCH_UP:
        raise OpError(INVALID_INPUT, f"invalid catchUp '{catch_up}': expected 'none' or 'latest'")
    return name, expr, bool(args.get("skipIfRunning")), catch_up


async def op_register_cron(ctx, args):
    """``{name, expr, skipIfRunning, catchUp}`` -> ``null``; the job runs once this load is the guild's running one."""
    name, expr, skip_if_running, catch_up = parse_args(args)
    try:
        normalized = schedule.normalize(expr)
    except CronError as exc:
        raise OpError(INVALID_INPUT, str(exc)) from None

    reg = registrations(ctx.services)
    key = (ctx.guild_id, ctx.load_id)
    build = reg.builds.get(ctx.guild_id, 0)
    seen_build, names = reg.names.get(key, (build, set()))
    if seen_build != build:
        names = set()  # a rebuilt isolate of the same load registers its jobs again
    if len(names) >= ctx.config.max_cron_jobs:
        raise OpError(LIMIT_EXCEEDED, "max cron jobs exceeded for this guild/runtime")
    if name in names:
        raise OpError(ALREADY_EXISTS, f"cron job with name '{name}' already exists")
    try:
        fresh_next_run = schedule.next_after(normalized, schedule.now())
    except CronError as exc:
        raise OpError(INVALID_INPUT, str(exc)) from None

    names.add(name)  # reserved before the first await: a concurrent duplicate sees it
    if key not in reg.names:
        # Keep the names of this guild's two latest loads only (the running one and the one loading).
        for old in [k for k in reg.names if k[0] == ctx.guild_id][:-1]:
            del reg.names[old]
    reg.names[key] = (build, names)
    try:
        await ctx.run_sync(
            store.register_job, ctx.db, ctx.guild_id, ctx.load_id, name, normalized, skip_if_running, catch_up, fresh_next_run
        )
    except BaseException:
        names.discard(name)
        raise
    return None
