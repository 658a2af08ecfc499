"""Built-in plugin: ``cron(name, expr, handler, {skipIfRunning, catchUp})`` for guild scripts.

* ``op_register_cron`` (``ops.py``, in the worker) checks a job like flora
  and stores it in ``cron_jobs`` under the load that registered it.
* ``flora_script_loaded`` (supervisor) makes a successful load's jobs the
  guild's running ones, continuing the schedule of same-named jobs with the
  same expression; a failed load's jobs are dropped and the running ones stay.
* The scheduler (``scheduler.py``), started by ``flora_startup``, dispatches
  ``__cron:<name>`` with ``{name, scheduledAt}`` to the guild's script.

Unlike flora, schedules survive restarts and redeploys, missed occurrences
can be caught up (``catchUp: 'latest'``), ``skipIfRunning`` really skips,
``scheduledAt`` is the occurrence's time (flora sent the tick's time), and a
failed redeploy keeps the running jobs (flora lost them).
"""

from __future__ import annotations

import logging
import weakref

from flora_core import hookimpl

from .scheduler import Scheduler

log = logging.getLogger("flora.cron")

# One scheduler per supervisor Runtime (keyed weakly: a Runtime never carries plugin state itself).
_schedulers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def scheduler_for(runtime) -> Scheduler:
    scheduler = _schedulers.get(runtime)
    if scheduler is None:
        def skip_reason(guild_id: str) -> str | None:
            if guild_id in runtime.suspended:
                return "the guild's script is suspended (it crashed its worker)"
            if guild_id not in runtime.bundles:
                return "the guild has no script deployed"
            return None

        scheduler = Scheduler(runtime.db, dispatch=runtime.dispatch, guild_log=runtime.guild_log, skip_reason=skip_reason,
                              spawn=runtime.spawn, timeout=runtime.config.cron_timeout_secs)
        _schedulers[runtime] = scheduler
    return scheduler


@hookimpl
def flora_register_ops(register):
    from .ops import op_register_cron

    register("op_register_cron", op_register_cron)


# optionalhook: called by the worker at every isolate build (see ops.py for why builds are counted);
# optional so that this plugin loads on a core whose hookspecs.py does not declare the hook.
@hookimpl(optionalhook=True)
def flora_isolate_globals(guild_id, services):
    from .ops import note_build

    note_build(services, guild_id)
    return {}


@hookimpl
def flora_script_loaded(runtime, guild_id, load_id, ok):
    scheduler_for(runtime).script_loaded(guild_id, load_id, ok)


@hookimpl
def flora_startup(runtime):
    scheduler = scheduler_for(runtime)
    scheduler.db = runtime.db
    scheduler.task = runtime.spawn(scheduler.run_forever())
    log.info("cron scheduler started")


@hookimpl
def flora_shutdown(runtime):
    scheduler = _schedulers.pop(runtime, None)
    if scheduler is not None:
        task = getattr(scheduler, "task", None)
        if task is not None:
            task.cancel()
        scheduler.cancel()
