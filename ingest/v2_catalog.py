"""Which models a v2 caller sees, which version a request means, and its task.

With auth on, an account sees the model versions it has a task for, plus every version
of the models the model repository shares with all accounts (those whose repository
task the repository account owns). With auth off, every registered model is visible.

A request without a version means the newest: the highest numeric version, then the
most recently registered.
"""

from __future__ import annotations

from bus.registry_view import RegistryView
from ingest.errors import NotFound
from schemas.registry import ModelRecord, TaskRecord, version_key

#: The account of v2 requests when auth is off; the colon keeps it out of reach of keys.
ANONYMOUS = "v2:anonymous"


def _model_name(model_id: str) -> str:
    return model_id.partition(":")[0]


def visible_versions(
    registry: RegistryView, account: str | None, shared_by: str, name: str
) -> list[ModelRecord]:
    """The versions of ``name`` that ``account`` may use (None: auth off), oldest first."""
    models = [m for m in registry.models.values() if m.name == name]
    if account is not None and models:
        tasks = registry.tasks.values()
        shared = any(t.account_id == shared_by and _model_name(t.model_id) == name
                     for t in tasks)
        if not shared:
            own = {t.model_id for t in tasks if t.account_id == account}
            models = [m for m in models if m.id in own]
    return sorted(models, key=version_key)


def resolve(
    registry: RegistryView, account: str | None, shared_by: str, name: str,
    version: str | None,
) -> tuple[ModelRecord, list[ModelRecord]]:
    """The model version a request names (newest when ``version`` is None) and all visible.

    A model the caller may not see is answered exactly like a missing one.
    """
    versions = visible_versions(registry, account, shared_by, name)
    if not versions:
        raise NotFound(f"model {name!r} not found")
    if version is None:
        return versions[-1], versions
    for m in versions:
        if m.version == version:
            return m, versions
    raise NotFound(f"model {name!r} has no version {version!r}")


def task_for_request(registry: RegistryView, account: str | None, model: ModelRecord
                     ) -> TaskRecord:
    """The caller's own task on this model version, else a task of its own for v2 calls.

    The repository's task is never borrowed for another account's request: whoever
    follows that task must not see other accounts' subtasks.
    """
    if account is not None:
        for t in registry.tasks.values():
            if t.account_id == account and t.model_id == model.id:
                return t
    return TaskRecord(id=f"v2:{model.id}", account_id=account or ANONYMOUS, name=model.name,
                      model_id=model.id)
