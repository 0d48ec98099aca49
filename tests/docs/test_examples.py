"""Every code example in the docs runs, so the docs cannot drift from the code.

Each ```python block of README.md and docs/*.md is a test of its own. It runs
in this process against the test database (in a transaction rolled back after
it) and inside isolated registries, so the event classes, commands, handlers
and sagas it declares are real while it runs and forgotten after it. The block
runs as a module: `example`, or the module its title names
(`title="myproject/behaviours.py"` runs as `myproject.behaviours`, importable
by that name); the titled blocks before it on the same page are loaded first,
as the other files of one project. Nothing else is shared between blocks.

Then what the block published (events, commands sent after commit, saga steps)
is delivered in this process as a worker runs it: each handler's own Celery
task, through `Task.apply()` (decoding, behaviours, the inbox transaction),
until nothing new is published. Every delivery must end done and every saga
run must complete: an example whose handler fails, fails here. That proves the
examples' code, not delivery; tests/mediator proves delivery with real workers.

A block titled `...settings.py` is a settings module: its MEDIATOR must pass the
mediator's validation and system checks with no error, and its CELERY_* names
must be settings Celery knows.

docs/install.md's titled blocks are the files of another, fresh project:
tests/packaging/test_fresh_project.py writes and runs them there (asserted below).

Shell blocks are not run; every `make <target>` and `manage.py <command>` they,
or the pages' inline code, name must exist.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
import types
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from celery.exceptions import Retry
from django.conf import settings
from django.core.checks import ERROR
from django.core.exceptions import ImproperlyConfigured
from django.core.management import get_commands
from django.test import override_settings

from mediator.conf import mediator_settings
from mediator.delivery.dispatch import delivery_task_id
from mediator.delivery.mapping import wire_message
from mediator.exceptions import HandlerPoisoned
from mediator.handlers.registry import handler_registry
from mediator.messages.base import message_types
from mediator.models import OutboxMessage, RunState, SagaRun
from mediator.ops.checks import check_wiring
from mediator.sagas.definition import saga_registry
from tests.config.test_celery import known_celery_settings
from tests.docs.pages import INSTALL_GUIDE, PAGES, SHELL, Block, all_blocks, blocks, inline_code
from tests.support import ROOT, celery_tasks_forgotten

MAX_ROUNDS = 50  # of delivering what the previous round published


TESTING_GUIDE = ROOT / "docs" / "testing.md"


def is_fresh_project_file(block: Block) -> bool:
    """A file of another project, which a test of its own writes and runs:
    install.md's titled blocks (tests/packaging/test_fresh_project.py) and
    testing.md's blocks that name their file on their first line
    (tests/mediator/test_testing_plugin.py, through pytester)."""
    if block.page == INSTALL_GUIDE:
        return bool(block.title)
    return block.page == TESTING_GUIDE and bool(
        re.fullmatch(r"# [\w/]+\.py", block.code.split("\n")[0])
    )


EXAMPLES = [b for b in all_blocks() if b.lang == "python" and not is_fresh_project_file(b)]


def test_the_pages_have_examples_and_every_fence_is_read() -> None:
    assert len(EXAMPLES) >= 15, [b.where for b in EXAMPLES]
    for page in PAGES:
        text = page.read_text()
        fences = len(re.findall(r"^\s*```", text, re.M))
        assert fences == 2 * len(blocks(page)), f"{page.name}: a fence is indented or unclosed"
        assert "```py\n" not in text, f"{page.name}: write ```python, so the block is run"


def test_the_install_guides_files_are_run_by_the_fresh_project_test() -> None:
    from tests.packaging import test_fresh_project

    titled = {b.title: b.code for b in blocks(INSTALL_GUIDE) if b.title}
    assert titled, "docs/install.md shows the fresh project's files"
    assert test_fresh_project.GUIDE == INSTALL_GUIDE
    assert test_fresh_project.guide_files() == titled
    assert callable(
        test_fresh_project.test_a_fresh_project_installs_the_wheel_and_gets_its_events_handled
    )


def test_the_testing_guides_files_are_run_by_the_plugin_test() -> None:
    from tests.mediator import test_testing_plugin

    named = [b for b in blocks(TESTING_GUIDE) if is_fresh_project_file(b)]
    assert len(named) >= 4, "docs/testing.md shows the example app's files"
    files = test_testing_plugin.docs_files(TESTING_GUIDE.read_text())
    assert sorted(files.values()) == sorted(b.code.partition("\n")[2] for b in named)
    assert callable(test_testing_plugin.test_the_documented_example_passes_as_written)


@contextmanager
def as_modules(page_blocks: list[Block]) -> Iterator[list[types.ModuleType]]:
    """Run the blocks in order, each as a module of its own name (see above)."""
    added: list[str] = []
    modules = []
    try:
        for block in page_blocks:
            name = block.module_name
            parts = name.split(".")
            top = parts[0]
            if top not in added and top != "example":
                assert importlib.util.find_spec(top) is None, (
                    f"{block.where}: the title {block.title!r} would shadow the real {top!r}"
                )
            for depth in range(1, len(parts)):
                parent = ".".join(parts[:depth])
                if parent not in sys.modules:
                    package = types.ModuleType(parent)
                    package.__path__ = []
                    sys.modules[parent] = package
                    added.append(parent)
            module = types.ModuleType(name)
            module.__file__ = block.where
            sys.modules[name] = module
            added.append(name)
            # Line numbers in a traceback are the page's own.
            code = compile("\n" * block.line + block.code, str(block.page), "exec")
            exec(code, module.__dict__)
            modules.append(module)
        yield modules
    finally:
        for name in reversed(added):
            sys.modules.pop(name, None)


def deliver_everything_published() -> int:
    """Run every handler of every outbox row, and of the rows those runs add."""
    delivered: set[int] = set()
    runs = 0
    for _ in range(MAX_ROUNDS):
        rows = list(OutboxMessage.objects.exclude(pk__in=delivered).order_by("pk"))
        if not rows:
            return runs
        for row in rows:
            delivered.add(row.pk)
            for spec in handler_registry.for_type(row.event_type):
                assert spec.task is not None, f"{spec.name} has no Celery task"
                try:
                    result = spec.task.apply(
                        args=(wire_message(row),),
                        task_id=delivery_task_id(row.event_id, spec.name),
                        throw=True,
                    )
                except Retry as retry:
                    raise AssertionError(
                        f"{spec.name} failed on {row.event_type} and would be retried: "
                        f"{retry.exc!r}"
                    ) from retry.exc
                except HandlerPoisoned as poisoned:
                    raise AssertionError(f"{spec.name} was poisoned: {poisoned}") from None
                assert result.result == "done", f"{spec.name} on {row.event_type}: {result.result}"
                runs += 1
    raise AssertionError(f"still publishing after {MAX_ROUNDS} rounds of deliveries")


def check_settings_module(block: Block, module: types.ModuleType) -> None:
    names = {name: value for name, value in vars(module).items() if name.isupper()}
    celery = {name for name in names if name.startswith("CELERY_")}
    unknown = {
        name for name in celery if name.removeprefix("CELERY_") not in known_celery_settings()
    }
    assert not unknown, f"{block.where}: Celery ignores {sorted(unknown)}"
    if "MEDIATOR" in names:
        with override_settings(MEDIATOR=names["MEDIATOR"]):
            mediator_settings()  # unknown keys raise
            errors = [m for m in check_wiring() if m.level >= ERROR]
        assert not errors, f"{block.where}: {errors}"


def run_example(block: Block) -> int:
    """Run the block (after the titled blocks before it on its page) and
    deliver what it published; returns the handler runs delivered."""
    page_blocks = blocks(block.page) if block.page.exists() else [block]
    before = [b for b in page_blocks[: page_blocks.index(block)] if b.lang == "python" and b.title]
    if block.page == INSTALL_GUIDE:
        before = []  # the guide's titled blocks belong to the fresh project
    # Deliveries run here record "running" before each run (as a worker on
    # SQLite does) rather than from a watcher thread whose own connection
    # would commit past this test's transaction.
    in_process = {**settings.MEDIATOR, "RECORD_RUNNING_AFTER": 0}
    with (
        message_types.isolated(),
        handler_registry.isolated(),
        saga_registry.isolated(),
        celery_tasks_forgotten(),
        override_settings(MEDIATOR=in_process),
        as_modules([*before, block]) as modules,
    ):
        runs = deliver_everything_published()
        unfinished = SagaRun.objects.exclude(state=RunState.COMPLETED)
        assert not unfinished.exists(), [(r.saga, r.state, r.error) for r in unfinished]
        if block.title.split(" ")[0].endswith("settings.py"):
            check_settings_module(block, modules[-1])
    return runs


@pytest.mark.django_db
@pytest.mark.parametrize("block", EXAMPLES, ids=[b.where for b in EXAMPLES])
def test_example_runs(block: Block) -> None:
    run_example(block)


def example(code: str, title: str = "") -> Block:
    return Block(page=ROOT / "tests" / "docs" / "inline.md", line=1, lang="python",
                 title=title, code=textwrap.dedent(code))  # fmt: skip


EVENT_AND_HANDLER = """
    from django.contrib.auth.models import Group
    from django.db import transaction

    from mediator import DomainEvent, handles, publish


    class TeamNamed(DomainEvent):
        event_type = "teams.TeamNamed"
        name: str


    @handles(TeamNamed)
    def create_the_group(event: TeamNamed) -> None:
        Group.objects.create(name=event.name)
        {fault}


    with transaction.atomic():
        publish(TeamNamed(name="support"))
