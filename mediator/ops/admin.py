"""The mediator's admin: outbox and inbox as records, poisoned tasks with
retry and discard, saga runs with their timeline of steps."""

import copy
import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.fields.json import KT
from django.db.models.functions import Left
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from mediator.delivery import poison
from mediator.delivery.models import InboxRecord, OutboxMessage, PoisonedTask, PoisonStatus
from mediator.exceptions import MediatorError
from mediator.ops.links import link_payload_keys, poisoned_task_links
from mediator.sagas.models import SagaRun, SagaStep

SHORT_EXCEPTION = 120  # characters of the exception in the list
LINK_KEY = "link_payload_"  # the changelist's annotations of the payload keys links read


class ReadOnlyAdmin(admin.ModelAdmin):
    """A record, not something to edit."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = [
        "event_type",
        "event_id",
        "status",
        "created_at",
        "dispatched_at",
        "dispatch_attempts",
        "redeliveries",
        "settled_at",
    ]
    list_filter = ["status", "event_type"]
    search_fields = ["=event_id", "=correlation_id"]
    date_hierarchy = "created_at"
    readonly_fields = ["payload_pretty"]
    exclude = ["payload"]

    @admin.display(description="payload")
    def payload_pretty(self, obj: OutboxMessage) -> str:
        return pretty_json(obj.payload)


@admin.register(InboxRecord)
class InboxRecordAdmin(ReadOnlyAdmin):
    list_display = ["handler", "event_id", "handled_at", "duplicates"]
    list_filter = ["handler"]
    search_fields = ["=event_id"]


@admin.register(PoisonedTask)
class PoisonedTaskAdmin(admin.ModelAdmin):
    list_display = [
        "handler",
        "event_type",
        "event_id",
        "status",
        "attempts",
        "short_exception",
        "links",
        "last_failed_at",
    ]
    list_filter = ["status", "handler", "event_type"]
    search_fields = ["=event_id", "task_id"]
    actions = ["retry", "discard"]
    fields = [
        "handler", "event_type", "event_id", "links", "status", "attempts", "exception",
        "traceback_pre", "payload_pretty", "task_id", "first_failed_at", "last_failed_at",
        "resolved_at",
    ]  # fmt: skip
    readonly_fields = fields  # type: ignore[assignment]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """A poisoned row is the only record of a failure: discard it, never delete it."""
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        request.poisoned_changelist = True  # type: ignore[attr-defined]
        return super().get_changelist_instance(request)

    def get_queryset(self, request: HttpRequest) -> QuerySet[PoisonedTask]:
        queryset = super().get_queryset(request)
        if not getattr(request, "poisoned_changelist", False):
            return queryset
        # A page of rows must not load every payload, traceback and exception
        # (each up to tens of kilobytes): the list shows the exception's start
        # and the links, which read only the payload keys their adapter declared.
        keys = {f"{LINK_KEY}{key}": KT(f"payload__payload__{key}") for key in link_payload_keys()}
        return queryset.defer("payload", "traceback", "exception").annotate(
            exception_start=Left("exception", SHORT_EXCEPTION), **keys
        )

    @admin.display(description="see also")
    def links(self, obj: PoisonedTask) -> str:
        if "payload" in obj.get_deferred_fields():  # a changelist row
            row = copy.copy(obj)
            body = {key: getattr(obj, f"{LINK_KEY}{key}") for key in link_payload_keys()}
            row.payload = {"payload": {k: v for k, v in body.items() if v is not None}}
            obj = row
        return format_html_join(" · ", '<a href="{}">{}</a>', poisoned_task_links(obj))

    @admin.display(description="exception")
    def short_exception(self, obj: PoisonedTask) -> str:
        start = getattr(obj, "exception_start", None)
        return start if start is not None else obj.exception[:SHORT_EXCEPTION]

    @admin.display(description="traceback")
    def traceback_pre(self, obj: PoisonedTask) -> str:
        return format_html("<pre>{}</pre>", obj.traceback)

    @admin.display(description="payload")
    def payload_pretty(self, obj: PoisonedTask) -> str:
        return pretty_json(obj.payload)

    @admin.action(description="Retry selected poisoned tasks", permissions=["change"])
    def retry(self, request: HttpRequest, queryset: QuerySet[PoisonedTask]) -> None:
        retried, refused = 0, []
        for row in queryset:
            if row.status not in (PoisonStatus.POISONED, PoisonStatus.RETRIED):
                refused.append(f"#{row.pk} is {row.get_status_display().lower()}")
                continue
            try:
                task_id = poison.retry(row)
            except (MediatorError, OSError) as exc:
                refused.append(f"#{row.pk}: {exc}")
            except Exception as exc:  # the broker refused: say so, keep the row
                refused.append(f"#{row.pk}: could not enqueue ({type(exc).__name__}: {exc})")
            else:
                retried += 1
                self.log_change(request, row, f"Retried: re-enqueued as task {task_id}.")
        if retried:
            self.message_user(request, f"Re-enqueued {retried} task(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not retried: " + "; ".join(refused), messages.WARNING)

    @admin.action(description="Discard selected poisoned tasks", permissions=["change"])
    def discard(self, request: HttpRequest, queryset: QuerySet[PoisonedTask]) -> None:
        count = 0
        for row in queryset.filter(status=PoisonStatus.POISONED):
            if poison.discard(row):
                count += 1
                self.log_change(request, row, "Discarded.")
        self.message_user(request, f"Discarded {count} task(s).", messages.SUCCESS)


class SagaStepInline(admin.TabularInline):
    """The run's timeline: one line per step, action and compensation."""

    model = SagaStep
    extra = 0
    can_delete = False
    fields = [
        "index", "name", "state", "attempts", "started_at", "finished_at", "error", "output",
        "compensation", "compensation_attempts", "compensation_started_at", "compensated_at",
        "compensation_error",
    ]  # fmt: skip
    readonly_fields = fields  # type: ignore[assignment]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SagaRun)
class SagaRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "saga", "state", "step", "created_at", "finished_at", "short_error"]
    list_filter = ["saga", "state"]
    search_fields = ["=id", "=correlation_id"]
    date_hierarchy = "created_at"
    fields = [
        "id", "saga", "state", "step", "failed_step", "error", "stuck_task", "data_pretty",
        "correlation_id", "created_at", "updated_at", "finished_at",
    ]  # fmt: skip
    readonly_fields = fields  # type: ignore[assignment]
    inlines = [SagaStepInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SagaRun]:
        # The current step's name in the same query as the run, for the list.
        current = SagaStep.objects.filter(run=OuterRef("pk"), index=OuterRef("current_step"))
        return (
            super()
            .get_queryset(request)
            .annotate(current_step_name=Subquery(current.values("name")[:1]))
        )

    @admin.display(description="step")
    def step(self, obj: SagaRun) -> str:
        name = getattr(obj, "current_step_name", None)
        return f"{obj.current_step + 1}. {name}" if name else "-"

    @admin.display(description="error")
    def short_error(self, obj: SagaRun) -> str:
        return obj.error[:100]

    @admin.display(description="data")
    def data_pretty(self, obj: SagaRun) -> str:
        return pretty_json(obj.data)

    @admin.display(description="poisoned compensation")
    def stuck_task(self, obj: SagaRun) -> str:
        """The poisoned task to retry once the cause is fixed."""
        rows = PoisonedTask.objects.filter(
            payload__payload__run_id=str(obj.pk),
            status=PoisonStatus.POISONED,
            handler__endswith=".compensate",
        )
        return (
            format_html_join(
                " · ",
                '<a href="{}">{}</a>',
                (
                    (reverse("admin:mediator_poisonedtask_change", args=[r.pk]), r.handler)
                    for r in rows
                ),
            )
            or "-"
        )
