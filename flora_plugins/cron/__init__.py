"""Built-in plugin: ``cron(name, expr, handler, {skipIfRunning, catchUp})`` for guild scripts.

* ``cron()`` for scripts (``cron.js``, an extension of the SDK) calls
  ``op_register_cron`` (``ops.py``, in the worker), which checks a job like flora
  and stores it in ``cron_jobs`` under the load that registered it.
* ``flora_script_loaded`` (supervisor) makes a successful load's jobs the
  guild's running ones, continuing the schedule of same-named jobs with the
  same expression; a failed load's jobs are dropped and the running ones stay.
* The scheduler (``scheduler.py``), started by ``flora_startup``, dispatches
  ``__cron:<name>`` with ``{name, scheduledAt}`` to the guild's script, for the
  guilds this runtime node owns, each occurrence once across all nodes (it is
  claimed in the database before it runs).

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
_schedulers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def scheduler_for(runtime) -> Scheduler:
    scheduler = _schedulers.get(runtime)
    if scheduler is None:
        scheduler = Scheduler(
            runtime.db,
            dispatch=runtime.dispatch,
            guild_log=runtime.guild_log,
            skip_reason=runtime.skip_reason,
            owns=runtime.owns,
            spawn=runtime.spawn,
            timeout=runtime.config.cron_timeout_secs,
        )
        _schedulers[runtime] = scheduler
    return scheduler


@hookimpl
def flora_register_config_keys(register):
    from flora_core.config import Key, int_range

    register(Key("max_cron_jobs", "runtime.max_cron_jobs", "RUNTIME_MAX_CRON_JOBS", int_range(0), 32))
    register(Key("cron_timeout_secs", "runtime.cron_timeout_secs", "RUNTIME_CRON_TIMEOUT_SECS", int_range(0), 5))


@hookimpl
def flora_register_migrations(register):
    from importlib import resources

    register(resources.files(__name__).joinpath("migrations"))  # tables cron_jobs, cron_loads


@hookimpl
def flora_register_ops(register):
    from .ops import op_register_cron

    register("op_register_cron", op_register_cron)


@hookimpl
def flora_register_js_sources(register):
    from importlib import resources

    # cron() for scripts: extends the SDK (flora.js, order 20), so after it
    register("flora:cron", resources.files(__name__).joinpath("cron.js").read_text(encoding="utf-8"), order=50)


@hookimpl
def flora_register_type_declarations(register):
    from importlib import resources

    register("flora:cron", resources.files(__name__).joinpath("cron.d.ts"), requires=["flora:sdk"])


@hookimpl
def flora_isolate_built(guild_id, load_id, services):
    """Called by the worker at every isolate build, before the script runs (see ops.py for why builds are counted)."""
    from .ops import note_build

    note_build(services, guild_id)


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