"""


@pytest.mark.django_db
def test_what_an_example_publishes_is_handled() -> None:
    from django.contrib.auth.models import Group

    assert run_example(example(EVENT_AND_HANDLER.format(fault=""))) == 1
    assert list(Group.objects.values_list("name", flat=True)) == ["support"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ('raise ValueError("a bug in the example")', "was poisoned"),
        ('raise ConnectionError("the example\'s downstream is down")', "would be retried"),
    ],
)
def test_an_example_whose_handler_fails_fails(fault: str, says: str) -> None:
    with pytest.raises(AssertionError, match=says):
        run_example(example(EVENT_AND_HANDLER.format(fault=fault)))


@pytest.mark.django_db
def test_a_settings_example_with_an_unknown_key_fails() -> None:
    with pytest.raises(ImproperlyConfigured, match="MAX_RETRY"):
        run_example(example('MEDIATOR = {"MAX_RETRY": 3}', title="myproject/settings.py"))
    with pytest.raises(AssertionError, match="CELERY_TASK_ACK_LATE"):
        run_example(example("CELERY_TASK_ACK_LATE = True", title="myproject/settings.py"))


def shell_lines() -> list[tuple[str, str]]:
    """(where, text) of every shell block line and inline code span."""
    found = []
    for page in PAGES:
        for block in blocks(page):
            if block.lang in SHELL:
                found += [(block.where, line) for line in block.code.splitlines()]
        found += [(page.name, span) for span in inline_code(page)]
    return found


MAKE = re.compile(r"(?:^|[\s;&|(])make((?:\s+\[?[A-Z_]+=\S*)*)\s+([a-z][\w-]*)")
MANAGE = re.compile(r"manage\.py\s+([a-z_]+)")


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*)\s*:(?!=)", (ROOT / "Makefile").read_text(), re.M))


def test_every_make_target_the_docs_name_exists() -> None:
    targets = make_targets()
    named = {(where, m.group(2)) for where, text in shell_lines() for m in MAKE.finditer(text)}
    assert {"run", "test", "docs"} <= {target for _, target in named}
    missing = sorted((where, target) for where, target in named if target not in targets)
    assert not missing, f"no such make target: {missing}"


def test_every_management_command_the_docs_name_exists() -> None:
    commands = set(get_commands())
    named = {(where, m.group(1)) for where, text in shell_lines() for m in MANAGE.finditer(text)}
    assert {"relay_outbox", "mediator_graph", "seed_demo"} <= {command for _, command in named}
    missing = sorted((where, command) for where, command in named if command not in commands)
    assert not missing, f"no such management command: {missing}"
